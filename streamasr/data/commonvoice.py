"""Mozilla Common Voice (any release) in its official layout -> SpeechBrain manifests.

    <data_folder>/clips/*.mp3
    <data_folder>/train.tsv, dev.tsv, test.tsv
        (tab-separated with a header; the columns used are ``path``, ``sentence`` and,
        when present, ``client_id`` (speaker) and ``locale``)

mp3 clips (48 kHz in recent releases) are decoded once, resampled to 16 kHz mono and
stored as WAV beside the manifests (``<manifest_folder>/audio/<split>/``), so training
never decodes mp3. Transcripts go through the language-aware normaliser (en, fr, it).
``dev.tsv`` becomes ``valid.csv``.
"""

from __future__ import annotations

from pathlib import Path

from streamasr.data.normalize import require_language
from streamasr.data.prepare import TsvLayout, prepare_splits, scan_tsv

SPLIT_FILES = {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"}


def tsv_layout(data_folder: Path, language: str) -> TsvLayout:
    """CommonVoice rows: clip ``path`` under ``clips/``, ``sentence``, ``client_id``;
    rows whose ``locale`` is another language are rejected."""

    def other_locale(row: dict) -> str | None:
        locale = (row.get("locale") or "").strip()
        if locale and locale.split("-")[0] != language:
            return f"row locale {locale!r} is not the language being prepared ({language!r})"
        return None

    return TsvLayout(
        layout_hint="the CommonVoice layout clips/*.mp3 + train.tsv, dev.tsv, test.tsv",
        key_column="path", text_column="sentence", speaker_column="client_id",
        audio_path=lambda clip: Path(data_folder) / "clips" / clip,
        utterance_id=lambda clip: Path(clip).stem,
        row_problem=other_locale,
    )


def prepare_commonvoice(
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
    require_language(language, "CommonVoice")
    splits = splits or SPLIT_FILES
    layout = tsv_layout(Path(data_folder), language)
    scanned = {name: scan_tsv(Path(data_folder) / tsv, layout, language) for name, tsv in splits.items()}
    return prepare_splits("CommonVoice", scanned, Path(manifest_folder), Path(data_folder),
                          options={"language": language, "splits": splits}, skip_bad=skip_bad,
                          jobs=jobs, progress=progress)
