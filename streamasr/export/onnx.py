"""ONNX export (``streamasr export-onnx``) of a streaming model for one (chunk, left
context): ``encoder.onnx``,
``decoder.onnx``, ``joiner.onnx``, ``tokens.txt`` and ``export.json``.

* ``encoder.onnx`` is ``streamasr.streaming.step.StreamingStep`` exported as it is:
  Fbank window ``audio_signal [B, n_mels, T_w]`` + ``length [B]`` + the fixed-shape
  caches in, projected encoder frames ``outputs [B, J, C]`` + ``encoded_lengths`` + the
  next caches out (NeMo's cache-aware port order and names). Normalisation and the CNN
  front end are inside; the Fbank is the runtime's (its settings are in the metadata,
  so a runtime can refuse a model whose front end it does not compute).
* ``decoder.onnx``: one prediction-network step: ``targets`` int32 ``[B, 1]``,
  ``target_length`` int32 ``[B]``, the two LSTM states ``[layers, B, hidden]`` ->
  ``decoder_output [B, J, 1]``, ``target_length_out``, the next states.
* ``joiner.onnx``: ``encoder_output [B, J, 1]`` + ``decoder_output [B, J, 1]`` ->
  ``logits [B, 1, 1, V]``.
* Token ids: blank is the **last** id (sherpa-onnx's and NeMo's convention), remapped
  from our blank 0 inside the graphs (decoder input, joiner output), so the weights are
  untouched; ``tokens.txt`` lists ``piece id`` in that order.

Exporter: torch 2.9's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, needs
``onnxscript``). The TorchScript exporter fails on SpeechBrain's Dynamic Chunk
Convolution (``Unfold``: input size not accessible) and on data-dependent branches; the
dynamo graph is verified numerically against PyTorch (``verify``). Static shapes except
the batch axis.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Optional

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.checkpoints import digest_state
from streamasr.dct import right_frames, with_right_frames
from streamasr.errors import ConfigError
from streamasr.files import check_destination, staged_folder
from streamasr.model import AsrModel
from streamasr.streaming.onnx import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    FORMAT_VERSION,
    JOINER_INPUTS,
    JOINER_OUTPUTS,
    MODEL_TYPES,
    OnnxFolder,
    model_id_order,
    verify_onnx_folder,
)
from streamasr.streaming.step import StreamingStep
from streamasr.units import left_context_label
from streamasr.version import provenance


class OnnxDecoder(torch.nn.Module):
    """One prediction-network step with blank as the last id."""

    def __init__(self, model: AsrModel):
        super().__init__()
        self.embedding = model.decoder.embedding
        self.lstm = model.decoder.lstm
        self.proj = model.decoder.proj
        vocab = model.tokenizer.get_piece_size()
        self.register_buffer("order", model_id_order(vocab, model.blank_id), persistent=False)

    def forward(self, targets: torch.Tensor, target_length: torch.Tensor, states_h: torch.Tensor,
                states_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ours = self.order[targets.long()]  # exported ids (blank last) -> the model's
        output, (h, c) = lstm_step(self.lstm.rnn, self.embedding(ours)[:, 0], states_h, states_c)
        # the targets consumed per row (NeMo's prednet_lengths): always 1 for one step
        consumed = (targets >= 0).sum(dim=1).to(target_length.dtype)
        return self.proj(output).transpose(1, 2), consumed, h, c


def lstm_step(lstm: torch.nn.LSTM, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
              ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One time step of a (stacked, unidirectional) ``torch.nn.LSTM`` written out with
    its weights: ``x [B, E]``, ``h``/``c [layers, B, H]`` -> output ``[B, 1, H]`` and the
    next states. Why: the dynamo exporter's ONNX LSTM with initial states gave wrong
    results here (0.28 off on the demo's prediction network); the written-out gates
    export as plain MatMul/Sigmoid/Tanh and match PyTorch to float rounding."""
    if lstm.bidirectional or lstm.proj_size:
        raise ConfigError("the ONNX decoder supports unidirectional LSTMs without projection")
    hs, cs = [], []
    inputs = x
    for layer in range(lstm.num_layers):
        gates = inputs @ getattr(lstm, f"weight_ih_l{layer}").T + h[layer] @ getattr(lstm, f"weight_hh_l{layer}").T
        if lstm.bias:
            gates = gates + getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
        i, f, g, o = gates.chunk(4, dim=-1)
        cell = torch.sigmoid(f) * c[layer] + torch.sigmoid(i) * torch.tanh(g)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        hs.append(hidden)
        cs.append(cell)
        inputs = hidden
    return inputs[:, None, :], (torch.stack(hs), torch.stack(cs))


