"""Real-corpus preparation on fixture trees in the official layouts: rows, normalised
text, durations to 10 ms, bad-input reports, --skip_bad, resumption."""

from __future__ import annotations

import os

import pytest
import soundfile as sf

from helpers.corpora import cv_row, make_commonvoice, make_librispeech, make_voxpopuli, rows_of, tone
from streamasr.cli import main as cli
from streamasr.data.commonvoice import prepare_commonvoice
from streamasr.data.librispeech import prepare_librispeech
from streamasr.data.manifest import validate_manifest
from streamasr.data.normalize import NormalizationError, normalize_text
from streamasr.data.prepare import PrepareError
from streamasr.data.voxpopuli import prepare_voxpopuli

# ------------------------------------------------------------------ LibriSpeech


# ------------------------------------------------------------------ CommonVoice


# ------------------------------------------------------------------ VoxPopuli


# ------------------------------------------------------------------ normalisation
@pytest.mark.parametrize("language, raw, expected", [
    ("en", "Hello, world! It's a well-known \u201cfact\u201d.", "HELLO WORLD IT'S A WELL KNOWN FACT"),
    ("en", "  'Quoted'  words\u2019 end ", "QUOTED WORDS END"),
    ("en", "Don\u2019t stop: 42 times?", "DON'T STOP 42 TIMES"),
    ("fr", "L\u2019homme qu'il a vu, peut-\u00eatre \u00ab demain \u00bb\u202f!", "L'HOMME QU'IL A VU PEUT \u00caTRE DEMAIN"),
    ("fr", "\u0152uvre na\u00efve \u00e0 c\u00f4t\u00e9 d'aujourd'hui.", "\u0152UVRE NA\u00cfVE \u00c0 C\u00d4T\u00c9 D'AUJOURD'HUI"),
    ("it", "Perche' la citta' e' bella? Dell'anno, un po' di caff\u00e8.",
     "PERCH\u00c9 LA CITT\u00c0 \u00c8 BELLA DELL'ANNO UN PO DI CAFF\u00c8"),
    ("it", "L'Italia, pi\u00f9 o meno... s\u00ec!", "L'ITALIA PI\u00d9 O MENO S\u00cc"),
])
def test_normalize_text_exact(language, raw, expected):
    assert normalize_text(raw, language) == expected


def test_normalize_text_decomposed_accents_are_composed():
    assert normalize_text("cafe\u0301", "fr") == "CAF\u00c9"


def test_normalize_text_unknown_language():
    with pytest.raises(NormalizationError, match="language 'de' has no text normalisation"):
        normalize_text("Hallo", "de")


def test_librispeech_manifests(tmp_path):
    root = tmp_path / "LibriSpeech"
    frames = make_librispeech(root)
    out = tmp_path / "manifests"
    written = prepare_librispeech(root, out, train_splits=["train-clean-100"],
                                  valid_splits=["dev-clean"], test_splits=["test-clean"],
                                  jobs=1, progress=False)
    assert sorted(written) == ["test-clean", "train", "valid"]
    train = rows_of(out / "train.csv")
    assert sorted(train) == ["19-198-0001", "19-198-0002", "26-495-0000"]
    row = train["19-198-0002"]
    assert row["wrd"] == "IT'S A FINE DAY"
    assert row["spk_id"] == "19"
    assert row["wav"] == "$data_root/train-clean-100/19/198/19-198-0002.flac"
    for manifest in ("train", "valid", "test-clean"):
        for utt_id, row in rows_of(out / f"{manifest}.csv").items():
            assert abs(float(row["duration"]) - frames[utt_id] / 16000) < 0.01
    assert list(rows_of(out / "test-clean.csv")) == ["1089-134686-0000"]
    # the manifests pass the foundation's validation, with $data_root resolved
    assert validate_manifest(out / "train.csv", data_root=root).utterances == 3


