"""Checkpoints: one home for saving them safely, ranking them and averaging them.

* ``AtomicCheckpointer``: SpeechBrain's ``Checkpointer`` whose checkpoints only exist
  once completely written (training, resumption).
* ``ranked_checkpoints``: the checkpoints of a ``save/`` folder, best first (lowest
  valid WER; newest first when none is scored). Loading a model, exporting it and
  testing with the N best all use this order.
* ``averaged_model_state``: the ``model`` weights of one checkpoint, or the average of
  several (SpeechBrain's ``average_checkpoints``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

import torch
from speechbrain.utils.checkpoints import Checkpoint, Checkpointer, average_checkpoints

from streamasr.errors import ModelLoadError

logger = logging.getLogger(__name__)


class AtomicCheckpointer(Checkpointer):
    """SpeechBrain's Checkpointer, but a checkpoint only exists once it is complete.

    Stock SpeechBrain writes ``CKPT.yaml`` (the marker that makes a folder a checkpoint)
    *before* the parameter files, so a kill during saving leaves a half-written folder
    that recovery would pick as the newest checkpoint. Here the marker is written under
    a temporary name and renamed into place after every file is saved; leftovers of an
    interrupted save are ignored (and removed at the next start).
    """

    _PARTIAL = ".partial"

    def _save_checkpoint_metafile(self, fpath, meta_to_include={}, end_of_epoch=True):
        self._pending_meta = Path(str(fpath) + self._PARTIAL)
        self._final_meta = Path(fpath)
        return super()._save_checkpoint_metafile(self._pending_meta, meta_to_include, end_of_epoch)

    def save_checkpoint(self, meta: dict = {}, end_of_epoch: bool = True, name: Optional[str] = None,
                        verbosity: int = logging.INFO) -> Checkpoint:
        self._pending_meta = None
        checkpoint = super().save_checkpoint(meta, end_of_epoch, name, verbosity)
        if self._pending_meta is not None:  # main process only
            with open(self._pending_meta, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(self._pending_meta, self._final_meta)
        return checkpoint

    def remove_partial_checkpoints(self) -> list[Path]:
        """Delete folders left by an interrupted save; returns what was removed."""
        removed = []
        if not self.checkpoints_dir.is_dir():
            return removed
        for path in self.checkpoints_dir.iterdir():
            if path.is_dir() and path.name.startswith("CKPT") and not (path / "CKPT.yaml").exists():
                shutil.rmtree(path)
                removed.append(path)
        if removed:
            logger.warning("removed incomplete checkpoint folder(s): %s", [str(p) for p in removed])
        return removed


def ranked_checkpoints(save_folder: str | os.PathLike, recoverables: dict) -> list[Checkpoint]:
    """The checkpoints in ``save_folder``, best first: those with a valid WER by
    increasing WER, else (none scored) newest first. Empty when there is none."""
    checkpointer = Checkpointer(Path(save_folder), recoverables=recoverables)
    checkpoints = checkpointer.list_checkpoints()
    scored = [c for c in checkpoints if "WER" in c.meta]
    if scored:
        return sorted(scored, key=lambda c: c.meta["WER"])
    return sorted(checkpoints, key=lambda c: c.meta["unixtime"], reverse=True)


def averaged_model_state(checkpoints: Sequence[Checkpoint]) -> dict:
    """``model.ckpt`` of one checkpoint, or the parameter average of several."""
    for checkpoint in checkpoints:
        if "model" not in checkpoint.paramfiles:
            raise ModelLoadError(f"checkpoint {checkpoint.path} has no model.ckpt")
    if len(checkpoints) == 1:
        return torch.load(checkpoints[0].paramfiles["model"], map_location="cpu")
    return average_checkpoints(list(checkpoints), "model",
                               parameter_loader=lambda path, **_: torch.load(path, map_location="cpu"))


def digest_state(digest, state: dict) -> None:
    """Feed a ``state_dict``'s names and values (sorted by name) into a ``hashlib``
    digest: the one way weights are fingerprinted (exports, the ONNX cache)."""
    for name, value in sorted(state.items()):
        digest.update(name.encode())
        if isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        else:
            digest.update(repr(value).encode())


def weights_fingerprint(state: dict) -> str:
    """A short hash of a ``state_dict``'s names and values: names the exported weights
    without naming the machine they came from."""
    digest = hashlib.sha256()
    digest_state(digest, state)
    return digest.hexdigest()[:16]
