"""Export for sherpa-onnx: the encoder in sherpa-onnx's framing equals the masked
simulation; the folder meets the contract sherpa-onnx's NeMo path reads; sherpa-onnx's
own recognizer decodes it as our engine does (every difference is the end of the
stream); bad models and folders are refused with their reason."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from speechbrain.dataio.dataio import read_audio
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.errors import ConfigError, ExportError, ModelLoadError
from streamasr.export import export
from streamasr.export.sherpa import (
    SherpaEncoder,
    check_sherpa_folder,
    export_sherpa_onnx,
    sherpa_decode,
    sherpa_recognizer,
)
from streamasr.export.sherpa_check import compare_with_sherpa, load_manifest, sherpa_frames_decoded
from streamasr.streaming.onnx import OnnxModel


@pytest.fixture(scope="module")
def sherpa_folder(kaldi_model, tmp_path_factory):
    return export_sherpa_onnx(kaldi_model, tmp_path_factory.mktemp("sherpa") / "640ms", 640, 4).folder


@pytest.mark.parametrize("chunk, left", [(16, 4), (4, 1), (2, 0), (1, 2)])
def test_encoder_in_sherpa_framing_equals_the_masked_simulation(kaldi_model, wavs, chunk, left):
    """Windows of 4C feature frames from the stream start, no left padding, the CNN's
    history in the cache: every whole chunk equals the training-time masked encoder."""
    config = DynChunkTrainConfig(chunk, left)
    step = SherpaEncoder(kaldi_model, config).eval()
    fbank = kaldi_model.front_end.compute_features
    for path in wavs[:2]:
        wave = read_audio(path).float()
        with torch.no_grad():
            features = fbank.raw(wave[None])  # kaldi-native-fbank's values (tested equal elsewhere)
            state, outputs = step.initial_state(1), []
            for begin in range(0, features.shape[1] - step.window_frames + 1, step.window_frames):
                window = features[:, begin : begin + step.window_frames].transpose(1, 2)
                out, lengths, *state = step(window, torch.tensor([step.window_frames]), *state)
                assert lengths.tolist() == [chunk]
                outputs.append(out.transpose(1, 2))
            streamed = torch.cat(outputs, dim=1)
            src, frames = kaldi_model.encoder_inputs([wave])
            masked = kaldi_model.encode_features(src, frames, config)
        assert streamed.shape[1] >= masked.shape[1] - chunk  # all whole chunks
        assert torch.allclose(streamed, masked[:, : streamed.shape[1]], atol=1e-4)


def test_folder_meets_the_contract(sherpa_folder, kaldi_model):
    meta = check_sherpa_folder(sherpa_folder)
    vocab = kaldi_model.tokenizer.get_piece_size()
    assert int(meta["vocab_size"]) == vocab - 1
    assert int(meta["window_size"]) == int(meta["chunk_shift"]) == 64  # 16 encoder frames x 4
    assert int(meta["subsampling_factor"]) == 4 and meta["normalize_type"] == ""
    assert [int(meta[f"cache_last_time_dim{i}"]) for i in (1, 2, 3)] == [2, 32, 15]  # 1 layer + the history slot
    assert [int(meta[f"cache_last_channel_dim{i}"]) for i in (1, 2, 3)] == [1, 64, 32]
    lines = (sherpa_folder / "tokens.txt").read_text().splitlines()
    assert len(lines) == vocab and lines[-1] == f"<blk> {vocab - 1}"
    decoder = onnx.load(str(sherpa_folder / "decoder.onnx"))
    assert [o.name for o in decoder.graph.input] == ["targets", "target_length", "states_h", "states_c"]
    assert len(decoder.graph.output) == 4  # > 1 output: sherpa-onnx's stateful NeMo path
    saved = json.loads((sherpa_folder / "export.json").read_text())
    assert set(saved["verified_max_difference"]) == {"encoder", "decoder", "joiner"}
    assert max(saved["verified_max_difference"].values()) < 1e-4
    assert saved["front_end"]["kind"] == "kaldi-native-fbank"


def test_sherpa_onnx_recognizer_decodes_as_our_engine(sherpa_folder, kaldi_model, tiny_corpus):
    """sherpa-onnx's own OnlineRecognizer on the folder: where its transcript differs
    from our engine's, our engine on the tail-padded audio, cut where sherpa-onnx
    stopped, gives sherpa-onnx's tokens exactly (the difference is the stream's end)."""
    utterances = load_manifest(tiny_corpus / "test_voices.csv")
    result = compare_with_sherpa(kaldi_model, utterances, 640, 4, folder=sherpa_folder)
    assert result["utterances"] == len(utterances) == 4
    for row in result["rows"]:
        assert len(row["sherpa"]) > 20, "vacuous: the decisive random model emits many tokens"
        assert row["agree"] or row["same_as_tail_padded_engine"], row["id"]
    assert result["explained_by_tail"] == result["differing"]


def test_tail_padding_frame_arithmetic():
    # 1 s + 0.8 s = 28,800 samples = 180 feature frames; windows of 64 run while one
    # more frame is ready: 2 windows (64 + 64 < 180, 128 + 64 >= 180)
    assert sherpa_frames_decoded(16000, 16) == 32
    assert sherpa_frames_decoded(16000, 4) == 44  # 11 windows of 16 frames (11 x 16 + 16 = 192 >= 180)


def test_refuses_a_model_trained_on_another_front_end(model, tmp_path):
    with pytest.raises(ExportError, match=r"speechbrain.lobes.features.Fbank.*kaldi-native-fbank.*--force"):
        export_sherpa_onnx(model, tmp_path / "refused", 640, 4)
    assert not (tmp_path / "refused").exists()  # --force exports it anyway: tests/e2e/test_lookahead_exports.py


def test_bad_folders_are_named(sherpa_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(sherpa_folder, broken)
    lines = (broken / "tokens.txt").read_text().splitlines()
    (broken / "tokens.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ModelLoadError, match=r"tokens.txt has \d+ lines; the encoder's vocab_size"):
        check_sherpa_folder(broken)
    (broken / "tokens.txt").write_text("\n".join([lines[-1].replace("<blk>", "x")] + lines[:-1]) + "\n")
    with pytest.raises(ModelLoadError, match="line 1: expected '<piece> 0'"):
        check_sherpa_folder(broken)
    swapped = [lines[-1].split()[0] + " 0"] + [f"{line.split()[0]} {i + 1}" for i, line in enumerate(lines[:-1])]
    (broken / "tokens.txt").write_text("\n".join(swapped) + "\n")
    with pytest.raises(ModelLoadError, match="the last id must be <blk>"):
        check_sherpa_folder(broken)
    (broken / "tokens.txt").unlink()
    with pytest.raises(ModelLoadError, match="missing tokens.txt"):
        check_sherpa_folder(broken)
    with pytest.raises(ModelLoadError, match="missing tokens.txt"):
        sherpa_recognizer(broken)


def test_chunks_sherpa_framing_cannot_reproduce_are_refused(kaldi_model, tmp_path):
    with pytest.raises(ConfigError, match="500"):  # not a whole number of 40 ms encoder frames
        export_sherpa_onnx(kaldi_model, tmp_path / "x", 500, 4)
    with pytest.raises(ConfigError, match="finite left context"):
        export_sherpa_onnx(kaldi_model, tmp_path / "x", 640, None)
    assert not (tmp_path / "x").exists()


def test_blank_named_like_a_piece_is_refused(kaldi_model, tmp_path, monkeypatch):
    real = kaldi_model.tokenizer.id_to_piece
    monkeypatch.setattr(kaldi_model.tokenizer, "id_to_piece", lambda i: "<blk>" if i == 3 else real(i))
    with pytest.raises(ExportError, match="piece 3 of the tokenizer is named <blk>"):
        export_sherpa_onnx(kaldi_model, tmp_path / "x", 640, 4)


def test_other_runtimes_refuse_what_they_cannot_run(sherpa_folder, kaldi_model_folder, tmp_path):
    with pytest.raises(ModelLoadError, match="exported for sherpa-onnx"):
        OnnxModel(sherpa_folder)
    with pytest.raises(ExportError, match=r"KaldiFbank .*stock SpeechBrain cannot build.*--target sherpa-onnx"):
        export(kaldi_model_folder, tmp_path / "stock")
    assert not (tmp_path / "stock").exists()


def test_sherpa_decode_handles_batches_and_empty_audio(sherpa_folder):
    recognizer = sherpa_recognizer(sherpa_folder)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(16000 * n // 4).astype(np.float32) * 0.1 for n in (1, 2, 3)] + \
        [np.zeros(0, dtype=np.float32)]
    alone = [sherpa_decode(recognizer, [w])[0]["text"] for w in waves]
    together = [r["text"] for r in sherpa_decode(recognizer, waves, batch=4)]
    assert together == alone


def test_check_sherpa_refuses_a_chunk_off_the_grid_before_reading_audio(kaldi_model, tmp_path):
    from streamasr.export.sherpa_report import SherpaCheckOptions, run_check

    with pytest.raises(ConfigError, match="chunk size 100 ms is not a positive multiple"):
        run_check(kaldi_model, tmp_path / "missing.csv", SherpaCheckOptions(chunk_ms=[640, 100]))
    with pytest.raises(ConfigError, match="look-ahead 30 ms"):
        run_check(kaldi_model, tmp_path / "missing.csv", SherpaCheckOptions(right_ms=30))


def test_check_sherpa_report_writes_its_markdown_and_json(tmp_path):
    from streamasr.export.sherpa_report import SherpaReport

    report = SherpaReport("| table |\n", [{"chunk_ms": 640.0, "rows": []}], [{"streams": 2}])
    report.write(tmp_path / "out")
    assert (tmp_path / "out" / "sherpa_check.md").read_text() == "| table |\n"
    data = json.loads((tmp_path / "out" / "sherpa_check.json").read_text())
    assert data == {"comparisons": [{"chunk_ms": 640.0, "rows": []}], "load": [{"streams": 2}]}
