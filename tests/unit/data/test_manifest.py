"""Manifest validation: every bad row named with its file and the expectation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamasr.data.manifest import ManifestError, read_manifest, validate_manifest


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


def write_rows(folder: Path, rows: list[tuple[str, str, str]], name: str = "m.csv") -> Path:
    """A manifest of (ID, duration, wav) rows."""
    path = folder / name
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "duration", "wav", "spk_id", "wrd"])
        for utt_id, duration, wav in rows:
            writer.writerow([utt_id, duration, wav, "spk", "HELLO"])
    return path


def truncated_wav(folder: Path) -> Path:
    """The probe's file: 44555 samples declared, ``head -c 44000`` leaves 21978."""
    good = folder / "whole.wav"
    sf.write(good, (np.random.default_rng(0).standard_normal(44555) * 3000).astype(np.int16), 16000,
             subtype="PCM_16")
    path = folder / "trunc.wav"
    path.write_bytes(good.read_bytes()[:44000])
    return path


def test_a_truncated_wav_is_refused_naming_both_lengths(tmp_path):
    truncated = truncated_wav(tmp_path)
    manifest = write_rows(tmp_path, [("a", "2.785", "$data_root/trunc.wav")])
    with pytest.raises(ManifestError) as error:
        validate_manifest(manifest)
    assert str(error.value) == (f"1 problem(s) in {manifest}:\n  {manifest} row 1 (ID 'a'): {truncated} is "
                                "truncated: its header declares 44555 samples (2.78 s), the file holds 21978 (1.37 s)")


def test_a_duration_column_that_disagrees_with_the_audio_is_reported(tmp_path):
    good_wav(tmp_path, "short.wav", samples=24000)  # 1.5 s
    manifest = write_rows(tmp_path, [("a", "100.0", "$data_root/short.wav")])
    with pytest.raises(ManifestError) as error:
        validate_manifest(manifest)
    assert str(error.value) == (f"1 problem(s) in {manifest}:\n  {manifest} row 1 (ID 'a'): the duration column "
                                "says 100 s, the audio lasts 1.500 s (more than max(0.1 s, 2 %) apart)")


def test_durations_within_the_tolerance_pass(tmp_path):
    good_wav(tmp_path, "a.wav", samples=16000)
    manifest = write_rows(tmp_path, [("a", "1.09", "$data_root/a.wav"), ("b", "0.91", "$data_root/a.wav")])
    assert validate_manifest(manifest).utterances == 2


def test_hours_are_summed_from_the_audio_also_when_the_stamp_skips_the_check(tmp_path):
    good_wav(tmp_path, "a.wav", samples=16000)
    good_wav(tmp_path, "b.wav", samples=32000)
    manifest = write_rows(tmp_path, [("a", "1.05", "$data_root/a.wav"), ("b", "2.03", "$data_root/b.wav")])
    assert validate_manifest(manifest).seconds == pytest.approx(3.0)
    assert (tmp_path / "m.csv.validated.json").exists()
    assert validate_manifest(manifest).seconds == pytest.approx(3.0)


def test_the_data_root_defaults_to_the_manifest_folder(tmp_path):
    (tmp_path / "audio").mkdir()
    good_wav(tmp_path / "audio")
    manifest = write_rows(tmp_path, [("a", "1.0", "$data_root/audio/good.wav")])
    assert validate_manifest(manifest).utterances == 1


def test_a_data_root_that_is_not_a_folder_is_reported_once(tmp_path):
    manifest = write_rows(tmp_path, [(f"u{i}", "1.0", f"$data_root/{i}.wav") for i in range(5)])
    with pytest.raises(ManifestError) as error:
        validate_manifest(manifest, data_root=tmp_path / "nowhere")
    assert str(error.value) == (f"1 problem(s) in {manifest}:\n  {manifest}: the data root {tmp_path / 'nowhere'} "
                                "(the value of $data_root) is not a folder")


def test_a_directory_and_an_empty_file_are_named_as_such(tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "zero.wav").write_bytes(b"")
    manifest = write_rows(tmp_path, [("a", "1.0", "$data_root/adir"), ("b", "1.0", "$data_root/zero.wav")])
    with pytest.raises(ManifestError) as error:
        validate_manifest(manifest)
    assert str(error.value) == (f"2 problem(s) in {manifest}:\n  {manifest} row 1 (ID 'a'): {tmp_path / 'adir'} is "
                                f"a directory, not an audio file\n  {manifest} row 2 (ID 'b'): {tmp_path / 'zero.wav'} "
                                "is empty (0 bytes)")


def write_audio_only(folder: Path, rows: list[tuple[str, str]], name: str = "audio.csv") -> Path:
    """A manifest of (ID, wav) rows without a transcript column, as an audio-only task reads."""
    path = folder / name
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "duration", "wav"])
        writer.writerows([utt_id, "1.0", wav] for utt_id, wav in rows)
    return path


def test_a_manifest_without_transcripts_is_refused_by_default(tmp_path):
    good_wav(tmp_path)
    manifest = write_audio_only(tmp_path, [("a", "$data_root/good.wav")])
    expected = (r"header \['ID', 'duration', 'wav'\] lacks field\(s\) \['wrd'\]; "
                r"expected columns ID,duration,wav,wrd \(plus optional spk_id\)$")
    with pytest.raises(ManifestError, match=expected):
        read_manifest(manifest)
    with pytest.raises(ManifestError, match=expected):
        validate_manifest(manifest)


def test_an_audio_only_task_validates_a_manifest_without_transcripts(tmp_path):
    good_wav(tmp_path)
    manifest = write_audio_only(tmp_path, [("a", "$data_root/good.wav"), ("b", "$data_root/good.wav")])
    assert [row["ID"] for row in read_manifest(manifest, require_transcript=False)] == ["a", "b"]
    summary = validate_manifest(manifest, require_transcript=False)
    assert summary.utterances == 2 and summary.seconds == pytest.approx(2.0)


def test_without_transcripts_empty_ones_pass_and_the_audio_is_still_checked(tmp_path):
    wav = good_wav(tmp_path)
    manifest = write_manifest(tmp_path, [("a", wav, "HELLO"), ("b", wav, "  ")])
    assert validate_manifest(manifest, require_transcript=False).utterances == 2
    with pytest.raises(ManifestError, match="empty transcript"):
        validate_manifest(manifest)  # the stamp vouches for the audio only, not for transcripts
    missing = write_audio_only(tmp_path, [("a", str(tmp_path / "missing.wav"))])
    with pytest.raises(ManifestError, match=r"row 1 \(ID 'a'\): audio file .*missing.wav does not exist"):
        validate_manifest(missing, require_transcript=False)


def test_without_transcripts_the_audio_columns_are_still_required(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("ID,path\na,x.wav\n")
    with pytest.raises(ManifestError, match=r"lacks field\(s\) \['duration', 'wav'\]; expected columns "
                                            r"ID,duration,wav \(plus optional spk_id, wrd\)"):
        validate_manifest(path, require_transcript=False)
