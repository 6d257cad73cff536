"""What every real-corpus recipe shares: from (utterance id, audio file, speaker,
transcript) records to a validated SpeechBrain CSV manifest.

A corpus module (``librispeech``, ``commonvoice``, ``voxpopuli``) only walks its
official layout and turns it into :class:`Utterance` records plus a list of
:class:`Problem` s (missing split folder, transcript line without audio, audio without
a transcript, malformed or non-UTF-8 rows). :func:`write_split` does the rest:

* reads every audio file in parallel (all cores, progress bar), rejects empty,
  unreadable or NaN audio as the foundation's ``check_audio`` does, and measures the
  duration from the decoded sample count;
* converts to 16 kHz mono WAV under ``<manifest_folder>/audio/`` only what is not
  already 16 kHz mono FLAC/WAV/OGG (CommonVoice mp3s, for instance), so training never
  decodes mp3 or resamples; conversions are written atomically and reused on re-runs;
* stops with a report naming each bad item and its path (``prepare_report.txt``), or,
  with ``skip_bad``, leaves them out and lists them in ``skipped_<split>.tsv``;
* writes the manifest atomically with ``$data_root``-relative paths, plus a stamp that
  records its inputs: a second run with the same inputs reuses the manifest, and the
  stamp also tells ``validate_manifest`` that the audio was already checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from streamasr.data.audio import check_audio_complete
from streamasr.data.manifest import EXPECTED_SAMPLE_RATE, write_manifest, write_validated_stamp
from streamasr.data.normalize import normalize_text
from streamasr.errors import AudioError, PrepareError, TruncatedAudioError  # noqa: F401  (PrepareError re-exported)
from streamasr.pools import worker_pool

_NATIVE_FORMATS = {"FLAC", "WAV", "OGG", "WAVEX"}
STAMP_VERSION = 1




@dataclasses.dataclass(frozen=True)
class Utterance:
    """One utterance of a source corpus, before its audio is read.

    ``audio`` is the absolute path of the source file; ``text`` the normalised
    transcript; ``origin`` where the record came from (``file:line``) for reports.
    """

    id: str
    audio: str
    spk_id: str
    text: str
    origin: str


@dataclasses.dataclass(frozen=True)
class Problem:
    """A bad item: the path to look at and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _needs_conversion(info) -> bool:
    return (
        info.samplerate != EXPECTED_SAMPLE_RATE
        or info.channels != 1
        or info.format not in _NATIVE_FORMATS
    )


def inspect_audio(job: tuple[str, str]) -> tuple[float | None, str | None, bool]:
    """Read one file; convert it to ``converted`` (16 kHz mono WAV) when needed.

    Returns ``(duration_seconds, problem, converted)``; ``problem`` is None when the
    audio is usable. Runs in worker processes.
    """
    import numpy as np
    import soundfile as sf

    source, converted = job
    if not os.path.isfile(source):
        return None, "audio file does not exist", False
    if os.path.getsize(source) == 0:
        return None, "audio file is empty (0 bytes)", False
    try:
        info = sf.info(source)
    except Exception as error:  # soundfile raises several types for unreadable files
        return None, f"audio file is unreadable ({error})", False
    if info.frames == 0:
        return None, "audio file is empty (0 samples)", False
    try:  # a source cut short would be measured, converted and kept at its shorter length
        check_audio_complete(source)
    except TruncatedAudioError as error:
        return None, str(error), False
    convert = _needs_conversion(info)
    if convert and os.path.isfile(converted):  # finished by an earlier run (atomic)
        try:  # damaged since (outside our atomic writes): convert again
            return check_audio_complete(converted).frames / EXPECTED_SAMPLE_RATE, None, True
        except AudioError:
            pass
    try:
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as error:
        return None, f"audio file is unreadable ({error})", False
    if audio.shape[0] == 0:
        return None, "audio file is empty (0 samples)", False
    if not np.isfinite(audio).all():
        return None, "audio file contains NaN or Inf samples", False
    if not convert:
        return audio.shape[0] / rate, None, False
    import torch
    import torchaudio

    mono = torch.from_numpy(audio.mean(axis=1))
    if rate != EXPECTED_SAMPLE_RATE:
        mono = torchaudio.functional.resample(mono, rate, EXPECTED_SAMPLE_RATE)
    if mono.numel() == 0:
        return None, "audio file is empty after resampling to 16 kHz", False
    os.makedirs(os.path.dirname(converted), exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=os.path.dirname(converted), suffix=".partial.wav")
    os.close(handle)
    try:
        sf.write(partial, mono.numpy(), EXPECTED_SAMPLE_RATE, subtype="PCM_16")
        os.replace(partial, converted)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return mono.numel() / EXPECTED_SAMPLE_RATE, None, True


