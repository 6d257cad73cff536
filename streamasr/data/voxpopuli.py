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

from streamasr.data.normalize import require_language
from streamasr.data.prepare import Problem, TsvLayout, prepare_splits, scan_tsv

SPLIT_FILES = {"train": "asr_train.tsv", "valid": "asr_dev.tsv", "test": "asr_test.tsv"}


def _clip_path(language_folder: Path, utterance_id: str) -> Path:
    return language_folder / utterance_id[:4] / f"{utterance_id}.ogg"


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
    layout = TsvLayout(
        layout_hint="the VoxPopuli layout transcribed_data/<lang>/asr_{train,dev,test}.tsv + <year>/<id>.ogg",
        key_column="id", text_column="normalized_text", speaker_column="speaker_id",
        audio_path=lambda utterance_id: _clip_path(language_folder, utterance_id),
    )
    scanned = {name: scan_tsv(language_folder / tsv, layout, language) for name, tsv in splits.items()}
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
