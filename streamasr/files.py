"""Writing folders so that a failure never leaves half of one, and so that a write can
never destroy what it reads.

Every command that writes a whole folder (``export``, ``export-onnx`` for both targets,
the ONNX caches) goes through ``staged_folder``: the folder is built beside its
destination and moved into place once complete. Before anything is written,
``check_destination`` refuses a destination that is, contains or (when it already holds
something that is not an earlier export) lies inside a folder the command reads, and
``--overwrite`` replaces only a folder that an earlier export of ours wrote: one whose
``export.json`` says so (``EXPORT_MARKER``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from streamasr.errors import ExportError

EXPORT_MANIFEST = "export.json"
# The key every export of ours writes into its export.json; folders written before the
# key existed are recognised by what their export.json held then (``_LEGACY_KEYS``).
EXPORT_MARKER = "exported_by"
EXPORTED_BY = "streamasr"
_LEGACY_KEYS = {"format": ("streamasr-onnx", "sherpa-onnx-nemo-transducer"), "training_folder": None}


def is_streamasr_export(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds an export of ours (its ``export.json`` says so)."""
    manifest = Path(folder) / EXPORT_MANIFEST
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict):
        return False
    if meta.get(EXPORT_MARKER) == EXPORTED_BY:
        return True
    for key, values in _LEGACY_KEYS.items():
        if key in meta and (values is None or meta[key] in values):
            return True
    return False


def _describe(folder: Path, limit: int = 5) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "unreadable"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_destination(destination: str | os.PathLike, sources: Iterable[str | os.PathLike] = (),
                      overwrite: bool = False) -> None:
    """Raise ``ExportError`` unless writing a folder at ``destination`` is safe.

    sources: the folders (or files) the command reads. The destination may not be one
    of them or contain one (replacing it would delete what is being exported); it may
    lie inside one only as a new folder or an earlier export (``results/demo/model``
    inside its training folder, the ONNX cache inside a model folder).
    overwrite: an existing destination is replaced only with it, and only when it is
    an earlier export of ours (or an empty folder); anything else is refused, naming
    what is there.
    """
    destination = Path(destination)
    target = destination.resolve()
    for source in sources:
        source_path = Path(source).resolve()
        if _inside(source_path, target):
            what = "is" if source_path == target else "contains"
            raise ExportError(f"{destination} {what} {Path(source)}, which this export reads: choose an output "
                              "folder outside it (nothing was written)")
    if not destination.exists() and not destination.is_symlink():
        for parent in destination.parents:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    raise ExportError(f"cannot create {destination}: {parent} is a file, not a folder")
                break
        return
    if not destination.is_dir() or destination.is_symlink():
        kind = "a symbolic link" if destination.is_symlink() else "a file"
        raise ExportError(f"{destination} is {kind}, not a folder: choose another output folder (nothing was "
                          "written)")
    empty = not any(destination.iterdir())
    if not overwrite and not empty:
        raise ExportError(f"{destination} already exists (use --overwrite to replace it)")
    if not empty and not is_streamasr_export(destination):
        raise ExportError(f"{destination} holds {_describe(destination)}, not an earlier streamasr export (no "
                          f"{EXPORT_MANIFEST} of ours): --overwrite replaces only an export; choose a new folder "
                          "(nothing was written)")


@contextlib.contextmanager
def staged_folder(destination: str | os.PathLike, sources: Iterable[str | os.PathLike] = (),
                  overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``destination`` to build into; when the block ends
    without an error it replaces ``destination``, otherwise it is deleted and
    ``destination`` is left as it was. ``check_destination`` runs first (and again
    just before the replacement, in case the folder changed meanwhile)."""
    destination = Path(destination)
    sources = list(sources)
    check_destination(destination, sources, overwrite)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
        check_destination(destination, sources, overwrite)
        if destination.exists():
            # move the old folder aside first, so that a failed move leaves it intact
            retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
            os.replace(destination, retired / destination.name)
            os.replace(staging, destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
