"""The streaming engine: audio in, tokens with times and confidences out, all state
explicit: a ``StreamState`` carries a lock-step batch of streams (audio, positions,
model contexts) and one ``StreamResult`` per stream (its tokens, text, n-best and
endpoint segments; ``state.result`` for a batch of one).

Per chunk: the feature path (``streamasr.frontend.paths``: exact windows by default, or
stock SpeechBrain's wrapper) gives encoder inputs, the encoder backend
(``streamasr.streaming.backends``: the fixed-shape cache-aware step by default) runs
with its carried state, the greedy search with its carried prediction-network state,
and the SentencePiece pieces are appended to the text.

Two ways to drive it, with the same results:

* a batch of streams that start and advance together (``init_state(batch)``,
  ``accept_audio``, ``finalize``, ``transcribe``);
* streams that come and go at their own pace, as sherpa-onnx drives its recognizer
  (``create_stream``, ``accept_waveform``, ``input_finished``, ``is_ready``,
  ``decode_streams``): one batched model call serves every ready stream, whatever its
  position (fixed-shape backend only).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.dct import right_frames
from streamasr.decoding import Decoding, Hypothesis, as_decoding
from streamasr.errors import ConfigError, StreamStateError
from streamasr.frontend import FEATURE_PATHS, FeaturePath, feature_path
from streamasr.model import AsrModel
from streamasr.streaming.backends import EncoderBackend, default_backend
from streamasr.streaming.endpoint import Endpointing

FRONTENDS = FEATURE_PATHS  # the names `--frontend` accepts


@dataclasses.dataclass
class TokenEvent:
    """One emitted token: id, text piece, encoder frame (global), start time and posterior."""

    token_id: int
    piece: str
    frame: int
    start_ms: float
    confidence: float


@dataclasses.dataclass
class ChunkOutput:
    """What one processed chunk produced for one stream (a lock-step batch of B streams
    gives B of them per chunk, in row order: ``row``)."""

    chunk_index: int
    start_frame: int
    end_frame: int
    tokens: list[TokenEvent]  # the stream's new tokens of this chunk
    text: str  # their text
    compute_seconds: float  # wall time of front end + encoder + search, a batched call's shared among its streams
    final: bool  # True for the chunk that ended the stream (or needed its end)
    segment: int = 0  # the segment this chunk's tokens belong to (endpointing)
    endpoint: int = 0  # the endpoint rule (1-3) that ended that segment after this chunk, 0 for none
    segment_text: str = ""  # with an endpoint: the finished segment's transcript
    row: int = 0  # the stream's row in its lock-step batch (0 for a stream of its own)


@dataclasses.dataclass
class StreamResult:
    """One stream's recognition so far (sherpa-onnx's per-stream result): its tokens and
    text since the current segment began, the n-best list of a beam search, and the
    endpointing bookkeeping (a stream without endpointing stays in segment 0)."""

    tokens: list[int] = dataclasses.field(default_factory=list)  # the current segment's token ids
    text: str = ""  # their text (pieces joined; may start with a space)
    nbest: list[tuple[list[int], float]] = dataclasses.field(default_factory=list)  # beam search, at the end
    segment: int = 0  # the current segment's index
    segment_start_frame: int = 0  # the encoder frame it began at (global)
    last_token_frame: int = -1  # the frame of the stream's last token (-1: none yet)
    segments: list[str] = dataclasses.field(default_factory=list)  # texts of the segments already ended

    @property
    def full_text(self) -> str:
        """The whole transcript: the ended segments and the current one."""
        return " ".join(text for text in self.segments + [self.text.strip()] if text)

    def end_segment(self, frame: int) -> str:
        """Close the current segment (its text joins ``segments``; returned); the next
        one begins at encoder frame ``frame``."""
        text = self.text.strip()
        self.segments.append(text)
        self.tokens, self.text = [], ""
        self.segment += 1
        self.segment_start_frame = frame
        self.last_token_frame = -1
        return text


@dataclasses.dataclass
class StreamState:
    """Everything a lock-step batch of streams carries between chunks (explicit,
    inspectable): the batched audio, positions and model contexts, and one
    ``StreamResult`` per row. A stream of ``create_stream`` is a batch of one;
    ``decode_streams`` stacks such streams' contexts into one model call."""

    buffer: torch.Tensor  # [B, n] samples from buffer_offset on
    buffer_offset: int = 0
    frames_done: int = 0
    chunks_done: int = 0
    encoder_context: object = None
    decoder_state: object = None  # GreedyState or BeamState
    results: list[StreamResult] = dataclasses.field(default_factory=list)  # one per row
    finished: bool = False
    feature_context: object = None  # the feature path's own context (stock wrapper)
    input_done: bool = False  # no more audio will come (``input_finished``)

    @property
    def samples_received(self) -> int:
        return self.buffer_offset + self.buffer.shape[1]

    @property
    def result(self) -> StreamResult:
        """The result of a batch of one (a ``create_stream`` stream, ``init_state(1)``,
        ``transcribe``); a batch of several has one per row in ``results``."""
        if len(self.results) != 1:
            raise StreamStateError(f"a batch of {len(self.results)} streams has one result per row "
                                   "(state.results[row]), not one state.result")
        return self.results[0]


