"""The two ways a grid cell is decoded, and the latency model.

(a) masked simulation (whole utterances, chunk masks in the encoder) and (b) true
streaming (audio fed chunk by chunk through ``StreamingRecognizer``), greedy WER/CER of
both and the number of utterances whose hypotheses differ.

Latency model (one stream, real-time input): chunk ``i`` can start once the audio it
needs has arrived (the feature path says how much: ``ready_samples``) and chunk ``i-1``
is done; its tokens are emitted when its compute finishes. A token's latency is
emission time minus the time at which the audio of its encoder frame had been fed.
"""

from __future__ import annotations

import math
import statistics
from typing import Optional

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig
from speechbrain.utils.metric_stats import ErrorRateStats

from streamasr.dct import with_right_frames
from streamasr.decoding import Decoding
from streamasr.engine import EngineSpec, build_recognizer
from streamasr.evaluate.cells import CellResult, Utterance
from streamasr.evaluate.grid import GridCell
from streamasr.model import AsrModel


def _error_rates(ids, hyps: list[str], refs: list[str]) -> tuple[float, float]:
    wer, cer = ErrorRateStats(), ErrorRateStats(split_tokens=True)
    predicted = [h.split() for h in hyps]
    targets = [r.split() for r in refs]
    wer.append(ids, predicted, targets)
    cer.append(ids, predicted, targets)
    return wer.summarize("error_rate"), cer.summarize("error_rate")


def masked_hypotheses(model: AsrModel, utterances: list[Utterance], config: Optional[DynChunkTrainConfig],
                      batch_size: int = 1, decoding: "str | Decoding" = "greedy", beam: int = 4) -> list[list[int]]:
    """Masked simulation, ``batch_size`` utterances per encoder call. The default is 1:
    in SpeechBrain 1.1.2's Conformer the convolution module sees the padded frames of
    a batch (it masks them only after the convolution), so a padded utterance's last
    frames change; on the demo model, batches of 16 changed the hypothesis of ~5% of
    test utterances (always at their end) compared with decoding each alone."""
    hyps = []
    search = model.make_search(decoding, beam)
    for begin in range(0, len(utterances), batch_size):
        batch = utterances[begin : begin + batch_size]
        hyps.extend(h.tokens for h in model.transcribe_masked([u.wav for u in batch], config, search))
    return hyps


def streaming_pass(model: AsrModel, utterances: list[Utterance], config: DynChunkTrainConfig,
                   engine: EngineSpec) -> dict:
    """True streaming over every utterance with the recogniser ``engine`` describes
    (feature path ``exact`` or ``stock``, backend, decoding; ``streamasr.engine``) on the
    cell ``config``; returns hypotheses and timing statistics."""
    recognizer = build_recognizer(model, engine, config)
    geometry = model.geometry
    rate = geometry.sample_rate
    hyps, chunk_times, first, final, every = [], [], [], [], []
    compute_total, audio_total = 0.0, 0.0
    for utt in utterances:
        state, outputs = recognizer.transcribe(utt.wav)
        hyps.append(state.result.tokens)
        samples = utt.wav.shape[-1]
        audio_total += samples / rate
        clock = 0.0
        latencies = []
        for output in outputs:
            ready = recognizer.path.ready_samples(output.chunk_index, output.end_frame, output.final,
                                                  config.chunk_size, samples)
            clock = max(clock, ready / rate) + output.compute_seconds
            chunk_times.append(output.compute_seconds)
            compute_total += output.compute_seconds
            for event in output.tokens:
                fed = min(samples, event.start_ms * rate / 1000 + geometry.frame_samples) / rate
                latencies.append(clock - fed)
        if latencies:
            first.append(latencies[0])
            final.append(latencies[-1])
            every.extend(latencies)
    chunk_times.sort()

    def ms(values):
        return 1000 * statistics.fmean(values) if values else None

    return {
        "hyps": hyps,
        "chunk_compute_ms_median": 1000 * statistics.median(chunk_times),
        "chunk_compute_ms_p95": 1000 * chunk_times[min(len(chunk_times) - 1, math.ceil(0.95 * len(chunk_times)) - 1)],
        "real_time_factor": compute_total / audio_total,
        "first_token_latency_ms": ms(first),
        "final_token_latency_ms": ms(final),
        "mean_token_latency_ms": ms(every),
    }


def evaluate_cell(model: AsrModel, utterances: list[Utterance], cell: GridCell, engine: EngineSpec,
                  streaming: bool) -> CellResult:
    """One grid cell (``cell.chunk`` None = full context, masked only; ``cell.right``
    look-ahead frames, ``streamasr.dct``), searched as ``engine.decoding`` says, with
    ``engine.threads`` torch threads; ``streaming``: also true chunk-by-chunk streaming."""
    chunk, left, right, threads = cell.chunk, cell.left, cell.right, engine.threads or 1
    decoding = engine.decoding
    torch.set_num_threads(threads)
    ids = [u.utt_id for u in utterances]
    refs = [u.words for u in utterances]
    config = None if chunk is None else with_right_frames(DynChunkTrainConfig(chunk, left), right)
    masked_text = [model.decode_tokens(h) for h in masked_hypotheses(model, utterances, config, decoding=decoding)]
    wer, cer = _error_rates(ids, masked_text, refs)
    cell = CellResult(
        chunk_frames=chunk,
        chunk_ms=None if chunk is None else model.geometry.chunk_ms(chunk),
        left_chunks=left,
        utterances=len(utterances),
        masked_wer=wer,
        masked_cer=cer,
        threads=threads,
        right_frames=right,
        right_ms=model.geometry.chunk_ms(right),
        left_ms=cell.left_ms,
    )
    if chunk is not None:
        frame_ms, lookahead_ms = model.geometry.frame_ms, model.geometry.lookahead_ms
        cell.algorithmic_latency_ms = (chunk + right) * frame_ms + lookahead_ms  # worst case
        cell.mean_latency_ms = (chunk / 2 + right) * frame_ms + lookahead_ms
    if chunk is not None and streaming:
        stats = streaming_pass(model, utterances, config, engine)
        stream_text = [model.decode_tokens(h) for h in stats.pop("hyps")]
        cell.streaming_wer, cell.streaming_cer = _error_rates(ids, stream_text, refs)
        cell.differing_hypotheses = sum(a != b for a, b in zip(masked_text, stream_text))
        for key, value in stats.items():
            setattr(cell, key, value)
    return cell
