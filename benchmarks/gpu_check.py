#!/usr/bin/env python3
"""One prepared run on a GPU: the code paths that CPU-only CI never executes.

    bash benchmarks/gpu_check.sh                 # on the lent GPU machine (installs carried wheels)
    python benchmarks/gpu_check.py --device cuda # where streamasr's dependencies are installed
    python benchmarks/gpu_check.py --device cpu --tiny   # the same code on tiny shapes (tests)

Prints one Markdown table per part, with the device, torch version and the time each
part took:

1. **Training**: the full-size YAML (``hparams/conformer_transducer.yaml``: 12 x 512
   Conformer, LSTM 512, joint 640, augmentation on) with a small vocabulary, through
   ``TransducerBrain.fit_batch`` in the YAML's ``bf16`` autocast (and ``fp16`` with
   gradient scaling for a few updates): seconds of audio per second, peak GPU memory,
   first and last loss (finite and falling on a fixed batch set).
2. **Transducer losses**: our full and pruned RNN-T losses on the GPU against
   torchaudio's CUDA ``rnnt_loss`` (where the installed torchaudio still has it) at a
   few ``B, T, U, V`` shapes: time for forward + backward, peak memory, the relative
   loss difference and the largest gradient difference against torchaudio.
3. **Evaluation and streaming**: masked-simulation decoding of a batch (the path
   ``streamasr evaluate`` batches) and the streaming engine's chunk compute (front end
   + encoder + greedy search, 640 ms chunks, 4 left chunks) for 1 and for 32 streams.

Audio is generated (seeded noise with a few tones; no corpus, no espeak-ng): these are
throughput and correctness checks, not accuracy. Exit status 0 with a notice when the
asked device is CUDA and none is available.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import speechbrain as sb  # noqa: E402
from hyperpyyaml import load_hyperpyyaml  # noqa: E402
from rnnt_loss import loss_fn, make_inputs  # noqa: E402
from speechbrain.dataio.batch import PaddedBatch  # noqa: E402
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig  # noqa: E402

from streamasr.training import TransducerBrain  # noqa: E402

FULL_YAML = ROOT / "hparams" / "conformer_transducer.yaml"
SAMPLE_RATE = 16000

# (B, T, U, V): a typical batch of 10 s utterances, a long one, and a large vocabulary.
LOSS_SHAPES = [(16, 250, 60, 256), (16, 500, 100, 500), (8, 1000, 150, 1000)]
TINY_LOSS_SHAPES = [(2, 20, 5, 16), (2, 30, 8, 24)]
TINY_MODEL = {"d_model": 32, "nhead": 2, "num_encoder_layers": 1, "d_ffn": 64, "dec_dim": 32, "joint_dim": 32}


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device: str) -> str:
    """Peak allocated GPU memory since the last ``reset_peak``, in MB ("-" on CPU)."""
    return f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if device == "cuda" else "-"


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def generated_audio(seconds: float, generator: torch.Generator) -> torch.Tensor:
    """Seeded noise with three tones of random pitch: ``[samples]`` float32 at 16 kHz."""
    samples = int(seconds * SAMPLE_RATE)
    t = torch.arange(samples) / SAMPLE_RATE
    pitches = 100 + 900 * torch.rand(3, generator=generator)
    tones = sum(0.1 * torch.sin(2 * math.pi * float(f) * t) for f in pitches)
    return (tones + 0.02 * torch.randn(samples, generator=generator)).float()


def batch_of(seconds_each: list[float], vocab: int, seed: int) -> PaddedBatch:
    """A training batch of generated audio with random token sequences (~3 tokens/s)."""
    generator = torch.Generator().manual_seed(seed)
    items = []
    for index, seconds in enumerate(seconds_each):
        tokens = torch.randint(1, vocab, (max(1, int(3 * seconds)),), generator=generator)
        items.append({"id": f"gen{seed}_{index}", "sig": generated_audio(seconds, generator),
                      "tokens_bos": torch.cat([torch.zeros(1, dtype=torch.long), tokens]),
                      "tokens": tokens, "wrd": "X"})
    return PaddedBatch(items)


def load_hparams(output: str, vocab: int, tiny: bool) -> dict:
    overrides = {"output_folder": output, "data_folder": output, "output_neurons": vocab}
    if tiny:
        overrides.update(TINY_MODEL)
    with open(FULL_YAML, encoding="utf-8") as handle:
        return load_hyperpyyaml(handle, overrides)


# ----------------------------------------------------------------------- part 1
def check_training(device: str, precision: str, updates: int, batch_seconds: float, utterance_seconds: float,
                   vocab: int, tiny: bool, output: str) -> list[str]:
    torch.manual_seed(0)
    hparams = load_hparams(output, vocab, tiny)
    brain = TransducerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                            run_opts={"device": device, "precision": precision},
                            checkpointer=None)
    brain.modules.to(device)
    brain.init_optimizers()
    brain.modules.train()
    brain.hparams.epoch_counter.current = 2  # DCT chunking on, CTC on, as in early training
    per_batch = max(1, int(batch_seconds // utterance_seconds))
    accumulation = brain.grad_accumulation_factor
    batches = [batch_of([utterance_seconds] * per_batch, vocab, seed) for seed in range(4)]
    audio_per_batch = per_batch * utterance_seconds

    losses = []
    # one warm-up update (kernel selection, allocator), not timed
    for index in range(accumulation):
        brain.fit_batch(batches[index % len(batches)])
    synchronize(device)
    reset_peak(device)
    start = time.perf_counter()
    for index in range(updates * accumulation):
        loss = brain.fit_batch(batches[index % len(batches)])
        if (index + 1) % accumulation == 0:
            losses.append(float(loss.detach()))
    synchronize(device)
    seconds = time.perf_counter() - start
    audio = audio_per_batch * updates * accumulation
    finite = all(math.isfinite(x) for x in losses)
    third = max(1, len(losses) // 3)  # mean of the first and of the last third of the updates
    first, last = sum(losses[:third]) / third, sum(losses[-third:]) / third
    parameters = sum(p.numel() for p in brain.modules.parameters()) / 1e6
    return [precision, f"{parameters:.1f} M", f"{updates} x {accumulation} x {per_batch} x {utterance_seconds:g} s",
            f"{audio / seconds:.0f}", f"{seconds / updates:.3f}", peak_memory_mb(device),
            f"{first:.3f} -> {last:.3f}", "yes" if finite and last < first else "NO"]


# ----------------------------------------------------------------------- part 2
def torchaudio_rnnt_available() -> bool:
    try:
        import torchaudio.functional as F
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return hasattr(F, "rnnt_loss")


def loss_run(name: str, shape, device: str):
    am, lm, targets, frames, labels = make_inputs(*shape, device)
    am.requires_grad_(True)
    lm.requires_grad_(True)
    fn = loss_fn(name, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn(am, lm, targets, frames, labels).backward()  # warm-up
        am.grad = lm.grad = None
        synchronize(device)
        reset_peak(device)
        start = time.perf_counter()
        loss = fn(am, lm, targets, frames, labels)
        loss.backward()
        synchronize(device)
    return time.perf_counter() - start, peak_memory_mb(device), float(loss.detach()), am.grad, lm.grad


def check_losses(device: str, shapes) -> list[list[str]]:
    rows = []
    reference = torchaudio_rnnt_available()
    for shape in shapes:
        ta = loss_run("torchaudio", shape, device) if reference else None
        for name in ("full", "pruned"):
            seconds, memory, loss, am_grad, lm_grad = loss_run(name, shape, device)
            if ta is not None and name == "full":
                rel = abs(loss - ta[2]) / abs(ta[2])
                grad = max(float((am_grad - ta[3]).abs().max()), float((lm_grad - ta[4]).abs().max()))
                agree = f"{rel:.1e} / {grad:.1e}"
            elif ta is not None:  # the pruned loss is another objective: no equality expected
                agree = f"loss {loss / ta[2]:.3f} x torchaudio's"
            else:
                agree = "torchaudio rnnt_loss not available"
            speed = f"{ta[0] / seconds:.1f}x" if ta is not None else "-"
            rows.append([", ".join(map(str, shape)), name, f"{seconds * 1e3:.1f}",
                         f"{ta[0] * 1e3:.1f}" if ta else "-", speed, memory,
                         ta[1] if ta else "-", agree])
    return rows


# ----------------------------------------------------------------------- part 3
def tiny_tokenizer(vocab: int):
    """A real SentencePiece model of exactly ``vocab`` pieces (ids as the model emits them)."""
    import io

    import sentencepiece

    generator = torch.Generator().manual_seed(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(letters[int(i)] for i in torch.randint(0, 26, (int(n),), generator=generator))
             for n in torch.randint(2, 9, (400,), generator=generator)]
    sentences = [" ".join(words[int(i)] for i in torch.randint(0, 400, (8,), generator=generator))
                 for _ in range(2000)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab, model_type="unigram",
        unk_id=0, bos_id=-1, eos_id=-1, minloglevel=2)
    return sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())


def check_inference(device: str, vocab: int, tiny: bool, output: str, streams: int,
                    stream_seconds: float) -> list[list[str]]:
    from streamasr.model import build_model
    from streamasr.streaming import StreamingRecognizer

    torch.manual_seed(0)
    hparams = load_hparams(output, vocab, tiny)
    generator = torch.Generator().manual_seed(1)
    wavs = [generated_audio(stream_seconds, generator) for _ in range(streams)]
    # global feature statistics, as training would have left them
    feats = hparams["compute_features"](torch.stack(wavs[:4]))
    hparams["normalize"].train()(feats, torch.ones(feats.shape[0]), epoch=0)
    model = build_model(hparams, tiny_tokenizer(vocab), device)
    rows = []

    # masked simulation (what `streamasr evaluate` batches), full context and 640 ms chunks
    for label, config in (("masked, full context", None), ("masked, 640 ms / 4 left", DynChunkTrainConfig(16, 4))):
        model.transcribe_masked(wavs[:2], config)  # warm-up
        synchronize(device)
        reset_peak(device)
        start = time.perf_counter()
        model.transcribe_masked(wavs, config)
        synchronize(device)
        seconds = time.perf_counter() - start
        rows.append([label, str(streams), "-", "-", f"{streams * stream_seconds / seconds:.0f}",
                     peak_memory_mb(device)])

    # streaming engine: lock-step batches of streams, one chunk at a time
    recognizer = StreamingRecognizer(model, DynChunkTrainConfig(16, 4))
    for batch in sorted({1, streams}):
        audio = torch.stack(wavs[:batch]).to(device)
        state = recognizer.init_state(batch)
        reset_peak(device)
        chunk_times = []
        step = recognizer.chunk_samples
        for begin in range(0, audio.shape[1], step):
            synchronize(device)
            start = time.perf_counter()
            outputs = recognizer.accept_audio(state, audio[:, begin:begin + step])
            synchronize(device)
            if outputs:
                chunk_times.append((time.perf_counter() - start) / (len(outputs) // batch))  # B outputs a chunk
        chunk_times = sorted(chunk_times[1:] or chunk_times)  # first chunk: warm-up
        median = chunk_times[len(chunk_times) // 2]
        chunk_seconds = 16 * recognizer.geometry.frame_ms / 1000
        rows.append(["streaming engine, 640 ms / 4 left", str(batch), f"{median * 1e3:.1f}",
                     f"{median * 1e3 / batch:.2f}", f"{batch * chunk_seconds / median:.0f}",
                     peak_memory_mb(device)])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny model and shapes (a smoke run on CPU)")
    parser.add_argument("--updates", type=int, default=50, help="timed bf16 updates (default 50)")
    parser.add_argument("--fp16-updates", type=int, default=5, help="timed fp16 updates (0 = skip)")
    parser.add_argument("--batch-seconds", type=float, default=240.0, help="audio per batch (YAML: 250 s / GPU)")
    parser.add_argument("--utterance-seconds", type=float, default=15.0)
    parser.add_argument("--vocab", type=int, default=64, help="output units incl. blank (small: no corpus)")
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--stream-seconds", type=float, default=20.0)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: train,losses,inference")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}): nothing to check.")
        return 0
    if args.tiny:
        args.updates, args.batch_seconds, args.utterance_seconds = min(args.updates, 2), 2.0, 1.0
        args.streams, args.stream_seconds, args.fp16_updates = min(args.streams, 3), 2.0, min(args.fp16_updates, 1)
    skip = set(filter(None, args.skip.split(",")))
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "CPU"
    cuda = f", CUDA {torch.version.cuda}" if args.device == "cuda" else ""
    print(f"device: {name}; torch {torch.__version__}{cuda}; Python {platform.python_version()}; "
          f"speechbrain {sb.__version__}")
    output = tempfile.mkdtemp(prefix="gpu_check_")
    started = time.perf_counter()

    if "train" not in skip:
        part = time.perf_counter()
        rows = [check_training(args.device, "bf16", args.updates, args.batch_seconds, args.utterance_seconds,
                               args.vocab, args.tiny, output)]
        if args.fp16_updates and args.device == "cuda":  # SpeechBrain: fp16 is CUDA-only
            rows.append(check_training(args.device, "fp16", args.fp16_updates, args.batch_seconds,
                                       args.utterance_seconds, args.vocab, args.tiny, output))
        print(f"\n### Training the full-size YAML ({time.perf_counter() - part:.0f} s)\n")
        print(table(["precision", "parameters", "updates x accumulation x batch", "audio s / s",
                     "s / update", "peak MB", "loss first -> last", "finite, falling"], rows), flush=True)
    if "losses" not in skip:
        part = time.perf_counter()
        rows = check_losses(args.device, TINY_LOSS_SHAPES if args.tiny else LOSS_SHAPES)
        print(f"\n### Transducer losses, forward + backward, fp32 ({time.perf_counter() - part:.0f} s)\n")
        print(table(["B, T, U, V", "ours", "ours ms", "torchaudio ms", "speed-up", "ours MB", "torchaudio MB",
                     "rel. loss diff / max grad diff vs torchaudio"], rows), flush=True)
    if "inference" not in skip:
        part = time.perf_counter()
        rows = check_inference(args.device, args.vocab, args.tiny, output, args.streams, args.stream_seconds)
        print(f"\n### Evaluation and streaming, fp32 ({time.perf_counter() - part:.0f} s)\n")
        print(table(["path", "streams", "ms / chunk", "ms / chunk / stream", "audio s / s", "peak MB"], rows))
    print(f"\ngpu_check: done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
