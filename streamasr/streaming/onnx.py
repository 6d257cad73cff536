"""The onnxruntime backend of the streaming engine, and the check of an ONNX folder.

An ONNX folder (``streamasr export-onnx``) holds ``encoder.onnx`` (the whole streaming
step, ``streamasr.streaming.step``), ``decoder.onnx`` (one prediction-network step),
``joiner.onnx``, ``tokens.txt`` (blank last) and ``export.json`` (the metadata, also in
every graph). ``OnnxBackend`` runs it behind the same protocol as the PyTorch backends,
and its ``search`` is our greedy search over the ONNX decoder and joiner, with token ids
mapped back to the model's (blank 0), so events, token times and confidences are those
of the PyTorch engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from speechbrain.lobes.features import Fbank
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.dct import with_right_frames
from streamasr.decoding import GreedySearch
from streamasr.errors import ModelLoadError
from streamasr.frontend import FbankFrontEnd, FrontEndGeometry
from streamasr.frontend.kaldi import KaldiFbank
from streamasr.model import AsrModel, load_model
from streamasr.parts import LstmState
from streamasr.streaming.fixed import CacheGeometry, EncoderState, stack_states, unstack_states
from streamasr.streaming.step import StreamingStep
from streamasr.tokenizer import continuation_text

ONNX_FILES = ("encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt", "export.json")
ENCODER_INPUTS = ["audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len"]
ENCODER_OUTPUTS = ["outputs", "encoded_lengths", "cache_last_channel_next", "cache_last_time_next",
                   "cache_last_channel_next_len"]
DECODER_INPUTS = ["targets", "target_length", "states_h", "states_c"]
DECODER_OUTPUTS = ["decoder_output", "target_length_out", "states_h_next", "states_c_next"]
JOINER_INPUTS = ["encoder_output", "decoder_output"]
JOINER_OUTPUTS = ["logits"]
FORMAT_VERSION = 3
# The model kinds this runtime can run (``export.json``'s ``model_type``, written by the
# exporter from the model): a new kind (a token-and-duration transducer) adds its search
# and its name here, and a folder of a kind this runtime does not know is refused by name.
MODEL_TYPES = ("conformer-transducer",)
REQUIRED_META = ("checkpoint", "chunk_frames", "chunk_ms", "left_chunks", "window_frames", "frame_samples",
                 "receptive_samples", "front_end", "cache_last_channel", "cache_last_time", "vocab_size",
                 "model_blank_id", "joiner_dim", "lstm_layers", "lstm_hidden", "int8")


def model_id_order(vocab: int, blank: int) -> torch.Tensor:
    """``order[exported id] = model id``: the model's ids without blank, then blank."""
    return torch.tensor([i for i in range(vocab) if i != blank] + [blank], dtype=torch.long)


def to_model_ids(exported: torch.Tensor, vocab: int, blank: int) -> torch.Tensor:
    """Exported ids (blank last) -> the model's ids (graph-friendly arithmetic)."""
    shifted = exported + (exported >= blank).long()  # skip over the model's blank
    return torch.where(exported == vocab - 1, torch.full_like(exported, blank), shifted)


def to_exported_ids(model_ids: torch.Tensor, vocab: int, blank: int) -> torch.Tensor:
    """The model's ids -> exported ids (blank last)."""
    shifted = model_ids - (model_ids > blank).long()
    return torch.where(model_ids == blank, torch.full_like(model_ids, vocab - 1), shifted)


_ARENA_REGISTERED: Optional[bool] = None


