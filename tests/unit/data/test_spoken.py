"""Written English -> spoken words for the built-in corpus, and the text sources."""

from __future__ import annotations

import pytest

from streamasr.data.spoken import spoken_form
from streamasr.data.templates import template_sentences
from streamasr.data.textsources import SOURCES, split_sentences


@pytest.mark.parametrize("written, spoken", [
    ("Dr. Smith paid $3.50 on May 3rd, 1984.",
     "DOCTOR SMITH PAID THREE DOLLARS AND FIFTY CENTS ON MAY THIRD NINETEEN EIGHTY FOUR"),
    ("It's 10:05 p.m. and 45% of 1,200 people left at 7:00.",
     "IT'S TEN OH FIVE IN THE EVENING AND FORTY FIVE PERCENT OF ONE THOUSAND TWO HUNDRED PEOPLE LEFT AT "
     "SEVEN O'CLOCK"),
    ("In 2000, 2010 and 1492; agent 007 said pi is 3.14!",
     "IN TWO THOUSAND TWENTY TEN AND FOURTEEN NINETY TWO AGENT OH OH SEVEN SAID PI IS THREE POINT ONE FOUR"),
    ("\u201cCaf\u00e9,\u201d she said \u2014 na\u00efvely.", "CAFE SHE SAID NAIVELY"),
    ("Rock & roll costs \u00a31", "ROCK AND ROLL COSTS ONE POUND"),
    ("well-known 'quotes' aren't", "WELL KNOWN QUOTES AREN'T"),
])
def test_numbers_dates_money_and_punctuation_are_written_out(written, spoken):
    assert spoken_form(written) == spoken


@pytest.mark.parametrize("written", [
    "The NASA budget grew.",  # acronym: spelled or said as a word?
    "Mail me at bob@example.com",
    "x = y + 1",
    "\u041f\u0440\u0438\u0432\u0435\u0442 world",  # another script
    "<b>bold</b>",
])
def test_unsayable_text_is_rejected_not_guessed(written):
    assert spoken_form(written) is None


def test_word_limits():
    assert spoken_form("one two three", min_words=4) is None
    assert spoken_form("one two three four", min_words=4) == "ONE TWO THREE FOUR"
    assert spoken_form("a b c d e", max_words=4) is None


def test_sentence_splitting():
    assert split_sentences('He left.  "Why?" she asked.\nNobody knew!') == ['He left.', '"Why?" she asked.',
                                                                         "Nobody knew!"]


def test_templates_are_deterministic_and_write_numbers_as_words():
    a = template_sentences(50, seed=3)
    assert a == template_sentences(50, seed=3) and a != template_sentences(50, seed=4)
    assert len(a) == len(set(a)) == 50
    assert all(set(s) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ") for s in a)
    assert any("O'CLOCK" in s or "DOLLARS" in s for s in a)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_yields_clean_distinct_sentences(name):
    sentences = SOURCES[name].load(4, 18, 200, 1)
    assert len(sentences) >= 200 and len(set(sentences)) == len(sentences)
    for sentence in sentences[:2000]:
        words = sentence.split()
        assert 4 <= len(words) <= 18 and set(sentence) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' "), sentence
    assert SOURCES[name].licence and SOURCES[name].ships_in
