"""SpeechBrain CSV manifests (``ID,duration,wav,spk_id,wrd``): reading and validation.

Validation runs before any training work starts and reports every bad row at once, each
with the manifest, the row number (1 = first data row), the file and what was expected.
The ``duration`` column is checked against the audio (dynamic batching and sorting
trust it), and the hours reported are the audio's, not the column's. A task that reads
no transcripts (``require_transcript=False``) validates audio-only manifests: ``wrd``
is then optional.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from streamasr.data.audio import check_audio_complete
from streamasr.errors import AudioError, ManifestError, UndecodableAudioError
from streamasr.units import SAMPLE_RATE

MANIFEST_FIELDS = ("ID", "duration", "wav", "spk_id", "wrd")  # the columns we write
REQUIRED_FIELDS = ("ID", "duration", "wav", "wrd")  # the columns we need to read one
TRANSCRIPT_FIELD = "wrd"
AUDIO_FIELDS = ("ID", "duration", "wav")  # what a task that reads no transcripts needs
EXPECTED_SAMPLE_RATE = SAMPLE_RATE
# How far the duration column may be from the audio: the corpus builder writes
# durations to 1 ms (3 decimals), prepare to 10 ms; 2 % allows for other tools' rounding
# and for compressed formats whose decoders pad a few ms.
DURATION_TOLERANCE_S, DURATION_TOLERANCE_SHARE = 0.1, 0.02
# Part of the validation stamp's key: stamps written by an older set of checks (before
# truncation and duration were checked) do not vouch for the current ones.
_CHECKS_VERSION = "2: complete audio, duration column"

__all__ = ["AUDIO_FIELDS", "DURATION_TOLERANCE_S", "DURATION_TOLERANCE_SHARE", "MANIFEST_FIELDS", "REQUIRED_FIELDS",
           "TRANSCRIPT_FIELD", "AudioCheck",
           "ManifestError", "ManifestSummary", "check_audio", "data_root_of", "inspect_audio", "read_manifest",
           "resolve_path", "validate_manifest", "write_manifest"]


@dataclasses.dataclass
class ManifestSummary:
    utterances: int
    seconds: float

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def write_manifest(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Write ``rows`` (dicts with the ``MANIFEST_FIELDS`` keys) as a SpeechBrain CSV,
    atomically: the file appears complete or not at all. Returns the path."""
    import tempfile

    path = Path(path)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def data_root_of(manifest: str | os.PathLike, data_root: str | os.PathLike | None = None) -> str:
    """The value of ``$data_root`` for ``manifest``: ``data_root`` when given, else the
    manifest's own folder (absolute), where build-corpus writes its manifests, so a
    corpus validates and evaluates wherever it was moved without naming its root."""
    if data_root is not None:
        return str(data_root)
    return str(Path(manifest).resolve().parent)


def resolve_path(path: str, data_root: str | os.PathLike | None) -> str:
    """Replace SpeechBrain's ``$data_root`` placeholder."""
    if "$data_root" in path:
        if data_root is None:
            raise ManifestError(f"path {path} uses $data_root but no data root was given")
        path = path.replace("$data_root", str(data_root))
    return path


def read_manifest(path: str | os.PathLike, require_transcript: bool = True) -> list[dict[str, str]]:
    """Rows of a manifest as dicts; checks the header names the required fields
    (``REQUIRED_FIELDS``; ``AUDIO_FIELDS`` with ``require_transcript=False``, for a task
    that reads no transcripts: the ``wrd`` column is then optional)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    required = REQUIRED_FIELDS if require_transcript else AUDIO_FIELDS
    optional = "spk_id" if require_transcript else f"spk_id, {TRANSCRIPT_FIELD}"
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [field for field in required if field not in header]
        if missing:
            raise ManifestError(
                f"manifest {path}: header {header} lacks field(s) {missing}; "
                f"expected columns {','.join(required)} (plus optional {optional})"
            )
        return list(reader)


@dataclasses.dataclass(frozen=True)
class AudioCheck:
    """What ``inspect_audio`` found: ``problem`` None when the file is usable; ``seconds``
    the audio's real duration whenever the file could be decoded."""

    problem: str | None
    seconds: float | None = None


