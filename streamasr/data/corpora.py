"""Registry of the real-corpus preparers, for the CLI and for ``train.py``.

``train.py`` calls :func:`prepare` (on the main process only, others wait) when the
YAML names a corpus under ``prepare_corpus``; the recipe override files in
``recipes/<Dataset>/`` set it together with the manifest paths.
"""

from __future__ import annotations

from pathlib import Path

from streamasr.data.commonvoice import prepare_commonvoice
from streamasr.data.librispeech import prepare_librispeech
from streamasr.data.voxpopuli import prepare_voxpopuli
from streamasr.errors import ConfigError, PrepareError


def _preparers() -> dict:
    return {"librispeech": prepare_librispeech, "commonvoice": prepare_commonvoice,
            "voxpopuli": prepare_voxpopuli}


CORPORA = ("librispeech", "commonvoice", "voxpopuli")


def prepare(corpus: str, data_folder: str | Path, manifest_folder: str | Path, **options) -> dict[str, Path]:
    """Run the preparer of ``corpus`` (one of :data:`CORPORA`); returns the manifests."""
    preparers = _preparers()
    if corpus not in preparers:
        raise ConfigError(f"unknown corpus {corpus!r}; expected one of {', '.join(CORPORA)}")
    if not Path(data_folder).is_dir():
        raise PrepareError(f"{corpus}: data folder {data_folder} does not exist")
    return preparers[corpus](data_folder, manifest_folder, **options)