class StreamingRecognizer:
    """Chunk-by-chunk recognition with a DCT Conformer-Transducer.

    Verbs (as in sherpa-onnx): ``init_state`` for a batch of streams, ``accept_audio``
    (any number of samples; runs every chunk that became computable), ``finalize``
    (end of input: runs the remaining frames). ``decoding``: ``greedy`` or ``beam``
    (batched modified beam search of ``beam`` hypotheses: partial results are the
    hypotheses' common prefix, the final is the best, each stream's ``StreamResult.nbest``
    the ``nbest`` best with their log-probabilities). Chunks are ``config.chunk_size`` encoder
    frames; a ``streamasr.dct.ChunkConfig`` with ``right_frames`` R makes each chunk wait
    for R more frames of look-ahead (the end of the stream flushes without it).

    frontend: the feature path, a name (``exact``, the default, or ``stock``) or a
    ``FeaturePath``; see ``streamasr.frontend.paths``. backend: an encoder backend
    (default: fixed-shape, or SpeechBrain's contexts for unlimited left context and the
    stock front end; ``streamasr.streaming.backends``).
    """

    def __init__(self, model: AsrModel, config: DynChunkTrainConfig, frontend: str | FeaturePath = "exact",
                 backend: EncoderBackend | None = None, endpointing: Endpointing | None = None,
                 decoding: "str | Decoding" = "greedy", beam: int = 4, nbest: int = 1):
        self.model = model
        self.config = config
        self.endpointing = endpointing
        name = frontend.name if isinstance(frontend, FeaturePath) else frontend
        self.backend = backend or default_backend(model, config, name)
        # the backend's own search (ONNX decoder and joiner) or the model's
        spec = as_decoding(decoding, beam, nbest)
        greedy = self.backend.search or model.search
        self.search = greedy if spec.kind == "greedy" else spec.build(greedy.decoder, greedy.joiner, greedy.blank_id)
        self.nbest = spec.nbest
        window = config.chunk_size if self.backend.input_kind == "window" else None
        self.right_frames = right_frames(config)
        self.path = feature_path(frontend, model.front_end, window_chunk_frames=window, right_frames=self.right_frames)
        if self.path.right_frames != self.right_frames:
            raise ConfigError(f"feature path {self.path.name} carries {self.path.right_frames} look-ahead frames, "
                              f"the config {self.right_frames}")
        self.frontend = self.path.name
        self.geometry = model.front_end.geometry

    @property
    def chunk_samples(self) -> int:
        """Samples per chunk a live source should deliver."""
        return self.path.chunk_samples(self.config.chunk_size)

    def init_state(self, batch_size: int = 1) -> StreamState:
        if self.endpointing and batch_size != 1:
            raise ConfigError("endpointing segments one stream at a time (batch 1; use decode_streams for many)")
        device = self.model.device
        return StreamState(
            buffer=torch.zeros(batch_size, 0, device=device),
            encoder_context=self.backend.init_state(batch_size),
            decoder_state=self.search.initial_state(batch_size, device),
            results=[StreamResult() for _ in range(batch_size)],
            feature_context=self.path.new_context(),
        )

    @torch.no_grad()
    def accept_audio(self, state: StreamState, samples: torch.Tensor) -> list[ChunkOutput]:
        """Append ``samples`` (``[B, n]`` float, 16 kHz) and run every complete chunk: B
        outputs per chunk (one per stream, in row order)."""
        if state.finished:
            raise StreamStateError("stream already finalized")
        if samples.dim() == 1:
            samples = samples[None]
        state.buffer = torch.cat([state.buffer, samples.to(state.buffer)], dim=1)
        return self._run(state, self.path.chunks(state, self.config.chunk_size))

    @torch.no_grad()
    def finalize(self, state: StreamState) -> list[ChunkOutput]:
        """End of input: run the frames left (the last chunk may be shorter). A stream
        that received no audio at all gives no chunk and an empty transcript."""
        outputs = self._run(state, self.path.finish(state, self.config.chunk_size))
        if outputs:
            last = outputs[-len(state.results):]  # the last chunk's, one per stream
            for output in last:
                output.final = True
            self._flush(state, last)
        state.finished = True
        return outputs

    def _flush(self, state: StreamState, outputs: list[ChunkOutput]) -> None:
        """End of the streams (or a segment): a beam search's best hypothesis beyond the
        common prefix already returned joins each stream's output (``outputs``, one per
        row); each stream's result gets its n-best list. Nothing to do for greedy search."""
        if not self.search.holds_pending:
            return
        rest, nbest = self.search.finish(state.decoder_state, self.nbest)
        for row, (output, hyp, row_nbest) in enumerate(zip(outputs, rest, nbest)):
            state.results[row].nbest = row_nbest
            events, text = self._append(state, row, hyp)
            output.tokens.extend(events)
            output.text += text

    def _run(self, state: StreamState, chunks: Iterator[tuple[torch.Tensor, int, bool]]) -> list[ChunkOutput]:
        """Decode every chunk the iterator yields; a chunk's compute time covers its
        features (computed when the iterator advances), encoder and search."""
        outputs = []
        while True:
            start_time = time.perf_counter()
            item = next(chunks, None)
            if item is None:
                return outputs
            outputs.extend(self._decode(state, *item, start_time=start_time))

    def _padded(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder input frames padded to the chunk (+ look-ahead) size (a stream's last
        chunk), so that chunks of streams at different positions stack; windows have one
        size already."""
        missing = self.config.chunk_size + self.right_frames - features.shape[1]
        if self.backend.input_kind == "window" or missing <= 0:
            return features
        return torch.nn.functional.pad(features, (0, 0, 0, missing))

    def _decode(self, state: StreamState, features: torch.Tensor, valid: int, final: bool,
                start_time: float) -> list[ChunkOutput]:
        """Encoder + search on one chunk of a lock-step batch of streams: one output per
        stream."""
        lengths = torch.full((features.shape[0],), valid, dtype=torch.long, device=features.device)
        encoded, frames, state.encoder_context = self.backend.encode(features, lengths, state.encoder_context)
        hyps, state.decoder_state = self.search(encoded, frames, state=state.decoder_state)
        new = [self._append(state, row, hyp) for row, hyp in enumerate(hyps)]
        seconds = (time.perf_counter() - start_time) / len(new)
        return self._advance(state, int(frames[0]), new, seconds, final)

    def _append(self, state: StreamState, row: int, hyp: Hypothesis) -> tuple[list[TokenEvent], str]:
        """Add a chunk's hypothesis to stream ``row`` of ``state``: its token events (global
        frames, start times) and the new text."""
        model = self.model
        start = state.frames_done
        frame_ms = self.geometry.frame_ms
        shift = self.path.time_shift_frames
        events = [
            TokenEvent(
                token_id=token,
                piece=model.tokenizer.id_to_piece(token),
                frame=start + frame,
                start_ms=max(0.0, (start + frame + shift) * frame_ms),
                confidence=confidence,
            )
            for token, frame, confidence in zip(hyp.tokens, hyp.frames, hyp.confidences)
        ]
        result = state.results[row]
        at_start = not result.tokens
        if events:
            result.last_token_frame = events[-1].frame
        result.tokens.extend(hyp.tokens)
        new_text = model.decode_continuation(hyp.tokens, at_start)
        result.text += new_text
        return events, new_text

    def _advance(self, state: StreamState, frames: int, new: list[tuple[list[TokenEvent], str]], seconds: float,
                 final: bool) -> list[ChunkOutput]:
        """The chunk of ``frames`` encoder frames ran: ``new`` holds each stream's token
        events and text; one output per stream."""
        start = state.frames_done
        state.frames_done = start + frames
        index = state.chunks_done
        state.chunks_done += 1
        outputs = [ChunkOutput(index, start, start + frames, tokens, text, seconds, final, segment=result.segment,
                               row=row)
                   for row, (result, (tokens, text)) in enumerate(zip(state.results, new))]
        if self.endpointing and not final and (not state.input_done or self._has_frames_left(state)):
            (output,) = outputs  # endpointing runs on a batch of one (``init_state``)
            self._endpoint(state, output)  # never after a stream's last chunk: its final ends it
        return outputs

    def _endpoint(self, state: StreamState, output: ChunkOutput) -> None:
        """End the current segment if a rule fires (``streamasr.streaming.endpoint``);
        a batch of one (``init_state`` refuses endpointing on more)."""
        result = state.result
        segment_frames = state.frames_done - result.segment_start_frame
        last = result.last_token_frame if result.last_token_frame >= result.segment_start_frame else None
        beams = getattr(state.decoder_state, "beams", None)
        if beams is not None and beams[0][0].frames:
            # beam search returns only the hypotheses' common prefix, which may lag:
            # the silence counts from the best hypothesis's last token (as sherpa-onnx)
            best = result.segment_start_frame + beams[0][0].frames[-1]
            last = best if last is None else max(last, best)
        trailing = state.frames_done - (last if last is not None else result.segment_start_frame)
        rule = self.endpointing.rule_fired(segment_frames, trailing, self.geometry.frame_ms / 1000)
        if not rule:
            return
        self._flush(state, [output])  # a beam search's best hypothesis ends the segment
        graphs = getattr(state.decoder_state, "graphs", None)
        output.endpoint, output.segment_text = rule, result.end_segment(state.frames_done)
        state.decoder_state = self.search.initial_state(1, self.model.device)
        if graphs is not None:  # the stream's own hotwords stay for the next segment
            state.decoder_state.graphs = graphs

    @staticmethod
    def full_text(state: StreamState) -> str:
        """A stream's whole transcript (``state.result.full_text``: its ended segments
        and the current one)."""
        return state.result.full_text

    # ---------------------------------------------------- streams at their own pace
    def create_stream(self) -> StreamState:
        """A new stream (a batch of one) for ``decode_streams``; its result is
        ``stream.result``."""
        if not self.backend.can_stack:
            raise ConfigError(f"{self.backend.name} backend: streams at different positions need the fixed-shape "
                              "state (a finite left context and the exact front end)")
        return self.init_state(1)

    def set_hotwords(self, stream: StreamState, hotwords) -> None:
        """This stream's own hotwords (a ``ContextGraph``, or lines ``PHRASE [:score]``;
        an empty list turns hotwords off for it) instead of the search's; beam search
        only, before the stream's first chunk (the hypotheses hold positions in the graph)."""
        from streamasr.decoding import ContextGraph
        from streamasr.decoding.hotwords import hotwords_from_lines

        if not self.search.holds_pending:
            raise ConfigError("hotwords need beam search (the recognizer decodes greedily)")
        if stream.chunks_done:
            raise ConfigError("hotwords can be set only before a stream's first chunk")
        if not isinstance(hotwords, ContextGraph):
            if isinstance(hotwords, str) or not isinstance(hotwords, (list, tuple)):
                raise ConfigError(f"hotwords must be a list of phrases, got {type(hotwords).__name__}")
            blank = self.search.blank_id
            hotwords = hotwords_from_lines(hotwords, self.model.tokenizer, blank_id=blank, source="hotwords")
        for row in range(len(stream.decoder_state.graphs)):
            stream.decoder_state.graphs[row] = hotwords

    def accept_waveform(self, stream: StreamState, samples: torch.Tensor) -> None:
        """Buffer ``samples`` (``[n]`` or ``[1, n]`` float, 16 kHz); decoding happens in
        ``decode_streams``."""
        if stream.input_done or stream.finished:
            raise StreamStateError("audio after input_finished()")
        stream.buffer = torch.cat([stream.buffer, samples.reshape(1, -1).to(stream.buffer)], dim=1)

    def input_finished(self, stream: StreamState) -> None:
        """No more audio for ``stream``: its remaining frames become ready."""
        stream.input_done = True

    def is_ready(self, stream: StreamState) -> bool:
        """Whether ``decode_streams`` would run a chunk of ``stream`` now."""
        if stream.finished:
            return False
        if stream.input_done:
            return stream.samples_received > 0 and self._has_frames_left(stream)
        return self.path.ready(stream, self.config.chunk_size)

    @torch.no_grad()
    def decode_streams(self, streams: list[StreamState]) -> list[ChunkOutput | None]:
        """One chunk of every ready stream in one batched model call, whatever their
        positions; ``None`` for a stream that was not ready. A stream's last chunk
        (after ``input_finished``) has ``final`` set and finishes it."""
        start_time = time.perf_counter()
        live = [stream for stream in streams if not stream.finished]
        items = self.path.next_chunks(live, self.config.chunk_size, [stream.input_done for stream in live])
        by_stream = {}
        for stream, item in zip(live, items):
            if item is None and stream.input_done:  # nothing left (or no audio at all)
                output = self.finish_stream(stream)
                if output is not None:
                    by_stream[id(stream)] = output
        ready = [(stream, item) for stream, item in zip(live, items) if item is not None]
        if not ready:
            return [by_stream.get(id(stream)) for stream in streams]
        features = torch.cat([self._padded(chunk) for _, (chunk, _, _) in ready])
        lengths = torch.tensor([valid for _, (_, valid, _) in ready], dtype=torch.long, device=features.device)
        encoder_state = self.backend.stack_states([stream.encoder_context for stream, _ in ready])
        decoder_state = type(ready[0][0].decoder_state).stack([stream.decoder_state for stream, _ in ready])
        encoded, frames, encoder_state = self.backend.encode(features, lengths, encoder_state)
        hyps, decoder_state = self.search(encoded, frames, state=decoder_state)
        seconds = (time.perf_counter() - start_time) / len(ready)
        for row, ((stream, (_, _, final)), encoder_row, decoder_row) in enumerate(
                zip(ready, self.backend.unstack_states(encoder_state), decoder_state.unstack())):
            stream.encoder_context, stream.decoder_state = encoder_row, decoder_row
            (output,) = self._advance(stream, int(frames[row]), [self._append(stream, 0, hyps[row])], seconds, final)
            if stream.input_done and not self._has_frames_left(stream):
                output.final = True
                stream.finished = True
                self._flush(stream, [output])
            by_stream[id(stream)] = output
        return [by_stream.get(id(stream)) for stream in streams]

    def finish_stream(self, stream: StreamState) -> ChunkOutput | None:
        """End a stream whose input is done and whose chunks have all run (its input
        ended after its last chunk): a beam search still holds its best hypothesis
        beyond the common prefix, returned as an empty final chunk; ``None`` for greedy
        search or a stream that never ran a chunk."""
        stream.finished = True
        if not stream.chunks_done or not self.search.holds_pending:
            return None
        output = ChunkOutput(stream.chunks_done, stream.frames_done, stream.frames_done, [], "", 0.0, True,
                             segment=stream.result.segment)
        self._flush(stream, [output])
        return output

    def _has_frames_left(self, stream: StreamState) -> bool:
        total = self.geometry.num_encoder_frames(max(stream.samples_received, self.geometry.frame_samples))
        return stream.frames_done < total

    def transcribe(self, wav: torch.Tensor) -> tuple[StreamState, list[ChunkOutput]]:
        """Feed one utterance ``[samples]`` chunk by chunk (``chunk_samples`` at a time,
        as a live source would) and finalize; the transcript is ``state.result``."""
        state = self.init_state(1)
        outputs = []
        for begin in range(0, wav.shape[-1], self.chunk_samples):
            outputs.extend(self.accept_audio(state, wav[..., begin : begin + self.chunk_samples]))
        outputs.extend(self.finalize(state))
        return state, outputs
