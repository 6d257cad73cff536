"""How a stream's audio becomes encoder-input chunks: the feature path, chosen once.

Two strategies with the same interface (the streaming engine and the evaluation's
latency model call only these methods and never branch on which one runs):

* ``ExactPath`` (``exact``, the default): a chunk runs once its samples, those of its
  ``right_frames`` look-ahead frames and the front end's look-ahead have arrived; its
  encoder inputs (chunk and look-ahead) equal the whole-utterance ones
  (``FrontEnd.chunk``); the last chunk of a stream may be shorter, and near the end the
  look-ahead is what is left of the stream (none after the last frame).
* ``WindowPath`` (``exact`` too, for the fixed-shape backends): the same windows and
  chunk timing as ``ExactPath``, stopped after the Fbank and padded to one fixed size
  (``streamasr.streaming.step`` runs the normaliser and the CNN on it);
* ``StockPath`` (``stock``): what SpeechBrain's ``StreamingASR`` does with an exported
  folder (``StreamingFeatureWrapper``, ``(stride - 1) x chunk`` samples per chunk, a
  short last chunk, then the wrapper's recommended zero chunks), so hypotheses equal
  stock SpeechBrain's; its frames drift off the training grid and its token times lag
  by the wrapper's padding.

A path works on a stream's audio cursor (``StreamAudio``): the buffered samples, the
index of the first one, the encoder frames done and the path's own context.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import torch

from streamasr.errors import ConfigError
from streamasr.frontend.features import FbankFrontEnd, FrontEnd, _unwrapped
from streamasr.frontend.stock import stock_feature_wrapper
from streamasr.modes import FEATURE_PATHS


class StreamAudio(Protocol):
    buffer: torch.Tensor  # [B, n] samples from buffer_offset on
    buffer_offset: int
    frames_done: int
    feature_context: object

    @property
    def samples_received(self) -> int: ...


class FeaturePath:
    """Interface (see the module docstring). ``chunks`` yields ``(features, valid,
    final)`` for every chunk that became computable: the encoder inputs ``[B, n, F]``
    (``valid`` = n) or, for ``WindowPath``, the Fbank window ``[B, T_w, n_mels]``
    (``valid`` = its valid frames), and whether it needed the end of the stream;
    ``finish`` does the same for what is left at the end of input."""

    name: str = ""
    time_shift_frames: int = 0  # added to a token's frame for its start time

    def __init__(self, front_end: FrontEnd | FbankFrontEnd, right_frames: int = 0):
        self.front_end = front_end
        self.geometry = front_end.geometry
        # Look-ahead (``streamasr.dct``): a chunk also needs the R encoder frames after it,
        # which are given with it (valid = C + R) and recomputed with the next chunk.
        self.right_frames = right_frames

    def chunk_samples(self, chunk_frames: int) -> int:
        """Samples a live source should deliver per chunk."""
        raise NotImplementedError

    def new_context(self) -> object:
        return None

    def ready(self, stream: StreamAudio, chunk_frames: int) -> bool:
        """Whether a chunk can run now (before the end of input)."""
        raise NotImplementedError

    def chunks(self, stream: StreamAudio, chunk_frames: int) -> Iterator[tuple[torch.Tensor, int, bool]]:
        raise NotImplementedError

    def finish(self, stream: StreamAudio, chunk_frames: int) -> Iterator[tuple[torch.Tensor, int, bool]]:
        raise NotImplementedError

    def ready_samples(self, chunk_index: int, end_frame: int, final: bool, chunk_frames: int,
                      total_samples: int) -> int:
        """Samples a real-time source must have delivered before this chunk can run."""
        raise NotImplementedError

    def next_chunks(self, streams: list[StreamAudio], chunk_frames: int, at_end: list[bool]
                    ) -> list[tuple[torch.Tensor, int, bool] | None]:
        """The next chunk of each of several streams (batch 1 each), as ``chunks`` (or
        ``finish`` where ``at_end``) would yield it first; ``None`` where there is none."""
        return [next((self.finish if end else self.chunks)(stream, chunk_frames), None)
                for stream, end in zip(streams, at_end)]


class ExactPath(FeaturePath):
    name = "exact"

    def chunk_samples(self, chunk_frames: int) -> int:
        return self.geometry.chunk_samples(chunk_frames)

    def ready(self, stream: StreamAudio, chunk_frames: int) -> bool:
        return stream.samples_received >= self.geometry.samples_needed(
            stream.frames_done + chunk_frames + self.right_frames)

    def chunks(self, stream: StreamAudio, chunk_frames: int) -> Iterator[tuple[torch.Tensor, int, bool]]:
        while (plan := self._plan(stream, chunk_frames, at_end=False)) is not None:
            yield (*self._chunk(stream, *plan[:3]), plan[3])

    def finish(self, stream: StreamAudio, chunk_frames: int) -> Iterator[tuple[torch.Tensor, int, bool]]:
        while (plan := self._plan(stream, chunk_frames, at_end=True)) is not None:
            yield (*self._chunk(stream, *plan[:3]), plan[3])

    def _plan(self, stream: StreamAudio, chunk_frames: int, at_end: bool) -> tuple[int, bool, int, bool] | None:
        """The next chunk of ``stream``: its end frame, whether its features need the end
        of the input (the stream's last chunk, or one whose look-ahead the end cuts
        short), the end of its input frames (chunk + look-ahead) and whether it is the
        stream's last chunk; ``None`` if there is none now. ``at_end``: no more audio
        will come."""
        if not at_end:
            end = stream.frames_done + chunk_frames
            return (end, False, end + self.right_frames, False) if self.ready(stream, chunk_frames) else None
        if stream.samples_received == 0:  # nothing was ever received: no chunk, empty result
            return None
        # Input shorter than one encoder frame (e.g. a stream cut after a few samples):
        # the CNN's padding needs a few feature frames, so complete it with silence.
        minimum = self.geometry.frame_samples
        if stream.samples_received < minimum and stream.buffer_offset == 0:
            pad = torch.zeros(stream.buffer.shape[0], minimum - stream.buffer.shape[1], device=stream.buffer.device)
            stream.buffer = torch.cat([stream.buffer, pad], dim=1)
        total = self.geometry.num_encoder_frames(stream.samples_received)
        if stream.frames_done >= total:
            return None
        end = min(total, stream.frames_done + chunk_frames)
        input_end = min(total, end + self.right_frames)
        # Past the end of input, a chunk uses what there is (as whole-utterance features
        # do: zero padding after the last sample); the last chunk is always short.
        needs_end = self.geometry.samples_needed(input_end) > stream.samples_received
        return end, needs_end, input_end, needs_end and end >= total

    def _chunk(self, stream: StreamAudio, end_frame: int, final: bool, input_end: int) -> tuple[torch.Tensor, int]:
        src = self.front_end.chunk(stream.buffer, stream.frames_done, input_end, final, stream.buffer_offset)
        self._drop_old_samples(stream, end_frame)
        return src, src.shape[1]

    def _drop_old_samples(self, stream: StreamAudio, end_frame: int) -> None:
        """Drop samples no future chunk reads."""
        keep_from = self.geometry.history_start(end_frame)
        if keep_from > stream.buffer_offset:
            stream.buffer = stream.buffer[:, keep_from - stream.buffer_offset :]
            stream.buffer_offset = keep_from

    def ready_samples(self, chunk_index: int, end_frame: int, final: bool, chunk_frames: int,
                      total_samples: int) -> int:
        return total_samples if final else min(total_samples,
                                               self.geometry.samples_needed(end_frame + self.right_frames))


class WindowPath(ExactPath):
    """``ExactPath``'s windows as fixed-size Fbank windows (``T_w`` frames): the left
    padding of a window that would start before the stream is zeros (its size follows
    from the frames done, see ``streamasr.streaming.step``), a window cut by the
    stream's end is zero-padded on the right and its valid frames counted."""

    def __init__(self, front_end: FrontEnd | FbankFrontEnd, chunk_frames: int, right_frames: int = 0):
        super().__init__(front_end, right_frames)
        self.window_frames = self.geometry.subsampling * (chunk_frames + right_frames
                                                          + self.geometry.margin_frames) + 1

    def _chunk(self, stream: StreamAudio, end_frame: int, final: bool, input_end: int) -> tuple[torch.Tensor, int]:
        audio = self._audio(stream, end_frame, final, input_end)
        return self._window(stream, self.front_end.compute_features(audio.float()), end_frame)

    def _audio(self, stream: StreamAudio, end_frame: int, final: bool, input_end: int) -> torch.Tensor:
        """The samples a chunk's Fbank window (chunk and look-ahead) is computed from."""
        begin = self.geometry.history_start(stream.frames_done)
        stop = stream.samples_received if final else self.geometry.samples_needed(input_end)
        return stream.buffer[:, begin - stream.buffer_offset : stop - stream.buffer_offset]

    def _window(self, stream: StreamAudio, feats: torch.Tensor, end_frame: int) -> tuple[torch.Tensor, int]:
        """The chunk's fixed-size window from its features ``[B, n, n_mels]``; drops the
        samples no later chunk reads."""
        missing = self.geometry.margin_frames - min(self.geometry.margin_frames, stream.frames_done)
        left = self.geometry.subsampling * missing
        right = self.window_frames - left - feats.shape[1]
        if right < 0:
            raise AssertionError(f"window of {feats.shape[1]} + {left} frames exceeds {self.window_frames}")
        window = torch.nn.functional.pad(feats, (0, 0, left, right))
        self._drop_old_samples(stream, end_frame)
        return window, left + feats.shape[1]

    def next_chunks(self, streams: list[StreamAudio], chunk_frames: int, at_end: list[bool]
                    ) -> list[tuple[torch.Tensor, int, bool] | None]:
        """As ``FeaturePath.next_chunks``, with one Fbank call for all chunks whose audio
        has the same length (every stream past its first chunks, in a server): per-chunk
        calls cost more in Python and torch dispatch than the Fbank itself. The front
        end is computed row by row, so rows equal their single-stream values (the
        matrix product may round differently with the batch size, ~1e-7)."""
        plans = [self._plan(stream, chunk_frames, end) for stream, end in zip(streams, at_end)]
        audio = {row: self._audio(stream, *plan[:3]) for row, (stream, plan) in enumerate(zip(streams, plans))
                 if plan is not None}
        by_length: dict[int, list[int]] = {}
        for row, samples in audio.items():
            by_length.setdefault(samples.shape[1], []).append(row)
        feats = {}
        for rows in by_length.values():
            batch = self.front_end.compute_features(torch.cat([audio[row] for row in rows]).float())
            feats.update((row, batch[index : index + 1]) for index, row in enumerate(rows))
        return [None if plan is None else (*self._window(stream, feats[row], plan[0]), plan[3])
                for row, (stream, plan) in enumerate(zip(streams, plans))]


