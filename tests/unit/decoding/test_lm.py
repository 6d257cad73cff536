"""The token n-gram LM (streamasr.decoding.lm) and its fusion in beam search: every
context's distribution sums to 1, ARPA round trip (plain and gzip), bad ARPA files named
(truncated, binary, not UTF-8), LM weight 0 reproduces the plain search exactly, fusion
moves scores by the LM."""

from __future__ import annotations

import gzip
import math
import random
import re

import pytest
import torch
from test_beam import frames, parts, run_chunked

from streamasr.cli import main as cli
from streamasr.decoding import BeamSearch, Decoding, NgramLM, train_ngram
from streamasr.errors import ConfigError


def corpus(seed=0, vocab=8):
    rng = random.Random(seed)
    return [[rng.choice(range(1, vocab - 2)) for _ in range(rng.randint(1, 7))] for _ in range(150)] + [[6, 7, 6]] * 5


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_sums_to_one_and_arpa_round_trips(order, tmp_path):
    lm = train_ngram(corpus(), 8, order, exclude=(0,))
    contexts = {()}
    for sequence in corpus():
        for end in range(len(sequence) + 1):
            contexts.add(lm.context(sequence[:end]))
    contexts |= {(lm.bos,), (7, 7, 7)[: order - 1], (2, 6, 1)[: order - 1]}  # unseen ones back off
    for context in contexts:
        logp = lm.log_probs(context)
        assert logp[0] == -math.inf  # blank is never predicted
        assert float(torch.logsumexp(logp, 0)) == pytest.approx(0.0, abs=1e-9), context
    pieces = [f"p{i}" for i in range(8)]
    lm.write_arpa(tmp_path / "lm.arpa", pieces)
    back = NgramLM.read_arpa(tmp_path / "lm.arpa", {p: i for i, p in enumerate(pieces)}, exclude=(0,))
    for context in contexts:
        assert torch.allclose(lm.log_probs(context), back.log_probs(context), atol=1e-5, equal_nan=True)
    if order > 1:  # it learned the frequent sequence
        assert lm.sequence_log_prob([6, 7, 6]) > lm.sequence_log_prob([7, 6, 7]) + 2


def test_bad_arpa_files_are_named(tmp_path):
    lm = train_ngram(corpus(), 8, 2)
    lm.write_arpa(tmp_path / "lm.arpa", [f"p{i}" for i in range(8)])
    with pytest.raises(ConfigError, match="'p7' is not a piece of this model's tokenizer"):
        NgramLM.read_arpa(tmp_path / "lm.arpa", {f"p{i}": i for i in range(7)})
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-0.5 p1 x y z\n")
    with pytest.raises(ConfigError, match="bad.arpa:5: expected log10 prob, 1 words"):
        NgramLM.read_arpa(tmp_path / "bad.arpa", {"p1": 1})
    with pytest.raises(ConfigError, match="does not exist"):
        NgramLM.read_arpa(tmp_path / "missing.arpa", {"p1": 1})
    with pytest.raises(ConfigError, match="token 0 cannot be in an LM"):
        train_ngram([[1, 0, 2]], 8, 2, exclude=(0,))


PIECES = {f"p{i}": i for i in range(8)}


def arpa(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def written_lm(tmp_path, order=2):
    """A trained LM written as ARPA: (the model, the path, the file's lines)."""
    lm = train_ngram(corpus(), 8, order, exclude=(0,))
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path, list(PIECES))
    return lm, path, path.read_text().splitlines()


def test_fewer_ngrams_than_the_header_declares_is_a_truncated_file(tmp_path):
    (tmp_path / "lm.arpa").write_text(arpa("\\data\\", "ngram 1=3", "", "\\1-grams:", "-0.5\tp1", "-0.6\t</s>", "",
                                           "\\end\\"))
    with pytest.raises(ConfigError, match=re.escape("lm.arpa: the header declares 3 1-grams, the file holds 2 "
                                                    "(truncated?)")):
        NgramLM.read_arpa(tmp_path / "lm.arpa", PIECES)


def test_a_file_cut_before_its_last_ngrams_names_the_order(tmp_path):
    _, path, lines = written_lm(tmp_path)
    declared = int(next(line for line in lines if line.startswith("ngram 2=")).split("=")[1])
    path.write_text("\n".join(lines[:-5]) + "\n")  # the \end\ line and the last 3 bigrams are gone
    with pytest.raises(ConfigError, match=re.escape(f"lm.arpa: the header declares {declared} 2-grams, the file "
                                                    f"holds {declared - 3} (truncated?)")):
        NgramLM.read_arpa(path, PIECES)


