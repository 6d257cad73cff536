"""Chunk-by-chunk recognition with a Dynamic-Chunk-Training Conformer-Transducer.

Owns the one place where a ``DynChunkTrainConfig`` becomes an encoder streaming
context, the reference loop that feeds encoder inputs chunk by chunk (tests of the
streaming contract), and the streaming engine: audio in, tokens with times and
confidences out, all state in an explicit ``StreamState``.

Why a helper: SpeechBrain 1.1.2's ``ConformerEncoder.make_streaming_context`` stores
``left_context_size_frames()`` in each layer, which is ``None`` for unlimited left
context, and ``ConformerEncoderLayer.forward_streaming`` then fails on ``None > 0``
(TypeError). Unlimited left context means "keep every past frame"; slicing with
``x[..., -n:, :]`` keeps everything when ``n`` exceeds the length, so we store a
frame count larger than any stream instead.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

# Larger than any stream's frame count; slicing with it keeps all past frames.
UNLIMITED_LEFT_CONTEXT_FRAMES = sys.maxsize // 2


def make_encoder_context(transformer, config: DynChunkTrainConfig):
    """Streaming context for ``TransformerASR.encode_streaming`` that also supports
    unlimited left context (``config.left_context_size is None``)."""
    context = transformer.make_streaming_context(
        DynChunkTrainConfig(config.chunk_size, config.left_context_size or 0)
    )
    if config.is_infinite_left_context():
        context.dynchunktrain_config = config
        context.encoder_context.dynchunktrain_config = config
        for layer in context.encoder_context.layers:
            layer.mha_left_context_size = UNLIMITED_LEFT_CONTEXT_FRAMES
    return context


@torch.no_grad()
def encode_chunk_by_chunk(
    transformer, src: torch.Tensor, config: DynChunkTrainConfig
) -> torch.Tensor:
    """Encode ``src`` ``[B, T, F]`` (encoder input frames, i.e. the CNN front end's
    output, 40 ms each by default) by feeding ``config.chunk_size`` frames at a time to
    ``encode_streaming``. Returns ``[B, T, d_model]``; the last chunk may be shorter."""
    context = make_encoder_context(transformer, config)
    outputs = []
    for start in range(0, src.shape[1], config.chunk_size):
        outputs.append(transformer.encode_streaming(src[:, start : start + config.chunk_size], context))
    return torch.cat(outputs, dim=1)


# --------------------------------------------------------------------------- engine
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
    """What one processed chunk produced for each stream of the batch."""

    chunk_index: int
    start_frame: int
    end_frame: int
    tokens: list[list[TokenEvent]]  # per stream, new tokens of this chunk
    text: list[str]  # per stream, new text of this chunk
    compute_seconds: float  # wall time of front end + encoder + search for the chunk
    final: bool  # True for the chunk that ended the stream


@dataclasses.dataclass
class StreamState:
    """Everything a batch of streams carries between chunks (explicit, inspectable)."""

    buffer: torch.Tensor  # [B, n] samples from buffer_offset on
    buffer_offset: int = 0
    frames_done: int = 0
    chunks_done: int = 0
    encoder_context: object = None
    decoder_state: object = None
    tokens: list = dataclasses.field(default_factory=list)  # per stream: list[int]
    texts: list = dataclasses.field(default_factory=list)  # per stream: decoded so far
    finished: bool = False
    feature_context: object = None  # StreamingFeatureWrapper context (stock front end)

    @property
    def samples_received(self) -> int:
        return self.buffer_offset + self.buffer.shape[1]


FRONTENDS = ("exact", "stock")


class StreamingRecognizer:
    """Chunk-by-chunk recognition with a DCT Conformer-Transducer.

    Verbs (as in sherpa-onnx): ``init_state`` for a batch of streams, ``accept_audio``
    (any number of samples; runs every chunk that became computable), ``finalize``
    (end of input: runs the remaining frames). Chunks are ``config.chunk_size`` encoder
    frames.

    frontend: ``exact`` (default): a chunk runs once its samples plus the front end's
    look-ahead arrived, and its encoder inputs equal the whole-utterance ones
    (``FrontEnd.chunk``). ``stock``: what SpeechBrain's ``StreamingASR`` does with an
    exported model (``StreamingFeatureWrapper``, ``(stride - 1) x chunk_size`` samples
    per chunk, a short last chunk, then zero chunks), so hypotheses equal those of the
    exported folder under stock SpeechBrain; its frames drift off the training grid
    and its token times are approximate.
    """

    def __init__(self, model, config: DynChunkTrainConfig, frontend: str = "exact"):
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {', '.join(FRONTENDS)}, got {frontend!r}")
        self.model = model
        self.config = config
        self.frontend = frontend
        self.geometry = model.front_end.geometry
        self.wrapper = model.front_end.stock_wrapper() if frontend == "stock" else None

    @property
    def chunk_samples(self) -> int:
        if self.frontend == "stock":
            return (self.wrapper.properties.stride - 1) * self.config.chunk_size
        return self.geometry.chunk_samples(self.config.chunk_size)

    def init_state(self, batch_size: int = 1) -> StreamState:
        device = self.model.device
        return StreamState(
            buffer=torch.zeros(batch_size, 0, device=device),
            encoder_context=make_encoder_context(self.model.transformer, self.config),
            decoder_state=self.model.decoder.initial_state(batch_size, device),
            tokens=[[] for _ in range(batch_size)],
            texts=["" for _ in range(batch_size)],
            feature_context=self.wrapper.make_streaming_context() if self.wrapper else None,
        )

    @torch.no_grad()
    def accept_audio(self, state: StreamState, samples: torch.Tensor) -> list[ChunkOutput]:
        """Append ``samples`` (``[B, n]`` float, 16 kHz) and run every complete chunk."""
        if state.finished:
            raise RuntimeError("stream already finalized")
        if samples.dim() == 1:
            samples = samples[None]
        state.buffer = torch.cat([state.buffer, samples.to(state.buffer)], dim=1)
        outputs = []
        if self.frontend == "stock":
            while state.buffer.shape[1] >= self.chunk_samples:
                outputs.append(self._run_stock_chunk(state, state.buffer[:, : self.chunk_samples]))
            return outputs
        while True:
            end = state.frames_done + self.config.chunk_size
            if state.samples_received < self.model.front_end.samples_needed(end):
                break
            outputs.append(self._run_chunk(state, end, final=False))
        return outputs

    @torch.no_grad()
    def finalize(self, state: StreamState) -> list[ChunkOutput]:
        """End of input: run the frames left (the last chunk may be shorter)."""
        outputs = []
        # Input shorter than one encoder frame (e.g. a stream cut after a few samples):
        # the CNN's padding needs a few feature frames, so complete it with silence.
        minimum = self.geometry.frame_samples
        if 0 < state.samples_received < minimum and state.buffer_offset == 0:
            pad = torch.zeros(state.buffer.shape[0], minimum - state.buffer.shape[1], device=state.buffer.device)
            state.buffer = torch.cat([state.buffer, pad], dim=1)
        if self.frontend == "stock":
            if state.buffer.shape[1]:  # the short last chunk, as stock transcribe_file
                outputs.append(self._run_stock_chunk(state, state.buffer))
            zeros = torch.zeros(state.buffer.shape[0], self.chunk_samples, device=state.buffer.device)
            for _ in range(self.wrapper.get_recommended_final_chunk_count(self.chunk_samples)):
                outputs.append(self._run_stock_chunk(state, zeros, consume=False))
            if outputs:
                outputs[-1].final = True
            state.finished = True
            return outputs
        total = self.geometry.num_encoder_frames(state.samples_received)
        while state.frames_done < total:
            end = min(total, state.frames_done + self.config.chunk_size)
            # Past the end of input, a chunk uses what there is (as whole-utterance
            # features do: zero padding after the last sample).
            short = self.model.front_end.samples_needed(end) > state.samples_received
            outputs.append(self._run_chunk(state, end, final=short))
        if outputs:
            outputs[-1].final = True
        state.finished = True
        return outputs

    def _run_stock_chunk(self, state: StreamState, chunk: torch.Tensor, consume: bool = True) -> ChunkOutput:
        start_time = time.perf_counter()
        src = self.wrapper(chunk, context=state.feature_context,
                           lengths=torch.ones(chunk.shape[0], device=chunk.device))
        if src.dim() == 4:
            src = src.flatten(start_dim=2)
        if consume:
            state.buffer = state.buffer[:, chunk.shape[1]:]
            state.buffer_offset += chunk.shape[1]
        # Stock features lag the audio by the wrapper's padding (two frames by default).
        lag_frames = self.wrapper.get_output_count_per_pad_frame()
        return self._decode(state, src, start_time, final=False, time_shift_frames=-lag_frames)

    def _run_chunk(self, state: StreamState, end_frame: int, final: bool) -> ChunkOutput:
        start_time = time.perf_counter()
        model = self.model
        start = state.frames_done
        src = model.front_end.chunk(state.buffer, start, end_frame, final, state.buffer_offset)
        output = self._decode(state, src, start_time, final)
        # Drop samples no future chunk reads.
        keep_from = model.front_end.history_start(end_frame)
        if keep_from > state.buffer_offset:
            state.buffer = state.buffer[:, keep_from - state.buffer_offset :]
            state.buffer_offset = keep_from
        return output

    def _decode(self, state: StreamState, src: torch.Tensor, start_time: float, final: bool,
                time_shift_frames: int = 0) -> ChunkOutput:
        """Encoder + greedy search on one chunk of encoder inputs ``[B, n, F]``."""
        model = self.model
        start = state.frames_done
        end_frame = start + src.shape[1]
        encoded = model.transformer.encode_streaming(src, state.encoder_context)
        hyps, state.decoder_state = model.decoder(
            model.proj_enc(encoded), state=state.decoder_state
        )
        frame_ms = self.geometry.frame_ms
        tokens, texts = [], []
        for stream, hyp in enumerate(hyps):
            events = [
                TokenEvent(
                    token_id=token,
                    piece=model.tokenizer.id_to_piece(token),
                    frame=start + frame,
                    start_ms=max(0.0, (start + frame + time_shift_frames) * frame_ms),
                    confidence=confidence,
                )
                for token, frame, confidence in zip(hyp.tokens, hyp.frames, hyp.confidences)
            ]
            at_start = not state.tokens[stream]
            state.tokens[stream].extend(hyp.tokens)
            new_text = model.decode_continuation(hyp.tokens, at_start)
            texts.append(new_text)
            state.texts[stream] += new_text
            tokens.append(events)
        state.frames_done = end_frame
        index = state.chunks_done
        state.chunks_done += 1
        return ChunkOutput(
            index, start, end_frame, tokens, texts, time.perf_counter() - start_time, final
        )

    def transcribe(self, wav: torch.Tensor) -> tuple[StreamState, list[ChunkOutput]]:
        """Feed one utterance ``[samples]`` chunk by chunk (``chunk_samples`` at a time,
        as a live source would) and finalize."""
        state = self.init_state(1)
        outputs = []
        for begin in range(0, wav.shape[-1], self.chunk_samples):
            outputs.extend(self.accept_audio(state, wav[..., begin : begin + self.chunk_samples]))
        outputs.extend(self.finalize(state))
        return state, outputs