def test_librispeech_missing_split_is_reported(tmp_path):
    root = tmp_path / "LibriSpeech"
    make_librispeech(root)
    with pytest.raises(PrepareError) as error:
        prepare_librispeech(root, tmp_path / "m", train_splits=["train-clean-100"],
                            valid_splits=["dev-clean"], test_splits=["test-other"], jobs=1, progress=False)
    assert f"{root / 'test-other'}: split folder test-other is missing" in str(error.value)
    with pytest.raises(ValueError, match="unknown LibriSpeech split 'test-noisy'"):
        prepare_librispeech(root, tmp_path / "m", test_splits=["test-noisy"])


def test_librispeech_bad_items_stop_the_run_then_skip_bad(tmp_path):
    root = tmp_path / "LibriSpeech"
    make_librispeech(root)
    chapter = root / "train-clean-100" / "19" / "198"
    trans = chapter / "19-198.trans.txt"
    # a transcript line without audio, a non-UTF-8 line, a malformed line
    with open(trans, "ab") as handle:
        handle.write(b"19-198-0009 NO AUDIO FOR THIS LINE\n")
        handle.write(b"19-198-0010 CAF\xe9 LATIN ONE\n")
        handle.write(b"JUSTONEWORD\n")
    tone(chapter / "19-198-0005.flac", 1.0, 16000)  # audio without a transcript line
    (chapter / "19-198-0006.flac").unlink(missing_ok=True)
    (chapter / "19-198-0007.flac").write_bytes(b"")  # empty clip
    with open(trans, "a", encoding="utf-8") as handle:
        handle.write("19-198-0007 AN EMPTY CLIP\n")
    out = tmp_path / "manifests"
    with pytest.raises(PrepareError) as error:
        prepare_librispeech(root, out, train_splits=["train-clean-100"], valid_splits=[],
                            test_splits=[], jobs=1, progress=False)
    message = str(error.value)
    assert f"{trans}:3: transcript line for 19-198-0009 has no audio" in message
    assert f"{trans}:4: line is not valid UTF-8" in message
    assert f"{trans}:5: malformed transcript line 'JUSTONEWORD'" in message
    assert f"{chapter / '19-198-0005.flac'}: audio file has no transcript line" in message
    assert f"{chapter / '19-198-0007.flac'}: audio file is empty (0 bytes)" in message
    assert "5 bad item(s) in split 'train'" in message
    assert "--skip_bad" in message
    assert not (out / "train.csv").exists()  # nothing half-written
    assert "19-198-0009" in (out / "prepare_report.txt").read_text(encoding="utf-8")

    written = prepare_librispeech(root, out, train_splits=["train-clean-100"], valid_splits=[],
                                  test_splits=[], skip_bad=True, jobs=1, progress=False)
    assert sorted(rows_of(written["train"])) == ["19-198-0001", "19-198-0002", "26-495-0000"]
    skipped = (out / "skipped_train.tsv").read_text(encoding="utf-8").splitlines()
    assert skipped[0] == "path\treason"
    assert len(skipped) == 1 + 5
    assert any(line.startswith(str(chapter / "19-198-0007.flac")) for line in skipped)


def test_librispeech_second_run_reuses_then_redoes_on_change(tmp_path, capsys):
    root = tmp_path / "LibriSpeech"
    make_librispeech(root)
    out = tmp_path / "m"
    kwargs = dict(train_splits=["train-clean-100"], valid_splits=["dev-clean"], test_splits=[],
                  jobs=1, progress=False)
    prepare_librispeech(root, out, **kwargs)
    first = (out / "train.csv").stat().st_mtime_ns
    capsys.readouterr()
    prepare_librispeech(root, out, **kwargs)
    assert "train: reusing" in capsys.readouterr().out
    assert (out / "train.csv").stat().st_mtime_ns == first
    trans = root / "train-clean-100" / "26" / "495" / "26-495.trans.txt"
    trans.write_text("26-495-0000 AND SO THEY LEFT\n", encoding="utf-8")
    prepare_librispeech(root, out, **kwargs)
    assert rows_of(out / "train.csv")["26-495-0000"]["wrd"] == "AND SO THEY LEFT"


