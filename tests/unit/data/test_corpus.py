"""The built-in espeak-ng corpus: voice-disjoint splits, SpeechBrain manifests of 16 kHz
mono audio, determinism, resumption, vocabulary size, a clear error without espeak-ng."""

from __future__ import annotations

import csv
import hashlib

import pytest
import soundfile as sf

from helpers.common import TINY_CORPUS
from streamasr.data import synthetic
from streamasr.data.synthetic import (
    CorpusConfig,
    build_corpus,
    list_variants,
    plan_corpus,
    split_speakers,
)


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def digest(folder):
    """sha1 of every manifest and wav file in a corpus folder."""
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".csv", ".wav"):
            result[str(path.relative_to(folder))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return result


def test_valid_and_test_speakers_never_occur_in_train(tiny_corpus):
    speakers = {split: {r["spk_id"] for r in rows(tiny_corpus / f"{split}.csv")} for split in ("train", "valid", "test")}
    assert speakers["train"] and speakers["valid"] and speakers["test"]
    assert not speakers["train"] & speakers["valid"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["valid"] & speakers["test"]


def test_speaker_split_partitions_every_combination():
    variants = list_variants()
    config = CorpusConfig()
    split = split_speakers(synthetic.ENGLISH_VOICES, variants, config)
    everything = [c for part in split.values() for c in part]
    assert len(everything) == len(set(everything)) == len(synthetic.ENGLISH_VOICES) * len(variants)
    assert len(split["valid"]) == config.valid_speakers and len(split["test"]) == config.test_speakers


def test_manifests_have_the_speechbrain_columns_and_16k_mono_audio(tiny_corpus):
    train = rows(tiny_corpus / "train.csv")
    assert list(train[0]) == ["ID", "duration", "wav", "spk_id", "wrd"]
    assert len(train) == TINY_CORPUS["train_utterances"]
    for row in train[:5]:
        info = sf.info(row["wav"].replace("$data_root", str(tiny_corpus)))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert float(row["duration"]) == pytest.approx(info.frames / 16000, abs=1e-3)
        assert row["wrd"] == row["wrd"].upper() and row["wrd"].strip()


def test_same_seed_gives_identical_corpus_and_rerun_completes_missing_files(tiny_corpus, tmp_path):
    copy = tmp_path / "again"
    build_corpus(copy, CorpusConfig(**TINY_CORPUS), progress=False)
    assert digest(copy) == digest(tiny_corpus)

    victim = copy / "train" / "train-000003.wav"
    kept = copy / "train" / "train-000004.wav"
    victim.unlink()
    (copy / "test.csv").unlink()
    before = kept.stat().st_mtime_ns
    build_corpus(copy, CorpusConfig(**TINY_CORPUS), progress=False)
    assert victim.exists() and kept.stat().st_mtime_ns == before  # only the missing file was made
    assert digest(copy) == digest(tiny_corpus)


def test_other_seed_gives_other_text():
    variants = list_variants()
    a = plan_corpus(CorpusConfig(**TINY_CORPUS), variants)
    b = plan_corpus(CorpusConfig(**{**TINY_CORPUS, "seed": 8}), variants)
    assert [s.text for s in a] != [s.text for s in b]


def test_folder_with_another_corpus_is_refused(tiny_corpus):
    with pytest.raises(ValueError, match=r"already holds a corpus built with other settings"):
        build_corpus(tiny_corpus, CorpusConfig(**{**TINY_CORPUS, "seed": 99}), progress=False)


def test_default_corpus_has_at_least_1000_distinct_train_words():
    specs = plan_corpus(CorpusConfig(), list_variants())
    words = {w for s in specs if s.split == "train" for w in s.text.split()}
    assert len(words) >= 1000
    texts = [s.text for s in specs]
    assert len(set(texts)) == len(texts)  # no sentence shared between splits


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(synthetic.EspeakMissingError, match=r"espeak-ng is not installed.*apt-get install espeak-ng"):
        build_corpus(tmp_path / "c", CorpusConfig(**TINY_CORPUS), progress=False)
