"""Export for sherpa-onnx's streaming NeMo transducer path
(``streamasr export-onnx ... --target sherpa-onnx``), and the checks of such a folder.

sherpa-onnx (2.0.x) runs a cache-aware streaming transducer through
``OnlineRecognizerTransducerNeMoImpl``, the only streaming path with a stateful LSTM
prediction network (chosen when decoder.onnx has more than one output). Its contract,
which this module writes to:

* features: kaldi-native-fbank (Hann, pre-emphasis 0.97, 512-point FFT, Slaney mel
  banks, natural log, floor FLT_EPSILON), **not normalised** for streaming models:
  normalisation is inside our encoder graph. ``streamasr.frontend.kaldi.KaldiFbank``
  computes the same features in training (``hparams/frontend_kaldi.yaml``);
* framing: step ``k`` feeds the feature frames ``[k x chunk_shift, k x chunk_shift +
  window_size)`` from the start of the stream, no left padding, ``length`` always
  ``window_size``; the end of a stream is zero audio (tail padding), never a short chunk;
* tensors by position: encoder ``audio_signal [B, 80, window_size]``, ``length``, then
  ``cache_last_channel``, ``cache_last_time`` (float, batch first, other dims opaque),
  ``cache_last_channel_len`` int64 -> ``[B, D, T']``, lengths, the three next caches;
  decoder ``targets`` int32 ``[B, 1]``, ``target_length``, two LSTM states -> output,
  lengths, the two next states; joiner -> flat logits, blank the last id;
* metadata: ``vocab_size`` (without blank), ``window_size``, ``chunk_shift``,
  ``subsampling_factor``, ``normalize_type``, ``pred_rnn_layers``, ``pred_hidden``,
  ``cache_last_channel_dim1..3``, ``cache_last_time_dim1..3``; ``tokens.txt`` lines
  ``piece id`` with ``<blk>`` last.

Where the CNN front end's history lives: our CNN (two 3x3, stride-2 blocks) computes
encoder frame ``t`` from feature frames ``4t - 3 .. 4t + 3``, so a chunk ``[kC, (k+1)C)``
needs exactly sherpa's window ``[4kC, 4kC + 4C)`` plus the 3 feature frames before it
(with a third block, 8x: ``8t - 7 .. 8t + 7``, the 7 before it; ``4`` reads ``8`` below).
Those (4, to keep the stride grid) ride in the cache: ``cache_last_time`` carries one
slot more than the encoder has layers, and that slot holds the last 4 feature frames of
the previous window (after the log floor, before normalisation) and a flag "the stream
has started". So ``window_size = chunk_shift = 4C`` (with look-ahead R, ``streamasr.dct``:
``window_size = 4 (C + R)``, ``chunk_shift = 4C``; the R frames are recomputed with the
next window, the history is the 4 frames before the next window): no frames are recomputed,
the first chunk is aligned at frame 0 and reflects at the stream start as in training,
and every chunk before the end equals our engine's (tested against the masked
simulation).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Optional

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.dct import with_right_frames
from streamasr.errors import ConfigError, ExportError, ModelLoadError
from streamasr.export.onnx import (
    OnnxDecoder,
    OnnxJoiner,
    checkpoint_fingerprint,
    front_end_settings,
    write_graphs,
)
from streamasr.files import check_destination, staged_folder
from streamasr.frontend.kaldi import KaldiFbank, LogFloor
from streamasr.model import AsrModel
from streamasr.streaming.fixed import CacheAwareEncoder
from streamasr.streaming.onnx import DECODER_INPUTS, ENCODER_INPUTS, JOINER_INPUTS
from streamasr.streaming.step import WindowConvFrontEnd
from streamasr.version import provenance

SHERPA_FORMAT = "streamasr-sherpa-onnx"
SHERPA_FILES = ("encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt")
SHERPA_META = ("vocab_size", "window_size", "chunk_shift", "subsampling_factor", "normalize_type", "pred_rnn_layers",
               "pred_hidden", "cache_last_channel_dim1", "cache_last_channel_dim2", "cache_last_channel_dim3",
               "cache_last_time_dim1", "cache_last_time_dim2", "cache_last_time_dim3")
SHERPA_MAX_SYMBOLS_PER_FRAME = 10  # hard-coded in sherpa-onnx's NeMo greedy search
SHERPA_TAIL_PADDING_S = 0.8  # sherpa-onnx's websocket server default (--end-tail-padding)


class SherpaEncoder(torch.nn.Module):
    """The encoder step in sherpa-onnx's framing (module docstring): log floor ->
    history + window -> global normalisation -> CNN -> cache-aware encoder ->
    projection. Shares the model's weights."""

    def __init__(self, model: AsrModel, config: DynChunkTrainConfig):
        super().__init__()
        front_end = model.front_end
        fbank = front_end.compute_features
        self.floor = LogFloor(fbank.floor_value) if isinstance(fbank, KaldiFbank) else torch.nn.Identity()
        self.normalize = front_end.normalize
        self.cnn = WindowConvFrontEnd(front_end.cnn)
        self.encoder = CacheAwareEncoder(model.encoder, config)
        self.encoder_proj = model.encoder_proj
        self.subsampling = front_end.geometry.subsampling
        # history: one encoder frame's worth of feature frames keeps the stride grid, and
        # must cover the CNN's reach into the past (3 frames for 4x, 7 for 8x)
        self.history_frames = self.subsampling
        reach = (front_end.cnn.get_filter_properties().window_size - 1) // 2
        if reach > self.history_frames:
            raise ConfigError(f"sherpa-onnx export: this model's CNN reaches {reach} feature frames into the past, "
                              f"more than the {self.history_frames} frames ({self.subsampling}x subsampling) the "
                              "cache carries")
        self.chunk = config.chunk_size
        self.right = self.encoder.geometry.right_frames  # look-ahead (streamasr.dct)
        self.window_frames = self.subsampling * (self.chunk + self.right)
        self.shift_frames = self.subsampling * self.chunk
        self.n_mels = self._n_mels(front_end)
        geometry = self.encoder.geometry
        slot = geometry.d_model * geometry.conv_frames
        if self.history_frames * self.n_mels + 1 > slot:
            raise ConfigError(f"the feature history ({self.history_frames} x {self.n_mels} values + a flag) does not "
                              f"fit the extra cache_last_time slot ({geometry.d_model} x {geometry.conv_frames})")

    @staticmethod
    def _n_mels(front_end: torch.nn.Module) -> int:
        fbank = front_end.compute_features
        if isinstance(fbank, KaldiFbank):
            return fbank.n_mels
        return fbank.compute_fbanks.n_mels

    def initial_state(self, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.encoder.geometry
        return (torch.zeros(batch_size, g.layers, g.attention_frames, g.d_model),
                torch.zeros(batch_size, g.layers + 1, g.d_model, g.conv_frames),
                torch.zeros(batch_size, dtype=torch.long))

    def forward(self, audio_signal: torch.Tensor, length: torch.Tensor, cache_last_channel: torch.Tensor,
                cache_last_time: torch.Tensor, cache_last_channel_len: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.floor(audio_signal.transpose(1, 2))  # [B, W, n_mels]
        batch = feats.shape[0]
        history_values = self.history_frames * self.n_mels
        slot = cache_last_time[:, -1].flatten(start_dim=1)  # [B, D * P]
        history = slot[:, :history_values].reshape(batch, self.history_frames, self.n_mels)
        started = slot[:, history_values] > 0.5
        window = torch.cat([history, feats], dim=1)  # [B, H + W, n_mels]
        window = self.normalize(window, torch.ones(batch, device=window.device))
        first = torch.where(started, torch.zeros_like(length), torch.full_like(length, self.history_frames))
        src, _, end_out = self.cnn(window, first, length + self.history_frames)
        src = src[:, 1 : 1 + self.chunk + self.right]  # encoder frame 0 of the window is the history's
        valid = (end_out - 1).clamp(min=0, max=self.chunk + self.right)
        chunk_lengths = valid.clamp(max=self.chunk)
        out, channel, time, channel_len = self.encoder(src, valid, cache_last_channel,
                                                       cache_last_time[:, :-1], cache_last_channel_len)
        shift = self.shift_frames  # the next window starts here; the history is what precedes it
        new_history = feats[:, shift - self.history_frames : shift].flatten(start_dim=1)
        new_slot = torch.cat([new_history, torch.ones(batch, 1, dtype=slot.dtype, device=slot.device),
                              slot.new_zeros(batch, slot.shape[1] - history_values - 1)], dim=1)
        time = torch.cat([time, new_slot.reshape(batch, 1, *cache_last_time.shape[2:])], dim=1)
        return self.encoder_proj(out).transpose(1, 2), chunk_lengths, channel, time, channel_len


@dataclasses.dataclass
class SherpaExport:
    folder: Path
    meta: dict


def check_front_end(model: AsrModel, force: bool = False) -> Optional[str]:
    """``None`` for a model trained on the kaldi-native-fbank front end; otherwise
    ``ExportError`` naming it, or with ``force`` the warning to print."""
    fbank = model.front_end.compute_features
    if isinstance(fbank, KaldiFbank):
        reference = KaldiFbank(fbank.sample_rate, fbank.n_mels, log_floor=fbank.log_floor)
        if fbank.settings() != reference.settings():
            differing = sorted(key for key, value in fbank.settings().items() if reference.settings()[key] != value)
            message = (f"{model.source}: its kaldi-native-fbank front end differs from what sherpa-onnx computes in "
                       f"{', '.join(differing)}")
        else:
            return None
    else:
        message = (f"{model.source} was trained on {type(fbank).__module__}.{type(fbank).__name__}, not the "
                   "kaldi-native-fbank front end that sherpa-onnx computes (Hann window, pre-emphasis, 512-point FFT, "
                   "Slaney mel banks, natural log vs. SpeechBrain's hamming, 400-point FFT, HTK mel, 10 log10): in "
                   "sherpa-onnx it would see other features. Train with hparams/frontend_kaldi.yaml")
    if not force:
        raise ExportError(message + "; or pass --force to export anyway")
    return "warning: " + message + "; exported anyway (--force): expect a much higher WER in sherpa-onnx"


def check_vocabulary(model: AsrModel) -> None:
    """The blank must be a real id and no other piece may be called ``<blk>``."""
    vocab = model.tokenizer.get_piece_size()
    if not 0 <= model.blank_id < vocab:
        raise ExportError(f"blank id {model.blank_id} is outside the vocabulary of {vocab} pieces")
    clashing = [i for i in range(vocab) if i != model.blank_id and model.tokenizer.id_to_piece(i) == "<blk>"]
    if clashing:
        raise ExportError(f"piece {clashing[0]} of the tokenizer is named <blk>, sherpa-onnx's blank symbol; the "
                          f"blank is id {model.blank_id}")


def sherpa_metadata(model: AsrModel, step: SherpaEncoder, chunk_ms: float, left_chunks: int, int8: bool) -> dict:
    g = step.encoder.geometry
    vocab = model.tokenizer.get_piece_size()
    lstm = model.decoder.lstm.rnn
    return {
        # read by sherpa-onnx
        "vocab_size": vocab - 1,
        "window_size": step.window_frames,
        "chunk_shift": step.shift_frames,
        "subsampling_factor": step.subsampling,
        "normalize_type": "",
        "pred_rnn_layers": lstm.num_layers,
        "pred_hidden": lstm.hidden_size,
        "cache_last_channel_dim1": g.layers,
        "cache_last_channel_dim2": g.attention_frames,
        "cache_last_channel_dim3": g.d_model,
        "cache_last_time_dim1": g.layers + 1,
        "cache_last_time_dim2": g.d_model,
        "cache_last_time_dim3": g.conv_frames,
        # ours
        "format": SHERPA_FORMAT,
        "model_type": "EncDecRNNTBPEModel",
        "streamasr_model": "conformer-transducer",
        **provenance(model.source),
        "checkpoint": checkpoint_fingerprint(model),
        "chunk_frames": step.chunk,
        "chunk_ms": chunk_ms,
        "left_chunks": left_chunks,
        "right_frames": step.right,
        "right_ms": model.geometry.chunk_ms(step.right),
        "history_frames": step.history_frames,
        "front_end": front_end_settings(model),
        "model_blank_id": model.blank_id,
        "joiner_dim": model.encoder_proj.w.out_features,
        "int8": bool(int8),
    }


def export_sherpa_onnx(model: AsrModel, folder: str | os.PathLike, chunk_ms: float = 640,
                       left_chunks: Optional[int] = 4, int8: bool = False, force: bool = False,
                       verify: bool = True, overwrite: bool = False, opset: int = 18,
                       right_ms: float = 0) -> SherpaExport:
    """Export ``model`` for sherpa-onnx (module docstring) into ``folder``, written
    beside it and moved into place once complete and verified (ONNX vs PyTorch over 5
    chunks of a random batch). ``force``: export a model trained on another front end
    (a warning is printed). ``right_ms``: look-ahead (``streamasr.dct``): sherpa-onnx's
    window grows to ``4 (C + R)`` feature frames, its shift stays ``4 C``."""

    folder = Path(folder)
    if left_chunks is None:
        raise ConfigError("sherpa-onnx export needs a finite left context (its caches have a fixed shape)")
    chunk_frames = model.geometry.frames_from_ms(chunk_ms)
    sources = [model.source] if model.source else []
    check_destination(folder, sources, overwrite)
    warning = check_front_end(model, force)
    if warning:
        print(warning, flush=True)
    check_vocabulary(model)
    model.to("cpu")
    right = model.geometry.right_frames_from_ms(right_ms)
    step = SherpaEncoder(model, with_right_frames(DynChunkTrainConfig(chunk_frames, left_chunks), right)).eval()
    decoder, joiner = OnnxDecoder(model).eval(), OnnxJoiner(model).eval()
    meta = sherpa_metadata(model, step, model.geometry.chunk_ms(chunk_frames), left_chunks, int8)
    with staged_folder(folder, sources, overwrite) as staging:
        window = torch.randn(2, step.n_mels, step.window_frames)
        encoder_args = (window, torch.full((2,), step.window_frames, dtype=torch.long), *step.initial_state(2))
        write_graphs(staging, model, step, encoder_args, decoder, joiner, meta, int8, opset)
        check_sherpa_folder(staging)
        if verify:
            meta["verified_max_difference"] = verify_sherpa_folder(staging, step, decoder, joiner, meta["joiner_dim"],
                                                                   tolerance=float("inf") if int8 else 1e-4)
        (staging / "export.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return SherpaExport(folder, meta)


def _metadata(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in graph.metadata_props}


def check_sherpa_folder(folder: str | os.PathLike) -> dict:
    """Raise ``ModelLoadError`` naming the problem unless ``folder`` holds what
    sherpa-onnx's NeMo path loads: the three graphs, the metadata keys it reads, a
    decoder with more than one output, a ``tokens.txt`` of ``vocab_size + 1`` lines
    ``piece id`` with ``<blk>`` the last id. Returns the encoder's metadata."""
    import onnx

    folder = Path(folder)
    missing = [name for name in SHERPA_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(f"sherpa-onnx folder {folder} is missing {', '.join(missing)}")
    meta = _metadata(folder / "encoder.onnx")
    absent = [key for key in SHERPA_META if key not in meta]
    if absent:
        raise ModelLoadError(f"{folder / 'encoder.onnx'}: metadata lacks {', '.join(absent)} (sherpa-onnx reads them)")
    decoder = onnx.load(str(folder / "decoder.onnx"), load_external_data=False)
    if len(decoder.graph.output) < 2:
        raise ModelLoadError(f"{folder / 'decoder.onnx'} has one output: sherpa-onnx would not take its stateful "
                             "(NeMo) path")
    vocab = int(meta["vocab_size"]) + 1
    lines = (folder / "tokens.txt").read_text(encoding="utf-8").splitlines()
    if len(lines) != vocab:
        raise ModelLoadError(f"{folder / 'tokens.txt'} has {len(lines)} lines; the encoder's vocab_size "
                             f"{meta['vocab_size']} + blank needs {vocab}")
    for number, line in enumerate(lines, 1):
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) != number - 1:
            raise ModelLoadError(f"{folder / 'tokens.txt'} line {number}: expected '<piece> {number - 1}', "
                                 f"got {line!r}")
    if lines[-1].rsplit(" ", 1)[0] != "<blk>":
        raise ModelLoadError(f"{folder / 'tokens.txt'}: the last id must be <blk> (sherpa-onnx's blank), got "
                             f"{lines[-1]!r}")
    return meta


@torch.no_grad()
def verify_sherpa_folder(folder: Path, step: SherpaEncoder, decoder: OnnxDecoder, joiner: OnnxJoiner,
                         joiner_dim: int, tolerance: float = 1e-4, chunks: int = 5, seed: int = 0
                         ) -> dict[str, float]:
    """The graphs against PyTorch: encoder.onnx over ``chunks`` chunks of a random batch
    of 2 (caches carried), one decoder step from random states, the joiner on random
    inputs. Returns the largest absolute difference of each; ``ModelLoadError`` above
    ``tolerance``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1

    def session(name: str) -> "onnxruntime.InferenceSession":
        return onnxruntime.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])

    def largest(outputs: list, reference: tuple) -> float:
        return max(float((torch.from_numpy(a).float() - b.float()).abs().max()) for a, b in zip(outputs, reference))

    generator = torch.Generator().manual_seed(seed)
    encoder = session("encoder.onnx")
    ours = theirs = step.initial_state(2)
    worst = {"encoder": 0.0}
    length = torch.full((2,), step.window_frames, dtype=torch.long)
    for _ in range(chunks):
        window = torch.randn(2, step.n_mels, step.window_frames, generator=generator) * 3 - 5
        reference = step(window, length, *ours)
        feeds = dict(zip(ENCODER_INPUTS, (window.numpy(), length.numpy(), *(t.numpy() for t in theirs))))
        outputs = encoder.run(None, feeds)
        worst["encoder"] = max(worst["encoder"], largest(outputs, reference))
        ours, theirs = tuple(reference[2:]), tuple(torch.from_numpy(t) for t in outputs[2:])
    lstm = decoder.lstm.rnn
    vocab = len(decoder.order)
    inputs = (torch.randint(0, vocab, (2, 1), generator=generator, dtype=torch.int32), torch.ones(2, dtype=torch.int32),
              torch.randn(lstm.num_layers, 2, lstm.hidden_size, generator=generator),
              torch.randn(lstm.num_layers, 2, lstm.hidden_size, generator=generator))
    outputs = session("decoder.onnx").run(None, dict(zip(DECODER_INPUTS, (t.numpy() for t in inputs))))
    worst["decoder"] = largest(outputs, decoder(*inputs))
    sides = tuple(torch.randn(2, joiner_dim, 1, generator=generator) for _ in range(2))
    outputs = session("joiner.onnx").run(None, dict(zip(JOINER_INPUTS, (t.numpy() for t in sides))))
    worst["joiner"] = largest(outputs, (joiner(*sides),))
    failed = {name: value for name, value in worst.items() if not value <= tolerance}
    if failed:
        raise ModelLoadError(f"{folder}: ONNX differs from PyTorch by more than {tolerance:g}: "
                             + ", ".join(f"{name} {value:.2e}" for name, value in failed.items()))
    return worst


# ---------------------------------------------------------------------- sherpa-onnx itself
def sherpa_recognizer(folder: str | os.PathLike, threads: int = 1) -> "object":
    """``sherpa_onnx.OnlineRecognizer`` over ``folder`` (sherpa-onnx's loader picks the
    NeMo path from decoder.onnx's outputs). ``ModelLoadError`` without the package."""
    check_sherpa_folder(folder)
    try:
        import sherpa_onnx
    except ImportError:
        raise ModelLoadError("the sherpa-onnx package is not installed (pip install sherpa-onnx)") from None
    folder = Path(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sherpa_onnx.OnlineRecognizer.from_transducer(
            tokens=str(folder / "tokens.txt"), encoder=str(folder / "encoder.onnx"),
            decoder=str(folder / "decoder.onnx"), joiner=str(folder / "joiner.onnx"), num_threads=threads,
            sample_rate=16000, feature_dim=80, decoding_method="greedy_search")


def sherpa_decode(recognizer: object, waves: list, sample_rate: int = 16000,
                  tail_padding_s: float = SHERPA_TAIL_PADDING_S, batch: int = 8) -> list[dict]:
    """Decode waveforms (float32 arrays in [-1, 1]) with sherpa-onnx as its websocket
    server does: all samples, ``tail_padding_s`` of zeros, input finished, decoded while
    ready; ``batch`` streams per ``decode_streams`` call. Returns per wave ``text``,
    ``tokens`` and ``timestamps`` (seconds)."""
    import numpy as np

    results = []
    for start in range(0, len(waves), batch):
        streams = []
        for wave in waves[start : start + batch]:
            stream = recognizer.create_stream()
            stream.accept_waveform(sample_rate, np.asarray(wave, dtype=np.float32))
            stream.accept_waveform(sample_rate, np.zeros(int(tail_padding_s * sample_rate), dtype=np.float32))
            stream.input_finished()
            streams.append(stream)
        while True:
            ready = [s for s in streams if recognizer.is_ready(s)]
            if not ready:
                break
            recognizer.decode_streams(ready)
        for stream in streams:
            result = recognizer.get_result_all(stream)
            results.append({"text": result.text.strip(), "tokens": list(result.tokens),
                            "timestamps": list(result.timestamps)})
    return results




def write_sherpa_readme(export: SherpaExport) -> Path:
    """A model card for a sherpa-onnx folder: what it is and the commands that run it
    (Python API, C++ WebSocket server and client)."""
    meta = export.meta
    front = meta["front_end"]
    trained_on = "kaldi-native-fbank (what sherpa-onnx computes)" if front.get("kind") == "kaldi-native-fbank" \
        else f"{front.get('kind')} (NOT what sherpa-onnx computes: exported with --force, expect a high WER)"
    git = f", git {meta['git_commit']}" if meta.get("git_commit") else ""
    text = f"""# Streaming Conformer-Transducer for sherpa-onnx

Exported by `streamasr export-onnx --target sherpa-onnx` (streamasr {meta['streamasr_version']}{git}) from
`{meta['source']}` (weights {meta['checkpoint']}): chunks of {meta['chunk_ms']:g} ms ({meta['chunk_frames']} encoder frames,
window_size = chunk_shift = {meta['window_size']} feature frames), {meta['left_chunks']} chunks of
left context, {meta['vocab_size'] + 1} tokens (blank `<blk>` last), greedy search. Front end the
model was trained on: {trained_on}. Normalisation and the CNN front end run inside
encoder.onnx; the CNN's last 4 feature frames ride in `cache_last_time`'s extra slot.

## Run with sherpa-onnx

```bash
pip install sherpa-onnx sherpa-onnx-bin
```

Python:

```python
import numpy as np, soundfile as sf, sherpa_onnx
recognizer = sherpa_onnx.OnlineRecognizer.from_transducer(
    tokens="tokens.txt", encoder="encoder.onnx", decoder="decoder.onnx", joiner="joiner.onnx",
    num_threads=1, sample_rate=16000, feature_dim=80, decoding_method="greedy_search")
audio, rate = sf.read("example.wav", dtype="float32")
stream = recognizer.create_stream()
stream.accept_waveform(rate, audio)
stream.accept_waveform(rate, np.zeros(int(0.8 * rate), dtype=np.float32))  # tail padding
stream.input_finished()
while recognizer.is_ready(stream):
    recognizer.decode_stream(stream)
print(recognizer.get_result(stream))
```

C++ WebSocket server (many streams batched) and its client:

```bash
sherpa-onnx-online-websocket-server --port=6006 --num-work-threads=1 --max-batch-size=32 \\
    --tokens=tokens.txt --encoder=encoder.onnx --decoder=decoder.onnx --joiner=joiner.onnx
sherpa-onnx-online-websocket-client --server-ip=127.0.0.1 --server-port=6006 example.wav
```

Differences from streamasr's own engine: sherpa-onnx ends a stream with tail padding
(zeros, whole windows) where streamasr runs a short last chunk, and allows 10 symbols
per frame (streamasr 6 by default). `streamasr check-sherpa` measures both.
"""
    path = export.folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["SHERPA_FORMAT", "SherpaEncoder", "SherpaExport", "check_front_end", "check_sherpa_folder",
           "export_sherpa_onnx", "sherpa_decode", "sherpa_recognizer", "verify_sherpa_folder", "write_sherpa_readme"]
