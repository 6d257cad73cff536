"""Exports that take 5-10 s each and are used by one test only (the unit tier shares its
ONNX and sherpa-onnx folders through fixtures): a look-ahead cell for onnxruntime and
for sherpa-onnx, each run against our PyTorch engine, and a sherpa-onnx export forced
for a model on another front end."""

from __future__ import annotations

import json

import pytest
import torch
from speechbrain.dataio.dataio import read_audio

from helpers.common import assert_same_or_near_tie
from streamasr.dct import ChunkConfig
from streamasr.errors import ConfigError
from streamasr.export.onnx import export_onnx
from streamasr.export.sherpa import SherpaEncoder, check_sherpa_folder, export_sherpa_onnx
from streamasr.export.sherpa_check import compare_with_sherpa, load_manifest, sherpa_frames_decoded
from streamasr.streaming import StreamingRecognizer
from streamasr.streaming.backends import make_backend
from streamasr.streaming.onnx import OnnxModel


def test_lookahead_cell_carries_right_context(model, utterances, tmp_path):
    """A look-ahead cell (streamasr.dct): window 4 (C + R + margin) + 1 Fbank frames,
    shift 4 C, ``right_frames`` in the metadata; the ONNX folder alone runs it with the
    look-ahead and gives the PyTorch engine's transcripts."""
    folder = export_onnx(model, tmp_path / "cell", chunk_ms=160, left_chunks=4, right_ms=120).folder
    assert folder.name == "cell"
    meta = json.loads((folder / "export.json").read_text())
    assert (meta["chunk_frames"], meta["right_frames"], meta["right_ms"]) == (4, 3, 120.0)
    assert meta["window_frames"] == 4 * (4 + 3 + meta["margin_frames"]) + 1 and meta["shift_frames"] == 16
    assert max(meta["verified_max_difference"].values()) <= 1e-4
    alone = OnnxModel(folder)
    assert alone.config == ChunkConfig(4, 4, 3)
    config = ChunkConfig(4, 4, 3)
    torch_engine = StreamingRecognizer(model, config)
    onnx_engine = StreamingRecognizer(alone, alone.config, backend=make_backend(alone, config, backend="onnx"))
    agree = 0
    for utt in utterances[:3]:
        ours, _ = torch_engine.transcribe(utt.wav)
        theirs, _ = onnx_engine.transcribe(utt.wav)
        margins = (ours.decoder_state.min_margins[0], theirs.decoder_state.min_margins[0])
        agree += assert_same_or_near_tie(ours.result.tokens, theirs.result.tokens, margins, utt.utt_id)
    assert agree >= 2
    with pytest.raises(ConfigError, match="160 ms chunks with 4 left chunks and 120 ms look-ahead"):
        make_backend(alone, ChunkConfig(4, 4, 0), backend="onnx")


def test_sherpa_onnx_runs_a_lookahead_cell_as_our_engine(kaldi_model, tiny_corpus, wavs, tmp_path):
    """Look-ahead (streamasr.dct) in sherpa-onnx's framing: window 4 (C + R), shift 4 C;
    its own recognizer decodes as our engine with the same look-ahead."""
    folder = export_sherpa_onnx(kaldi_model, tmp_path / "320ms_r160", 320, 4, right_ms=160).folder
    meta = check_sherpa_folder(folder)
    assert (int(meta["window_size"]), int(meta["chunk_shift"])) == (48, 32)
    step = SherpaEncoder(kaldi_model, ChunkConfig(8, 4, 4)).eval()
    fbank = kaldi_model.front_end.compute_features
    wave = read_audio(wavs[0]).float()
    with torch.no_grad():  # whole windows, shifted by 4 C, equal the masked pass with R
        features = fbank.raw(wave[None])
        state, outputs = step.initial_state(1), []
        for begin in range(0, features.shape[1] - step.window_frames + 1, step.shift_frames):
            window = features[:, begin : begin + step.window_frames].transpose(1, 2)
            out, lengths, *state = step(window, torch.tensor([step.window_frames]), *state)
            assert lengths.tolist() == [8]
            outputs.append(out.transpose(1, 2))
        streamed = torch.cat(outputs, dim=1)
        src, frames = kaldi_model.encoder_inputs([wave])
        masked = kaldi_model.encode_features(src, frames, ChunkConfig(8, 4, 4))
    assert torch.allclose(streamed, masked[:, : streamed.shape[1]], atol=1e-4)
    result = compare_with_sherpa(kaldi_model, load_manifest(tiny_corpus / "test_voices.csv"), 320, 4, folder=folder,
                                 right_ms=160)
    assert result["right_ms"] == 160
    for row in result["rows"]:
        assert row["agree"] or row["same_as_tail_padded_engine"], row["id"]
    assert sherpa_frames_decoded(16000, 8, right_frames=4) == 40  # windows of 48 every 32: 5 x 32 + 48 >= 180


def test_a_model_on_another_front_end_is_exported_for_sherpa_onnx_when_forced(model, tmp_path, capsys):
    folder = export_sherpa_onnx(model, tmp_path / "forced", 640, 4, force=True).folder
    assert "exported anyway (--force)" in capsys.readouterr().out
    check_sherpa_folder(folder)
