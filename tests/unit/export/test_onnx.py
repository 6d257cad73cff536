"""ONNX export and the onnxruntime backend: the graphs equal PyTorch per module with
states carried over 5 chunks, the engine on onnxruntime gives the PyTorch engine's
events, the id remapping (blank last) round-trips, and bad folders and requests are
named."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from helpers.common import assert_same_or_near_tie
from streamasr.errors import ConfigError, ExportError, ModelLoadError
from streamasr.export.onnx import cell_name, export_onnx, verify_onnx_folder
from streamasr.model import load_model
from streamasr.streaming import StreamingRecognizer
from streamasr.streaming.backends import make_backend
from streamasr.streaming.onnx import (
    OnnxBackend,
    OnnxFolder,
    OnnxModel,
    model_id_order,
    to_exported_ids,
    to_model_ids,
)


def test_folder_files_metadata_and_tokens(onnx_folder, model):
    assert sorted(p.name for p in onnx_folder.iterdir()) == [
        "decoder.onnx", "encoder.onnx", "export.json", "joiner.onnx", "tokens.txt"]
    meta = json.loads((onnx_folder / "export.json").read_text())
    vocab = model.tokenizer.get_piece_size()
    assert (meta["chunk_frames"], meta["chunk_ms"], meta["left_chunks"]) == (8, 320.0, 2)
    assert meta["window_frames"] == 4 * (8 + meta["margin_frames"]) + 1 and meta["shift_frames"] == 32
    assert meta["vocab_size"] == vocab and meta["blank_id"] == vocab - 1 and meta["model_blank_id"] == 0
    assert meta["front_end"]["kind"] == "speechbrain-fbank" and meta["front_end"]["n_mels"] == 80
    assert all(value <= 1e-4 for value in meta["verified_max_difference"].values())
    tokens = (onnx_folder / "tokens.txt").read_text().splitlines()
    assert tokens[-1] == f"<blk> {vocab - 1}"
    assert tokens[0] == f"{model.tokenizer.id_to_piece(1)} 0"
    onnx = OnnxFolder(onnx_folder)  # the metadata is in every graph as well
    assert onnx.sessions["encoder"].get_modelmeta().custom_metadata_map["chunk_frames"] == "8"
    assert [i.name for i in onnx.sessions["encoder"].get_inputs()] == [
        "audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len"]


def test_each_graph_equals_pytorch_with_states_carried_over_chunks(onnx_folder, model):
    worst = verify_onnx_folder(onnx_folder, model, tolerance=1e-4, chunks=5, seed=3)
    assert set(worst) == {"encoder", "decoder", "joiner"} and max(worst.values()) <= 1e-4


def test_the_engine_on_onnxruntime_gives_the_pytorch_engines_events(onnx_folder, model, utterances):
    config = DynChunkTrainConfig(8, 2)
    torch_engine = StreamingRecognizer(model, config)
    onnx_engine = StreamingRecognizer(model, config, backend=OnnxBackend(OnnxFolder(onnx_folder)))
    assert (torch_engine.backend.name, onnx_engine.backend.name) == ("torch", "onnx")
    identical = 0
    for utt in utterances[:4]:
        ours, ours_out = torch_engine.transcribe(utt.wav)
        theirs, theirs_out = onnx_engine.transcribe(utt.wav)
        margins = (ours.decoder_state.min_margins[0], theirs.decoder_state.min_margins[0])
        if not assert_same_or_near_tie(ours.result.tokens, theirs.result.tokens, margins, utt.utt_id):
            continue  # ONNX and PyTorch round differently: a reported near-tie may flip
        identical += 1
        assert theirs.result.text == ours.result.text
        for a, b in zip(ours_out, theirs_out):
            assert [(e.token_id, e.frame, e.start_ms) for e in a.tokens] == \
                [(e.token_id, e.frame, e.start_ms) for e in b.tokens]
            assert [e.confidence for e in a.tokens] == pytest.approx([e.confidence for e in b.tokens], abs=1e-4)
    assert identical >= 2


def test_token_ids_round_trip_with_blank_last():
    order = model_id_order(6, 0)
    assert order.tolist() == [1, 2, 3, 4, 5, 0]
    ids = torch.arange(6)
    assert to_exported_ids(ids, 6, 0).tolist() == [5, 0, 1, 2, 3, 4]
    assert torch.equal(to_model_ids(to_exported_ids(ids, 6, 0), 6, 0), ids)
    assert torch.equal(order[to_exported_ids(ids, 6, 0)], ids)


def test_bad_onnx_folders_are_named(onnx_folder, tmp_path):
    missing = tmp_path / "missing"
    shutil.copytree(onnx_folder, missing)
    (missing / "joiner.onnx").unlink()
    with pytest.raises(ModelLoadError, match="is missing joiner.onnx"):
        OnnxFolder(missing)
    tokens = tmp_path / "tokens"
    shutil.copytree(onnx_folder, tokens)
    (tokens / "tokens.txt").write_text("\n".join((tokens / "tokens.txt").read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ModelLoadError, match=r"tokens.txt has \d+ tokens, the model \d+"):
        OnnxFolder(tokens)
    meta = tmp_path / "meta"
    shutil.copytree(onnx_folder, meta)
    data = json.loads((meta / "export.json").read_text())
    data["window_frames"] += 4
    (meta / "export.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="input audio_signal is .* export.json says"):
        OnnxFolder(meta)
    other = tmp_path / "other"
    shutil.copytree(onnx_folder, other)
    data = json.loads((other / "export.json").read_text())
    data["checkpoint"] = "0" * 16
    (other / "export.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="was exported from checkpoint"):
        OnnxFolder(other)


def test_what_onnx_cannot_run_is_refused_before_any_work(model, tmp_path):
    with pytest.raises(ConfigError, match="needs a finite left context"):
        export_onnx(model, tmp_path / "x", chunk_ms=320, left_chunks=None)
    with pytest.raises(ConfigError, match="chunk size 100 ms is not a positive multiple"):
        export_onnx(model, tmp_path / "x", chunk_ms=100, left_chunks=2)
    with pytest.raises(ConfigError, match="--backend onnx needs a finite left context"):
        make_backend(model, DynChunkTrainConfig(8, None), "exact", "onnx")
    with pytest.raises(ConfigError, match="exact front end only"):
        make_backend(model, DynChunkTrainConfig(8, 2), "stock", "onnx")
    with pytest.raises(ConfigError, match="--int8 needs --backend onnx"):
        make_backend(model, DynChunkTrainConfig(8, 2), "exact", "torch", int8=True)
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "notes.txt").write_text("mine")  # an empty folder is simply filled
    with pytest.raises(ExportError, match="already exists"):
        export_onnx(model, tmp_path / "exists", chunk_ms=320, left_chunks=2)
    assert not (tmp_path / "x").exists()




def test_an_onnx_folder_alone_runs_its_own_cell_like_the_model_folder(onnx_folder, model, utterances):
    alone = OnnxModel(onnx_folder)  # no PyTorch weights: Fbank from the metadata, tokens.txt
    assert (alone.config.chunk_size, alone.config.left_context_size) == (8, 2)
    for token in range(1, model.tokenizer.get_piece_size()):  # the blank (0) is "<blk>" in tokens.txt
        assert alone.tokenizer.id_to_piece(token) == model.tokenizer.id_to_piece(token)
    engine = StreamingRecognizer(alone, alone.config)
    reference = StreamingRecognizer(model, DynChunkTrainConfig(8, 2))
    assert engine.backend.name == "onnx"
    identical = 0
    for utt in utterances[:3]:
        ours, _ = reference.transcribe(utt.wav)
        theirs, _ = engine.transcribe(utt.wav)
        margins = (ours.decoder_state.min_margins[0], theirs.decoder_state.min_margins[0])
        if assert_same_or_near_tie(ours.result.tokens, theirs.result.tokens, margins, utt.utt_id):
            identical += 1
            assert theirs.result.text == ours.result.text
            assert alone.decode_tokens(theirs.result.tokens) == model.decode_tokens(ours.result.tokens)
    assert identical >= 2
    with pytest.raises(ConfigError, match="runs 320 ms chunks with 2 left chunks .* asked 640 ms / 4"):
        make_backend(alone, DynChunkTrainConfig(16, 4), "exact", "onnx")
    with pytest.raises(ModelLoadError, match="is an ONNX folder: `streamasr transcribe` runs it"):
        load_model(onnx_folder)


def test_an_onnx_folder_with_another_front_end_is_refused(onnx_folder, tmp_path):
    other = tmp_path / "kaldi"
    shutil.copytree(onnx_folder, other)
    data = json.loads((other / "export.json").read_text())
    data["front_end"]["kind"] = "torchaudio-mfcc"
    (other / "export.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="front end 'torchaudio-mfcc'; this runtime computes 'speechbrain-fbank' "
                       "and 'kaldi-native-fbank'"):
        OnnxModel(other)
    data["front_end"]["kind"] = "kaldi-native-fbank"  # with SpeechBrain's settings
    (other / "export.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="kaldi-native-fbank front end lacks frame_length_ms"):
        OnnxModel(other)


def test_evaluate_on_onnx_refuses_unlimited_left_context_before_any_work(random_model_folder, tiny_corpus, tmp_path):
    from streamasr.engine import EngineSpec
    from streamasr.evaluate import Grid, SweepOptions, evaluate

    with pytest.raises(ConfigError, match="--backend onnx needs finite left contexts"):
        evaluate(str(random_model_folder), str(tiny_corpus / "test_voices.csv"), str(tmp_path / "out"),
                 Grid(["320"], left_values=["2", "unlimited"]), EngineSpec(backend="onnx"),
                 SweepOptions(progress=False))
    assert not (tmp_path / "out").exists()


def test_a_lookahead_off_the_frame_grid_is_refused(model, tmp_path):
    assert cell_name(160, 4, right_ms=120) == "160ms_left4_right120ms"
    with pytest.raises(ConfigError, match="look-ahead 50 ms is not 0 or a positive multiple of the encoder frame"):
        export_onnx(model, tmp_path / "bad", chunk_ms=160, left_chunks=4, right_ms=50)