def _map_parallel(function, jobs: Sequence, workers: int, description: str, progress: bool):
    from tqdm import tqdm

    bar = dict(total=len(jobs), desc=description, unit="file", disable=not progress,
               dynamic_ncols=True)
    if workers <= 1 or len(jobs) < 64:
        _init_worker()
        return [function(job) for job in tqdm(jobs, **bar)]
    # spawn: safe with torch's threads; worker_pool: the workers end with the command
    with worker_pool(workers, initializer=_init_worker, start_method="spawn") as pool:
        chunk = max(1, min(64, len(jobs) // (workers * 8)))
        return list(tqdm(pool.map(function, jobs, chunksize=chunk), **bar))


def fingerprint(paths: Iterable[str | os.PathLike], **options) -> str:
    """Hash of input files (path, size, mtime) and options: a changed input -> redo."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for path in sorted(str(p) for p in paths):
        try:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def _stamp_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".prepared.json")


def is_prepared(manifest: Path, key: str) -> bool:
    """True when ``manifest`` was written by a run with the same inputs (``key``)."""
    stamp = _stamp_path(manifest)
    if not (manifest.is_file() and stamp.is_file()):
        return False
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded.get("key") == key and recorded.get("version") == STAMP_VERSION


def relative_to_root(path: str, data_root: Path) -> str:
    """``$data_root/...`` for files under the corpus root (so the manifest moves with
    the corpus), an absolute path for anything else (converted audio)."""
    resolved = os.path.abspath(path)
    root = os.path.abspath(data_root)
    if resolved.startswith(root + os.sep):
        return "$data_root/" + os.path.relpath(resolved, root).replace(os.sep, "/")
    return resolved


def write_split(
    split: str,
    utterances: Sequence[Utterance],
    problems: Sequence[Problem],
    manifest: Path,
    data_root: Path,
    key: str,
    skip_bad: bool = False,
    jobs: int | None = None,
    progress: bool = True,
) -> dict:
    """Validate and measure ``utterances``; write ``manifest`` (see module docstring).

    ``problems`` are the layout problems the corpus walker already found for this
    split; audio problems are added here. Raises :class:`PrepareError` (nothing
    written) when any exist and ``skip_bad`` is False. Returns a summary dict.
    """
    manifest = Path(manifest)
    folder = manifest.parent
    folder.mkdir(parents=True, exist_ok=True)
    audio_folder = folder / "audio" / split
    unique, duplicates = _split_duplicates(utterances)
    problems = list(problems) + [
        Problem(u.origin, f"duplicate utterance ID {u.id!r}") for u in duplicates
    ]
    workers = jobs or os.cpu_count() or 1
    jobs_list = [(u.audio, str(audio_folder / f"{u.id}.wav")) for u in unique]
    results = _map_parallel(inspect_audio, jobs_list, workers, f"audio {split}", progress)

    rows, bad = [], []
    for utterance, (_, target), (duration, problem, converted) in zip(unique, jobs_list, results):
        if problem is None and not utterance.text:
            problem = "transcript is empty after normalisation"
            where = utterance.origin
        else:
            where = utterance.audio
        if problem is not None:
            bad.append(Problem(where, problem))
            continue
        wav = target if converted else utterance.audio
        rows.append({
            "ID": utterance.id,
            "duration": f"{duration:.3f}",
            "wav": relative_to_root(wav, data_root),
            "spk_id": utterance.spk_id,
            "wrd": utterance.text,
        })
    problems += bad
    report = folder / "prepare_report.txt"
    if problems and not skip_bad:
        _append_report(report, split, problems)
        shown = "\n  ".join(str(p) for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise PrepareError(
            f"{len(problems)} bad item(s) in split {split!r} (full list: {report}):\n  "
            f"{shown}{more}\nFix them, or pass --skip_bad to leave them out."
        )
    if not rows:
        raise PrepareError(f"split {split!r}: no usable utterance left (see {report})")
    skipped = folder / f"skipped_{split}.tsv"
    if problems:
        with open(skipped, "w", encoding="utf-8") as handle:
            handle.write("path\treason\n")
            for problem in problems:
                handle.write(f"{problem.path}\t{problem.message}\n")
    elif skipped.exists():
        skipped.unlink()
    write_manifest(manifest, rows)
    seconds = sum(float(row["duration"]) for row in rows)
    summary = {"split": split, "utterances": len(rows), "hours": round(seconds / 3600, 4),
               "skipped": len(problems)}
    _stamp_path(manifest).write_text(
        json.dumps({"version": STAMP_VERSION, "key": key, **summary}, indent=1), encoding="utf-8"
    )
    write_validated_stamp(manifest, data_root)
    return summary


def _split_duplicates(utterances: Sequence[Utterance]) -> tuple[list[Utterance], list[Utterance]]:
    """(first occurrence of each ID, later occurrences)."""
    seen, unique, duplicates = set(), [], []
    for utterance in utterances:
        (duplicates if utterance.id in seen else unique).append(utterance)
        seen.add(utterance.id)
    return unique, duplicates


def _append_report(report: Path, split: str, problems: Sequence[Problem]) -> None:
    with open(report, "a", encoding="utf-8") as handle:
        handle.write(f"# split {split}: {len(problems)} bad item(s)\n")
        for problem in problems:
            handle.write(f"{problem}\n")


def read_text_lines(path: Path) -> tuple[list[tuple[int, str]], list[Problem]]:
    """Lines of a UTF-8 text file as ``(line_number, text)``; a line that is not valid
    UTF-8 becomes a :class:`Problem` instead of failing the whole file."""
    lines, problems = [], []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.append(Problem(f"{path}:{number}", f"line is not valid UTF-8 ({error.reason} "
                                        f"at byte {error.start})"))
                continue
            lines.append((number, text.rstrip("\r\n")))
    return lines, problems


def prepare_splits(
    corpus: str,
    splits: dict[str, tuple[list[Utterance], list[Problem], list[str]]],
    manifest_folder: Path,
    data_root: Path,
    options: dict,
    skip_bad: bool,
    jobs: int | None,
    progress: bool,
) -> dict[str, Path]:
    """Write one manifest per entry of ``splits`` (``name -> (utterances, problems,
    input files)``), reusing those whose inputs did not change. Checks every split
    before raising, so one report lists the bad items of all splits."""
    manifest_folder = Path(manifest_folder)
    manifest_folder.mkdir(parents=True, exist_ok=True)
    report = manifest_folder / "prepare_report.txt"
    if report.exists():
        report.unlink()
    written, errors = {}, []
    for name, (utterances, problems, inputs) in splits.items():
        manifest = manifest_folder / f"{name}.csv"
        key = fingerprint(inputs, corpus=corpus, split=name, skip_bad=skip_bad,
                          data_root=os.path.abspath(data_root), **options)
        if is_prepared(manifest, key):
            print(f"{corpus} {name}: reusing {manifest} (inputs unchanged)")
            written[name] = manifest
            continue
        try:
            summary = write_split(name, utterances, problems, manifest, data_root, key,
                                  skip_bad=skip_bad, jobs=jobs, progress=progress)
        except PrepareError as error:
            errors.append(str(error))
            continue
        skipped = f", {summary['skipped']} skipped" if summary["skipped"] else ""
        print(f"{corpus} {name}: {summary['utterances']} utterances, "
              f"{summary['hours']:.2f} h{skipped} -> {manifest}")
        written[name] = manifest
    if errors:
        raise PrepareError("\n".join(errors))
    return written


def read_tsv(path: Path, required: Sequence[str]) -> tuple[list[tuple[int, dict]], list[Problem]]:
    """Rows of a tab-separated file with a header line, as ``(line_number, row)``.

    No quoting (CommonVoice and VoxPopuli write raw text with quotes in it). A
    non-UTF-8 line, or a row whose field count differs from the header's, is a
    :class:`Problem`; a header that lacks a ``required`` column is one problem for the
    whole file.
    """
    lines, problems = read_text_lines(path)
    if not lines:
        return [], problems + [Problem(str(path), "file is empty (no header line)")]
    header_number, header_line = lines[0]
    header = header_line.split("\t")
    missing = [column for column in required if column not in header]
    if missing:
        return [], problems + [Problem(f"{path}:{header_number}", f"header {header} lacks column(s) "
                                       f"{missing}")]
    rows = []
    for number, line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            problems.append(Problem(f"{path}:{number}", f"malformed row: {len(fields)} tab-separated "
                                    f"field(s), the header has {len(header)}"))
            continue
        rows.append((number, dict(zip(header, fields))))
    return rows, problems


@dataclasses.dataclass(frozen=True)
class TsvLayout:
    """How the rows of a corpus's TSV files map to utterances (CommonVoice, VoxPopuli).

    ``key_column`` names the clip (``path`` / ``id``); ``audio_path`` and
    ``utterance_id`` derive the audio file and the ID from it; ``row_problem`` may
    reject a row (returns the reason) before its audio is looked at.
    """

    layout_hint: str  # shown when a TSV is missing: "the <corpus> layout ..."
    key_column: str
    text_column: str
    speaker_column: str
    audio_path: Callable[[str], Path]
    utterance_id: Callable[[str], str] = lambda key: key
    row_problem: Optional[Callable[[dict], Optional[str]]] = None


def scan_tsv(tsv: Path, layout: TsvLayout, language: str) -> tuple[list[Utterance], list[Problem], list[str]]:
    """Utterances, problems and input files of one TSV of ``layout``; transcripts
    normalised for ``language``."""
    if not tsv.is_file():
        return [], [Problem(str(tsv), f"{tsv.name} is missing; expected {layout.layout_hint}")], []
    rows, problems = read_tsv(tsv, required=(layout.key_column, layout.text_column))
    utterances, inputs = [], [str(tsv)]
    for number, row in rows:
        origin = f"{tsv}:{number}"
        key = row[layout.key_column].strip()
        reason = None
        if not key:
            reason = f"row has an empty {layout.key_column!r} field"
        elif layout.row_problem is not None:
            reason = layout.row_problem(row)
        if reason is None:
            audio = layout.audio_path(key)
            if not audio.is_file():
                reason = f"transcript row for {key} has no audio (expected {audio})"
        if reason is not None:
            problems.append(Problem(origin, reason))
            continue
        speaker = (row.get(layout.speaker_column) or "").strip() or "unknown"
        text = normalize_text(row[layout.text_column], language)
        utterances.append(Utterance(layout.utterance_id(key), str(audio), speaker, text, origin))
        inputs.append(str(audio))
    return utterances, problems, inputs
