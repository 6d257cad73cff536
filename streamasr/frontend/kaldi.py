"""A batched torch log-mel front end equal to kaldi-native-fbank with the settings
sherpa-onnx uses for NeMo transducers, so that a model trained on it sees in training
exactly the features sherpa-onnx computes at run time.

Why our own module: neither SpeechBrain nor torchaudio computes these features.
SpeechBrain's ``Fbank`` uses a hamming window, no pre-emphasis, a 400-point FFT, HTK mel
triangles and 10 log10; ``torchaudio.compliance.kaldi.fbank`` is Kaldi's (HTK-style mel
banks, no Slaney option) and runs one utterance at a time; torchaudio's
``MelSpectrogram`` has Slaney banks but no per-frame pre-emphasis and pads differently
at the edges. kaldi-native-fbank itself is C++ over one stream of float samples (no
batch, no GPU). The settings (sherpa-onnx's ``OnlineRecognizerTransducerNeMoImpl``
sets them over knf's defaults):

* 16 kHz, frames of 25 ms every 10 ms, ``snip_edges`` false: frame ``i`` covers samples
  ``[160 i - 120, 160 i + 280)``, an utterance of ``N`` samples has ``(N + 80) // 160``
  frames, and samples outside the signal are mirrored with the edge sample repeated
  (``-1 -> 0``, ``N -> N - 1``);
* per frame: no dither, no DC removal, pre-emphasis 0.97 inside the frame (the first
  sample is scaled by 0.03), periodic Hann window, zero padding to 512, power spectrum
  (257 bins, Nyquist included);
* ``is_librosa`` mel banks: Slaney mel scale, triangles in Hz, Slaney area
  normalisation (``2 / (right - left)``), 0-8000 Hz, 80 bins;
* natural log with a floor of FLT_EPSILON.

``forward`` adds one thing on top: ``log_floor``, a clamp of the log-mel values (default
``ln(1e-5)`` = -11.5, the -50 dB floor of our SpeechBrain Fbank). Kaldi's own floor
(ln FLT_EPSILON = -15.9) turns espeak-ng's digital silence into an outlier cluster that
wrecks the global normaliser (DESIGN.md). sherpa-onnx hands the encoder knf's raw
values, so the exporter puts the same clamp first inside the encoder graph
(``streamasr.export.sherpa``); ``raw`` gives knf's values unclamped.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from speechbrain.utils.filter_analysis import FilterProperties

FLT_EPSILON = float(np.finfo(np.float32).eps)


def slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as knf computes it."""
    hz = np.asarray(hz, dtype=np.float32)
    above = np.float32(15) + np.float32(14.545078505785561) * np.log(np.maximum(hz, 1e-10) / np.float32(1000))
    return np.where(hz <= 1000, hz * np.float32(3) / np.float32(200), above).astype(np.float32)


def slaney_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of ``slaney_mel``."""
    mel = np.asarray(mel, dtype=np.float32)
    above = np.float32(1000) * np.exp((mel - np.float32(15)) * np.float32(0.06875177742094911))
    return np.where(mel <= 15, np.float32(200) / np.float32(3) * mel, above).astype(np.float32)


def librosa_mel_banks(n_mels: int, n_fft: int, sample_rate: int, low_freq: float, high_freq: float) -> torch.Tensor:
    """knf's ``is_librosa`` mel banks ``[n_fft // 2 + 1, n_mels]`` (Slaney scale and
    area normalisation), computed in float32 in knf's order of operations."""
    bins = n_fft // 2 + 1
    bin_width = np.float32(sample_rate) / np.float32(n_fft)
    low, high = slaney_mel(np.float32(low_freq)), slaney_mel(np.float32(high_freq))
    delta = (high - low) / np.float32(n_mels + 1)
    hz = bin_width * np.arange(bins, dtype=np.float32)
    banks = np.zeros((bins, n_mels), dtype=np.float32)
    for mel in range(n_mels):
        left, centre, right = (slaney_hz(low + np.float32(mel + k) * delta) for k in range(3))
        rising = (hz - left) / (centre - left)
        falling = (right - hz) / (right - centre)
        weight = np.where(hz <= centre, rising, falling) * (np.float32(2) / (right - left))
        banks[:, mel] = np.where((hz > left) & (hz < right), weight, 0).astype(np.float32)
    return torch.from_numpy(banks)