def test_more_ngrams_than_the_header_declares_is_refused(tmp_path):
    (tmp_path / "lm.arpa").write_text(arpa("\\data\\", "ngram 1=1", "", "\\1-grams:", "-0.5\tp1", "-0.6\t</s>", "",
                                           "\\end\\"))
    with pytest.raises(ConfigError, match=re.escape("lm.arpa: the header declares 1 1-grams, the file holds 2")):
        NgramLM.read_arpa(tmp_path / "lm.arpa", PIECES)


def test_a_file_without_its_end_line_is_truncated(tmp_path):
    _, path, lines = written_lm(tmp_path)
    assert lines[-1] == "\\end\\"
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ConfigError, match=re.escape("lm.arpa: no \\end\\ line (truncated?)")):
        NgramLM.read_arpa(path, PIECES)


def test_a_section_of_an_order_the_header_does_not_declare_is_refused(tmp_path):
    (tmp_path / "lm.arpa").write_text(arpa("\\data\\", "ngram 1=2", "", "\\1-grams:", "-0.5\tp1", "-0.6\t</s>", "",
                                           "\\2-grams:", "-0.1\tp1 p1", "", "\\end\\"))
    with pytest.raises(ConfigError, match=re.escape("lm.arpa:8: a \\2-grams: section, but the \\data\\ header "
                                                    "declares no 2-grams")):
        NgramLM.read_arpa(tmp_path / "lm.arpa", PIECES)


def test_sections_without_a_data_header_are_not_an_arpa_file(tmp_path):
    (tmp_path / "lm.arpa").write_text(arpa("\\1-grams:", "-0.5\tp1", "", "\\end\\"))
    with pytest.raises(ConfigError, match=re.escape("lm.arpa:1: not an ARPA file (\\1-grams: before the \\data\\ "
                                                    "header)")):
        NgramLM.read_arpa(tmp_path / "lm.arpa", PIECES)


def test_a_bad_count_line_in_the_header_is_named(tmp_path):
    (tmp_path / "lm.arpa").write_text(arpa("\\data\\", "ngram 1=three", "", "\\1-grams:", "-0.5\tp1", "\\end\\"))
    with pytest.raises(ConfigError, match=re.escape("lm.arpa:2: bad n-gram count 'ngram 1=three' (expected "
                                                    "'ngram N=COUNT')")):
        NgramLM.read_arpa(tmp_path / "lm.arpa", PIECES)


def test_a_kenlm_binary_is_refused_in_one_line(tmp_path):
    # the first bytes of every KenLM binary (lm/binary_format.cc kMagicBytes), then binary data
    (tmp_path / "lm.bin").write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0" + bytes(range(256)))
    with pytest.raises(ConfigError, match=re.escape("lm.bin looks like a binary KenLM file: write an ARPA file "
                                                    "instead (streamasr train-lm, or KenLM's lmplz output before "
                                                    "build_binary)")):
        NgramLM.read_arpa(tmp_path / "lm.bin", PIECES)


def test_a_nul_byte_is_not_utf8_text(tmp_path):
    data = b"\\data\\\nngram 1=1\n\n\\1-grams:\n-0.5\tp\x001\n\n\\end\\\n"
    (tmp_path / "lm.arpa").write_bytes(data)
    offset = data.index(b"\0")
    with pytest.raises(ConfigError, match=re.escape(f"lm.arpa is not a UTF-8 text file (byte offset {offset}): "
                                                    "expected an ARPA file")):
        NgramLM.read_arpa(tmp_path / "lm.arpa", PIECES)


def test_bytes_that_are_not_utf8_name_their_offset(tmp_path):
    data = b"\\data\\\nngram 1=1\n\n\\1-grams:\n-0.5\tcaf\xe9\n\n\\end\\\n"  # café in Latin-1
    (tmp_path / "lm.arpa").write_bytes(data)
    offset = data.index(b"\xe9")
    with pytest.raises(ConfigError, match=re.escape(f"lm.arpa is not a UTF-8 text file (byte offset {offset}): "
                                                    "expected an ARPA file")):
        NgramLM.read_arpa(tmp_path / "lm.arpa", PIECES)