class OnnxJoiner(torch.nn.Module):
    """The joiner with its logits in the exported id order (blank last)."""

    def __init__(self, model: AsrModel):
        super().__init__()
        self.joint = model.joiner.joint
        self.classifier = model.joiner.classifier
        vocab = model.tokenizer.get_piece_size()
        self.register_buffer("order", model_id_order(vocab, model.blank_id), persistent=False)

    def forward(self, encoder_output: torch.Tensor, decoder_output: torch.Tensor) -> torch.Tensor:
        enc = encoder_output.transpose(1, 2)[:, :, None, :]  # [B, 1, 1, J]
        dec = decoder_output.transpose(1, 2)[:, None, :, :]  # [B, 1, 1, J]
        logits = self.classifier(self.joint(enc, dec))
        return logits.index_select(-1, self.order)


@dataclasses.dataclass
class OnnxExport:
    folder: Path
    meta: dict


def front_end_settings(model: AsrModel) -> dict:
    """What a runtime must compute for ``audio_signal``: the Fbank's settings
    (``kind`` ``speechbrain-fbank`` or ``kaldi-native-fbank``)."""
    fbank = model.front_end.compute_features
    if hasattr(fbank, "settings"):  # streamasr.frontend.kaldi.KaldiFbank
        return fbank.settings()
    stft, filterbank = fbank.compute_STFT, fbank.compute_fbanks
    return {
        "kind": "speechbrain-fbank",
        "sample_rate": stft.sample_rate,
        "n_fft": stft.n_fft,
        "win_length": stft.win_length,  # samples
        "hop_length": stft.hop_length,  # samples
        "window": "hamming",
        "center": stft.center,
        "n_mels": filterbank.n_mels,
        "f_min": filterbank.f_min,
        "f_max": filterbank.f_max,
        "log_mel": filterbank.log_mel,
        "top_db": filterbank.top_db,
        "amin": filterbank.amin,  # the log floor (the small YAML sets -50 dB)
        "ref_value": filterbank.ref_value,
        "normalization": "global, baked into encoder.onnx",
    }