def test_commonvoice_french_mp3(tmp_path):
    root = tmp_path / "cv-corpus-17.0" / "fr"
    frames = make_commonvoice(root, "fr", {
        "train.tsv": [("C\u2019est l\u2019\u00e9t\u00e9, \u00ab enfin \u00bb !", 2.5),
                      ("Peut-\u00eatre qu'il viendra.", 1.75)],
        "dev.tsv": [("O\u00f9 est-il ?", 1.1)],
        "test.tsv": [("Voil\u00e0 l'\u0153uvre.", 3.3)],
    })
    out = tmp_path / "m"
    written = prepare_commonvoice(root, out, language="fr", jobs=1, progress=False)
    assert sorted(written) == ["test", "train", "valid"]
    train = rows_of(out / "train.csv")
    assert train["common_voice_fr_train0"]["wrd"] == "C'EST L'\u00c9T\u00c9 ENFIN"
    assert train["common_voice_fr_train1"]["wrd"] == "PEUT \u00caTRE QU'IL VIENDRA"
    assert train["common_voice_fr_train1"]["spk_id"] == "client1"
    assert rows_of(out / "valid.csv")["common_voice_fr_dev0"]["wrd"] == "O\u00d9 EST IL"
    assert rows_of(out / "test.csv")["common_voice_fr_test0"]["wrd"] == "VOIL\u00c0 L'\u0152UVRE"
    for name in ("train", "valid", "test"):
        for utt_id, row in rows_of(out / f"{name}.csv").items():
            assert abs(float(row["duration"]) - frames[utt_id] / 16000) < 0.01
            info = sf.info(row["wav"])  # converted once to 16 kHz mono WAV
            assert (info.samplerate, info.channels, info.format) == (16000, 1, "WAV")
            assert row["wav"].startswith(str(out / "audio" / name))
    assert validate_manifest(out / "train.csv").utterances == 2


def test_commonvoice_bad_rows_are_reported(tmp_path):
    root = tmp_path / "it"
    make_commonvoice(root, "it", {"train.tsv": [("Perche' no?", 1.0)], "dev.tsv": [("S\u00ec.", 1.0)],
                                  "test.tsv": [("Citta'.", 1.0)]})
    with open(root / "train.tsv", "ab") as handle:
        handle.write(cv_row("c", "common_voice_it_missing.mp3", "Manca", "it").encode() + b"\n")
        handle.write(b"c\tcommon_voice_it_x.mp3\tonly three fields\n")
        handle.write(cv_row("c", "common_voice_it_train0.mp3", "caff\xe8", "it").encode("latin-1") + b"\n")
    out = tmp_path / "m"
    with pytest.raises(PrepareError) as error:
        prepare_commonvoice(root, out, language="it", jobs=1, progress=False)
    message = str(error.value)
    tsv = root / "train.tsv"
    assert f"{tsv}:3: transcript row for common_voice_it_missing.mp3 has no audio" in message
    assert f"{tsv}:4: malformed row: 3 tab-separated field(s), the header has 13" in message
    assert f"{tsv}:5: line is not valid UTF-8" in message
    assert not (out / "train.csv").exists()
    # the splits without problems were written; the bad one is not
    assert (out / "valid.csv").exists() and (out / "test.csv").exists()
    written = prepare_commonvoice(root, out, language="it", skip_bad=True, jobs=1, progress=False)
    assert rows_of(written["train"])["common_voice_it_train0"]["wrd"] == "PERCH\u00c9 NO"
    assert len((out / "skipped_train.tsv").read_text(encoding="utf-8").splitlines()) == 4
    missing = tmp_path / "nothing"
    missing.mkdir()
    with pytest.raises(PrepareError, match=r"train.tsv is missing; expected the CommonVoice layout"):
        prepare_commonvoice(missing, tmp_path / "m2", language="it", jobs=1, progress=False)