def inspect_audio(file: str, expected_rate: int = EXPECTED_SAMPLE_RATE) -> AudioCheck:
    """Check one audio file: exists, is complete (``check_audio_complete``), mono at
    ``expected_rate`` Hz, not empty, decodes, holds no NaN/Inf; and measure it."""
    try:
        info = check_audio_complete(file)
    except UndecodableAudioError as error:
        return AudioCheck(f"audio file {file} is unreadable ({error.reason})")
    except AudioError as error:  # missing, a directory, empty, truncated: the message names the file
        return AudioCheck(str(error))
    if info.sample_rate != expected_rate:
        return AudioCheck(f"audio file {file} is {info.sample_rate} Hz, expected {expected_rate} Hz", info.seconds)
    if info.channels != 1:
        return AudioCheck(f"audio file {file} has {info.channels} channels, expected mono", info.seconds)
    if info.frames == 0:
        return AudioCheck(f"audio file {file} is empty (0 samples)", 0.0)
    try:
        audio, rate = sf.read(file, dtype="float32")
    except Exception as error:  # soundfile raises several types for undecodable data
        return AudioCheck(f"audio file {file} is unreadable ({error})", info.seconds)
    seconds = len(audio) / rate
    if audio.size == 0:
        return AudioCheck(f"audio file {file} is empty (0 samples)", 0.0)
    if not np.isfinite(audio).all():
        return AudioCheck(f"audio file {file} contains NaN or Inf samples", seconds)
    return AudioCheck(None, seconds)


def check_audio(file: str, expected_rate: int = EXPECTED_SAMPLE_RATE) -> str | None:
    """Return what is wrong with one audio file, or None when it is usable."""
    return inspect_audio(file, expected_rate).problem


def _duration_problem(declared: float, seconds: float) -> str | None:
    if abs(declared - seconds) > max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_SHARE * seconds):
        return (f"the duration column says {declared:g} s, the audio lasts {seconds:.3f} s "
                f"(more than max({DURATION_TOLERANCE_S:g} s, {100 * DURATION_TOLERANCE_SHARE:g} %) apart)")
    return None


def _validated_stamp(path: Path) -> Path:
    return path.with_name(path.name + ".validated.json")


def _validation_key(path: Path, data_root, expected_rate: int) -> str:
    import hashlib

    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"\0{os.path.abspath(data_root) if data_root else ''}\0{expected_rate}".encode())
    digest.update(f"\0{_CHECKS_VERSION}".encode())
    return digest.hexdigest()


def write_validated_stamp(path: str | os.PathLike, data_root: str | os.PathLike | None = None,
                          expected_rate: int = EXPECTED_SAMPLE_RATE, seconds: float | None = None) -> None:
    """Record that every audio file of this exact manifest passed ``check_audio``,
    so ``validate_manifest`` does not decode a large corpus again at every start.
    seconds: the audio's total duration, reported by later validations instead of the
    duration column's sum."""
    import json

    path = Path(path)
    record: dict = {"key": _validation_key(path, data_root, expected_rate)}
    if seconds is not None:
        record["seconds"] = seconds
    _validated_stamp(path).write_text(json.dumps(record), encoding="utf-8")


def _stamp(path: Path, data_root: str | os.PathLike | None, expected_rate: int) -> dict | None:
    import json

    try:
        recorded = json.loads(_validated_stamp(path).read_text(encoding="utf-8"))
        if recorded["key"] == _validation_key(path, data_root, expected_rate):
            return recorded
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def audio_already_validated(path: Path, data_root: str | os.PathLike | None, expected_rate: int) -> bool:
    """True when a stamp says this manifest's audio was checked (same manifest bytes,
    same data root, same checks). Files changed on disk afterwards are not noticed:
    delete the ``.validated.json`` stamp to force a new check."""
    return _stamp(path, data_root, expected_rate) is not None


