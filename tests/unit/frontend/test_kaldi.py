"""The kaldi-native-fbank front end: equal to the kaldi-native-fbank package with
sherpa-onnx's settings (whole and fed in pieces), batched, clamped at its floor,
streamable chunk by chunk, and wired into a recipe by hparams/frontend_kaldi.yaml."""

from __future__ import annotations

import math

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataio import read_audio

from helpers.common import KALDI_YAML, SMALL_YAML
from streamasr.frontend import FrontEnd
from streamasr.frontend.kaldi import FLT_EPSILON, KaldiFbank
from streamasr.training.recipe import check_overrides, merge_overrides


def knf_features(wave: np.ndarray, pieces: list[int] | None = None) -> np.ndarray:
    """kaldi-native-fbank's OnlineFbank as sherpa-onnx configures it for NeMo models."""
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.frame_opts.snip_edges = False
    opts.frame_opts.samp_freq = 16000
    opts.frame_opts.remove_dc_offset = False
    opts.frame_opts.window_type = "hann"
    opts.frame_opts.preemph_coeff = 0.97
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 0
    opts.mel_opts.high_freq = 8000
    opts.mel_opts.is_librosa = True
    fbank = knf.OnlineFbank(opts)
    if pieces is None:
        fbank.accept_waveform(16000, wave.tolist())
    else:
        begin = 0
        for size in pieces:
            fbank.accept_waveform(16000, wave[begin : begin + size].tolist())
            begin += size
        fbank.accept_waveform(16000, wave[begin:].tolist())
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


@pytest.fixture(scope="module")
def speech(wavs) -> list[np.ndarray]:
    return [read_audio(path).numpy().astype(np.float32) for path in wavs[:3]]


def test_equals_kaldi_native_fbank_whole_and_in_pieces(speech):
    fbank = KaldiFbank()
    floor = math.log(1e-5)
    rng = np.random.default_rng(0)
    for wave in speech:
        ours = fbank.raw(torch.from_numpy(wave)[None])[0].numpy()
        whole = knf_features(wave)
        pieces = knf_features(wave, list(rng.integers(1, 3000, size=len(wave) // 1500)))
        assert ours.shape == whole.shape == pieces.shape == (fbank.num_frames(len(wave)), 80)
        speech_values = whole > floor  # at near-zero energy the log floor makes differences meaningless
        assert speech_values.mean() > 0.4
        assert np.abs(ours - whole)[speech_values].max() < 1e-4
        assert np.abs(ours - pieces)[speech_values].max() < 1e-4
        # below the floor both sit at the same clamp once forward's floor is applied
        clamped = fbank(torch.from_numpy(wave)[None])[0].numpy()
        assert np.abs(clamped - np.maximum(whole, floor)).max() < 1e-4


def test_batch_rows_equal_each_alone(speech):
    fbank = KaldiFbank()
    length = min(len(w) for w in speech)
    batch = torch.from_numpy(np.stack([w[:length] for w in speech]))
    together = fbank(batch)
    for row, wave in enumerate(batch):
        assert torch.allclose(together[row], fbank(wave[None])[0], atol=1e-5)


def test_floor_clamps_digital_silence():
    fbank = KaldiFbank()
    silence = torch.zeros(1, 3200)
    assert torch.all(fbank.raw(silence) == math.log(FLT_EPSILON))
    assert torch.allclose(fbank(silence), torch.full((1, 20, 80), math.log(1e-5)))
    assert fbank.floor_value == pytest.approx(-11.5129, abs=1e-4)


def test_geometry_and_frame_count():
    hparams = load_hyperpyyaml(SMALL_YAML.read_text(), {"data_folder": "/nonexistent"})
    fbank = KaldiFbank()
    front_end = FrontEnd(fbank, hparams["normalize"], hparams["CNN"])
    geometry = front_end.geometry
    assert (geometry.hop_samples, geometry.frame_samples, geometry.centre_offset_samples) == (160, 640, 80)
    # encoder frame t reads feature frames 4t-3 .. 4t+3, i.e. samples up to 640 (t + 1) + 120
    assert geometry.lookahead_samples >= 120
    for samples in (0, 79, 80, 239, 240, 16000, 16079, 16080):
        assert geometry.num_fbank_frames(samples) == fbank.num_frames(samples) == (samples + 80) // 160


def test_streamed_chunks_equal_the_whole_utterance():
    hparams = load_hyperpyyaml(SMALL_YAML.read_text(), {"data_folder": "/nonexistent"})
    front_end = FrontEnd(KaldiFbank(), hparams["normalize"], hparams["CNN"])
    generator = torch.Generator().manual_seed(0)
    front_end.train()
    front_end(torch.randn(2, 16000, generator=generator) * 0.1, epoch=1)  # normaliser statistics
    front_end.eval()
    for samples in (5000, 12800, 12920, 48017):
        wav = torch.randn(2, samples, generator=generator) * 0.1
        with torch.no_grad():
            whole = front_end(wav)
            for chunk in (1, 2, 4, 8):
                streamed = front_end.chunk_by_chunk(wav, chunk)
                assert streamed.shape == whole.shape
                assert torch.allclose(streamed, whole, atol=1e-5), (samples, chunk)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="high_freq"):
        KaldiFbank(high_freq=9000)
    with pytest.raises(ValueError, match="log_floor"):
        KaldiFbank(log_floor=0)


def test_override_file_swaps_the_front_end_only():
    overrides = merge_overrides([str(KALDI_YAML)], {"data_folder": "/nonexistent"})
    text = SMALL_YAML.read_text()
    check_overrides(str(SMALL_YAML), text, overrides)
    kaldi = load_hyperpyyaml(text, overrides)
    stock = load_hyperpyyaml(text, {"data_folder": "/nonexistent"})
    assert isinstance(kaldi["compute_features"], KaldiFbank)
    assert kaldi["compute_features"].settings() == KaldiFbank().settings()
    assert type(kaldi["CNN"]) is type(stock["CNN"]) and kaldi["n_mels"] == stock["n_mels"] == 80