class StockPath(FeaturePath):
    name = "stock"

    def __init__(self, front_end: FrontEnd):
        super().__init__(front_end)
        self.wrapper = stock_feature_wrapper(front_end.compute_features, front_end.normalize,
                                             _unwrapped(front_end.cnn))
        # Stock features lag the audio by the wrapper's padding (two frames by default).
        self.time_shift_frames = -self.wrapper.get_output_count_per_pad_frame()

    def chunk_samples(self, chunk_frames: int) -> int:
        return (self.wrapper.properties.stride - 1) * chunk_frames

    def new_context(self) -> object:
        return self.wrapper.make_streaming_context()

    def ready(self, stream: StreamAudio, chunk_frames: int) -> bool:
        return stream.buffer.shape[1] >= self.chunk_samples(chunk_frames)

    def chunks(self, stream: StreamAudio, chunk_frames: int) -> Iterator[tuple[torch.Tensor, int, bool]]:
        size = self.chunk_samples(chunk_frames)
        while self.ready(stream, chunk_frames):
            src = self._features(stream, stream.buffer[:, :size], consume=True)
            yield src, src.shape[1], False

    def finish(self, stream: StreamAudio, chunk_frames: int) -> Iterator[tuple[torch.Tensor, int, bool]]:
        size = self.chunk_samples(chunk_frames)
        count = self.wrapper.get_recommended_final_chunk_count(size)
        if stream.buffer.shape[1]:  # the short last chunk, as stock transcribe_file
            src = self._features(stream, stream.buffer, consume=True)
            yield src, src.shape[1], count == 0
        zeros = torch.zeros(stream.buffer.shape[0], size, device=stream.buffer.device)
        for index in range(count):
            src = self._features(stream, zeros, consume=False)
            yield src, src.shape[1], index == count - 1

    def _features(self, stream: StreamAudio, chunk: torch.Tensor, consume: bool) -> torch.Tensor:
        src = self.wrapper(chunk, context=stream.feature_context,
                           lengths=torch.ones(chunk.shape[0], device=chunk.device))
        if src.dim() == 4:
            src = src.flatten(start_dim=2)
        if consume:
            stream.buffer = stream.buffer[:, chunk.shape[1]:]
            stream.buffer_offset += chunk.shape[1]
        return src

    def ready_samples(self, chunk_index: int, end_frame: int, final: bool, chunk_frames: int,
                      total_samples: int) -> int:
        # a chunk runs when its fixed-size block has arrived
        return min(total_samples, (chunk_index + 1) * self.chunk_samples(chunk_frames))


