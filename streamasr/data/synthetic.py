"""The built-in corpus: English sentences spoken by espeak-ng, as SpeechBrain manifests.

Owns: the espeak-ng voice inventory, the voice-disjoint train/valid/test split, the
per-utterance speaking style (voice, variant, rate, pitch), parallel resumable synthesis
and the manifests ``train.csv``, ``valid.csv``, ``test.csv`` (``ID,duration,wav,spk_id,wrd``
with ``$data_root`` placeholders).

A "speaker" is one espeak-ng voice + variant combination (e.g. ``en-us+f3``). Valid and
test speakers never occur in train, so test WER measures generalisation to unseen voices.
Everything is a pure function of the seed and the sizes: re-running with the same
arguments gives byte-identical manifests and audio, and only synthesises what is missing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from streamasr.data.manifest import write_manifest
from streamasr.data.text import generate_sentences
from streamasr.errors import ConfigError, EspeakMissingError
from streamasr.units import SAMPLE_RATE

ESPEAK_RATE = 22050

# The eSpeak NG English voices that synthesise without extra data (no MBROLA).
ENGLISH_VOICES = (
    "en-gb",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
# Whispered variants carry no voicing at all; they are a different task, left out.
EXCLUDED_VARIANTS = frozenset({"whisper", "whisperf"})
SPLITS = ("train", "valid", "test")




@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """Sizes and ranges of the synthetic corpus (all of it is in ``corpus.json``)."""

    train_utterances: int = 7000
    valid_utterances: int = 100
    test_utterances: int = 200
    valid_speakers: int = 40
    test_speakers: int = 60
    vocabulary_size: int = 2000
    min_words: int = 4
    max_words: int = 14
    rate_wpm: tuple[int, int] = (140, 220)
    pitch: tuple[int, int] = (25, 75)
    seed: int = 1234


@dataclasses.dataclass(frozen=True)
class UtteranceSpec:
    """Everything needed to synthesise one utterance."""

    utt_id: str
    split: str
    voice: str
    variant: str
    rate_wpm: int
    pitch: int
    text: str

    @property
    def speaker(self) -> str:
        return f"{self.voice}+{self.variant}"

    @property
    def relative_path(self) -> str:
        return f"{self.split}/{self.utt_id}.wav"


def espeak_binary() -> str:
    """Path of the espeak-ng executable; raises EspeakMissingError with install help."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakMissingError(
            "espeak-ng is not installed: the built-in corpus is synthesised with it. "
            "Install it (Debian/Ubuntu: `sudo apt-get install espeak-ng`, "
            "macOS: `brew install espeak-ng`) or run `make install` as root."
        )
    return path


