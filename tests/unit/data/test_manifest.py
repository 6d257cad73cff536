"""Manifest validation: every bad row named with its file and the expectation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamasr.data.manifest import ManifestError, validate_manifest


def write_manifest(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = folder / "m.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "duration", "wav", "spk_id", "wrd"])
        for utt_id, wav, words in rows:
            writer.writerow([utt_id, "1.0", wav, "spk", words])
    return path


def good_wav(folder: Path, name="good.wav", rate=16000, channels=1, samples=16000) -> str:
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (samples, channels)).astype(np.float32)
    path = folder / name
    sf.write(path, data if channels > 1 else data[:, 0], rate)
    return str(path)


def test_a_good_manifest_passes(tmp_path):
    manifest = write_manifest(tmp_path, [("a", "$data_root/good.wav", "HELLO")])
    good_wav(tmp_path)
    summary = validate_manifest(manifest, data_root=tmp_path)
    assert summary.utterances == 1 and summary.seconds == pytest.approx(1.0)


@pytest.mark.parametrize(
    "make_file, expected",
    [
        (lambda d: str(d / "missing.wav"), r"row 1 \(ID 'a'\): audio file .*missing.wav does not exist"),
        (lambda d: (d / "junk.wav").write_bytes(b"not audio at all") and str(d / "junk.wav"), r"row 1 .*junk.wav is unreadable"),
        (lambda d: good_wav(d, "slow.wav", rate=8000), r"slow.wav is 8000 Hz, expected 16000 Hz"),
        (lambda d: good_wav(d, "stereo.wav", channels=2), r"stereo.wav has 2 channels, expected mono"),
        (lambda d: good_wav(d, "empty.wav", samples=0), r"empty.wav is empty \(0 samples\)"),
    ],
    ids=["missing", "unreadable", "8kHz", "stereo", "empty"],
)
def test_bad_audio_is_named_with_its_row(tmp_path, make_file, expected):
    wav = make_file(tmp_path)
    manifest = write_manifest(tmp_path, [("a", wav, "HELLO")])
    with pytest.raises(ManifestError, match=expected):
        validate_manifest(manifest)


def test_nan_samples_are_reported(tmp_path):
    path = tmp_path / "nan.wav"
    data = np.zeros(1600, dtype=np.float32)
    data[100] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")
    manifest = write_manifest(tmp_path, [("a", str(path), "HELLO")])
    with pytest.raises(ManifestError, match=r"nan.wav contains NaN or Inf samples"):
        validate_manifest(manifest)


def test_empty_transcript_is_reported(tmp_path):
    wav = good_wav(tmp_path)
    manifest = write_manifest(tmp_path, [("a", wav, "HELLO"), ("b", wav, "  ")])
    with pytest.raises(ManifestError, match=r"row 2 \(ID 'b'\): empty transcript in field 'wrd'"):
        validate_manifest(manifest)


def test_all_problems_are_listed_at_once(tmp_path):
    manifest = write_manifest(tmp_path, [("a", "/nope/1.wav", "X"), ("b", "/nope/2.wav", "")])
    with pytest.raises(ManifestError) as info:
        validate_manifest(manifest)
    message = str(info.value)
    assert message.startswith("3 problem(s)")
    assert "/nope/1.wav" in message and "/nope/2.wav" in message and "empty transcript" in message


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("ID,path,text\na,x.wav,HI\n")
    with pytest.raises(ManifestError, match=r"lacks field\(s\) \['duration', 'wav', 'wrd'\]"):
        validate_manifest(path)