def feature_path(name: str | FeaturePath, front_end: FrontEnd | FbankFrontEnd, window_chunk_frames: int | None = None,
                 right_frames: int = 0) -> FeaturePath:
    """The path called ``name`` (``exact`` or ``stock``) over ``front_end``; with
    ``window_chunk_frames`` the exact path gives fixed-size Fbank windows for that chunk
    size (``WindowPath``); ``right_frames``: look-ahead encoder frames per chunk. A path
    object is returned as it is. ``ConfigError`` for any other name, and for look-ahead
    with the stock path (SpeechBrain's StreamingASR has none)."""
    if isinstance(name, FeaturePath):
        return name
    if name == "exact":
        if window_chunk_frames:
            return WindowPath(front_end, window_chunk_frames, right_frames)
        return ExactPath(front_end, right_frames)
    if name == "stock":
        if right_frames:
            raise ConfigError("--frontend stock streams as SpeechBrain's StreamingASR does, which has no look-ahead "
                              "(right context); use --frontend exact")
        return StockPath(front_end)
    raise ConfigError(f"frontend must be one of {', '.join(FEATURE_PATHS)}, got {name!r}")


def validate_feature_path(name: str) -> str:
    """Check a feature-path name before any work (``ConfigError`` otherwise)."""
    if name not in FEATURE_PATHS:
        raise ConfigError(f"frontend must be one of {', '.join(FEATURE_PATHS)}, got {name!r}")
    return name


__all__ = ["FEATURE_PATHS", "ExactPath", "FeaturePath", "StockPath", "StreamAudio", "WindowPath", "feature_path",
           "validate_feature_path"]
