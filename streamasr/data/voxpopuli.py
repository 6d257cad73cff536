"""VoxPopuli transcribed speech (``python -m voxpopuli.get_asr_data``) -> manifests.

    <data_folder>/transcribed_data/<lang>/asr_train.tsv, asr_dev.tsv, asr_test.tsv
        (tab-separated with a header: id, raw_text, normalized_text, speaker_id, ...)
    <data_folder>/transcribed_data/<lang>/<year>/<id>.ogg   (year = first 4 chars of id)

The ``normalized_text`` column (VoxPopuli's own normalisation: lower case, no
punctuation) is used, then passed through our normaliser so that every recipe writes
the same alphabet (upper case, apostrophes kept). 16 kHz mono ogg clips are read in
place. ``asr_dev.tsv`` becomes ``valid.csv``. A clip that no TSV of the language
mentions is reported as audio without a transcript.
"""

from __future__ import annotations

from pathlib import Path

from streamasr.data.normalize import normalize_text, require_language
from streamasr.data.prepare import Problem, Utterance, prepare_splits, read_tsv

SPLIT_FILES = {"train": "asr_train.tsv", "valid": "asr_dev.tsv", "test": "asr_test.tsv"}


def _clip_path(language_folder: Path, utterance_id: str) -> Path:
    return language_folder / utterance_id[:4] / f"{utterance_id}.ogg"


def scan_tsv(language_folder: Path, tsv_name: str, language: str):
    """Utterances, problems and input files of one VoxPopuli TSV."""
    tsv = language_folder / tsv_name
    if not tsv.is_file():
        return [], [Problem(str(tsv), f"{tsv_name} is missing; expected the VoxPopuli layout "
                            "transcribed_data/<lang>/asr_{train,dev,test}.tsv + <year>/<id>.ogg")], []
    rows, problems = read_tsv(tsv, required=("id", "normalized_text"))
    utterances, inputs = [], [str(tsv)]
    for number, row in rows:
        origin = f"{tsv}:{number}"
        utterance_id = row["id"].strip()
        if not utterance_id:
            problems.append(Problem(origin, "row has an empty 'id' field"))
            continue
        audio = _clip_path(language_folder, utterance_id)
        if not audio.is_file():
            problems.append(Problem(origin, f"transcript row for {utterance_id} has no audio "
                                    f"(expected {audio})"))
            continue
        speaker = (row.get("speaker_id") or "").strip() or "unknown"
        text = normalize_text(row["normalized_text"], language)
        utterances.append(Utterance(utterance_id, str(audio), speaker, text, origin))
        inputs.append(str(audio))
    return utterances, problems, inputs


def prepare_voxpopuli(
    data_folder: str | Path,
    manifest_folder: str | Path,
    language: str,
    splits: dict[str, str] | None = None,
    skip_bad: bool = False,
    jobs: int | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Write ``train.csv``, ``valid.csv`` and ``test.csv`` (or the names of ``splits``:
    ``{manifest name: tsv file}``) into ``manifest_folder``; returns ``{name: path}``."""
    require_language(language, "VoxPopuli")
    language_folder = Path(data_folder) / "transcribed_data" / language
    splits = splits or SPLIT_FILES
    scanned = {name: scan_tsv(language_folder, tsv, language) for name, tsv in splits.items()}
    # Clips that no TSV of this language mentions: audio without a transcript. Only
    # meaningful when all three TSVs exist (get_asr_data writes the clips of all).
    mentioned = {u.audio for utterances, _, _ in scanned.values() for u in utterances}
    if all((language_folder / tsv).is_file() for tsv in SPLIT_FILES.values()):
        clips = sorted(language_folder.glob("*/*.ogg"))
        _, problems, inputs = next(iter(scanned.values()))
        inputs.extend(str(clip) for clip in clips)  # a new orphan changes the fingerprint
        problems.extend(Problem(str(clip), "audio file has no row in any asr_*.tsv")
                        for clip in clips if str(clip) not in mentioned)
    return prepare_splits("VoxPopuli", scanned, Path(manifest_folder), Path(data_folder),
                          options={"language": language, "splits": splits}, skip_bad=skip_bad,
                          jobs=jobs, progress=progress)
