"""Shared test helpers: paths, the tiny corpus and tiny-model settings, running
train.py, reading its logs and reporting a failed subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataio import read_audio
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.data.manifest import read_manifest, resolve_path
from streamasr.data.synthetic import Augmentation
from streamasr.model import AsrModel
from streamasr.streaming import StreamingRecognizer

REPO = Path(__file__).resolve().parents[2]
SMALL_YAML = REPO / "hparams" / "conformer_transducer_small.yaml"
FULL_YAML = REPO / "hparams" / "conformer_transducer.yaml"
KALDI_YAML = REPO / "hparams" / "frontend_kaldi.yaml"  # front-end override file

TINY_CORPUS = dict(
    train_utterances=24,
    valid_utterances=4,
    test_voices_utterances=4,
    test_text_utterances=4,
    test_synth_utterances=4,
    valid_speakers=3,
    test_speakers=3,
    max_words=10,  # short utterances keep the tests fast (and greedy near-ties of random weights rare)
    augmentation=Augmentation(),  # off in the default corpus; the tiny one exercises it end to end
    human_utterances=3,  # 3 recordings per human test set, and 3 per training copy:
    human_train_speeds=(0.9, 1.1),  # off in the default corpus; exercised end to end here
    seed=7,
)

# A model small enough to train a few steps in seconds on CPU.
TINY_MODEL_OVERRIDES = [
    "--d_model=32",
    "--nhead=2",
    "--num_encoder_layers=1",
    "--d_ffn=64",
    "--dec_dim=32",
    "--joint_dim=32",
    "--output_neurons=40",
    "--lr=0.003",
    "--warmup_steps=5",
    "--ckpt_interval_minutes=0",
]


def audio_paths(corpus: Path, split: str = "test_voices") -> list[str]:
    """Audio file paths of a corpus split, in manifest order."""
    return [resolve_path(row["wav"], str(corpus)) for row in read_manifest(corpus / f"{split}.csv")]


def run_train(yaml: Path, corpus: Path, output: Path, *extra: str, timeout: int = 600,
              env: dict | None = None):
    """Run train.py in a subprocess (``env``: extra environment variables); returns the
    CompletedProcess."""
    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        str(yaml),
        f"--data_folder={corpus}",
        f"--output_folder={output}",
        *extra,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def failure_report(result: subprocess.CompletedProcess, lines: int = 80) -> str:
    """What a failed subprocess said, for an assertion message: its last traceback when
    there is one (SpeechBrain logs it to stdout, so both streams are searched), else the
    end of stderr without SentencePiece's trainer log (which otherwise fills the tail and
    hides the error)."""
    stderr = result.stderr
    for stream in (result.stderr, result.stdout or ""):
        if "Traceback (most recent call last)" in stream:
            stderr = stream[stream.rindex("Traceback (most recent call last)"):]
            break
    kept, in_spec = [], False
    for line in stderr.splitlines():
        if re.match(r"^\w+\.cc\(\d+\) LOG", line) or re.match(r"^(trainer|normalizer|denormalizer)_spec \{", line):
            in_spec = line.rstrip().endswith("{")
            continue
        if in_spec:
            in_spec = line.strip() != "}"
            continue
        kept.append(line)
    return f"exit status {result.returncode}\n" + "\n".join(kept[-lines:])


def train_log_epochs(output: Path) -> list[int]:
    """Epoch numbers logged in train_log.txt, in order."""
    log = output / "train_log.txt"
    if not log.exists():
        return []
    epochs = []
    for line in log.read_text().splitlines():
        if line.startswith("epoch:"):
            epochs.append(int(line.split(",")[0].split(":")[1]))
    return epochs


def reference_text(model: AsrModel, wav_path: str | Path, chunk_frames: int = 16, left: int = 4) -> str:
    """The engine's transcript of one file (exact front end, 640 ms / 4 left chunks)."""
    wav = read_audio(str(wav_path))
    state, _ = StreamingRecognizer(model, DynChunkTrainConfig(chunk_frames, left)).transcribe(wav)
    return state.result.text


def cli(*args: object, stdin: bytes | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m streamasr.cli ARGS`` in a subprocess (bytes in and out)."""
    return subprocess.run([sys.executable, "-m", "streamasr.cli", *map(str, args)], input=stdin,
                          capture_output=True, timeout=timeout)


def random_encoder(yaml: Path, overrides: dict) -> torch.nn.Module:
    """The Conformer encoder of a YAML (eval mode) with random, non-trivial weights
    everywhere (N(0, 0.1)), seeded: a probe for streaming equalities."""
    with open(yaml, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    torch.manual_seed(0)
    model = hparams["Transformer"].eval()
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return model


NEAR_TIE = 1e-2  # nats: a greedy decision this close can flip on float rounding (oneDNN kernels differ by CPU)


def assert_same_or_near_tie(ours: list[int], theirs: list[int], margins: tuple[float, ...], what: str) -> bool:
    """Equal token sequences, or a near-tie reported by one of the searches (the policy
    of every streaming equality test). Returns whether they were equal."""
    if ours == theirs:
        return True
    assert min(margins) < NEAR_TIE, f"{what}: hypotheses differ without a near-tie ({min(margins)})"
    return False


def beam_gap(nbest: list) -> float:
    """The log-probability gap between a beam search's two best hypotheses (``state.result.nbest``):
    a small gap is a near-tie that float rounding (oneDNN kernels, batch size) may flip."""
    return nbest[0][1] - nbest[1][1] if len(nbest) > 1 else float("inf")


def drive_staggered(recognizer: StreamingRecognizer, wavs: list[torch.Tensor], step: int
                    ) -> tuple[list, list[list], list[int]]:
    """sherpa-onnx's driving of ``decode_streams``: a new stream joins at every tick
    (so all are at different positions), each gets ``step`` samples per tick, one
    batched decode call per tick. Returns the streams, each stream's token events and
    the batch size of every call."""
    streams, fed, events, batch_sizes = [], [0] * len(wavs), [[] for _ in wavs], []
    for _ in range(100_000):
        if len(streams) < len(wavs):
            streams.append(recognizer.create_stream())
        for index, stream in enumerate(streams):
            wav = wavs[index]
            if fed[index] < wav.shape[-1]:
                recognizer.accept_waveform(stream, wav[fed[index] : fed[index] + step])
                fed[index] += step
                if fed[index] >= wav.shape[-1]:
                    recognizer.input_finished(stream)
        outputs = recognizer.decode_streams(streams)
        batch_sizes.append(sum(o is not None for o in outputs))
        for index, output in enumerate(outputs):
            if output is not None:
                events[index].extend(output.tokens)
        if len(streams) == len(wavs) and all(s.finished for s in streams):
            break
    return streams, events, batch_sizes


def run_stock(folder: Path, chunk: int, left: int, files: list) -> dict:
    """tools/stock_streaming_asr.py on ``files`` in a process that never imports
    streamasr (stock SpeechBrain's StreamingASR on an exported folder): its JSON report."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "stock_streaming_asr.py"), str(folder), *map(str, files),
         "--chunk-frames", str(chunk), "--left-chunks", str(left), "--json"],
        capture_output=True, text=True, timeout=600, cwd="/",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
