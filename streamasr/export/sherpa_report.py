"""``streamasr check-sherpa`` from start to end (the pieces are in ``sherpa_check``):
per chunk size, export the cell for sherpa-onnx and compare its recogniser with our
engine, optionally its C++ server too; optionally a loopback load test of that server
on the first chunk size; one report (``sherpa_check.md`` / ``.json``)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from streamasr.export import sherpa_check
from streamasr.model import AsrModel
from streamasr.units import DEFAULT_STREAM_LEFT_CHUNKS


@dataclasses.dataclass(frozen=True)
class SherpaCheckOptions:
    """What ``run_check`` compares: each of ``chunk_ms`` with ``left_chunks`` and
    ``right_ms`` of look-ahead, on the first ``limit`` utterances (None: all); ``server``:
    the C++ server's transcripts too; ``load_streams``: concurrent real-time streams of
    each load level (none: no load test), ``load_seconds`` of audio each, on a server
    with ``work_threads``; a level keeps up while its p95 final-result latency stays
    below ``max_latency`` seconds; ``force``: export a model trained on another front
    end anyway."""

    chunk_ms: Sequence[float] = (640.0,)
    left_chunks: int = DEFAULT_STREAM_LEFT_CHUNKS
    right_ms: float = 0.0
    limit: Optional[int] = None
    server: bool = False
    load_streams: Sequence[int] = ()
    load_seconds: float = 20.0
    max_latency: float = 1.5
    work_threads: int = 2
    force: bool = False

    def __post_init__(self) -> None:
        for name in ("chunk_ms", "load_streams"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclasses.dataclass
class SherpaReport:
    """``run_check``'s result: ``text`` (Markdown: the comparison table, then the load
    table when a load test ran), ``comparisons`` (``compare_with_sherpa``'s dicts, with
    ``server`` when it ran) and ``load`` (``load_test``'s dicts)."""

    text: str
    comparisons: list[dict]
    load: list[dict]

    def write(self, folder: str | os.PathLike) -> Path:
        """``folder/sherpa_check.md`` (the text) and ``folder/sherpa_check.json``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sherpa_check.md").write_text(self.text, encoding="utf-8")
        (out / "sherpa_check.json").write_text(
            json.dumps({"comparisons": self.comparisons, "load": self.load}, indent=1) + "\n", encoding="utf-8")
        return out


def run_check(model: AsrModel, manifest: str | os.PathLike, options: SherpaCheckOptions = SherpaCheckOptions(),
              progress: Optional[Callable[[str], None]] = None) -> SherpaReport:
    """Everything behind ``streamasr check-sherpa`` on ``manifest`` (module docstring);
    a chunk size or look-ahead off the model's frame grid fails before any work.
    ``progress`` gets one line per load level as it finishes."""
    for chunk_ms in options.chunk_ms:
        model.geometry.frames_from_ms(chunk_ms)
    model.geometry.right_frames_from_ms(options.right_ms)
    utterances = sherpa_check.load_manifest(manifest, options.limit)
    results = []
    for chunk_ms in options.chunk_ms:
        result = sherpa_check.compare_with_sherpa(model, utterances, chunk_ms, options.left_chunks,
                                                  force=options.force, right_ms=options.right_ms)
        if options.server:
            result["server"] = sherpa_check.check_server(result["folder"], [u.wave.numpy() for u in utterances],
                                                         [row["sherpa"] for row in result["rows"]])
        results.append(result)
    text = sherpa_check.comparison_table(results)
    loads = []
    if options.load_streams:
        waves = [u.wave.numpy() for u in utterances]
        with sherpa_check.sherpa_server(results[0]["folder"], work_threads=options.work_threads, max_batch=64) as port:
            for streams in options.load_streams:
                loads.append(sherpa_check.load_test(port, waves, streams, options.load_seconds))
                if progress is not None:
                    progress(f"{streams} streams: p95 final latency {loads[-1]['final_latency_p95']:.2f} s")
        text += "\n" + sherpa_check.load_table(loads, options.chunk_ms[0], options.max_latency)
    return SherpaReport(text, results, loads)


__all__ = ["SherpaCheckOptions", "SherpaReport", "run_check"]