def test_a_binary_file_such_as_a_checkpoint_is_not_utf8_text(tmp_path):
    (tmp_path / "model.ckpt").write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)))
    with pytest.raises(ConfigError, match=re.escape("model.ckpt is not a UTF-8 text file (byte offset 5): "
                                                    "expected an ARPA file")):
        NgramLM.read_arpa(tmp_path / "model.ckpt", PIECES)


def test_a_gzip_compressed_arpa_file_loads_with_the_same_probabilities(tmp_path):
    lm, path, _ = written_lm(tmp_path, order=3)
    (tmp_path / "lm.arpa.gz").write_bytes(gzip.compress(path.read_bytes()))
    plain = NgramLM.read_arpa(path, PIECES, exclude=(0,))
    compressed = NgramLM.read_arpa(tmp_path / "lm.arpa.gz", PIECES, exclude=(0,))
    for context in [(), (plain.bos,), (plain.bos, 6), (6, 7), (2, 2)]:
        assert torch.equal(plain.log_probs(context), compressed.log_probs(context))
    assert compressed.order == 3 and plain.sequence_log_prob([6, 7, 6]) == compressed.sequence_log_prob([6, 7, 6])


def test_a_truncated_gzip_file_is_named(tmp_path):
    _, path, _ = written_lm(tmp_path)
    (tmp_path / "lm.arpa.gz").write_bytes(gzip.compress(path.read_bytes())[:-100])
    with pytest.raises(ConfigError, match=r"lm\.arpa\.gz:\d+: the gzip data is truncated or corrupt \("):
        NgramLM.read_arpa(tmp_path / "lm.arpa.gz", PIECES)


def test_a_folder_is_not_a_language_model(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"language model {tmp_path} is a folder, expected an ARPA file")):
        NgramLM.read_arpa(tmp_path, PIECES)


def test_lm_weight_zero_reproduces_the_plain_search_and_fusion_uses_the_lm():
    decoder, joiner = parts(vocab=8)
    encoder_out = frames(2, 18, seed=7)
    lengths = torch.tensor([18, 12])
    lm = train_ngram(corpus(), 8, 3)
    plain, plain_nbest, _ = run_chunked(BeamSearch(decoder, joiner, beam_size=4), encoder_out, lengths, 5)
    zero, zero_nbest, _ = run_chunked(BeamSearch(decoder, joiner, beam_size=4, fusion=[(lm, 0.0)]),
                                      encoder_out, lengths, 5)
    assert zero == plain and zero_nbest == plain_nbest
    fused_search = BeamSearch(decoder, joiner, beam_size=4, fusion=[(lm, 0.5)])
    _, fused_nbest, _ = run_chunked(fused_search, encoder_out, lengths, 5)
    for row in range(2):  # each n-best score is the AM score + 0.5 x log P_LM(tokens </s>)
        for tokens, score in fused_nbest[row]:
            plain_search = BeamSearch(decoder, joiner, beam_size=64)
            _, exhaustive, _ = run_chunked(plain_search, encoder_out[row : row + 1, : int(lengths[row])],
                                           lengths[row : row + 1], 5)
            am = dict((tuple(t), s) for t, s in exhaustive[0])
            if tuple(tokens) in am:
                assert score == pytest.approx(am[tuple(tokens)] + 0.5 * lm.sequence_log_prob(tokens), abs=1e-6)
    with pytest.raises(ConfigError, match="an LM weight must be a finite number, got nan"):
        BeamSearch(decoder, joiner, fusion=[(lm, float("nan"))])
    with pytest.raises(ConfigError, match="lm_weight must be a finite number, got nan"):
        Decoding("beam", lm=lm, lm_weight=float("nan")).build(decoder, joiner, 0)
    with pytest.raises(ConfigError, match="an LM is fused in beam search only"):
        Decoding("greedy", lm=lm, lm_weight=0.3).check()