def _shared_cpu_arena() -> bool:
    """One CPU arena for every onnxruntime session of this process, extended by what is
    requested (``kSameAsRequested``) instead of onnxruntime's default of doubling its
    last extension. Why: ``streamasr serve`` runs batches of every size from two model
    threads through one session; onnxruntime keeps a memory plan per input shape, and
    with the default per-session arenas the server's memory rose by 40-50 MB over 2,000
    connections even after a start-up warm-up, 5-9 MB with this arena (warm-up largest
    batch first, so smaller plans reuse its blocks). Throughput equal within noise.
    Returns whether it is registered (False where onnxruntime lacks the API)."""
    global _ARENA_REGISTERED
    if _ARENA_REGISTERED is None:
        import onnxruntime

        try:
            info = onnxruntime.OrtMemoryInfo("Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                             onnxruntime.OrtMemType.DEFAULT)
            # max memory 0 (no limit), extend strategy 1 (same as requested), defaults
            onnxruntime.create_and_register_allocator(info, onnxruntime.OrtArenaCfg(0, 1, -1, -1))
            _ARENA_REGISTERED = True
        except (AttributeError, RuntimeError):  # an onnxruntime without it: its own per-session arenas
            _ARENA_REGISTERED = False
    return _ARENA_REGISTERED


class OnnxFolder:
    """An ONNX folder, checked and opened: its metadata and one onnxruntime session per
    graph. ``ModelLoadError`` naming the problem for a missing file, a tokens.txt of the
    wrong length or metadata that disagrees with a graph."""

    def __init__(self, folder: str | os.PathLike, threads: Optional[int] = None):
        import onnxruntime

        self.folder = Path(folder)
        missing = [name for name in ONNX_FILES if not (self.folder / name).is_file()]
        if missing:
            raise ModelLoadError(f"ONNX folder {self.folder} is missing {', '.join(missing)}")
        try:
            self.meta = json.loads((self.folder / "export.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ModelLoadError(f"{self.folder / 'export.json'} is not valid JSON: {error}") from None
        if self.meta.get("format") == "streamasr-sherpa-onnx":
            raise ModelLoadError(f"{self.folder} was exported for sherpa-onnx (--target sherpa-onnx: its encoder "
                                 "takes sherpa-onnx's feature windows); run it with sherpa-onnx, or export with "
                                 "--target streamasr for streamasr's onnx backend")
        if self.meta.get("format") != "streamasr-onnx" or self.meta.get("format_version") != FORMAT_VERSION:
            raise ModelLoadError(f"{self.folder / 'export.json'}: not a streamasr ONNX folder of format version "
                                 f"{FORMAT_VERSION} (format {self.meta.get('format')!r}, "
                                 f"version {self.meta.get('format_version')!r})")
        if self.meta.get("model_type", MODEL_TYPES[0]) not in MODEL_TYPES:
            raise ModelLoadError(f"{self.folder / 'export.json'}: model_type {self.meta['model_type']!r} is not one "
                                 f"this runtime runs ({', '.join(MODEL_TYPES)}); a newer streamasr may")
        absent = [key for key in REQUIRED_META if key not in self.meta]
        if absent:
            raise ModelLoadError(f"{self.folder / 'export.json'} lacks {', '.join(absent)}")
        tokens = (self.folder / "tokens.txt").read_text(encoding="utf-8").splitlines()
        if len(tokens) != self.meta["vocab_size"]:
            raise ModelLoadError(f"{self.folder / 'tokens.txt'} has {len(tokens)} tokens, the model "
                                 f"{self.meta['vocab_size']} (export.json vocab_size)")
        self.sessions = {}
        for name in ("encoder", "decoder", "joiner"):
            # The decoder and joiner are a few small MatMuls per call, called many times per
            # chunk: one thread (a thread pool costs more than it saves there). No spinning:
            # idle ORT threads would compete with torch's (the Fbank runs in torch).
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = (threads or 0) if name == "encoder" else 1
            options.inter_op_num_threads = 1
            if _shared_cpu_arena():
                options.add_session_config_entry("session.use_env_allocators", "1")
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                self.sessions[name] = onnxruntime.InferenceSession(
                    str(self.folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
            except Exception as error:  # onnxruntime raises its own exception types
                raise ModelLoadError(f"{self.folder / (name + '.onnx')} does not load in onnxruntime: "
                                     f"{str(error).splitlines()[0]}") from None
            graph_meta = self.sessions[name].get_modelmeta().custom_metadata_map
            if graph_meta.get("checkpoint") != self.meta["checkpoint"]:
                raise ModelLoadError(f"{self.folder / (name + '.onnx')} was exported from checkpoint "
                                     f"{graph_meta.get('checkpoint')}, export.json says {self.meta['checkpoint']}")
        self._check_shapes()

    def _check_shapes(self) -> None:
        encoder = {i.name: i.shape for i in self.sessions["encoder"].get_inputs()}
        expected = {
            "audio_signal": [self.meta["front_end"]["n_mels"], self.meta["window_frames"]],
            "cache_last_channel": self.meta["cache_last_channel"],
            "cache_last_time": self.meta["cache_last_time"],
        }
        for name, shape in expected.items():
            if name not in encoder or list(encoder[name][1:]) != list(shape):
                raise ModelLoadError(f"{self.folder / 'encoder.onnx'}: input {name} is {encoder.get(name)}, "
                                     f"export.json says [batch, {', '.join(map(str, shape))}]")
        joiner_out = self.sessions["joiner"].get_outputs()[0].shape
        if joiner_out[-1] != self.meta["vocab_size"]:
            raise ModelLoadError(f"{self.folder / 'joiner.onnx'} gives {joiner_out[-1]} logits, export.json "
                                 f"vocab_size is {self.meta['vocab_size']}")

    @property
    def geometry(self) -> CacheGeometry:
        layers, attention, d_model = self.meta["cache_last_channel"]
        _, _, conv = self.meta["cache_last_time"]
        return CacheGeometry(self.meta["chunk_frames"], self.meta["left_chunks"], layers, d_model, conv,
                             self.meta.get("right_frames", 0))

    @property
    def config(self) -> DynChunkTrainConfig:
        """The (chunk, left context, look-ahead) the folder was exported for."""
        return with_right_frames(DynChunkTrainConfig(self.meta["chunk_frames"], self.meta["left_chunks"]),
                                 self.meta.get("right_frames", 0))

    def run(self, graph: str, feeds: dict) -> list[np.ndarray]:
        return self.sessions[graph].run(None, feeds)


class OnnxPredictionNetwork:
    """``decoder.onnx`` behind ``PredictionNetwork``'s call: model token ids in, the
    projected output ``[B, U, J]`` and the LSTM state out."""

    def __init__(self, onnx: OnnxFolder):
        self.onnx = onnx
        self.vocab, self.blank = onnx.meta["vocab_size"], onnx.meta["model_blank_id"]

    def __call__(self, tokens: torch.Tensor, hidden: Optional[LstmState] = None
                 ) -> tuple[torch.Tensor, None, LstmState]:
        batch = tokens.shape[0]
        if hidden is None:
            zeros = torch.zeros(self.onnx.meta["lstm_layers"], batch, self.onnx.meta["lstm_hidden"])
            hidden = (zeros, zeros)
        exported = to_exported_ids(tokens, self.vocab, self.blank).to(torch.int32)
        out, _, h, c = self.onnx.run("decoder", {
            "targets": exported.numpy(), "target_length": np.ones(batch, dtype=np.int32),
            "states_h": hidden[0].float().contiguous().numpy(), "states_c": hidden[1].float().contiguous().numpy()})
        return torch.from_numpy(out).transpose(1, 2), None, (torch.from_numpy(h), torch.from_numpy(c))


class OnnxJoiner:
    """``joiner.onnx`` behind ``Joiner``'s call, logits back in the model's id order."""

    def __init__(self, onnx: OnnxFolder):
        self.onnx = onnx
        order = model_id_order(onnx.meta["vocab_size"], onnx.meta["model_blank_id"])
        self.inverse = torch.argsort(order)  # model id -> exported id

    def __call__(self, encoder_side: torch.Tensor, decoder_side: torch.Tensor) -> torch.Tensor:
        """Broadcastable ``[B, T, 1, J]`` + ``[B, 1, 1, J]`` (frames x one label) ->
        ``[B, T, 1, V]``: the graph joins one frame and one label per row, so the pairs
        are flattened into its batch axis."""
        enc, dec = torch.broadcast_tensors(encoder_side, decoder_side)
        shape = enc.shape[:-1]
        enc = enc.reshape(-1, enc.shape[-1], 1).float().contiguous()
        dec = dec.reshape(-1, dec.shape[-1], 1).float().contiguous()
        (logits,) = self.onnx.run("joiner", {"encoder_output": enc.numpy(), "decoder_output": dec.numpy()})
        return torch.from_numpy(logits).reshape(*shape, -1).index_select(-1, self.inverse)


class OnnxBackend:
    """The engine's encoder backend on onnxruntime (``input_kind`` ``window``), with the
    greedy search over the ONNX decoder and joiner as ``search``."""

    name = "onnx"
    can_stack = True
    input_kind = "window"

    def __init__(self, onnx: OnnxFolder, max_symbols_per_step: int = 5):
        self.onnx = onnx
        self.geometry = onnx.geometry
        self.search = GreedySearch(OnnxPredictionNetwork(onnx), OnnxJoiner(onnx), onnx.meta["model_blank_id"],
                                   max_symbols_per_step)

    def init_state(self, batch_size: int) -> EncoderState:
        g = self.geometry
        return EncoderState(torch.zeros(batch_size, g.layers, g.attention_frames, g.d_model),
                            torch.zeros(batch_size, g.layers, g.d_model, g.conv_frames),
                            torch.zeros(batch_size, dtype=torch.long), g)

    def encode(self, window: torch.Tensor, lengths: torch.Tensor, state: EncoderState
               ) -> tuple[torch.Tensor, torch.Tensor, EncoderState]:
        feeds = dict(zip(ENCODER_INPUTS, (
            window.transpose(1, 2).float().contiguous().numpy(), lengths.long().numpy(),
            *(tensor.contiguous().numpy() for tensor in state.tensors()))))
        out, frames, channel, time, channel_len = self.onnx.run("encoder", feeds)
        return (torch.from_numpy(out).transpose(1, 2), torch.from_numpy(frames),
                EncoderState(torch.from_numpy(channel), torch.from_numpy(time), torch.from_numpy(channel_len),
                             self.geometry))

    def stack_states(self, states: Sequence[EncoderState]) -> EncoderState:
        return stack_states(states)

    def unstack_states(self, state: EncoderState) -> list[EncoderState]:
        return unstack_states(state)


@torch.no_grad()
def verify_onnx_folder(folder: str | os.PathLike, model: AsrModel, tolerance: float = 1e-4,
                       chunks: int = 5, seed: int = 0) -> dict[str, float]:
    """icefall's ``onnx_check``: a random batch of 2 streams, states carried over
    ``chunks`` chunks, encoder, decoder and joiner of the ONNX folder against PyTorch.
    Returns the largest absolute difference of each; ``ModelLoadError`` above
    ``tolerance``."""
    onnx = OnnxFolder(folder)
    meta = onnx.meta
    step = StreamingStep(model.front_end, model.encoder, model.encoder_proj, onnx.config).eval()
    backend = OnnxBackend(onnx)
    generator = torch.Generator().manual_seed(seed)
    ours, theirs = step.initial_state(2), backend.init_state(2)
    worst = {"encoder": 0.0, "decoder": 0.0, "joiner": 0.0}
    for index in range(chunks):
        window = torch.randn(2, step.window_frames, meta["front_end"]["n_mels"], generator=generator) * 3 - 5
        lengths = torch.tensor([step.window_frames, step.window_frames - 13 if index == chunks - 1 else
                                step.window_frames])
        out_ref, frames_ref, ours = step.step(window, lengths, ours)
        out, frames, theirs = backend.encode(window, lengths, theirs)
        if not torch.equal(frames, frames_ref):
            raise ModelLoadError(f"{folder}: encoder.onnx gives {frames.tolist()} valid frames, PyTorch "
                                 f"{frames_ref.tolist()}")
        differences = [(out - out_ref).abs().max()] + [(a - b).abs().max().float() for a, b in
                                                      zip(theirs.tensors(), ours.tensors())]
        worst["encoder"] = max(worst["encoder"], float(max(differences)))
    tokens = torch.randint(0, meta["vocab_size"], (2, 1), generator=generator)
    hidden = tuple(torch.randn(meta["lstm_layers"], 2, meta["lstm_hidden"], generator=generator) for _ in range(2))
    ref_out, _, ref_hidden = model.decoder(tokens, hidden)
    out, _, new_hidden = backend.search.decoder(tokens, hidden)
    worst["decoder"] = float(max((out - ref_out).abs().max(), *((a - b).abs().max() for a, b in
                                                              zip(new_hidden, ref_hidden))))
    enc = torch.randn(2, 1, 1, meta["joiner_dim"], generator=generator)
    dec = torch.randn(2, 1, 1, meta["joiner_dim"], generator=generator)
    worst["joiner"] = float((backend.search.joiner(enc, dec) - model.joiner(enc, dec)).abs().max())
    failed = {name: value for name, value in worst.items() if not value <= tolerance}
    if failed:
        raise ModelLoadError(f"{folder}: ONNX differs from PyTorch by more than {tolerance:g}: "
                             + ", ".join(f"{name} {value:.2e}" for name, value in failed.items()))
    return worst


# ------------------------------------------------------------------ an ONNX folder alone
class TokenTable:
    """``tokens.txt`` (``piece id`` lines, blank last) seen with the model's ids, as the
    engine uses a SentencePiece processor (``id_to_piece``, ``decode_ids``)."""

    def __init__(self, path: Path, meta: dict):
        pieces = [line.rsplit(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]
        order = model_id_order(meta["vocab_size"], meta["model_blank_id"]).tolist()
        self.pieces = [""] * len(pieces)
        for exported, model_id in enumerate(order):
            self.pieces[model_id] = pieces[exported]

    def get_piece_size(self) -> int:
        return len(self.pieces)

    def id_to_piece(self, token: int) -> str:
        return self.pieces[token]

    def decode_ids(self, tokens: list[int]) -> str:
        return continuation_text(self, tokens, at_start=True).strip()


class OnnxModel:
    """A recogniser from an ONNX folder alone (no PyTorch weights): the Fbank rebuilt
    from the folder's metadata, the tokens from ``tokens.txt``, the engine's windows from
    the geometry in ``export.json``; it runs the folder's own (chunk, left context) on
    the onnx backend. Refuses a folder whose front end it does not compute."""

    def __init__(self, folder: str | os.PathLike, threads: Optional[int] = None):
        self.onnx = OnnxFolder(folder, threads=threads)
        meta = self.onnx.meta
        settings = meta["front_end"]
        fbank = fbank_from_settings(settings, self.onnx.folder)
        geometry = FrontEndGeometry(settings["hop_length"], meta["frame_samples"], meta["receptive_samples"],
                                    settings["sample_rate"],
                                    centre_offset_samples=int(getattr(fbank, "centre_offset_samples", 0)),
                                    kaldi_frames=hasattr(fbank, "num_frames"))
        self.front_end = FbankFrontEnd(fbank.eval(), geometry)
        self.tokenizer = TokenTable(self.onnx.folder / "tokens.txt", meta)
        self.config = self.onnx.config
        self.source = str(self.onnx.folder)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.search = None  # the backend's
        self.blank_id = meta["model_blank_id"]  # as AsrModel's

    @property
    def geometry(self) -> FrontEndGeometry:
        return self.front_end.geometry

    def backend(self, max_symbols_per_step: int = 5) -> OnnxBackend:
        return OnnxBackend(self.onnx, max_symbols_per_step)

    def decode_tokens(self, tokens: list[int]) -> str:
        return self.tokenizer.decode_ids(tokens)

    def decode_continuation(self, tokens: list[int], at_start: bool) -> str:
        return continuation_text(self.tokenizer, tokens, at_start)


def fbank_from_settings(settings: dict, folder: Path) -> torch.nn.Module:
    """The Fbank an exported folder's metadata describes (``speechbrain-fbank`` or
    ``kaldi-native-fbank``); ``ModelLoadError`` for another kind or settings that do not
    rebuild."""
    kind = settings.get("kind")
    rate = settings["sample_rate"]
    if kind == "kaldi-native-fbank":
        needed = ("n_mels", "frame_length_ms", "frame_shift_ms", "preemph_coeff", "low_freq", "high_freq", "log_floor")
        absent = [key for key in needed if key not in settings]
        if absent:
            raise ModelLoadError(f"{folder}: its kaldi-native-fbank front end lacks {', '.join(absent)}")
        fbank = KaldiFbank(rate, settings["n_mels"], settings["frame_length_ms"], settings["frame_shift_ms"],
                           settings["preemph_coeff"], settings["low_freq"], settings["high_freq"],
                           settings["log_floor"])
        if fbank.settings() != settings:
            raise ModelLoadError(f"{folder}: cannot rebuild its kaldi-native-fbank front end from {settings}")
        return fbank.eval()
    if kind != "speechbrain-fbank":
        raise ModelLoadError(f"{folder}: front end {kind!r}; this runtime computes 'speechbrain-fbank' and "
                             "'kaldi-native-fbank'")
    fbank = Fbank(sample_rate=rate, n_fft=settings["n_fft"], n_mels=settings["n_mels"], f_min=settings["f_min"],
                  f_max=settings["f_max"], win_length=1000 * settings["win_length"] / rate,
                  hop_length=1000 * settings["hop_length"] / rate)
    for name in ("top_db", "amin", "ref_value"):  # the recipe's streamable settings
        setattr(fbank.compute_fbanks, name, settings[name])
    if fbank.compute_STFT.hop_length != settings["hop_length"] or \
            fbank.compute_STFT.win_length != settings["win_length"]:
        raise ModelLoadError(f"{folder}: cannot rebuild its Fbank (hop {settings['hop_length']}, "
                             f"window {settings['win_length']} samples)")
    return fbank.eval()


def is_onnx_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / "encoder.onnx").is_file() and (Path(path) / "export.json").is_file()


def load_any_model(path: str | os.PathLike, device: str = "cpu", threads: Optional[int] = None
                   ) -> AsrModel | OnnxModel:
    """A training folder, an exported StreamingASR folder (``load_model``) or an ONNX
    folder (``OnnxModel``, its encoder on ``threads`` onnxruntime threads)."""
    return OnnxModel(path, threads=threads) if is_onnx_folder(path) else load_model(path, device)
