"""Sample / frame arithmetic of the front end (Fbank hop, CNN stride, receptive field).

Owns the one place that turns "encoder frames per chunk" into audio samples and back.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from speechbrain.utils.filter_analysis import stack_filter_properties

from streamasr.units import SAMPLE_RATE, chunk_frames_from_ms, right_frames_from_ms


@dataclasses.dataclass(frozen=True)
class FrontEndGeometry:
    """Sample/frame arithmetic of Fbank + CNN (defaults: 160-sample hop, 4x stride).

    Attributes
    ----------
    hop_samples: Fbank hop (160 samples = 10 ms at 16 kHz).
    frame_samples: samples per encoder frame (640 = 40 ms).
    receptive_samples: samples one encoder frame depends on (1361 by default).
    sample_rate: Hz.
    centre_offset_samples: where Fbank frame ``i`` is centred relative to ``hop x i``
        (0 for SpeechBrain's centred STFT, +80 for kaldi-native-fbank's frames).
    kaldi_frames: Fbank frame count ``(N + hop / 2) // hop`` (kaldi, ``snip_edges``
        false) instead of the centred STFT's ``1 + N // hop``.
    """

    hop_samples: int
    frame_samples: int
    receptive_samples: int
    sample_rate: int
    centre_offset_samples: int = 0
    kaldi_frames: bool = False

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
        return max(0, half + self.centre_offset_samples - (self.frame_samples - 1))

    @property
    def lookahead_ms(self) -> float:
        return 1000.0 * self.lookahead_samples / self.sample_rate

    @property
    def margin_frames(self) -> int:
        """Past encoder frames recomputed with each chunk so no frame sees a window edge."""
        half = (self.receptive_samples - 1) // 2
        return math.ceil(max(0, half - self.centre_offset_samples) / self.frame_samples) + 1

    def samples_needed(self, end_frame: int) -> int:
        """Samples a stream must have received before frames ``< end_frame`` are exact."""
        return self.chunk_samples(end_frame) + self.lookahead_samples

    def history_start(self, start_frame: int) -> int:
        """First sample a chunk starting at ``start_frame`` reads (older ones can go)."""
        return max(0, start_frame - self.margin_frames) * self.frame_samples

    def chunk_samples(self, chunk_frames: int) -> int:
        return chunk_frames * self.frame_samples

    def chunk_ms(self, chunk_frames: int) -> float:
        return chunk_frames * self.frame_ms

    def frames_from_ms(self, chunk_ms: float) -> int:
        """Encoder frames in ``chunk_ms``; raises ``ConfigError`` (a ``ValueError``)
        unless it is a positive multiple of the encoder frame duration."""
        return chunk_frames_from_ms(chunk_ms, self.frame_ms)

    def right_frames_from_ms(self, right_ms: float) -> int:
        """Look-ahead encoder frames in ``right_ms`` (0 allowed); ``ConfigError`` off the grid."""
        return right_frames_from_ms(right_ms, self.frame_ms)

    def num_fbank_frames(self, num_samples: int) -> int:
        if self.kaldi_frames:
            return (num_samples + self.hop_samples // 2) // self.hop_samples
        return 1 + num_samples // self.hop_samples  # centred STFT

    def num_encoder_frames(self, num_samples: int) -> int:
        fbank = self.num_fbank_frames(num_samples)
        return -(-fbank // self.subsampling)


def front_end_geometry(compute_features: torch.nn.Module, cnn: torch.nn.Module, sample_rate: int = SAMPLE_RATE
                       ) -> FrontEndGeometry:
    """Geometry of a SpeechBrain ``Fbank`` (or ``streamasr.frontend.kaldi.KaldiFbank``)
    followed by a ``ConvolutionFrontEnd``."""
    fbank_props = compute_features.get_filter_properties()
    stacked = stack_filter_properties([fbank_props, cnn.get_filter_properties()])
    return FrontEndGeometry(
        hop_samples=fbank_props.stride,
        frame_samples=stacked.stride,
        receptive_samples=stacked.window_size,
        sample_rate=sample_rate,
        centre_offset_samples=int(getattr(compute_features, "centre_offset_samples", 0)),
        kaldi_frames=hasattr(compute_features, "num_frames"),
    )
