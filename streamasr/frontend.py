"""Exact chunk-by-chunk feature extraction: Fbank -> normalisation -> CNN front end.

Owns the one place that turns "encoder frames per chunk" into audio samples, and the
windowing that makes streamed encoder inputs equal to whole-utterance ones.

Why not only SpeechBrain's ``StreamingFeatureWrapper``: fed with
``StreamingASR.get_chunk_size_frames`` samples per chunk ((stride - 1) x frames, e.g.
10,224 for 16 frames) its frames slide off the 640-sample training grid, and at the
utterance start it pads differently from whole-utterance Fbank (DESIGN.md, "Known
pitfalls"). Here every chunk is computed from a window of the audio that starts on
the encoder-frame grid with a margin of past samples and ends ``lookahead_samples``
after the chunk, so each encoder frame sees exactly the samples it sees in training:
streamed frames equal whole-utterance frames (tested), including the first chunk.
The cost is recomputing the small margin for each chunk.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from speechbrain.utils.filter_analysis import stack_filter_properties


@dataclasses.dataclass(frozen=True)
class FrontEndGeometry:
    """Sample/frame arithmetic of Fbank + CNN (defaults: 160-sample hop, 4x stride).

    Attributes
    ----------
    hop_samples: Fbank hop (160 samples = 10 ms at 16 kHz).
    frame_samples: samples per encoder frame (640 = 40 ms).
    receptive_samples: samples one encoder frame depends on (1361 by default).
    sample_rate: Hz.
    """

    hop_samples: int
    frame_samples: int
    receptive_samples: int
    sample_rate: int

    @property
    def subsampling(self) -> int:
        return self.frame_samples // self.hop_samples

    @property
    def frame_ms(self) -> float:
        return 1000.0 * self.frame_samples / self.sample_rate

    @property
    def lookahead_samples(self) -> int:
        """Samples needed after the end of a chunk (``frame_samples`` x frames) before
        its last encoder frame can be computed: the feature extractor's look-ahead."""
        half = (self.receptive_samples - 1) // 2
        return max(0, half - (self.frame_samples - 1))

    @property
    def margin_frames(self) -> int:
        """Past encoder frames recomputed with each chunk so no frame sees a window edge."""
        half = (self.receptive_samples - 1) // 2
        return math.ceil(half / self.frame_samples) + 1

    def chunk_samples(self, chunk_frames: int) -> int:
        return chunk_frames * self.frame_samples

    def chunk_ms(self, chunk_frames: int) -> float:
        return chunk_frames * self.frame_ms

    def frames_from_ms(self, chunk_ms: float) -> int:
        """Encoder frames in ``chunk_ms``; raises ValueError unless it is a positive
        multiple of the encoder frame duration."""
        frames = chunk_ms / self.frame_ms
        if chunk_ms <= 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(
                f"chunk size {chunk_ms:g} ms is not a positive multiple of the encoder "
                f"frame ({self.frame_ms:g} ms)"
            )
        return int(round(frames))

    def num_fbank_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_samples  # centred STFT

    def num_encoder_frames(self, num_samples: int) -> int:
        fbank = self.num_fbank_frames(num_samples)
        return -(-fbank // self.subsampling)


def front_end_geometry(compute_features, cnn, sample_rate: int = 16000) -> FrontEndGeometry:
    """Geometry of a SpeechBrain ``Fbank`` followed by a ``ConvolutionFrontEnd``."""
    fbank_props = compute_features.get_filter_properties()
    stacked = stack_filter_properties([fbank_props, cnn.get_filter_properties()])
    return FrontEndGeometry(
        hop_samples=fbank_props.stride,
        frame_samples=stacked.stride,
        receptive_samples=stacked.window_size,
        sample_rate=sample_rate,
    )


class FrontEnd(torch.nn.Module):
    """Fbank -> InputNormalization (frozen statistics) -> CNN, whole or chunked.

    ``forward(wavs, wav_lens)`` gives encoder inputs ``[B, frames, F]`` for whole
    utterances; ``chunk(audio, start_frame, end_frame, final)`` gives the frames
    ``[start_frame, end_frame)`` of a stream from the samples seen so far, identical to
    the corresponding whole-utterance frames.
    """

    def __init__(self, compute_features, normalize, cnn, sample_rate: int = 16000):
        super().__init__()
        self.compute_features = compute_features
        self.normalize = normalize
        self.cnn = cnn
        self.geometry = front_end_geometry(compute_features, cnn, sample_rate)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """wavs ``[B, samples]`` -> ``[B, frames, F]`` (F = CNN channels x freq bins)."""
        # Fbank always runs in float32 (SpeechBrain builds its filter matrix in float32);
        # the rest follows the CNN's dtype.
        feats = self.compute_features(wavs.float())
        feats = feats.to(next(self.cnn.parameters()).dtype)
        feats = self.normalize(feats, wav_lens if wav_lens is not None else torch.ones(len(wavs), device=wavs.device))
        src = self.cnn(feats)
        return src.flatten(start_dim=2) if src.dim() == 4 else src

    def samples_needed(self, end_frame: int) -> int:
        """Samples a stream must have received before frames ``< end_frame`` are exact."""
        return self.geometry.chunk_samples(end_frame) + self.geometry.lookahead_samples

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

    def stock_wrapper(self):
        """SpeechBrain's ``StreamingFeatureWrapper`` over this front end, exactly as an
        exported model's ``fea_streaming_extractor`` builds it (what stock
        ``StreamingASR`` runs). Inexact by design of the wrapper: it expects
        ``(stride - 1) x frames`` samples per chunk, so its frames drift off the
        training grid by one sample per encoder frame (DESIGN.md, "Known pitfalls")."""
        from speechbrain.lobes.features import StreamingFeatureWrapper
        from speechbrain.nnet.containers import LengthsCapableSequential

        properties = stack_filter_properties([self.compute_features, self.cnn])
        module = LengthsCapableSequential(self.compute_features, self.normalize, self.cnn)
        return StreamingFeatureWrapper(module, properties)

    def history_start(self, start_frame: int) -> int:
        """First sample a chunk starting at ``start_frame`` reads (older ones can go)."""
        return max(0, start_frame - self.geometry.margin_frames) * self.geometry.frame_samples

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
