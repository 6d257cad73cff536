"""``streamasr check-streaming``: does any encoder output depend on input past its
chunk's end (plus the look-ahead it is allowed, ``--right-frames``)?

Probes an encoder with ``speechbrain.utils.streaming.infer_dependency_matrix``
(perturb one input frame at a time, see which outputs move), draws the matrix to a PNG
with the chunk boundaries, and lists every (output frame, input frame) pair where the
input lies beyond the output's chunk end + R frames.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional

import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig
from speechbrain.utils.streaming import infer_dependency_matrix

from streamasr.dct import encode_masked, with_right_frames
from streamasr.errors import ConfigError
from streamasr.keys import KEYS
from streamasr.model import load_model


@dataclasses.dataclass
class DependencyReport:
    frames: int
    chunk_size: int
    left_chunks: Optional[int]
    leaks: list[tuple[int, int]]  # (output frame, input frame past its chunk end + right_frames)
    plot: Optional[Path] = None
    right_frames: int = 0

    @property
    def ok(self) -> bool:
        return not self.leaks

    def describe(self, limit: int = 12) -> str:
        left = "unlimited" if self.left_chunks is None else self.left_chunks
        where = (f"input past its chunk's end + {self.right_frames} look-ahead frames" if self.right_frames
                 else "a later chunk")
        if self.ok:
            return (
                f"OK: no output frame depends on {where} "
                f"({self.frames} frames, chunk {self.chunk_size}, left {left}, right {self.right_frames})"
            )
        shown = ", ".join(f"out {o} <- in {i}" for o, i in self.leaks[:limit])
        more = f" and {len(self.leaks) - limit} more" if len(self.leaks) > limit else ""
        cross = f"reach {where}" if self.right_frames else "cross into a later chunk"
        return f"LEAK: {len(self.leaks)} output/input frame pairs {cross}: {shown}{more}"


def dependency_report(
    model: Callable[[torch.Tensor], torch.Tensor],
    input_dim: int,
    frames: int,
    chunk_size: int,
    left_chunks: Optional[int] = None,
    plot: Optional[str | Path] = None,
    right_frames: int = 0,
) -> DependencyReport:
    """Probe ``model`` (``[1, frames, input_dim]`` -> ``[1, frames, D]``, eval mode): an
    output frame may depend on input up to its chunk's end + ``right_frames``."""
    torch.manual_seed(0)
    deps = infer_dependency_matrix(model, seq_shape=[1, frames, input_dim])  # [in, out]
    visible_end = (torch.arange(deps.shape[1]) // chunk_size + 1) * chunk_size + right_frames
    leaks = (deps & (torch.arange(deps.shape[0])[:, None] >= visible_end[None, :])).nonzero().tolist()
    report = DependencyReport(frames, chunk_size, left_chunks, sorted((o, i) for i, o in leaks),
                              right_frames=right_frames)
    if plot is not None:
        report.plot = Path(plot)
        _plot(deps, chunk_size, report)
    return report


def _plot(deps: torch.Tensor, chunk_size: int, report: DependencyReport) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.pcolormesh(deps.T.float(), cmap=ListedColormap(["white", "tab:red"]), edgecolors="lightgray", linewidth=0.1)
    for boundary in range(chunk_size, deps.shape[0], chunk_size):
        ax.axvline(boundary, color="black", linewidth=0.8)
        ax.axhline(boundary, color="black", linewidth=0.8)
    for out_frame, in_frame in report.leaks:
        ax.add_patch(plt.Rectangle((in_frame, out_frame), 1, 1, fill=False, edgecolor="blue", linewidth=1.2))
    ax.set_xlabel("input frame (encoder input: one per CNN output frame)")
    ax.set_ylabel("output frame")
    ax.set_title(("OK" if report.ok else f"LEAK ({len(report.leaks)} pairs, blue)") +
                 f": chunk {report.chunk_size}, left {report.left_chunks if report.left_chunks is not None else 'unlimited'}"
                 + (f", right {report.right_frames}" if report.right_frames else ""))
    ax.invert_yaxis()
    ax.set_aspect("equal")
    fig.tight_layout()
    report.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(report.plot, dpi=110)
    plt.close(fig)


def encoder_from(path: str | Path) -> torch.nn.Module:
    """The Conformer encoder of a YAML (random weights) or a model folder."""
    path = Path(path)
    if path.is_dir():
        return load_model(path).encoder
    if not path.is_file():
        raise ConfigError(f"{path} is neither a YAML file nor a model folder")
    text = path.read_text(encoding="utf-8")
    overrides = {"data_folder": "unused"} if "data_folder: !PLACEHOLDER" in text else {}
    hparams = load_hyperpyyaml(text, overrides)
    if KEYS.encoder not in hparams:
        raise ConfigError(f"{path} defines no '{KEYS.encoder}' encoder")
    return hparams[KEYS.encoder].eval()


def check_encoder(
    transformer: torch.nn.Module, chunk_size: int, left_chunks: Optional[int], chunks: int = 4,
    plot: Optional[str | Path] = None, right_frames: int = 0,
) -> DependencyReport:
    """The masked encoder pass of (chunk, left, right) (``streamasr.dct.encode_masked``)
    probed for dependencies past each chunk's end + ``right_frames``."""
    config = with_right_frames(DynChunkTrainConfig(chunk_size, left_chunks), right_frames)
    input_dim = transformer.custom_src_module.layers[0].w.in_features

    def model(x: torch.Tensor) -> torch.Tensor:
        return encode_masked(transformer, x, dynchunktrain_config=config)

    return dependency_report(model, input_dim, chunks * chunk_size + right_frames, chunk_size, left_chunks, plot,
                             right_frames)
