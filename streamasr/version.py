"""The toolkit's version and where an export came from, in portable terms.

Exports record their origin (``provenance``) as the source folder's name, the streamasr
version and the git commit of the code that wrote them, never an absolute path: a
published model must not carry its author's file-system layout, and two exports of the
same weights from two checkouts must be the same bytes.
"""

from __future__ import annotations

import functools
import os
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def version() -> str:
    """The installed distribution's version (``setup.cfg``), or ``unknown``."""
    try:
        return metadata.version("streamasr")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the streamasr checkout this code runs from (``-dirty`` when it has
    uncommitted changes), or None outside a git work tree (an installed wheel)."""
    checkout = PACKAGE_ROOT.parent
    if not (checkout / ".git").exists():
        return None
    try:
        described = subprocess.run(
            ["git", "-C", str(checkout), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return described.stdout.strip() or None


def describe() -> str:
    """``streamasr 0.1.0 (git <commit>)``: what ``streamasr --version`` prints."""
    commit = git_commit()
    return f"streamasr {version()}" + (f" (git {commit})" if commit else "")


def provenance(source: str | os.PathLike | None) -> dict:
    """Where an export came from: the source folder's name (not its path), the streamasr
    version and the git commit; written into export.json, ONNX metadata and model cards."""
    return {
        "exported_by": "streamasr",
        "source": Path(source).name if source else "",
        "streamasr_version": version(),
        "git_commit": git_commit() or "",
    }
