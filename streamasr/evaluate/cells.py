"""What the evaluation measures: one ``CellResult`` per grid cell, and the test
utterances it runs on."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import torch
from speechbrain.dataio.dataio import read_audio

from streamasr.data.audio import check_audio_complete
from streamasr.data.manifest import data_root_of, read_manifest, resolve_path, validate_manifest
from streamasr.units import left_context_label


@dataclasses.dataclass
class CellResult:
    """One grid cell. ``chunk_frames`` None = full context (masked only).

    Latencies of the streaming model (algorithmic, i.e. without compute): worst case
    ``(C + R) x frame + front-end look-ahead`` (a chunk's first frame waits for the
    chunk's end and its look-ahead), mean ``(C / 2 + R) x frame + front-end
    look-ahead`` (averaged over a chunk's frames)."""

    chunk_frames: Optional[int]
    chunk_ms: Optional[float]
    left_chunks: Optional[int]  # None = unlimited
    utterances: int
    masked_wer: float
    masked_cer: float
    streaming_wer: Optional[float] = None
    streaming_cer: Optional[float] = None
    differing_hypotheses: Optional[int] = None
    algorithmic_latency_ms: Optional[float] = None
    chunk_compute_ms_median: Optional[float] = None
    chunk_compute_ms_p95: Optional[float] = None
    real_time_factor: Optional[float] = None
    first_token_latency_ms: Optional[float] = None
    final_token_latency_ms: Optional[float] = None
    mean_token_latency_ms: Optional[float] = None
    threads: int = 1
    right_frames: int = 0  # look-ahead (streamasr.dct)
    right_ms: float = 0.0
    left_ms: Optional[float] = None  # the left context asked for as a duration (--left-ms)
    mean_latency_ms: Optional[float] = None

    @property
    def left_label(self) -> str:
        if self.chunk_frames is None:
            return "full"
        if self.left_ms is not None:
            return f"{self.left_ms:g} ms"
        return left_context_label(self.left_chunks)

    @property
    def row_label(self) -> str:
        """Left context, and the look-ahead where the grid has one."""
        return self.left_label + (f", +{self.right_ms:g} ms" if self.right_frames else "")


@dataclasses.dataclass
class Utterance:
    utt_id: str
    words: str
    wav: torch.Tensor  # [samples] 16 kHz


def load_utterances(manifest: str | os.PathLike, data_root: Optional[str], limit: Optional[int]) -> list[Utterance]:
    """Read and validate a test manifest (missing/bad audio is an error before work).

    data_root: the value of ``$data_root``, by default the manifest's folder. Each file
    is checked for truncation again as it is read (cheap: the header), because the
    manifest's validation stamp does not notice files damaged after it was written, and
    a truncated file would be scored against its whole transcript.
    """
    data_root = data_root_of(manifest, data_root)
    validate_manifest(manifest, data_root=data_root)
    rows = read_manifest(manifest)
    rows.sort(key=lambda row: float(row["duration"]))
    if limit:
        rows = rows[:limit]
    utterances = []
    for row in rows:
        file = resolve_path(row["wav"], data_root)
        check_audio_complete(file)
        utterances.append(Utterance(row["ID"], row["wrd"], read_audio(file).float()))
    return utterances