def list_variants() -> list[str]:
    """Voice variants installed with espeak-ng, sorted, minus EXCLUDED_VARIANTS."""
    binary = espeak_binary()
    out = subprocess.run(
        [binary, "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    variants = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        # columns: Pty Language Age/Gender VoiceName File [Other]; File is "!v/<name>"
        for field in fields:
            if field.startswith("!v/"):
                variants.append(field[3:])
                break
    variants = sorted(set(variants) - EXCLUDED_VARIANTS)
    if not variants:
        raise EspeakMissingError(f"{binary} lists no voice variants (--voices=variant)")
    return variants


def split_speakers(
    voices: Sequence[str], variants: Sequence[str], config: CorpusConfig
) -> dict[str, list[tuple[str, str]]]:
    """Assign every voice+variant combination to exactly one split.

    Returns {"train": [...], "valid": [...], "test": [...]} of (voice, variant) pairs.
    """
    combos = [(voice, variant) for voice in sorted(voices) for variant in sorted(variants)]
    needed = config.valid_speakers + config.test_speakers
    if needed >= len(combos):
        raise ConfigError(
            f"valid_speakers + test_speakers = {needed} leaves no training voice out of "
            f"{len(combos)} voice+variant combinations"
        )
    rng = random.Random(config.seed)
    rng.shuffle(combos)
    test = combos[: config.test_speakers]
    valid = combos[config.test_speakers : needed]
    train = combos[needed:]
    return {"train": sorted(train), "valid": sorted(valid), "test": sorted(test)}


def plan_corpus(config: CorpusConfig, variants: Sequence[str]) -> list[UtteranceSpec]:
    """The full list of utterances to synthesise (deterministic in ``config``)."""
    speakers = split_speakers(ENGLISH_VOICES, variants, config)
    counts = {
        "train": config.train_utterances,
        "valid": config.valid_utterances,
        "test": config.test_utterances,
    }
    sentences = generate_sentences(
        sum(counts.values()),
        seed=config.seed,
        vocabulary_size=config.vocabulary_size,
        min_words=config.min_words,
        max_words=config.max_words,
    )
    if len(sentences) < sum(counts.values()):
        raise RuntimeError("text generator produced fewer sentences than requested")
    rng = random.Random(config.seed + 1)
    specs = []
    offset = 0
    for split in SPLITS:
        for index in range(counts[split]):
            voice, variant = rng.choice(speakers[split])
            specs.append(
                UtteranceSpec(
                    utt_id=f"{split}-{index:06d}",
                    split=split,
                    voice=voice,
                    variant=variant,
                    rate_wpm=rng.randint(*config.rate_wpm),
                    pitch=rng.randint(*config.pitch),
                    text=sentences[offset + index],
                )
            )
        offset += counts[split]
    return specs


def synthesize(spec: UtteranceSpec) -> np.ndarray:
    """Speak one utterance; returns float32 mono samples at 16 kHz, shape [samples]."""
    from scipy.signal import resample_poly

    result = subprocess.run(
        [
            espeak_binary(),
            "-v",
            spec.speaker,
            "-s",
            str(spec.rate_wpm),
            "-p",
            str(spec.pitch),
            "--stdout",
            spec.text.lower(),
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(
            f"espeak-ng failed for {spec.utt_id} (voice {spec.speaker}): "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != ESPEAK_RATE:
        raise RuntimeError(f"espeak-ng produced {rate} Hz audio, expected {ESPEAK_RATE} Hz")
    # 22050 -> 16000 Hz is the rational factor 320/441.
    audio = resample_poly(audio, 320, 441).astype(np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0.99:
        audio *= 0.99 / peak
    return audio


def _is_complete(path: Path) -> bool:
    try:
        info = sf.info(str(path))
    except Exception:
        return False
    return info.samplerate == SAMPLE_RATE and info.frames > 0 and info.channels == 1


def _synthesize_to_file(args: tuple[UtteranceSpec, str]) -> tuple[str, float, bool]:
    """Worker: returns (utt_id, duration in seconds, whether it had to be synthesised)."""
    spec, root = args
    path = Path(root) / spec.relative_path
    if _is_complete(path):
        return spec.utt_id, sf.info(str(path)).frames / SAMPLE_RATE, False
    audio = synthesize(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)  # an interrupted write never looks like a finished file
    return spec.utt_id, len(audio) / SAMPLE_RATE, True


def config_fingerprint(config: CorpusConfig) -> str:
    return hashlib.sha1(
        json.dumps(dataclasses.asdict(config), sort_keys=True).encode()
    ).hexdigest()[:12]


def build_corpus(
    data_folder: str | os.PathLike,
    config: CorpusConfig = CorpusConfig(),
    num_workers: int | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Synthesise the corpus into ``data_folder`` and write its manifests.

    Existing, readable wav files are kept (resuming an interrupted build); manifests are
    written last and atomically. Raises ValueError when the folder holds a corpus built
    with another configuration. Returns {split: manifest path}.
    """
    from tqdm import tqdm

    root = Path(data_folder)
    root.mkdir(parents=True, exist_ok=True)
    stamp = root / "corpus.json"
    description = {"fingerprint": config_fingerprint(config), **dataclasses.asdict(config)}
    if stamp.exists():
        previous = json.loads(stamp.read_text())
        if previous.get("fingerprint") != description["fingerprint"]:
            raise ConfigError(
                f"{root} already holds a corpus built with other settings ({stamp}); "
                "use another --data-folder or delete it"
            )
    variants = list_variants()
    specs = plan_corpus(config, variants)
    stamp.write_text(json.dumps(description, indent=2) + "\n")

    workers = num_workers or os.cpu_count() or 1
    durations: dict[str, float] = {}
    synthesised = 0
    jobs = [(spec, str(root)) for spec in specs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_synthesize_to_file, jobs, chunksize=16)
        for utt_id, duration, fresh in tqdm(
            results, total=len(jobs), desc="espeak-ng", unit="utt", disable=not progress
        ):
            durations[utt_id] = duration
            synthesised += fresh

    manifests = {}
    for split in SPLITS:
        rows = [
            {"ID": spec.utt_id, "duration": f"{durations[spec.utt_id]:.3f}",
             "wav": f"$data_root/{spec.relative_path}", "spk_id": spec.speaker, "wrd": spec.text}
            for spec in specs if spec.split == split
        ]
        manifests[split] = write_manifest(root / f"{split}.csv", rows)
    if progress:
        hours = sum(durations.values()) / 3600
        print(
            f"corpus ready in {root}: {len(specs)} utterances, {hours:.2f} h "
            f"({synthesised} synthesised now, {len(specs) - synthesised} reused)"
        )
    return manifests