def validate_manifest(
    path: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    expected_rate: int = EXPECTED_SAMPLE_RATE,
    check_files: bool = True,
    max_reported: int = 20,
    progress: bool = False,
    require_transcript: bool = True,
) -> ManifestSummary:
    """Check every row of a manifest; raise ManifestError listing the problems.

    Checks: required columns, a non-empty transcript (unless ``require_transcript`` is
    False: a task that reads no transcripts accepts manifests without a ``wrd`` column,
    or with empty ones), a positive numeric duration, and
    (``check_files``) that the audio exists, is complete (not truncated), decodes, is
    mono at ``expected_rate`` Hz, is not empty, holds no NaN/Inf and lasts what the
    duration column says (within max(``DURATION_TOLERANCE_S``,
    ``DURATION_TOLERANCE_SHARE``)). data_root: the value of ``$data_root``, by default
    the manifest's folder (``data_root_of``, as evaluate). A data root that is not a
    folder is reported once, not once per row.

    The audio check runs once per manifest content: a passing check leaves a
    ``<manifest>.validated.json`` stamp with the audio's total duration. The summary's
    seconds are the audio's (measured, or recorded in the stamp); the duration column's
    sum only with ``check_files=False`` or a stamp that predates the recording.
    """
    data_root = data_root_of(path, data_root)
    rows = read_manifest(path, require_transcript=require_transcript)
    stamp = _stamp(Path(path), data_root, expected_rate) if check_files else None
    check_files = check_files and stamp is None
    problems: list[str] = []
    column_seconds = audio_seconds = 0.0
    ids: set[str] = set()
    if not rows:
        raise ManifestError(f"manifest {path} has no rows")
    root_is_folder = os.path.isdir(data_root)
    root_reported = False
    from tqdm import tqdm

    numbered = enumerate(rows, start=1)
    for number, row in tqdm(numbered, total=len(rows), desc=f"checking {Path(path).name}", unit="utt",
                            disable=not progress or len(rows) < 1000, leave=False):
        where = f"{path} row {number} (ID {row.get('ID')!r})"
        if row["ID"] in ids:
            problems.append(f"{where}: duplicate ID")
        ids.add(row["ID"])
        if require_transcript and not (row.get(TRANSCRIPT_FIELD) or "").strip():
            problems.append(f"{where}: empty transcript in field '{TRANSCRIPT_FIELD}'")
        duration: float | None = None
        try:
            duration = float(row["duration"])
            if not math.isfinite(duration) or duration <= 0:
                raise ValueError
            column_seconds += duration
        except (TypeError, ValueError):
            duration = None
            problems.append(f"{where}: duration {row.get('duration')!r} is not a positive number")
        if check_files:
            wav = row["wav"] or ""
            if "$data_root" in wav and not root_is_folder:
                if not root_reported:  # one line, not one per row: they all fail alike
                    problems.append(f"{path}: the data root {data_root} (the value of $data_root) is not a folder")
                    root_reported = True
                continue
            file = resolve_path(wav, data_root)
            found = inspect_audio(file, expected_rate)
            if found.problem:
                problems.append(f"{where}: {found.problem}")
            elif found.seconds is not None:
                audio_seconds += found.seconds
                mismatch = _duration_problem(duration, found.seconds) if duration is not None else None
                if mismatch:
                    problems.append(f"{where}: {mismatch}")
    if problems:
        shown = problems[:max_reported]
        more = len(problems) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise ManifestError(
            f"{len(problems)} problem(s) in {path}:\n  " + "\n  ".join(shown) + tail
        )
    if check_files:
        seconds = audio_seconds
        try:
            write_validated_stamp(path, data_root, expected_rate, seconds=seconds)
        except OSError:  # read-only corpus folder: check again next time
            pass
    elif stamp is not None and isinstance(stamp.get("seconds"), (int, float)):
        seconds = float(stamp["seconds"])
    else:
        seconds = column_seconds
    return ManifestSummary(utterances=len(rows), seconds=seconds)