def test_train_lm_cli_and_bad_weights(random_model_folder, tiny_corpus, tmp_path, capsys):
    out = tmp_path / "lm.arpa"
    assert cli(["train-lm", str(random_model_folder), "--manifest", str(tiny_corpus / "train.csv"), "--order", "3",
                "--output", str(out)]) == 0
    text = out.read_text()
    assert "\\3-grams:" in text and "</s>" in text
    capsys.readouterr()
    assert cli(["train-lm", str(random_model_folder), "--manifest", str(tiny_corpus / "train.csv"),
                "--output", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    wav = str(next(tiny_corpus.rglob("*.wav")))
    assert cli(["transcribe", wav, "--model", str(random_model_folder), "--decoding", "beam", "--lm", str(out),
                "--lm-weight", "heavy"]) == 2
    assert "--lm-weight must be a number, got 'heavy'" in capsys.readouterr().err
    assert cli(["transcribe", wav, "--model", str(random_model_folder), "--lm", str(out)]) == 2
    assert "--lm is fused in beam search only" in capsys.readouterr().err
    # fused decoding runs end to end and differs from the plain beam only through the LM
    assert cli(["transcribe", wav, "--model", str(random_model_folder), "--decoding", "beam", "--lm", str(out),
                "--lm-weight", "0", "--json"]) == 0
    plain_zero = capsys.readouterr().out.splitlines()[-1]
    assert cli(["transcribe", wav, "--model", str(random_model_folder), "--decoding", "beam", "--json"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split('"audio_ms"')[0] == plain_zero.split('"audio_ms"')[0]


def test_evaluate_grid_of_fusion_weights(random_model_folder, tiny_corpus, tmp_path, capsys):
    lm = tmp_path / "lm.arpa"
    assert cli(["train-lm", str(random_model_folder), "--manifest", str(tiny_corpus / "train.csv"), "--order", "2",
                "--output", str(lm)]) == 0
    out = tmp_path / "grid"
    assert cli(["evaluate", str(random_model_folder), "--manifest", str(tiny_corpus / "valid.csv"), "--output",
                str(out), "--chunk-ms", "320", "--left-chunks", "2", "--masked-only", "--limit", "2", "--decoding",
                "beam", "--lm", str(lm), "--lm-weight", "0,0.5", "--jobs", "1"]) == 0
    table = (out / "lm_weights.md").read_text()
    assert table.startswith("| LM weight | LODR weight | valid |") and "\n| 0 | 0.0 |" in table and "\n| 0.5 | 0.0 |" in table
    assert (out / "lm0_lodr0.0" / "results.json").is_file() and (out / "lm0.5_lodr0.0" / "results.json").is_file()
    capsys.readouterr()
    assert cli(["evaluate", str(random_model_folder), "--manifest", str(tiny_corpus / "valid.csv"), "--output",
                str(tmp_path / "x"), "--lm-weight", "0.1,0.2"]) == 2
    assert "a grid of --lm-weight / --lodr-weight values needs --lm" in capsys.readouterr().err


def test_an_arpa_file_that_lists_few_pieces_gives_them_unk_and_lodr_stays_finite(tmp_path):
    """KenLM lists only the pieces it saw: the others get <unk>'s probability (never
    -inf, which the subtracted LODR term would turn into +inf); excluded ids stay -inf."""
    lines = ["\\data\\", "ngram 1=4", "", "\\1-grams:", "-1.0\t<unk>", "-99\t<s>\t0", "-0.5\ta", "-0.6\t</s>", "",
             "\\end\\", ""]
    (tmp_path / "few.arpa").write_text("\n".join(lines))
    lm = NgramLM.read_arpa(tmp_path / "few.arpa", {"<unk>": 0, "a": 1, "b": 2}, exclude=(0,))
    logp = lm.log_probs(lm.context([1]))
    assert logp[0] == -math.inf and logp[2] == pytest.approx(-1.0 * math.log(10))
    assert torch.isfinite(logp[1:]).all()
    decoder, joiner = parts(vocab=3)
    search = BeamSearch(decoder, joiner, beam_size=3, fusion=[(lm, 0.3), (lm, -0.5)])
    _, nbest, _ = run_chunked(search, frames(1, 10, seed=2), torch.tensor([10]), 4)
    assert all(math.isfinite(score) for _, score in nbest[0])
    (tmp_path / "bad.arpa").write_text("\\data\\\n\\x-grams:\n")
    with pytest.raises(ConfigError, match="bad.arpa:2: bad section header"):
        NgramLM.read_arpa(tmp_path / "bad.arpa", {"a": 1})
    with pytest.raises(ConfigError, match="no transcripts"):
        train_ngram([], 5)
