"""Recordings of people in the built-in corpus (streamasr/data/human.py): prompt-text
normalisation, the held-out split (no test prompt text in training), G.722 decoding,
the tiny corpus's human splits, and the error naming the package when recordings are
missing."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf

from helpers.common import TINY_CORPUS
from streamasr.data import human, synthetic
from streamasr.data.human import PromptNotSpeakable, normalize_prompt
from streamasr.data.synthetic import CorpusConfig, build_corpus
from streamasr.errors import ConfigError, SynthesizerMissingError


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("text, words", [
    ("dash [-]", "DASH"),
    ("Please leave your message after the tone.  When done hang up or press the pound key. "
     "(simple tone sound plays)",
     "PLEASE LEAVE YOUR MESSAGE AFTER THE TONE WHEN DONE HANG UP OR PRESS THE POUND KEY"),
    ("press * to toggle pause, press # to enter a new dictation filename",
     "PRESS STAR TO TOGGLE PAUSE PRESS POUND TO ENTER A NEW DICTATION FILENAME"),
    ("Press 1 to list users, 2 to kick, or 0 for help", "PRESS ONE TO LIST USERS TWO TO KICK OR ZERO FOR HELP"),
    ("Call-Forward on No Answer.", "CALL FORWARD ON NO ANSWER"),
    ("Waldo's premier provider", "WALDO'S PREMIER PROVIDER"),
    ("Currently, there are more than ...", "CURRENTLY THERE ARE MORE THAN"),
    ("niner", "NINER"),
])
def test_prompt_text_is_what_the_recording_says(text, words):
    assert normalize_prompt(text) == words


@pytest.mark.parametrize("text, reason", [
    ("[ascending tones]", "only a note"),
    ("<beep ascending>", "only a note"),
    ("(10 seconds of silence)", "only a note"),
    ("dial 500 to attempt an Inter-Asterisk Exchange", "number whose reading is not written"),
    ("3D audio enabled", "number whose reading is not written"),
    ("H.323", "number whose reading is not written"),
    ("a 28.8 kilobit modem", "number whose reading is not written"),
    ("Asterisk is an Open Source full-featured PBX", r"acronym .*\(PBX\)"),
])
def test_prompts_whose_words_are_not_written_are_left_out_with_the_reason(text, reason):
    with pytest.raises(PromptNotSpeakable, match=reason):
        normalize_prompt(text)


def test_asterisk_prompts_are_read_with_their_nato_alphabet_and_the_rest_left_out_named():
    prompts, dropped = human.asterisk_prompts()
    by_name = {p.rec_id.split("/", 1)[1]: p.text for p in prompts}
    phonetic = {name: text for name, text in by_name.items() if name.startswith("phonetic/")}
    assert len(phonetic) == 27
    assert phonetic["phonetic/a_p"] == "ALPHA" and phonetic["phonetic/x_p"] == "XRAY"
    assert phonetic["phonetic/9_p"] == "NINER"
    assert by_name["digits/7"] == "SEVEN" and by_name["letters/dash"] == "DASH"
    assert dropped["silence/1"] == "silence" and dropped["pls-try-call-later"] == "no recording"
    assert dropped["beep"].startswith("only a note") and "PBX" in dropped["demo-moreinfo"]
    assert len(prompts) + len(dropped) == 569  # every transcript line is kept or named
    assert all(set(p.text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ") and p.text for p in prompts)


def test_held_out_prompt_texts_are_never_in_the_training_share():
    prompts, _ = human.asterisk_prompts()
    parts = human.split_prompts(prompts, 0.2, seed=1234)
    test_texts = {p.text for p in parts["test_human"]}
    train_texts = {p.text for p in parts["train_human"]}
    assert not test_texts & train_texts
    assert len(test_texts) == round(0.2 * len(test_texts | train_texts))
    assert len(parts["test_human"]) + len(parts["train_human"]) == len(prompts)
    again = human.split_prompts(prompts, 0.2, seed=1234)
    assert [p.rec_id for p in again["test_human"]] == [p.rec_id for p in parts["test_human"]]
    assert {p.text for p in human.split_prompts(prompts, 0.2, seed=5)["test_human"]} != test_texts


def test_g722_decodes_to_16khz_mono_of_its_encoded_duration():
    path = human.ASTERISK_SOUNDS / "activated.g722"
    audio = human.read_recording(path)
    # G.722 at 64 kbit/s: 8,000 bytes per second of 16 kHz audio
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 2 * os.path.getsize(path)
    assert 0.05 < float(np.abs(audio).max()) <= 1.0


def test_unseen_speakers_are_pocketsphinx_testdata_and_the_alsa_voice():
    records = human.unseen_speakers()
    assert len(records) == 20
    texts = {r.rec_id: r.text for r in records}
    assert texts["pocketsphinx/goforward"] == "GO FORWARD TEN METERS"
    assert texts["pocketsphinx/cards/005"] == "EIGHT OF SPADES FOUR OF CLUBS SEVEN OF HEARTS"
    assert texts["alsa/Rear_Left"] == "REAR LEFT"
    raw = human.read_recording(human.POCKETSPHINX_DATA / "goforward.raw")
    assert len(raw) == os.path.getsize(human.POCKETSPHINX_DATA / "goforward.raw") // 2  # s16le 16 kHz
    alsa = human.read_recording(human.ALSA_SOUNDS / "Front_Left.wav")  # 48 kHz -> 16 kHz
    assert abs(len(alsa) - sf.info(human.ALSA_SOUNDS / "Front_Left.wav").frames / 3) <= 1


def test_tiny_corpus_has_human_test_sets_and_a_training_share_without_test_texts(tiny_corpus):
    table = rows(tiny_corpus / "utterances.csv")
    humans = [r for r in table if r["synthesizer"] == "human"]
    by_split = {}
    for r in humans:
        by_split.setdefault(r["split"], []).append(r)
    cap = TINY_CORPUS["human_utterances"]
    assert len(by_split["test_human"]) == cap and len(by_split["test_human_unseen"]) == cap
    assert len(by_split["train"]) == cap * len(TINY_CORPUS["human_train_speeds"])
    assert {r["speed"] for r in by_split["train"]} == {str(s) for s in TINY_CORPUS["human_train_speeds"]}
    assert all(r["recording"].startswith("/usr/share/") for r in humans)
    train_texts = {r["wrd"] for r in rows(tiny_corpus / "train.csv")}
    test_texts = {r["wrd"] for r in rows(tiny_corpus / "test_human.csv")}
    assert test_texts and not test_texts & train_texts
    for r in rows(tiny_corpus / "test_human.csv") + rows(tiny_corpus / "test_human_unseen.csv"):
        info = sf.info(r["wav"].replace("$data_root", str(tiny_corpus)))
        assert info.samplerate == 16000 and info.channels == 1
        assert abs(info.duration - float(r["duration"])) < 1e-3
    report = (tiny_corpus / "corpus_report.json").read_text()
    assert '"test_human_unseen"' in report and '"human_prompts_left_out"' in report


def test_the_build_names_the_package_when_recordings_are_missing_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(human, "ASTERISK_SOUNDS", tmp_path / "no-sounds")
    with pytest.raises(SynthesizerMissingError, match=r"asterisk-core-sounds-en asterisk-core-sounds-en-g722"):
        build_corpus(tmp_path / "c", CorpusConfig(**TINY_CORPUS), progress=False)
    assert not (tmp_path / "c").exists()
    monkeypatch.undo()
    monkeypatch.setattr(human, "POCKETSPHINX_DATA", tmp_path / "no-testdata")
    with pytest.raises(SynthesizerMissingError, match=r"apt-get install pocketsphinx-testdata"):
        build_corpus(tmp_path / "c", CorpusConfig(**TINY_CORPUS), progress=False)
    assert not (tmp_path / "c").exists()


def test_without_human_recordings_the_synthetic_splits_are_planned_unchanged():
    variants = synthetic.list_variants()
    config = CorpusConfig(**TINY_CORPUS)
    with_human = synthetic.plan_corpus(config, variants)
    without = synthetic.plan_corpus(CorpusConfig(**{**TINY_CORPUS, "human": False, "human_train_speeds": ()}),
                                    variants)
    assert [s for s in with_human if s.voice.synthesizer != "human"] == without
    with pytest.raises(ConfigError, match="human_train_speeds: expected speed factors in 0.5..2.0, got 3.0"):
        synthetic.plan_corpus(CorpusConfig(**{**TINY_CORPUS, "human_train_speeds": (3.0,)}), variants)
    with pytest.raises(ConfigError, match="human_train_speeds needs the recordings of people"):
        synthetic.plan_corpus(CorpusConfig(**{**TINY_CORPUS, "human": False}), variants)
    with pytest.raises(ConfigError, match="human_utterances: expected at least 1"):
        synthetic.plan_corpus(CorpusConfig(**{**TINY_CORPUS, "human_utterances": 0}), variants)


def test_a_corpus_built_before_the_recordings_is_completed_with_them_and_reused(tiny_corpus, tmp_path):
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_corpus, old)
    stamp = json.loads((old / "corpus.json").read_text())
    for key in ("human_fingerprint", "human_plan", *synthetic.HUMAN_KEYS):
        del stamp[key]  # what an earlier streamasr wrote
    (old / "corpus.json").write_text(json.dumps(stamp))
    for split in synthetic.HUMAN_SPLITS:
        (old / f"{split}.csv").unlink()
        shutil.rmtree(old / split)
    before = {p: p.stat().st_mtime_ns for p in (old / "train").glob("train-0*.wav")}
    build_corpus(old, CorpusConfig(**TINY_CORPUS), progress=False)
    assert {p: p.stat().st_mtime_ns for p in (old / "train").glob("train-0*.wav")} == before  # reused
    for split in synthetic.HUMAN_SPLITS:
        assert (old / f"{split}.csv").read_bytes() == (tiny_corpus / f"{split}.csv").read_bytes()
    assert json.loads((old / "corpus.json").read_text())["human_fingerprint"] == stamp_of(tiny_corpus)
    with pytest.raises(ConfigError, match=r"other settings .*human_test_share 0.2 -> 0.3"):
        build_corpus(old, CorpusConfig(**{**TINY_CORPUS, "human_test_share": 0.3}), progress=False)


def stamp_of(folder):
    import json

    return json.loads((folder / "corpus.json").read_text())["human_fingerprint"]
