"""Hotwords: the Aho-Corasick context graph (HE / SHE / SHELL / HIS / THIS), its
bonus and refund arithmetic, beam search with it, the hotwords file and its errors
(not UTF-8, UTF-16, scores that are not a bonus > 0)."""

from __future__ import annotations

import re

import pytest
import torch
from test_beam import frames, parts, run_chunked

from streamasr.decoding import BeamSearch, ContextGraph, read_hotwords
from streamasr.decoding.hotwords import hotwords_from_lines
from streamasr.errors import ConfigError

LETTERS = {c: i + 1 for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
WORDS = ["HE", "SHE", "SHELL", "HIS", "THIS"]


def encode(text):
    return [LETTERS[c] for c in text]


def walk(graph, text):
    state, total = 0, 0.0
    for token in encode(text):
        bonus, state = graph.step(state, token)
        total += bonus
    return total, total + graph.finish(state)


@pytest.mark.parametrize("text,found,kept", [
    ("SHELL", [("SHE", 2), ("HE", 2), ("SHELL", 4)], 3 + 2 + 5),
    ("HISHE", [("HIS", 2), ("SHE", 4), ("HE", 4)], 3 + 3 + 2),
    ("THISHELL", [("THIS", 3), ("HIS", 3), ("SHE", 5), ("HE", 5), ("SHELL", 7)], 4 + 3 + 3 + 2 + 5),
    ("SHELX", [("SHE", 2), ("HE", 2)], 3 + 2),  # the unfinished SHEL(L) is refunded
    ("SHX", [], 0),
    ("XYZ", [], 0),
])
def test_aho_corasick_matches_and_the_bonus_kept(text, found, kept):
    graph = ContextGraph([encode(w) for w in WORDS], default_score=1.0)
    assert [(WORDS[p], end) for p, end in graph.matches(encode(text))] == found
    _, after_finish = walk(graph, text)
    assert after_finish == pytest.approx(kept)  # every completed phrase once, its whole bonus


def test_partial_match_is_provisional_until_the_end():
    graph = ContextGraph([encode("SHELL")], scores=[2.0])
    before, after = walk(graph, "SHEL")
    assert before == pytest.approx(8.0) and after == pytest.approx(0.0)
    before, after = walk(graph, "SHELLS")
    assert after == pytest.approx(10.0 + 0.0)  # 5 tokens x 2, kept after the phrase is left


def test_empty_hotword_list_reproduces_the_plain_search_and_a_hotword_wins():
    decoder, joiner = parts(vocab=8)
    encoder_out = frames(2, 16, seed=9)
    lengths = torch.tensor([16, 11])
    plain = run_chunked(BeamSearch(decoder, joiner, beam_size=4), encoder_out, lengths, 4)
    empty = run_chunked(BeamSearch(decoder, joiner, beam_size=4, hotwords=ContextGraph([])), encoder_out,
                        lengths, 4)
    assert empty[0] == plain[0] and empty[1] == plain[1]
    # boost a sequence that is not the plain best: it becomes the best
    target = next(tokens for tokens, _ in plain[1][0][1:] if tokens and tokens != plain[1][0][0][0])
    boosted = run_chunked(BeamSearch(decoder, joiner, beam_size=4, hotwords=ContextGraph([target], [5.0])),
                          encoder_out, lengths, 4)
    assert target == boosted[0][0] or ContextGraph([target]).matches(boosted[0][0])


def test_hotwords_file_and_its_errors(model, tmp_path):
    path = tmp_path / "hot.txt"
    path.write_text("# names\nHELLO WORLD :2.5\n\nTHE\n")
    graph = read_hotwords(path, model.tokenizer, 1.5, model.blank_id)
    assert len(graph.phrases) == 2
    assert graph.phrases[0] == tuple(model.tokenizer.encode_as_ids("HELLO WORLD"))
    assert graph.nodes[graph.nodes[0].next[graph.phrases[0][0]]].token_score == 2.5
    path.write_text("HELLO :loud\n")
    with pytest.raises(ConfigError, match="hot.txt:1: score 'loud' is not a number"):
        read_hotwords(path, model.tokenizer, blank_id=model.blank_id)
    path.write_text("ÆØÅ\n")
    with pytest.raises(ConfigError, match="hot.txt:1: the tokenizer cannot encode 'ÆØÅ'"):
        read_hotwords(path, model.tokenizer, blank_id=model.blank_id)
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="has no phrase"):
        read_hotwords(path, model.tokenizer, blank_id=model.blank_id)
    with pytest.raises(ConfigError, match="does not exist"):
        read_hotwords(tmp_path / "none.txt", model.tokenizer)


class LetterTokenizer:
    """Upper-case letters as pieces 1..26 (0: blank and unknown), for the file's checks
    without a trained model."""

    def unk_id(self):
        return 0

    def encode_as_ids(self, text):
        return [LETTERS.get(c, 0) for c in text if c != " "]


NOT_A_BONUS = ("a bonus per matched token; a negative one does not suppress the phrase, it prunes every hypothesis "
               "that begins like it")


def test_a_utf16_hotwords_file_is_asked_to_be_saved_as_utf8(tmp_path):
    (tmp_path / "hot.txt").write_bytes("FOX\nHELLO\n".encode("utf-16"))  # starts with b"\xff\xfe"
    with pytest.raises(ConfigError, match=re.escape("hot.txt looks like UTF-16 (it starts with a UTF-16 byte order "
                                                    "mark): save it as UTF-8")):
        read_hotwords(tmp_path / "hot.txt", LetterTokenizer())


