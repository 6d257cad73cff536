"""The built-in corpus: splits disjoint by speaker (across synthesisers) and by text
source as declared, SpeechBrain manifests of 16 kHz mono audio, determinism, resumption,
open vocabulary, the test_text unseen-word rate, augmentation, clear errors for missing
synthesisers."""

from __future__ import annotations

import csv
import hashlib
import json
from functools import lru_cache

import numpy as np
import pytest
import soundfile as sf

from helpers.common import TINY_CORPUS
from streamasr.data import synthetic
from streamasr.data.synthetic import (
    ALL_SPLITS,
    HELD_OUT_SHARES,
    IN_DOMAIN_SHARES,
    SPLITS,
    Augmentation,
    CorpusConfig,
    UtteranceSpec,
    Voice,
    augment,
    build_corpus,
    corpus_report,
    list_variants,
    plan_corpus,
    split_speakers,
)
from streamasr.errors import SynthesizerMissingError


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def digest(folder):
    """sha1 of every manifest and wav file in a corpus folder."""
    result = {}
    for path in sorted(folder.rglob("*")):
        # corpus files only (train.py leaves *.validated.json caches beside the manifests)
        if path.suffix in (".csv", ".wav") or path.name in ("corpus.json", "corpus_report.json"):
            result[str(path.relative_to(folder))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return result


@lru_cache(maxsize=1)
def default_plan():
    """The default corpus as planned (text, voices, styles), without synthesising it."""
    return tuple(plan_corpus(CorpusConfig(), list_variants()))


def test_tiny_corpus_splits_are_disjoint_by_speaker_across_synthesisers(tiny_corpus):
    table = rows(tiny_corpus / "utterances.csv")
    speakers = {split: {r["speaker"] for r in table if r["split"] == split} for split in SPLITS}
    assert all(speakers.values()), speakers
    for other in ("valid", "test_voices", "test_text", "test_synth"):
        assert not speakers["train"] & speakers[other], other
    assert not speakers["valid"] & speakers["test_voices"]
    unseen = {r["speaker"] for r in table if r["split"] == "test_human_unseen"}
    assert unseen and not unseen & speakers["train"]  # people never heard in training
    # test_text is spoken by the test_voices voices: only the text differs
    voices = {split: {r["voice"] for r in table if r["split"] == split} for split in SPLITS}
    assert voices["test_text"] <= set(v.name for v in synthetic.split_voices(
        CorpusConfig(**TINY_CORPUS), list_variants())["test_voices"])
    synths = {split: {r["synthesizer"] for r in table if r["split"] == split} for split in SPLITS}
    assert synths["test_synth"] == {"festival"} and "festival" not in synths["train"]
    # manifests carry the same speakers as the table
    for split in ALL_SPLITS:
        assert {r["spk_id"] for r in rows(tiny_corpus / f"{split}.csv")} == {
            f"{r['synthesizer']}:{r['voice']}" for r in table if r["split"] == split}


def test_default_plan_declares_voices_sources_and_synthesisers():
    specs = default_plan()
    by_split = {split: [s for s in specs if s.split == split] for split in SPLITS}
    speakers = {split: {s.voice.speaker for s in part} for split, part in by_split.items()}
    for other in SPLITS[1:]:
        assert not speakers["train"] & speakers[other], other
    # kal and slt speak in flite and festival: with festival held out, flite's kal16 and
    # slt are not used for training either
    train_voices = {s.voice.spk_id for s in by_split["train"]}
    assert {"flite:awb", "flite:rms"} <= train_voices
    assert not {"flite:kal16", "flite:slt"} & train_voices
    assert {s.voice.synthesizer for s in specs} == {"espeak-ng", "flite", "festival", "human"}
    assert {s.split for s in specs if s.voice.synthesizer == "human"} == {"test_human", "test_human_unseen"}
    assert {s.voice.speaker for s in by_split["test_synth"]} == {"kal", "ked", "slt"}
    declared = synthetic.split_voices(CorpusConfig(), list_variants())
    assert {s.voice for s in by_split["test_text"]} <= set(declared["test_voices"])
    assert {s.voice for s in by_split["test_voices"]} <= set(declared["test_voices"])
    # text sources as declared
    for split in ("train", "valid", "test_voices", "test_synth"):
        assert {s.source for s in by_split[split]} == set(IN_DOMAIN_SHARES), split
    assert {s.source for s in by_split["test_text"]} == set(HELD_OUT_SHARES)
    texts = [s.text for s in specs if s.voice.synthesizer != "human"]
    assert len(set(texts)) == len(texts)  # no sentence in two splits (or twice in one)
    # a prompt recorded twice stays in test_human; no test_human text is in training
    human = {s.text for s in specs if s.split == "test_human"}
    assert len(human) > 80 and not human & {s.text for s in by_split["train"]}
    # the default corpus is not augmented
    assert all(s.speed == 1.0 and not s.noise and not s.rt60_s for s in specs)


def test_augmentation_touches_train_only_in_the_drawn_shares():
    specs = plan_corpus(CorpusConfig(train_utterances=2000, augmentation=Augmentation()), list_variants())
    for split in SPLITS[1:]:
        assert all(s.speed == 1.0 and not s.noise and not s.rt60_s for s in specs if s.split == split), split
    train = [s for s in specs if s.split == "train"]
    assert 0.35 < sum(bool(s.noise) for s in train) / len(train) < 0.45
    assert 0.25 < sum(s.rt60_s > 0 for s in train) / len(train) < 0.35
    assert {s.speed for s in train} == {0.9, 1.0, 1.1}
    assert all(10.0 <= s.snr_db <= 30.0 for s in train if s.noise)
    assert all(0.15 <= s.rt60_s <= 0.6 for s in train if s.rt60_s)


def test_default_plan_is_open_vocabulary_and_test_text_has_unseen_words():
    report = corpus_report(default_plan(), {})
    assert report["train_vocabulary"] >= 10_000
    assert report["splits"]["test_text"]["unseen_word_rate"] > 0.10
    # every transcript is upper-case A-Z, apostrophes and single spaces: nothing the
    # tokenizer would have to map to id 0 (the blank)
    for spec in default_plan():
        assert spec.text and set(spec.text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' "), spec.text
        assert "  " not in spec.text and spec.text == spec.text.strip()


def test_report_and_manifests_of_the_tiny_corpus(tiny_corpus):
    report = json.loads((tiny_corpus / "corpus_report.json").read_text())
    copies = TINY_CORPUS["human_utterances"] * len(TINY_CORPUS["human_train_speeds"])
    assert report["splits"]["train"]["utterances"] == TINY_CORPUS["train_utterances"] + copies
    assert report["splits"]["train"]["synthesizers"]["human"] == copies
    assert report["splits"]["test_synth"]["synthesizers"] == {"festival": TINY_CORPUS["test_synth_utterances"]}
    assert 0.0 < report["splits"]["test_text"]["unseen_word_rate"] <= 1.0
    table = rows(tiny_corpus / "utterances.csv")
    assert any(r["noise"] for r in table if r["split"] == "train")  # TINY_CORPUS turns augmentation on
    assert not any(r["noise"] or r["rt60_s"] or r["speed"] != "1.0" for r in table if r["split"] != "train")
    train = rows(tiny_corpus / "train.csv")
    assert list(train[0]) == ["ID", "duration", "wav", "spk_id", "wrd"]
    for split in ALL_SPLITS:
        for row in rows(tiny_corpus / f"{split}.csv"):
            info = sf.info(row["wav"].replace("$data_root", str(tiny_corpus)))
            assert (info.samplerate, info.channels) == (16000, 1)
            assert float(row["duration"]) == pytest.approx(info.frames / 16000, abs=1e-3)
            assert row["wrd"] == row["wrd"].upper() and row["wrd"].strip()


def test_valid_and_test_speakers_never_occur_in_train_espeak_split():
    variants = list_variants()
    config = CorpusConfig()
    split = split_speakers(synthetic.ENGLISH_VOICES, variants, config)
    everything = [c for part in split.values() for c in part]
    assert len(everything) == len(set(everything)) == len(synthetic.ENGLISH_VOICES) * len(variants)
    assert len(split["valid"]) == config.valid_speakers and len(split["test"]) == config.test_speakers


def test_same_seed_gives_identical_corpus_and_rerun_completes_missing_files(tiny_corpus, tmp_path):
    copy = tmp_path / "again"
    build_corpus(copy, CorpusConfig(**TINY_CORPUS), progress=False)
    assert digest(copy) == digest(tiny_corpus)

    victim = copy / "train" / "train-000003.wav"
    kept = copy / "train" / "train-000004.wav"
    festival = copy / "test_synth" / "test_synth-000001.wav"
    victim.unlink()
    festival.unlink()
    (copy / "test_text.csv").unlink()
    before = kept.stat().st_mtime_ns
    build_corpus(copy, CorpusConfig(**TINY_CORPUS), progress=False)
    assert victim.exists() and festival.exists() and kept.stat().st_mtime_ns == before
    assert digest(copy) == digest(tiny_corpus)


def test_resume_synthesises_again_a_finished_file_that_is_truncated_or_of_another_length(tiny_corpus, tmp_path):
    """Files damaged from outside (the build's own writes are atomic) are not reused: a
    copy cut short, and a file rewritten shorter with a valid header."""
    import shutil

    copy = tmp_path / "damaged"
    shutil.copytree(tiny_corpus, copy)
    truncated = copy / "train" / "train-000003.wav"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    shortened = copy / "valid" / "valid-000001.wav"
    audio, rate = sf.read(shortened, dtype="int16")
    sf.write(shortened, audio[: len(audio) // 2], rate, subtype="PCM_16")
    kept = copy / "train" / "train-000004.wav"
    before = kept.stat().st_mtime_ns
    build_corpus(copy, CorpusConfig(**TINY_CORPUS), progress=False)
    assert digest(copy) == digest(tiny_corpus) and kept.stat().st_mtime_ns == before


def test_other_seed_gives_other_text():
    variants = list_variants()
    a = plan_corpus(CorpusConfig(**TINY_CORPUS), variants)
    b = plan_corpus(CorpusConfig(**{**TINY_CORPUS, "seed": 8}), variants)
    assert [s.text for s in a] != [s.text for s in b]


def test_folder_with_another_corpus_is_refused(tiny_corpus):
    with pytest.raises(ValueError, match=r"already holds a corpus built with other settings \(.*corpus.json: seed 7 -> "
                                         r"99\); build into another folder or delete this one"):
        build_corpus(tiny_corpus, CorpusConfig(**{**TINY_CORPUS, "seed": 99}), progress=False)


def test_a_corpus_planned_by_another_version_is_refused_not_completed(tiny_corpus, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(tiny_corpus, copy)
    stamp = json.loads((copy / "corpus.json").read_text())
    (copy / "corpus.json").write_text(json.dumps({**stamp, "plan": "0" * 12}))
    (copy / "train" / "train-000001.wav").unlink()
    with pytest.raises(ValueError, match=r"planned differently for the same settings"):
        build_corpus(copy, CorpusConfig(**TINY_CORPUS), progress=False)
    assert not (copy / "train" / "train-000001.wav").exists()


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(synthetic.EspeakMissingError, match=r"espeak-ng is not installed.*apt-get install espeak-ng"):
        build_corpus(tmp_path / "c", CorpusConfig(**TINY_CORPUS), progress=False)


@pytest.mark.parametrize("missing, package", [("flite", "flite"), ("text2wave", "festival")])
def test_missing_synthesiser_names_the_package_and_writes_nothing(monkeypatch, tmp_path, missing, package):
    real = synthetic.shutil.which
    monkeypatch.setattr(synthetic.shutil, "which", lambda name: None if name == missing else real(name))
    with pytest.raises(SynthesizerMissingError, match=rf"{missing} is not installed.*apt-get install {package}"):
        build_corpus(tmp_path / "c", CorpusConfig(**TINY_CORPUS), progress=False)
    assert not (tmp_path / "c").exists()


def test_missing_festival_voice_names_its_package(monkeypatch, tmp_path):
    monkeypatch.setattr(synthetic, "festival_voice_installed", lambda name: name != "ked_diphone")
    with pytest.raises(SynthesizerMissingError, match=r"ked_diphone.*apt-get install festvox-kdlpc16k"):
        synthetic.check_synthesizers([Voice("festival", "kal_diphone", "kal"), Voice("festival", "ked_diphone", "ked")])
    monkeypatch.setattr(synthetic, "festival_voice_installed", lambda name: False)
    with pytest.raises(SynthesizerMissingError, match=r"festival voice \w+ is not installed.*apt-get install festvox-"):
        build_corpus(tmp_path / "c", CorpusConfig(**TINY_CORPUS), progress=False)
    assert not (tmp_path / "c").exists()


def _spec(**kwargs) -> UtteranceSpec:
    return UtteranceSpec(utt_id="u", split="train", voice=Voice("espeak-ng", "en-us+m1", "en-us+m1"),
                         rate=170.0, pitch=50, text="HELLO", source="wordnet", **kwargs)


def test_augmentation_speed_noise_and_reverberation():
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    clean = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    assert np.array_equal(augment(clean, _spec()), clean)
    for factor in (0.9, 1.1):  # faster speech is shorter
        assert len(augment(clean, _spec(speed=factor))) == pytest.approx(len(clean) / factor, abs=2)
    for kind in synthetic.NOISE_KINDS:
        noisy = augment(clean, _spec(noise=kind, snr_db=12.0, seed=3))
        snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))
        assert snr == pytest.approx(12.0, abs=0.05), kind
        assert np.array_equal(noisy, augment(clean, _spec(noise=kind, snr_db=12.0, seed=3)))  # deterministic
    rir = synthetic.room_impulse_response(0.4, rng)
    energy = np.cumsum(rir[::-1] ** 2)[::-1]  # Schroeder decay of the tail
    tail = energy[int(0.0025 * 16000):]
    decay_db = 10 * np.log10(tail[int(0.2 * 16000)] / tail[0])  # after half the RT60
    assert decay_db == pytest.approx(-30.0, abs=4.0)
    reverberant = augment(clean, _spec(rt60_s=0.4, seed=1))
    assert len(reverberant) == len(clean) and not np.allclose(reverberant, clean, atol=1e-3)
    assert np.abs(reverberant).max() == pytest.approx(np.abs(clean).max(), rel=1e-5)
