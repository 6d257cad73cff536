"""Writing folders so that a failure never leaves half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def staged_folder(destination: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``destination`` to build into; when the block ends
    without an error it replaces ``destination`` (an existing one is removed first),
    otherwise it is deleted and ``destination`` is left as it was."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
