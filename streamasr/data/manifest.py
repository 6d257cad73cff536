"""SpeechBrain CSV manifests (``ID,duration,wav,spk_id,wrd``): reading and validation.

Validation runs before any training work starts and reports every bad row at once, each
with the manifest, the row number (1 = first data row), the file and what was expected.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from streamasr.errors import ManifestError
from streamasr.units import SAMPLE_RATE

MANIFEST_FIELDS = ("ID", "duration", "wav", "spk_id", "wrd")  # the columns we write
REQUIRED_FIELDS = ("ID", "duration", "wav", "wrd")  # the columns we need to read one
EXPECTED_SAMPLE_RATE = SAMPLE_RATE

__all__ = ["MANIFEST_FIELDS", "REQUIRED_FIELDS", "ManifestError", "ManifestSummary", "check_audio",
           "read_manifest", "resolve_path", "validate_manifest", "write_manifest"]


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


def resolve_path(path: str, data_root: str | os.PathLike | None) -> str:
    """Replace SpeechBrain's ``$data_root`` placeholder."""
    if "$data_root" in path:
        if data_root is None:
            raise ManifestError(f"path {path} uses $data_root but no data root was given")
        path = path.replace("$data_root", str(data_root))
    return path


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a manifest as dicts; checks the header names the required fields."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [field for field in REQUIRED_FIELDS if field not in header]
        if missing:
            raise ManifestError(
                f"manifest {path}: header {header} lacks field(s) {missing}; "
                f"expected columns {','.join(REQUIRED_FIELDS)} (plus optional spk_id)"
            )
        return list(reader)


def check_audio(file: str, expected_rate: int = EXPECTED_SAMPLE_RATE) -> str | None:
    """Return what is wrong with one audio file, or None when it is usable."""
    if not os.path.isfile(file):
        return f"audio file {file} does not exist"
    try:
        info = sf.info(file)
    except Exception as error:  # soundfile raises several types for unreadable files
        return f"audio file {file} is unreadable ({error})"
    if info.samplerate != expected_rate:
        return f"audio file {file} is {info.samplerate} Hz, expected {expected_rate} Hz"
    if info.channels != 1:
        return f"audio file {file} has {info.channels} channels, expected mono"
    if info.frames == 0:
        return f"audio file {file} is empty (0 samples)"
    try:
        audio, _ = sf.read(file, dtype="float32")
    except Exception as error:
        return f"audio file {file} is unreadable ({error})"
    if audio.size == 0:
        return f"audio file {file} is empty (0 samples)"
    if not np.isfinite(audio).all():
        return f"audio file {file} contains NaN or Inf samples"
    return None


def _validated_stamp(path: Path) -> Path:
    return path.with_name(path.name + ".validated.json")


def _validation_key(path: Path, data_root, expected_rate: int) -> str:
    import hashlib

    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"\0{os.path.abspath(data_root) if data_root else ''}\0{expected_rate}".encode())
    return digest.hexdigest()


def write_validated_stamp(path: str | os.PathLike, data_root: str | os.PathLike | None = None,
                          expected_rate: int = EXPECTED_SAMPLE_RATE) -> None:
    """Record that every audio file of this exact manifest passed ``check_audio``,
    so ``validate_manifest`` does not decode a large corpus again at every start."""
    import json

    path = Path(path)
    _validated_stamp(path).write_text(
        json.dumps({"key": _validation_key(path, data_root, expected_rate)}), encoding="utf-8"
    )


def audio_already_validated(path: Path, data_root: str | os.PathLike | None, expected_rate: int) -> bool:
    """True when a stamp says this manifest's audio was checked (same manifest bytes,
    same data root). Files changed on disk afterwards are not noticed: delete the
    ``.validated.json`` stamp to force a new check."""
    import json

    stamp = _validated_stamp(path)
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == _validation_key(path, data_root, expected_rate)


def validate_manifest(
    path: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    expected_rate: int = EXPECTED_SAMPLE_RATE,
    check_files: bool = True,
    max_reported: int = 20,
    progress: bool = False,
) -> ManifestSummary:
    """Check every row of a manifest; raise ManifestError listing the problems.

    Checks: required columns, a non-empty transcript, a positive numeric duration, and
    (``check_files``) that the audio exists, decodes, is mono at ``expected_rate`` Hz,
    is not empty and holds no NaN/Inf. The audio check runs once per manifest
    content: a passing check leaves a ``<manifest>.validated.json`` stamp.
    """
    rows = read_manifest(path)
    stamped = check_files and audio_already_validated(Path(path), data_root, expected_rate)
    check_files = check_files and not stamped
    problems: list[str] = []
    seconds = 0.0
    ids: set[str] = set()
    if not rows:
        raise ManifestError(f"manifest {path} has no rows")
    from tqdm import tqdm

    numbered = enumerate(rows, start=1)
    for number, row in tqdm(numbered, total=len(rows), desc=f"checking {Path(path).name}", unit="utt",
                            disable=not progress or len(rows) < 1000, leave=False):
        where = f"{path} row {number} (ID {row.get('ID')!r})"
        if row["ID"] in ids:
            problems.append(f"{where}: duplicate ID")
        ids.add(row["ID"])
        if not (row.get("wrd") or "").strip():
            problems.append(f"{where}: empty transcript in field 'wrd'")
        try:
            duration = float(row["duration"])
            if not math.isfinite(duration) or duration <= 0:
                raise ValueError
            seconds += duration
        except (TypeError, ValueError):
            problems.append(f"{where}: duration {row.get('duration')!r} is not a positive number")
        if check_files:
            try:
                file = resolve_path(row["wav"] or "", data_root)
            except ManifestError as error:
                problems.append(f"{where}: {error}")
                continue
            problem = check_audio(file, expected_rate)
            if problem:
                problems.append(f"{where}: {problem}")
    if problems:
        shown = problems[:max_reported]
        more = len(problems) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise ManifestError(
            f"{len(problems)} problem(s) in {path}:\n  " + "\n  ".join(shown) + tail
        )
    if not stamped and check_files:
        try:
            write_validated_stamp(path, data_root, expected_rate)
        except OSError:  # read-only corpus folder: check again next time
            pass
    return ManifestSummary(utterances=len(rows), seconds=seconds)
