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

from streamasr.data.normalize import normalize_text, require_language
from streamasr.data.prepare import Problem, Utterance, prepare_splits, read_tsv

SPLIT_FILES = {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"}


def scan_tsv(data_folder: Path, tsv_name: str, language: str):
    """Utterances, problems and input files of one CommonVoice TSV."""
    tsv = Path(data_folder) / tsv_name
    if not tsv.is_file():
        return [], [Problem(str(tsv), f"{tsv_name} is missing; expected the CommonVoice layout "
                            "clips/*.mp3 + train.tsv, dev.tsv, test.tsv")], []
    rows, problems = read_tsv(tsv, required=("path", "sentence"))
    utterances, inputs = [], [str(tsv)]
    for number, row in rows:
        origin = f"{tsv}:{number}"
        clip = row["path"].strip()
        locale = (row.get("locale") or "").strip()
        if not clip:
            problems.append(Problem(origin, "row has an empty 'path' field"))
            continue
        if locale and locale.split("-")[0] != language:
            problems.append(Problem(origin, f"row locale {locale!r} is not the language "
                                    f"being prepared ({language!r})"))
            continue
        audio = Path(data_folder) / "clips" / clip
        if not audio.is_file():
            problems.append(Problem(origin, f"transcript row for {clip} has no audio (expected {audio})"))
            continue
        text = normalize_text(row["sentence"], language)
        speaker = (row.get("client_id") or "").strip() or "unknown"
        utterance_id = Path(clip).stem
        utterances.append(Utterance(utterance_id, str(audio), speaker, text, origin))
        inputs.append(str(audio))
    return utterances, problems, inputs


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
    scanned = {name: scan_tsv(Path(data_folder), tsv, language) for name, tsv in splits.items()}
    return prepare_splits("CommonVoice", scanned, Path(manifest_folder), Path(data_folder),
                          options={"language": language, "splits": splits}, skip_bad=skip_bad,
                          jobs=jobs, progress=progress)