class KaldiFbank(torch.nn.Module):
    """kaldi-native-fbank's log-mel features, batched: ``[B, samples]`` -> ``[B, frames,
    n_mels]`` (module docstring for the settings). Not differentiable-by-design concerns
    aside, it is plain torch and runs on any device."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0, preemph_coeff: float = 0.97, low_freq: float = 0.0,
                 high_freq: float = 8000.0, log_floor: float = 1.0e-5):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.frame_length_ms = float(frame_length_ms)
        self.frame_shift_ms = float(frame_shift_ms)
        self.win_length = int(round(sample_rate * frame_length_ms / 1000))
        self.hop_length = int(round(sample_rate * frame_shift_ms / 1000))
        self.n_fft = 1 << (self.win_length - 1).bit_length()  # knf's round_to_power_of_two
        self.preemph_coeff = float(preemph_coeff)
        self.low_freq, self.high_freq = float(low_freq), float(high_freq)
        if not 0 <= self.low_freq < self.high_freq <= sample_rate / 2:
            raise ValueError(f"KaldiFbank: need 0 <= low_freq < high_freq <= {sample_rate / 2:g} Hz, "
                             f"got {low_freq:g} and {high_freq:g}")
        if log_floor <= 0:
            raise ValueError(f"KaldiFbank: log_floor is an energy (> 0), got {log_floor}")
        self.log_floor = float(log_floor)
        window = 0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(self.win_length, dtype=torch.float64)
                                       / self.win_length)  # periodic Hann, as knf's "hann"
        self.register_buffer("window", window.float(), persistent=False)
        banks = librosa_mel_banks(self.n_mels, self.n_fft, self.sample_rate, self.low_freq, self.high_freq)
        self.register_buffer("mel_banks", banks, persistent=False)
        # frame i starts at hop * i + hop // 2 - win // 2 (snip_edges false)
        self.first_sample_offset = self.hop_length // 2 - self.win_length // 2

    # ------------------------------------------------------------------ geometry
    def num_frames(self, num_samples: int) -> int:
        """Frames of an utterance of ``num_samples`` samples (knf, ``snip_edges`` false)."""
        return (num_samples + self.hop_length // 2) // self.hop_length

    @property
    def centre_offset_samples(self) -> int:
        """Where frame ``i``'s window is centred, relative to ``hop x i``: +80 samples
        (SpeechBrain's centred STFT: 0)."""
        return self.first_sample_offset + self.win_length // 2

    def get_filter_properties(self) -> FilterProperties:
        return FilterProperties(window_size=self.win_length, stride=self.hop_length)

    @property
    def floor_value(self) -> float:
        """The clamp ``forward`` applies, in the natural-log domain."""
        return math.log(self.log_floor)

    def settings(self) -> dict:
        """What a runtime must compute (written into exported metadata)."""
        return {
            "kind": "kaldi-native-fbank",
            "sample_rate": self.sample_rate,
            "frame_length_ms": self.frame_length_ms,
            "frame_shift_ms": self.frame_shift_ms,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "n_fft": self.n_fft,
            "window": "hann (periodic)",
            "preemph_coeff": self.preemph_coeff,
            "remove_dc_offset": False,
            "dither": 0.0,
            "snip_edges": False,
            "mel": "librosa (Slaney scale, Slaney norm)",
            "n_mels": self.n_mels,
            "low_freq": self.low_freq,
            "high_freq": self.high_freq,
            "log": "natural, floor FLT_EPSILON",
            "log_floor": self.log_floor,
            "log_floor_value": self.floor_value,
            "normalization": "global, baked into encoder.onnx",
        }

    # ------------------------------------------------------------------ compute
    def frames(self, wavs: torch.Tensor) -> torch.Tensor:
        """The pre-emphasised, windowed frames ``[B, frames, win_length]``."""
        if wavs.dim() == 1:
            wavs = wavs[None]
        num_samples = wavs.shape[1]
        count = self.num_frames(num_samples)
        if num_samples == 0 or count == 0:
            return wavs.new_zeros(wavs.shape[0], 0, self.win_length)
        starts = torch.arange(count, device=wavs.device) * self.hop_length + self.first_sample_offset
        index = starts[:, None] + torch.arange(self.win_length, device=wavs.device)[None, :]
        # mirror with the edge sample repeated (knf's ExtractWindow), repeatedly if a
        # signal is shorter than a frame
        for _ in range(8):
            index = torch.where(index < 0, -index - 1, index)
            index = torch.where(index >= num_samples, 2 * num_samples - 1 - index, index)
            if bool(((index >= 0) & (index < num_samples)).all()):
                break
        frames = wavs[:, index]  # [B, frames, win]
        if self.preemph_coeff:
            previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - self.preemph_coeff * previous
        return frames * self.window

    def raw(self, wavs: torch.Tensor) -> torch.Tensor:
        """knf's log-mel values (floor FLT_EPSILON): ``[B, frames, n_mels]``."""
        frames = self.frames(wavs.float())
        spectrum = torch.fft.rfft(frames, n=self.n_fft, dim=-1)
        power = spectrum.real.square() + spectrum.imag.square()
        mel = power @ self.mel_banks
        return torch.log(mel.clamp(min=FLT_EPSILON))

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Log-mel features clamped at ``log_floor``: ``[B, frames, n_mels]``."""
        return self.raw(wavs).clamp(min=self.floor_value)


class LogFloor(torch.nn.Module):
    """The ``log_floor`` clamp of ``KaldiFbank`` as a graph op (first in the sherpa-onnx
    encoder, which is fed knf's unclamped values)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = float(value)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return feats.clamp(min=self.value)


__all__ = ["FLT_EPSILON", "KaldiFbank", "LogFloor", "librosa_mel_banks", "slaney_hz", "slaney_mel"]
