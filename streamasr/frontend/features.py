"""The front end: Fbank -> InputNormalization -> CNN, whole utterances or exact chunks.

``FrontEnd`` is the ONE definition of the front end: training (``TransducerBrain``),
inference (``AsrModel``, the streaming engine) and the stock-SpeechBrain wrapper that
exported folders use (``streamasr.frontend.stock``) are all built from it, from the
same three recipe keys (``KEYS.front_end``), so training and inference features cannot
drift apart.

Exact chunks, and why not only SpeechBrain's ``StreamingFeatureWrapper``: fed with
``StreamingASR.get_chunk_size_frames`` samples per chunk ((stride - 1) x frames, e.g.
10,224 for 16 frames) its frames slide off the 640-sample training grid, and at the
utterance start it pads differently from whole-utterance Fbank (DESIGN.md, "Known
pitfalls"). ``FrontEnd.chunk`` computes every chunk from a window of the audio that
starts on the encoder-frame grid with a margin of past samples and ends
``lookahead_samples`` after the chunk, so each encoder frame sees exactly the samples it
sees in training: streamed frames equal whole-utterance frames (tested), including the
first chunk. The cost is recomputing the small margin for each chunk.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

import torch
from speechbrain.lobes.features import StreamingFeatureWrapper

from streamasr.errors import ConfigError
from streamasr.frontend.geometry import FrontEndGeometry, front_end_geometry
from streamasr.frontend.stock import stock_feature_wrapper
from streamasr.keys import KEYS
from streamasr.units import SAMPLE_RATE


class FbankFrontEnd:
    """The Fbank and the geometry of a front end whose normaliser and CNN run elsewhere
    (inside an ONNX encoder): what ``WindowPath`` needs to cut a stream into windows."""

    def __init__(self, compute_features: torch.nn.Module, geometry: FrontEndGeometry):
        self.compute_features = compute_features
        self.geometry = geometry


def _unwrapped(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (itself otherwise)."""
    return getattr(module, "module", module)


class FrontEnd(torch.nn.Module):
    """Fbank -> InputNormalization -> CNN, whole or chunked.

    ``forward(wavs, wav_lens)`` gives encoder inputs ``[B, frames, F]`` for whole
    utterances (training passes ``epoch`` so the normaliser updates its statistics, and
    a feature ``augment``); ``chunk(audio, start_frame, end_frame, final)`` gives the
    frames ``[start_frame, end_frame)`` of a stream from the samples seen so far,
    identical to the corresponding whole-utterance frames.
    """

    def __init__(self, compute_features, normalize, cnn, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        self.compute_features = compute_features
        self.normalize = normalize
        self.cnn = cnn
        self.geometry: FrontEndGeometry = front_end_geometry(compute_features, _unwrapped(cnn), sample_rate)

    @classmethod
    def from_hparams(cls, hparams: Mapping, modules: Optional[Mapping] = None) -> "FrontEnd":
        """The front end of a recipe: ``compute_features`` from ``hparams``, the
        normaliser and CNN from ``modules`` (default: ``hparams["modules"]``; in
        training, the Brain's possibly DDP-wrapped modules)."""
        modules = hparams["modules"] if modules is None else modules
        missing = [key for key in KEYS.front_end[1:] if key not in modules]
        if KEYS.features not in hparams or missing:
            raise ConfigError(f"the recipe lacks front-end key(s) "
                              f"{', '.join(([KEYS.features] if KEYS.features not in hparams else []) + missing)}")
        return cls(hparams[KEYS.features], modules[KEYS.normalize], modules[KEYS.cnn],
                   hparams.get(KEYS.sample_rate, SAMPLE_RATE))

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, epoch: Optional[int] = None,
                augment: Optional[Callable] = None) -> torch.Tensor:
        """wavs ``[B, samples]`` (relative lengths ``wav_lens [B]``, default all 1) ->
        ``[B, frames, F]`` (F = CNN channels x freq bins).

        ``epoch``: passed to the normaliser (in train mode it updates its statistics
        until its ``update_until_epoch``). ``augment``: a feature augmentation
        ``(feats, wav_lens) -> (feats, wav_lens)`` applied after normalisation
        (training batches only)."""
        if wav_lens is None:
            wav_lens = torch.ones(len(wavs), device=wavs.device)
        # Fbank always runs in float32 (SpeechBrain builds its filter matrix in float32);
        # the rest follows the CNN's dtype.
        feats = self.compute_features(wavs.float())
        feats = feats.to(next(self.cnn.parameters()).dtype)
        feats = self.normalize(feats, wav_lens, epoch=epoch) if epoch is not None else self.normalize(feats, wav_lens)
        if augment is not None:
            feats, _ = augment(feats, wav_lens)
        src = self.cnn(feats)
        return src.flatten(start_dim=2) if src.dim() == 4 else src

    def samples_needed(self, end_frame: int) -> int:
        """Samples a stream must have received before frames ``< end_frame`` are exact."""
        return self.geometry.samples_needed(end_frame)

    def history_start(self, start_frame: int) -> int:
        """First sample a chunk starting at ``start_frame`` reads (older ones can go)."""
        return self.geometry.history_start(start_frame)

    def chunk(
        self,
        audio: torch.Tensor,
        start_frame: int,
        end_frame: int,
        final: bool,
        offset_samples: int = 0,
    ) -> torch.Tensor:
        """Encoder input frames ``[start_frame, end_frame)`` of a stream: ``[B, n, F]``.

        audio: ``[B, samples]``, the stream's samples from ``offset_samples`` on; it
        must reach back to ``history_start(start_frame)`` and, unless ``final`` (end of
        stream), forward to ``samples_needed(end_frame)``.
        """
        first = max(0, start_frame - self.geometry.margin_frames)
        begin = self.history_start(start_frame)
        if begin < offset_samples:
            raise ValueError(f"chunk needs samples from {begin}, buffer starts at {offset_samples}")
        stop = offset_samples + audio.shape[1]
        if not final:
            needed = self.samples_needed(end_frame)
            if stop < needed:
                raise ValueError(f"chunk needs {needed} samples, stream has {stop}")
            stop = needed
        window = audio[:, begin - offset_samples : stop - offset_samples]
        frames = self.forward(window)
        return frames[:, start_frame - first : end_frame - first]

    @torch.no_grad()
    def chunk_by_chunk(self, wav: torch.Tensor, chunk_frames: int) -> torch.Tensor:
        """Reference loop: the encoder inputs of ``wav`` ``[B, samples]`` computed one
        chunk of ``chunk_frames`` at a time, each from only the samples a live stream
        would hold then. Equals ``forward(wav)`` (tested)."""
        total = self.geometry.num_encoder_frames(wav.shape[1])
        pieces = []
        for start in range(0, total, chunk_frames):
            end = min(total, start + chunk_frames)
            final = self.samples_needed(end) >= wav.shape[1]
            offset = self.history_start(start)
            available = wav[:, offset : None if final else self.samples_needed(end)]
            pieces.append(self.chunk(available, start, end, final, offset_samples=offset))
        return torch.cat(pieces, dim=1)

    def stock_wrapper(self) -> StreamingFeatureWrapper:
        """SpeechBrain's ``StreamingFeatureWrapper`` over this front end, as an exported
        folder builds it (``streamasr.frontend.stock``)."""
        return stock_feature_wrapper(self.compute_features, self.normalize, _unwrapped(self.cnn))