def test_voxpopuli_ogg_and_orphans(tmp_path):
    root = tmp_path / "voxpopuli"
    frames = make_voxpopuli(root, "en", {
        "train": [("20180206-0900-PLENARY-15-en_20180206-16:10:06_5", "the committee's report", 2.2),
                  ("20190311-0900-PLENARY-3-en_20190311-10:00:00_1", "thank you madam president", 1.4)],
        "dev": [("20200114-0900-PLENARY-7-en_20200114-09:01:02_0", "i agree", 0.9)],
        "test": [("20200115-0900-PLENARY-8-en_20200115-11:11:11_3", "we vote now", 1.6)],
    })
    out = tmp_path / "m"
    written = prepare_voxpopuli(root, out, language="en", jobs=1, progress=False)
    train = rows_of(written["train"])
    row = train["20180206-0900-PLENARY-15-en_20180206-16:10:06_5"]
    assert row["wrd"] == "THE COMMITTEE'S REPORT"
    assert row["spk_id"] == "1234"
    assert row["wav"] == "$data_root/transcribed_data/en/2018/20180206-0900-PLENARY-15-en_20180206-16:10:06_5.ogg"
    for name in ("train", "valid", "test"):
        for utt_id, row in rows_of(out / f"{name}.csv").items():
            assert abs(float(row["duration"]) - frames[utt_id] / 16000) < 0.01
    orphan = root / "transcribed_data" / "en" / "2021" / "20210101-0900-PLENARY-1-en_x_0.ogg"
    tone(orphan, 1.0, 16000, format="OGG", subtype="VORBIS")
    with pytest.raises(PrepareError, match=f"{orphan}: audio file has no row in any asr_"):
        prepare_voxpopuli(root, out, language="en", jobs=1, progress=False)


def test_prepare_cli_reports_and_exits_2(tmp_path, capsys):
    root = tmp_path / "voxpopuli"
    make_voxpopuli(root, "it", {"train": [("20200101-a_0", "ciao", 1.0)],
                                "dev": [("20200101-b_0", "si", 1.0)]})
    code = cli(["prepare", "voxpopuli", str(root), str(tmp_path / "m"), "--language", "it", "--jobs", "1"])
    assert code == 2
    assert "asr_test.tsv is missing" in capsys.readouterr().err
    code = cli(["prepare", "librispeech", str(tmp_path / "absent"), str(tmp_path / "m")])
    assert code == 2
    assert f"data folder {tmp_path / 'absent'} does not exist" in capsys.readouterr().err
    code = cli(["prepare", "commonvoice", str(root), str(tmp_path / "m")])
    assert code == 2
    assert capsys.readouterr().err == "streamasr prepare: error: commonvoice needs --language (en, fr or it)\n"


def test_parallel_audio_reading_matches_serial(tmp_path):
    from streamasr.data.prepare import Utterance, write_split

    utterances, frames = [], {}
    for index in range(70):  # enough to use the process pool
        path = tmp_path / "a" / f"u{index}.flac"
        frames[f"u{index}"] = tone(path, 0.2 + index * 0.01, 16000)
        utterances.append(Utterance(f"u{index}", str(path), "s", "WORD", f"x:{index}"))
    write_split("train", utterances, [], tmp_path / "m" / "train.csv", tmp_path, "k", jobs=2, progress=False)
    rows = rows_of(tmp_path / "m" / "train.csv")
    assert len(rows) == 70
    assert all(abs(float(rows[k]["duration"]) - frames[k] / 16000) < 0.001 for k in frames)


def test_validated_stamp_skips_audio_check_until_manifest_changes(tmp_path):
    root = tmp_path / "LibriSpeech"
    make_librispeech(root)
    out = tmp_path / "m"
    prepare_librispeech(root, out, train_splits=["train-clean-100"], valid_splits=[], test_splits=[],
                        jobs=1, progress=False)
    manifest = out / "train.csv"
    assert (out / "train.csv.validated.json").exists()
    os.remove(root / "train-clean-100" / "26" / "495" / "26-495-0000.flac")
    # the stamp matches: the audio is not decoded again
    assert validate_manifest(manifest, data_root=root).utterances == 3
    # a changed manifest is checked in full again
    manifest.write_text(manifest.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(Exception, match="26-495-0000.flac does not exist"):
        validate_manifest(manifest, data_root=root)