def test_a_hotwords_file_starting_with_ff_fe_00_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "hot.txt").write_bytes(b"\xff\xfe\x00FOX\n")
    with pytest.raises(ConfigError, match="hot.txt looks like UTF-16"):
        read_hotwords(tmp_path / "hot.txt", LetterTokenizer())


def test_a_hotwords_file_that_is_not_utf8_names_the_byte(tmp_path):
    data = "FOX\nCAFÉ\n".encode("latin-1")
    (tmp_path / "hot.txt").write_bytes(data)
    offset = data.index("É".encode("latin-1"))
    with pytest.raises(ConfigError, match=re.escape(f"hotwords file {tmp_path / 'hot.txt'} is not UTF-8 text (byte "
                                                    f"offset {offset}): save it as UTF-8")):
        read_hotwords(tmp_path / "hot.txt", LetterTokenizer())


def test_nul_bytes_in_a_hotwords_file_are_not_utf8_text(tmp_path):
    (tmp_path / "hot.txt").write_bytes("FOX\n".encode("utf-16-le"))  # UTF-16 without a byte order mark
    with pytest.raises(ConfigError, match=re.escape("hot.txt is not UTF-8 text (byte offset 1): save it as UTF-8")):
        read_hotwords(tmp_path / "hot.txt", LetterTokenizer())


def test_a_utf8_byte_order_mark_is_skipped(tmp_path):
    (tmp_path / "hot.txt").write_bytes("FOX :2\n".encode("utf-8-sig"))
    graph = read_hotwords(tmp_path / "hot.txt", LetterTokenizer())
    assert graph.phrases == [tuple(encode("FOX"))]


@pytest.mark.parametrize("score", ["-100", "0", "-0.0"])
def test_a_score_that_is_not_a_bonus_names_its_line(score, tmp_path):
    (tmp_path / "hotwords.txt").write_text(f"# names\nHELLO\nFOX :{score}\n")
    with pytest.raises(ConfigError, match=re.escape(f"hotwords.txt:3: score {score} must be > 0 ({NOT_A_BONUS})")):
        read_hotwords(tmp_path / "hotwords.txt", LetterTokenizer())


@pytest.mark.parametrize("score", ["nan", "inf", "-inf"])
def test_a_score_that_is_not_finite_names_its_line(score, tmp_path):
    (tmp_path / "hotwords.txt").write_text(f"FOX :{score}\n")
    with pytest.raises(ConfigError, match=re.escape(f"hotwords.txt:1: score {score} is not a finite number")):
        read_hotwords(tmp_path / "hotwords.txt", LetterTokenizer())


@pytest.mark.parametrize("default", [-1.0, 0.0])
def test_a_default_score_that_is_not_a_bonus_is_refused(default, tmp_path):
    (tmp_path / "hotwords.txt").write_text("FOX :2\n")  # even when every line has its own score
    with pytest.raises(ConfigError, match=re.escape(f"default hotword score {default:g} (--hotwords-score) must be "
                                                    f"> 0 ({NOT_A_BONUS})")):
        read_hotwords(tmp_path / "hotwords.txt", LetterTokenizer(), default_score=default)


def test_a_default_score_that_is_not_finite_is_refused():
    with pytest.raises(ConfigError, match=re.escape("default hotword score nan (--hotwords-score) is not a finite "
                                                    "number")):
        hotwords_from_lines(["FOX"], LetterTokenizer(), default_score=float("nan"))


def test_a_context_graph_refuses_a_score_that_is_not_a_bonus():
    with pytest.raises(ConfigError, match=re.escape(f"hotword 2: score -3 must be a finite number > 0 "
                                                    f"({NOT_A_BONUS})")):
        ContextGraph([encode("HE"), encode("SHE")], scores=[1.0, -3.0])
    with pytest.raises(ConfigError, match=re.escape("2 hotwords but 1 scores")):
        ContextGraph([encode("HE"), encode("SHE")], scores=[1.0])


def test_per_stream_hotwords_before_the_first_chunk_only_and_an_empty_list_turns_them_off(model, utterances):
    from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

    from streamasr.streaming import StreamingRecognizer

    plain = StreamingRecognizer(model, DynChunkTrainConfig(8, 2), decoding="beam", beam=4)
    text = plain.transcribe(utterances[0].wav)[0].result.text
    graph = ContextGraph([plain.model.tokenizer.encode_as_ids(text.split()[0])], [4.0])
    spec = plain.search  # a search with global hotwords, turned off for one stream
    boosted = StreamingRecognizer(model, DynChunkTrainConfig(8, 2), decoding="beam", beam=4)
    boosted.search = BeamSearch(spec.decoder, spec.joiner, spec.blank_id, 4, hotwords=graph)
    state = boosted.init_state(1)
    boosted.set_hotwords(state, [])
    boosted.accept_audio(state, utterances[0].wav[None])
    boosted.finalize(state)
    assert state.result.text == text
    started = boosted.init_state(1)
    boosted.accept_audio(started, utterances[0].wav[None])
    with pytest.raises(ConfigError, match="only before a stream's first chunk"):
        boosted.set_hotwords(started, ["A"])
