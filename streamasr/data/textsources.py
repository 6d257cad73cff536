"""Offline English text sources for the built-in corpus.

Each source reads text that ships in a Debian package or a PyPI wheel (nothing is
downloaded at run time), splits it into sentences and writes them out as spoken words
(:func:`streamasr.data.spoken.spoken_form`). Sources differ in style on purpose:

===============  ===========================================  =====================  ==============
source           style                                        ships in               licence
===============  ===========================================  =====================  ==============
``wordnet``      usage examples: short everyday sentences     Debian wordnet-base    WordNet 3.0 licence
``fortunes``     quotations, jokes, anecdotes, dialogue       Debian fortunes        BSD (fortune-mod)
``markov``       encyclopedic narration (trigram walk)        PyPI essential-generators  MIT
``numbers``      names, dates, times, prices, questions       PyPI faker + num2words (our templates)  MIT / LGPL-2.1
``chatterbot``   conversation: questions and replies          PyPI chatterbot-corpus BSD-3-Clause
``devil``        satirical definitions and verse (1911)       Debian dict-devil      public domain
===============  ===========================================  =====================  ==============

``chatterbot`` and ``devil`` are held out: they are only ever in ``test_text`` (see
:mod:`streamasr.data.synthetic`). Every loader is a pure function of its arguments and
the installed package version: files are read in sorted order and the sentence lists
keep first occurrences only, so a seed picks the same sentences on every machine.
"""

from __future__ import annotations

import dataclasses
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

from streamasr.data.spoken import spoken_form
from streamasr.errors import PrepareError

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
DEVIL_DICT = Path("/usr/share/dictd/devil.dict.dz")
# The fortune files read (Debian fortunes + fortunes-min), named so that other installed
# fortune packages cannot change the corpus. Left out: pictures, Debian/Linux/Perl/Star
# Trek jargon, jokes about groups of people, non-English and word-salad files.
FORTUNE_FILES = (
    "art", "computers", "cookie", "definitions", "drugs", "education", "food", "fortunes", "goedel",
    "humorists", "kids", "law", "literature", "love", "magic", "medicine", "miscellaneous", "news",
    "people", "pets", "platitudes", "politics", "pratchett", "riddles", "science", "songs-poems",
    "sports", "tao", "wisdom", "work",
)
# Chatterbot topics left out: technical (code, tech support) or about the bot itself.
_CHATTERBOT_EXCLUDED = frozenset({"ai", "botprofile", "coding", "computers", "tech_support"})
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')]*\s+(?=[\"'(]*[A-Z])")


@dataclasses.dataclass(frozen=True)
class TextSource:
    """One source of sentences: ``load(min_words, max_words, count, seed)`` returns
    spoken-form sentences (``count`` is only used by generators; readers return all)."""

    name: str
    style: str
    ships_in: str
    licence: str
    install: str
    load: Callable[[int, int, int, int], list[str]]