def checkpoint_fingerprint(model: AsrModel) -> str:
    """A hash of the weights: a cache of exported graphs is reused only while it matches."""
    digest = hashlib.sha256()
    for module in model.hparams["modules"].values():
        digest_state(digest, module.state_dict())
    normalize = model.front_end.normalize
    for tensor in (normalize.glob_mean, normalize.glob_std):
        digest.update(torch.as_tensor(tensor).detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def export_onnx(model: AsrModel, folder: str | os.PathLike, chunk_ms: float = 640,
                left_chunks: Optional[int] = 4, int8: bool = False, verify: bool = True,
                overwrite: bool = False, opset: int = 18, right_ms: float = 0) -> OnnxExport:
    """Export ``model`` for ``chunk_ms`` chunks, ``left_chunks`` of left context and
    ``right_ms`` of look-ahead (``streamasr.dct``) into ``folder`` (written beside it and
    moved into place once complete and verified). With look-ahead the encoder's window
    is ``subsampling x (C + R + margin) + 1`` Fbank frames and the next window starts
    ``subsampling x C`` frames later (``window_frames``, ``shift_frames``).
    ``int8``: dynamic quantisation of the MatMul weights (onnxruntime). Returns the
    folder and its metadata."""

    folder = Path(folder)
    if left_chunks is None:
        raise ConfigError("ONNX export needs a finite left context (unlimited left context keeps every past "
                          "frame: the caches would have no fixed shape)")
    if left_chunks < 0:
        raise ConfigError(f"left context {left_chunks} is negative; expected >= 0 chunks")
    chunk_frames = model.geometry.frames_from_ms(chunk_ms)
    right = model.geometry.right_frames_from_ms(right_ms)
    sources = [model.source] if model.source else []
    check_destination(folder, sources, overwrite)
    config = with_right_frames(DynChunkTrainConfig(chunk_frames, left_chunks), right)
    model.to("cpu")
    step = StreamingStep(model.front_end, model.encoder, model.encoder_proj, config).eval()
    decoder, joiner = OnnxDecoder(model).eval(), OnnxJoiner(model).eval()
    geometry = step.encoder.geometry
    vocab = model.tokenizer.get_piece_size()
    lstm = model.decoder.lstm.rnn
    joiner_dim = model.encoder_proj.w.out_features
    meta = {
        "format": "streamasr-onnx",
        "format_version": FORMAT_VERSION,
        "model_type": MODEL_TYPES[0],  # the kind the runtimes read (streaming.onnx.MODEL_TYPES)
        **provenance(model.source),
        "checkpoint": checkpoint_fingerprint(model),
        "chunk_frames": chunk_frames,
        "chunk_ms": model.geometry.chunk_ms(chunk_frames),
        "left_chunks": left_chunks,
        "right_frames": right,
        "right_ms": model.geometry.chunk_ms(right),
        "window_frames": step.window_frames,
        "shift_frames": step.shift_frames,
        "margin_frames": step.margin,
        "subsampling_factor": step.subsampling,
        "feature_lookahead_samples": model.geometry.lookahead_samples,
        "receptive_samples": model.geometry.receptive_samples,
        "frame_samples": model.geometry.frame_samples,
        "front_end": front_end_settings(model),
        "cache_last_channel": [geometry.layers, geometry.attention_frames, geometry.d_model],
        "cache_last_time": [geometry.layers, geometry.d_model, geometry.conv_frames],
        "max_cache_len": geometry.max_cache_len,
        "vocab_size": vocab,
        "blank_id": vocab - 1,
        "model_blank_id": model.blank_id,
        "joiner_dim": joiner_dim,
        "lstm_layers": lstm.num_layers,
        "lstm_hidden": lstm.hidden_size,
        "max_symbols_per_frame": model.search.max_symbols_per_step + 1,
        "int8": bool(int8),
        "opset": opset,
    }
    with staged_folder(folder, sources, overwrite) as staging:
        state = step.initial_state(2)
        window = torch.randn(2, meta["front_end"]["n_mels"], step.window_frames)
        encoder_args = (window, torch.full((2,), step.window_frames, dtype=torch.long), *state.tensors())
        write_graphs(staging, model, step, encoder_args, decoder, joiner, meta, int8, opset)
        (staging / "export.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if verify:
            # int8 weights move the outputs by quantisation error: the differences are
            # recorded, not bounded (their effect on WER is what counts, measured with
            # `streamasr evaluate --backend onnx --int8`); the valid frame counts must match
            meta["verified_max_difference"] = verify_onnx_folder(staging, model,
                                                                 tolerance=float("inf") if int8 else 1e-4)
            (staging / "export.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return OnnxExport(folder, meta)


def write_graphs(staging: Path, model: AsrModel, encoder: torch.nn.Module, encoder_args: tuple,
                 decoder: OnnxDecoder, joiner: OnnxJoiner, meta: dict, int8: bool, opset: int) -> None:
    """encoder.onnx (``encoder`` traced on ``encoder_args``), decoder.onnx, joiner.onnx
    (int8-quantised if asked), ``meta`` in every graph's metadata, and tokens.txt
    (``piece id``, blank last) into ``staging``; shared by both export targets."""
    import onnx

    batch = torch.export.Dim("batch", min=2, max=4096)  # traced at 2; the graphs run any batch
    _export(encoder, encoder_args, staging / "encoder.onnx", ENCODER_INPUTS, ENCODER_OUTPUTS, batch, opset,
            batch_dims={name: 0 for name in ENCODER_INPUTS})
    # Distinct tensors for distinct inputs: the exporter merges inputs traced with one
    # tensor object (the graph then reads states_h for states_c).
    lstm = model.decoder.lstm.rnn
    decoder_args = (torch.zeros(2, 1, dtype=torch.int32), torch.ones(2, dtype=torch.int32),
                    torch.zeros(lstm.num_layers, 2, lstm.hidden_size),
                    torch.zeros(lstm.num_layers, 2, lstm.hidden_size))
    _export(decoder, decoder_args, staging / "decoder.onnx", DECODER_INPUTS, DECODER_OUTPUTS, batch, opset,
            batch_dims={"targets": 0, "target_length": 0, "states_h": 1, "states_c": 1})
    sides = (torch.randn(2, meta["joiner_dim"], 1), torch.randn(2, meta["joiner_dim"], 1))
    _export(joiner, sides, staging / "joiner.onnx", JOINER_INPUTS, JOINER_OUTPUTS, batch, opset,
            batch_dims={"encoder_output": 0, "decoder_output": 0})
    if int8:
        _quantize(staging)
    for name in ("encoder.onnx", "decoder.onnx", "joiner.onnx"):
        graph = onnx.load(str(staging / name))
        del graph.metadata_props[:]
        for key, value in meta.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value) if not isinstance(value, str) else value
        onnx.save(graph, str(staging / name))
    order = model_id_order(model.tokenizer.get_piece_size(), model.blank_id).tolist()
    lines = [f"{'<blk>' if old == model.blank_id else model.tokenizer.id_to_piece(old)} {new}"
             for new, old in enumerate(order)]
    (staging / "tokens.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            batch: object, opset: int, batch_dims: dict[str, int]) -> None:
    dynamic = tuple({batch_dims[name]: batch} for name in inputs)
    # "torchvision is not installed. Skipping torchvision::nms" x 4 per graph: the exporter
    # registers torchvision's operators when it can; these graphs use none of them
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    with warnings.catch_warnings(), torch.no_grad(), _quieter(registration):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, input_names=inputs, output_names=outputs,
                                    dynamic_shapes=dynamic, opset_version=opset, optimize=True, verbose=False)
    program.save(str(path))
    _strip_stack_traces(path)


# The dynamo exporter records, on every node, the Python stack that made it: absolute
# paths of this checkout and of site-packages. Debug information only; dropped so that a
# published graph names no folder of the machine that exported it.
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


@contextlib.contextmanager
def _quieter(logger: logging.Logger):
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _strip_stack_traces(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))

    def strip(graph) -> None:
        for node in graph.node:
            kept = [entry for entry in node.metadata_props if entry.key != STACK_TRACE_KEY]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
            for attribute in node.attribute:
                if attribute.g.node:
                    strip(attribute.g)
                for sub in attribute.graphs:
                    strip(sub)

    strip(model.graph)
    for function in model.functions:
        strip(function)
    onnx.save(model, str(path))


def _quantize(folder: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in ("encoder.onnx", "decoder.onnx", "joiner.onnx"):
        source = folder / name
        target = folder / f"{name}.int8"
        quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
        os.replace(target, source)


def cell_name(chunk_ms: float, left_chunks: Optional[int], int8: bool = False, right_ms: float = 0) -> str:
    """The folder name of one exported cell: ``640ms_left4`` (``_right160ms``) (``_int8``)."""
    return (f"{chunk_ms:g}ms_left{left_context_label(left_chunks)}" + (f"_right{right_ms:g}ms" if right_ms else "")
            + ("_int8" if int8 else ""))


def cached_onnx_folder(model: AsrModel, config: DynChunkTrainConfig, int8: bool = False,
                       cache_root: Optional[str | os.PathLike] = None) -> Path:
    """The ONNX folder of ``config`` for ``model``, exported into ``<model>/onnx/<cell>``
    (or ``cache_root``) when it is missing or was exported from other weights, and
    reused while the checkpoint is unchanged."""
    if not model.source:
        raise ConfigError("an ONNX cache needs a model loaded from a folder (model.source is empty)")
    chunk_ms = model.geometry.chunk_ms(config.chunk_size)
    right_ms = model.geometry.chunk_ms(right_frames(config))
    root = Path(cache_root) if cache_root else Path(model.source) / "onnx"
    folder = root / cell_name(chunk_ms, config.left_context_size, int8, right_ms)
    meta_file = folder / "export.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            meta = {}
        if meta.get("checkpoint") == checkpoint_fingerprint(model) and meta.get("format_version") == FORMAT_VERSION:
            return folder
    export_onnx(model, folder, chunk_ms, config.left_context_size, int8=int8, verify=True, overwrite=True,
                right_ms=right_ms)
    return folder


__all__ = ["OnnxDecoder", "OnnxExport", "OnnxFolder", "OnnxJoiner", "cached_onnx_folder", "cell_name", "export_onnx",
           "verify_onnx_folder"]
