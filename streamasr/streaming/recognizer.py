"""The streaming engine: audio in, tokens with times and confidences out, all state in
an explicit ``StreamState``.

Per chunk: the feature path (``streamasr.frontend.paths``: exact windows by default, or
stock SpeechBrain's wrapper) gives encoder inputs, the encoder runs with its carried
streaming context (``streamasr.streaming.encoder``), the greedy search with its carried
prediction-network state, and the SentencePiece pieces are appended to the text.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.decoding import GreedyState
from streamasr.errors import StreamStateError
from streamasr.frontend import FEATURE_PATHS, FeaturePath, feature_path
from streamasr.model import AsrModel
from streamasr.streaming.encoder import make_encoder_context

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
    """What one processed chunk produced for each stream of the batch."""

    chunk_index: int
    start_frame: int
    end_frame: int
    tokens: list[list[TokenEvent]]  # per stream, new tokens of this chunk
    text: list[str]  # per stream, new text of this chunk
    compute_seconds: float  # wall time of front end + encoder + search for the chunk
    final: bool  # True for the chunk that ended the stream (or needed its end)


@dataclasses.dataclass
class StreamState:
    """Everything a batch of streams carries between chunks (explicit, inspectable)."""

    buffer: torch.Tensor  # [B, n] samples from buffer_offset on
    buffer_offset: int = 0
    frames_done: int = 0
    chunks_done: int = 0
    encoder_context: object = None
    decoder_state: GreedyState | None = None
    tokens: list = dataclasses.field(default_factory=list)  # per stream: list[int]
    texts: list = dataclasses.field(default_factory=list)  # per stream: decoded so far
    finished: bool = False
    feature_context: object = None  # the feature path's own context (stock wrapper)

    @property
    def samples_received(self) -> int:
        return self.buffer_offset + self.buffer.shape[1]


class StreamingRecognizer:
    """Chunk-by-chunk recognition with a DCT Conformer-Transducer.

    Verbs (as in sherpa-onnx): ``init_state`` for a batch of streams, ``accept_audio``
    (any number of samples; runs every chunk that became computable), ``finalize``
    (end of input: runs the remaining frames). Chunks are ``config.chunk_size`` encoder
    frames.

    frontend: the feature path, a name (``exact``, the default, or ``stock``) or a
    ``FeaturePath``; see ``streamasr.frontend.paths``.
    """

    def __init__(self, model: AsrModel, config: DynChunkTrainConfig, frontend: str | FeaturePath = "exact"):
        self.model = model
        self.config = config
        self.path = feature_path(frontend, model.front_end)
        self.frontend = self.path.name
        self.geometry = model.front_end.geometry

    @property
    def chunk_samples(self) -> int:
        """Samples per chunk a live source should deliver."""
        return self.path.chunk_samples(self.config.chunk_size)

    def init_state(self, batch_size: int = 1) -> StreamState:
        device = self.model.device
        return StreamState(
            buffer=torch.zeros(batch_size, 0, device=device),
            encoder_context=make_encoder_context(self.model.encoder, self.config),
            decoder_state=self.model.search.initial_state(batch_size, device),
            tokens=[[] for _ in range(batch_size)],
            texts=["" for _ in range(batch_size)],
            feature_context=self.path.new_context(),
        )

    @torch.no_grad()
    def accept_audio(self, state: StreamState, samples: torch.Tensor) -> list[ChunkOutput]:
        """Append ``samples`` (``[B, n]`` float, 16 kHz) and run every complete chunk."""
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
            outputs[-1].final = True
        state.finished = True
        return outputs

    def _run(self, state: StreamState, chunks: Iterator[tuple[torch.Tensor, bool]]) -> list[ChunkOutput]:
        """Decode every chunk the iterator yields; a chunk's compute time covers its
        features (computed when the iterator advances), encoder and search."""
        outputs = []
        while True:
            start_time = time.perf_counter()
            item = next(chunks, None)
            if item is None:
                return outputs
            src, final = item
            outputs.append(self._decode(state, src, start_time, final))

    def _decode(self, state: StreamState, src: torch.Tensor, start_time: float, final: bool) -> ChunkOutput:
        """Encoder + greedy search on one chunk of encoder inputs ``[B, n, F]``."""
        model = self.model
        start = state.frames_done
        end_frame = start + src.shape[1]
        encoded = model.encoder.encode_streaming(src, state.encoder_context)
        hyps, state.decoder_state = model.search(model.encoder_proj(encoded), state=state.decoder_state)
        frame_ms = self.geometry.frame_ms
        shift = self.path.time_shift_frames
        tokens, texts = [], []
        for stream, hyp in enumerate(hyps):
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