def _unique(sentences) -> list[str]:
    seen: set[str] = set()
    out = []
    for sentence in sentences:
        if sentence and sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph (line breaks and runs of spaces collapsed)."""
    text = " ".join(text.split())
    return [part for part in _SENTENCE_END.split(text) if part]


def _require(path: Path, package: str) -> None:
    if not path.exists():
        raise PrepareError(
            f"{path} not found: the built-in corpus reads it from the Debian package {package!r}. "
            f"Install it (`sudo apt-get install {package}`) or run `make install` as root."
        )


@lru_cache(maxsize=8)
def _fortunes(min_words: int, max_words: int) -> tuple[str, ...]:
    sentences = []
    for name in FORTUNE_FILES:
        path = FORTUNES_DIR / name
        _require(path, "fortunes")
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            lines = []
            for line in entry.splitlines():
                stripped = line.strip()
                if stripped.startswith("--") or stripped.startswith("-- "):
                    break  # attribution: "-- Mark Twain"
                # dialogue labels ("Q: ...", "Mother: ...") are not spoken
                stripped = re.sub(r"^[A-Z][A-Za-z]{0,11}:\s+", "", stripped)
                lines.append(stripped)
            for sentence in split_sentences(" ".join(lines)):
                sentences.append(spoken_form(sentence, min_words, max_words))
    return tuple(_unique(sentences))


@lru_cache(maxsize=8)
def _wordnet(min_words: int, max_words: int) -> tuple[str, ...]:
    _require(WORDNET_DIR / "data.noun", "wordnet-base")
    sentences = []
    for part in ("adj", "adv", "noun", "verb"):
        with open(WORDNET_DIR / f"data.{part}", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("  ") or " | " not in line:
                    continue  # licence header
                gloss = line.split(" | ", 1)[1]
                for example in re.findall(r'"([^"]+)"', gloss):
                    sentences.append(spoken_form(example, min_words, max_words))
    return tuple(_unique(sentences))


@lru_cache(maxsize=8)
def _chatterbot(min_words: int, max_words: int) -> tuple[str, ...]:
    try:
        import chatterbot_corpus
    except ImportError as error:
        raise PrepareError(
            "the chatterbot-corpus wheel is missing: `pip install chatterbot-corpus` (make install)"
        ) from error
    import yaml

    folder = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    sentences = []
    for path in sorted(folder.glob("*.yml")):
        if path.stem in _CHATTERBOT_EXCLUDED:
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations", []):
            for turn in conversation:
                for sentence in split_sentences(str(turn)):
                    sentences.append(spoken_form(sentence, min_words, max_words))
    return tuple(_unique(sentences))


@lru_cache(maxsize=8)
def _devil(min_words: int, max_words: int) -> tuple[str, ...]:
    """Ambrose Bierce's The Devil's Dictionary: the definitions' prose and verse, without
    headwords ("ABSURDITY, n.") and indented attributions."""
    import gzip

    _require(DEVIL_DICT, "dict-devil")
    text = gzip.open(DEVIL_DICT, "rt", encoding="utf-8", errors="replace").read()
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = re.sub(r"^[A-Z][A-Z' -]+, [a-z.]+\s+", "", paragraph.strip())
        for sentence in split_sentences(paragraph):
            sentences.append(spoken_form(sentence, min_words, max_words))
    return tuple(_unique(sentences))


def _markov(min_words: int, max_words: int, count: int, seed: int) -> list[str]:
    from streamasr.data.text import generate_sentences

    return generate_sentences(count, seed=seed, vocabulary_size=None, min_words=min_words,
                              max_words=max_words)


def _numbers(min_words: int, max_words: int, count: int, seed: int) -> list[str]:
    from streamasr.data.templates import template_sentences

    return template_sentences(count, seed, min_words, max_words)


def _reader(function) -> Callable[[int, int, int, int], list[str]]:
    return lambda min_words, max_words, count, seed: list(function(min_words, max_words))


SOURCES: dict[str, TextSource] = {
    source.name: source
    for source in (
        TextSource("wordnet", "usage examples: short everyday sentences", "Debian wordnet-base",
                   "WordNet 3.0 licence (Princeton; permissive)", "apt-get install wordnet-base",
                   _reader(_wordnet)),
        TextSource("fortunes", "quotations, jokes, anecdotes, dialogue", "Debian fortunes",
                   "BSD (fortune-mod data)", "apt-get install fortunes", _reader(_fortunes)),
        TextSource("markov", "encyclopedic narration (trigram chain, open vocabulary)",
                   "PyPI essential-generators", "MIT", "pip install essential-generators", _markov),
        TextSource("numbers", "names, places, dates, times, prices, quantities, questions",
                   "PyPI faker + num2words (templates: ours)", "MIT / LGPL-2.1", "pip install faker num2words",
                   _numbers),
        TextSource("chatterbot", "conversation: questions and replies", "PyPI chatterbot-corpus",
                   "BSD-3-Clause", "pip install chatterbot-corpus", _reader(_chatterbot)),
        TextSource("devil", "satirical definitions and verse (Ambrose Bierce, 1911)", "Debian dict-devil",
                   "public domain", "apt-get install dict-devil", _reader(_devil)),
    )
}


def words_of(sentences) -> set[str]:
    return {word for sentence in sentences for word in sentence.split()}


def sample_sentences(pool: list[str], count: int, seed: int) -> list[str]:
    """``count`` sentences drawn from ``pool`` without replacement (all if fewer)."""
    rng = random.Random(seed)
    picked = list(pool)
    rng.shuffle(picked)
    return picked[:count]
