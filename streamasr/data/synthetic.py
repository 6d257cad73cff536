"""The built-in corpus: open-vocabulary English text spoken by three offline synthesisers,
with augmentation, as SpeechBrain manifests.

Owns: the voice inventory of espeak-ng, flite and festival; the split of speakers and
text sources into ``train``, ``valid`` and three test sets that each measure one thing;
per-utterance speaking style and augmentation; parallel, resumable synthesis; and the
manifests (``ID,duration,wav,spk_id,wrd`` with ``$data_root`` placeholders) plus
``utterances.csv`` (source, voice, style and augmentation of every utterance) and
``corpus_report.json`` (sizes, source shares, vocabulary, unseen-word rates).

Splits:

* ``train``: in-domain text (:data:`IN_DOMAIN_SHARES`), espeak-ng training voices and the
  training voices of the other synthesisers; augmented (speed, noise, reverberation)
  when ``augmentation`` says so (``build-corpus --augment``; off by default);
* ``valid``: in-domain held-out sentences, held-out espeak-ng voices, clean;
* ``test_voices``: in-domain held-out sentences, other held-out espeak-ng voices, clean;
* ``test_text``: sentences of the held-out text sources (:data:`HELD_OUT_SHARES`), never
  in training, by the ``test_voices`` voices: only the text differs from ``test_voices``;
* ``test_synth``: in-domain held-out sentences by a synthesiser never heard in training
  (``test_synthesizer``, festival by default) and its speakers: only the synthesiser
  (and so the speakers) differs.
* ``test_human``: recordings of a person (the Asterisk prompts, one US speaker), prompt
  texts never in training; ``test_human_unseen``: people never heard in training
  (pocketsphinx-testdata, the ALSA channel names). Both read from Debian packages
  (:mod:`streamasr.data.human`); the remaining Asterisk prompts join ``train`` only when
  ``human_train_speeds`` asks for it (one copy per speed factor).

A "speaker" is who a voice sounds like: an espeak-ng voice + variant (``en-us+f3``), or a
recorded person behind diphone / HTS / clustergen voices; kal and slt exist in both
flite and festival, so a speaker belongs to one split across synthesisers. Everything is
a pure function of the configuration: re-running gives byte-identical manifests and
audio and only synthesises what is missing.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from streamasr.data import human
from streamasr.data.audio import check_audio_complete, to_16k_mono
from streamasr.data.manifest import write_manifest
from streamasr.data.textsources import SOURCES, sample_sentences, words_of
from streamasr.errors import AudioError, ConfigError, EspeakMissingError, SynthesizerMissingError
from streamasr.pools import worker_pool
from streamasr.units import SAMPLE_RATE

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
# flite's built-in voices (engine name -> speaker). kal (8 kHz) duplicates kal16 and
# awb_time only speaks clock times: left out.
FLITE_VOICES = {"kal16": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}
# festival's Debian English voices: engine name -> (speaker, Debian package).
FESTIVAL_VOICES = {
    "kal_diphone": ("kal", "festvox-kallpc16k"),
    "ked_diphone": ("ked", "festvox-kdlpc16k"),
    "cmu_us_slt_arctic_hts": ("slt", "festvox-us-slt-hts"),
}
SYNTHESIZERS = ("espeak-ng", "flite", "festival")
SPLITS = ("train", "valid", "test_voices", "test_text", "test_synth")
TEST_SPLITS = SPLITS[2:]
# Recordings of people (streamasr/data/human.py): held-out prompts of the Asterisk
# speaker, and speakers never heard in training. Their sizes follow from the packages.
HUMAN_SPLITS = ("test_human", "test_human_unseen")
ALL_SPLITS = SPLITS + HUMAN_SPLITS
PRIMARY_TEST = "test_voices"
# Share of each in-domain source in every in-domain split (train, valid, test_voices,
# test_synth), and of each held-out source in test_text.
IN_DOMAIN_SHARES = {"wordnet": 0.35, "fortunes": 0.30, "numbers": 0.20, "markov": 0.15}
HELD_OUT_SHARES = {"devil": 0.6, "chatterbot": 0.4}
NOISE_KINDS = ("white", "pink", "brown")


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training-set augmentation, drawn per utterance (valid and test stay clean); the
    defaults are what ``build-corpus --augment`` turns on.

    speed_factors: speed perturbation (tempo and pitch), one factor drawn uniformly;
    noise_prob / snr_db: additive white, pink or brown noise at a uniform SNR in dB;
    reverb_prob / rt60_s: reverberation with a generated room impulse response
    (exponentially decaying noise tail after the direct path) of a uniform RT60.
    """

    speed_factors: tuple[float, ...] = (0.9, 1.0, 1.1)
    noise_prob: float = 0.4
    snr_db: tuple[float, float] = (10.0, 30.0)
    reverb_prob: float = 0.3
    rt60_s: tuple[float, float] = (0.15, 0.6)


NO_AUGMENTATION = Augmentation(speed_factors=(1.0,), noise_prob=0.0, reverb_prob=0.0)


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """Sizes and ranges of the built-in corpus (all of it is in ``corpus.json``)."""

    train_utterances: int = 9000
    valid_utterances: int = 100
    test_voices_utterances: int = 200
    test_text_utterances: int = 200
    test_synth_utterances: int = 200
    valid_speakers: int = 40
    test_speakers: int = 60
    other_synthesizer_share: float = 0.2  # train utterances spoken by flite/festival voices
    test_synthesizer: str = "festival"
    min_words: int = 4
    max_words: int = 18
    rate_wpm: tuple[int, int] = (140, 220)  # espeak-ng
    pitch: tuple[int, int] = (25, 75)  # espeak-ng
    stretch: tuple[float, float] = (0.85, 1.2)  # flite / festival duration stretch
    # Off by default: within the demo's 45-minute CPU budget Augmentation() cost 8.5 / 12.9
    # WER points on test_voices / test_text and gained 4.6 on test_synth (recipes/Synthetic/RESULTS.md, augmentation).
    augmentation: Augmentation = NO_AUGMENTATION
    # Recordings of people (streamasr/data/human.py). human_test_share: share of the
    # distinct Asterisk prompt texts held out as test_human; human_train_speeds: one
    # training copy of every other prompt per speed factor (() = none in train);
    # human_utterances: at most this many recordings per human test set and per training
    # copy (None: all; the tests' tiny corpora).
    human: bool = True
    human_test_share: float = 0.2
    human_train_speeds: tuple[float, ...] = ()
    human_utterances: int | None = None
    seed: int = 1234

    def counts(self) -> dict[str, int]:
        return {split: getattr(self, f"{split}_utterances") for split in SPLITS}


@dataclasses.dataclass(frozen=True)
class Voice:
    """One voice of one synthesiser: ``name`` is the engine's, ``speaker`` who it is."""

    synthesizer: str
    name: str
    speaker: str

    @property
    def spk_id(self) -> str:
        return f"{self.synthesizer}:{self.name}"


@dataclasses.dataclass(frozen=True)
class UtteranceSpec:
    """Everything needed to synthesise one utterance."""

    utt_id: str
    split: str
    voice: Voice
    rate: float  # espeak-ng: words per minute; flite/festival: duration stretch
    pitch: int | None  # espeak-ng only
    text: str
    source: str
    speed: float = 1.0
    recording: str = ""  # synthesizer "human": the packaged recording it is read from
    noise: str = ""  # "" or one of NOISE_KINDS
    snr_db: float = 0.0
    rt60_s: float = 0.0
    seed: int = 0  # of the noise and impulse response

    @property
    def speaker(self) -> str:
        return self.voice.spk_id

    @property
    def relative_path(self) -> str:
        return f"{self.split}/{self.utt_id}.wav"


# ---------------------------------------------------------------- synthesisers
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


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SynthesizerMissingError(
            f"{name} is not installed: the built-in corpus speaks with it. Install the Debian "
            f"package {package!r} (`sudo apt-get install {package}`) or run `make install` as root."
        )
    return path


def festival_voice_installed(name: str) -> bool:
    return bool(glob.glob(f"/usr/share/festival/voices/*/{name}"))


def check_synthesizers(voices: Sequence[Voice]) -> None:
    """A clear error naming the package for the first missing synthesiser or voice."""
    used = {voice.synthesizer for voice in voices}
    if "human" in used:
        human.ffmpeg_binary()
    if "espeak-ng" in used:
        espeak_binary()
    if "flite" in used:
        _binary("flite", "flite")
    if "festival" in used:
        _binary("text2wave", "festival")
        for voice in voices:
            if voice.synthesizer == "festival" and not festival_voice_installed(voice.name):
                package = FESTIVAL_VOICES[voice.name][1]
                raise SynthesizerMissingError(
                    f"festival voice {voice.name} is not installed: install the Debian package "
                    f"{package!r} (`sudo apt-get install {package}`) or run `make install` as root."
                )


def list_variants() -> list[str]:
    """Voice variants installed with espeak-ng, sorted, minus EXCLUDED_VARIANTS."""
    binary = espeak_binary()
    out = subprocess.run(
        [binary, "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    variants = []
    for line in out.splitlines()[1:]:
        # columns: Pty Language Age/Gender VoiceName File [Other]; File is "!v/<name>"
        for field in line.split():
            if field.startswith("!v/"):
                variants.append(field[3:])
                break
    variants = sorted(set(variants) - EXCLUDED_VARIANTS)
    if not variants:
        raise EspeakMissingError(f"{binary} lists no voice variants (--voices=variant)")
    return variants


def _run(command: list[str], spec: UtteranceSpec, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{spec.voice.synthesizer} failed for {spec.utt_id} (voice {spec.voice.name}): "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    return result.stdout


def synthesize(spec: UtteranceSpec) -> np.ndarray:
    """Speak one utterance, clean (or read a recording of a person); returns float32
    mono samples at 16 kHz."""
    text = spec.text.lower()
    synthesizer = spec.voice.synthesizer
    if synthesizer == "human":
        return human.read_recording(spec.recording)
    if synthesizer == "espeak-ng":
        wav = _run([espeak_binary(), "-v", spec.voice.name, "-s", str(int(spec.rate)),
                    "-p", str(spec.pitch), "--stdout", text], spec)
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    else:
        with tempfile.TemporaryDirectory(prefix="streamasr-tts-") as tmp:
            out = os.path.join(tmp, "out.wav")
            if synthesizer == "flite":
                _run([_binary("flite", "flite"), "-voice", spec.voice.name,
                      "--setf", f"duration_stretch={spec.rate:.3f}", "-t", text, "-o", out], spec)
            elif synthesizer == "festival":
                src = os.path.join(tmp, "in.txt")
                Path(src).write_text(text + "\n", encoding="ascii")
                _run([_binary("text2wave", "festival"), "-o", out, "-eval", f"(voice_{spec.voice.name})",
                      "-eval", f"(Parameter.set 'Duration_Stretch {spec.rate:.3f})", src], spec)
            else:
                raise ConfigError(f"unknown synthesiser {synthesizer!r}; expected one of {SYNTHESIZERS}")
            audio, rate = sf.read(out, dtype="float32")
    if audio.size == 0:
        raise RuntimeError(f"{synthesizer} produced no audio for {spec.utt_id} ({spec.text!r})")
    return to_16k_mono(audio, rate)


# ---------------------------------------------------------------- augmentation
def _coloured_noise(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(length)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= np.sqrt(freqs) if kind == "pink" else freqs  # 1/f or 1/f^2 power
    return np.fft.irfft(spectrum, n=length)


def room_impulse_response(rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A generated room impulse response: the direct path, then a noise tail decaying by
    60 dB over ``rt60_s`` (starting 2.5 ms later), direct-to-reverberant ratio ~0-10 dB."""
    length = int(rt60_s * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60_s)  # ln(1000) = 60 dB
    tail[: int(0.0025 * SAMPLE_RATE)] = 0.0
    drr_db = rng.uniform(0.0, 10.0)
    tail *= 10 ** (-drr_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    rir = tail
    rir[0] = 1.0
    return rir


def augment(audio: np.ndarray, spec: UtteranceSpec) -> np.ndarray:
    """Apply ``spec``'s speed perturbation, reverberation and noise (in that order)."""
    from scipy.signal import fftconvolve, resample_poly

    rng = np.random.default_rng(spec.seed)
    if spec.speed != 1.0:  # faster = fewer samples at the same rate (tempo and pitch)
        up = 100
        audio = resample_poly(audio, up, int(round(up * spec.speed)))
    if spec.rt60_s > 0:
        peak_before = float(np.abs(audio).max()) or 1.0
        audio = fftconvolve(audio, room_impulse_response(spec.rt60_s, rng))[: len(audio)]
        audio *= peak_before / (float(np.abs(audio).max()) or 1.0)
    if spec.noise:
        noise = _coloured_noise(spec.noise, len(audio), rng)
        speech_power = float(np.mean(audio.astype(np.float64) ** 2)) or 1e-8
        noise *= np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (spec.snr_db / 10)))
        audio = audio + noise
    return np.asarray(audio, dtype=np.float32)


# ---------------------------------------------------------------- planning
def split_speakers(
    voices: Sequence[str], variants: Sequence[str], config: CorpusConfig
) -> dict[str, list[tuple[str, str]]]:
    """Assign every espeak-ng voice+variant combination to exactly one of train, valid
    and test (test_voices and test_text share the test voices)."""
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


def split_voices(config: CorpusConfig, variants: Sequence[str]) -> dict[str, list[Voice]]:
    """The voices of each split. The test synthesiser's speakers are held out of training
    in every synthesiser (kal and slt speak in flite and festival)."""
    if config.test_synthesizer not in ("flite", "festival"):
        raise ConfigError(f"test_synthesizer: expected 'flite' or 'festival', got {config.test_synthesizer!r}")
    espeak = split_speakers(ENGLISH_VOICES, variants, config)

    def espeak_voices(pairs):
        return [Voice("espeak-ng", f"{v}+{var}", f"{v}+{var}") for v, var in pairs]

    others = [Voice("flite", name, speaker) for name, speaker in FLITE_VOICES.items()]
    others += [Voice("festival", name, speaker) for name, (speaker, _) in FESTIVAL_VOICES.items()]
    test_synth = [v for v in others if v.synthesizer == config.test_synthesizer]
    held_out = {v.speaker for v in test_synth}
    train_others = [v for v in others if v.synthesizer != config.test_synthesizer and v.speaker not in held_out]
    test = espeak_voices(espeak["test"])
    return {
        "train": espeak_voices(espeak["train"]) + train_others,
        "valid": espeak_voices(espeak["valid"]),
        "test_voices": test,
        "test_text": test,
        "test_synth": test_synth,
    }


def _allocate(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Integer counts per source summing to ``total`` (largest remainders)."""
    raw = {name: total * share / sum(shares.values()) for name, share in shares.items()}
    counts = {name: int(value) for name, value in raw.items()}
    for name in sorted(raw, key=lambda n: (counts[n] - raw[n], n))[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def plan_text(config: CorpusConfig) -> dict[str, list[tuple[str, str]]]:
    """``{split: [(source, sentence), ...]}``: no sentence in two splits; in-domain splits
    mix IN_DOMAIN_SHARES, test_text HELD_OUT_SHARES."""
    counts = config.counts()
    in_domain_splits = ("test_voices", "test_synth", "valid", "train")  # held-out first
    seen: set[str] = set()
    plan: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    wanted = {split: _allocate(counts[split], IN_DOMAIN_SHARES) for split in in_domain_splits}
    for index, name in enumerate(sorted(IN_DOMAIN_SHARES)):
        need = sum(wanted[split][name] for split in in_domain_splits)
        pool = SOURCES[name].load(config.min_words, config.max_words, int(need * 1.2) + 50,
                                  config.seed + 101 * index)
        pool = sample_sentences(pool, len(pool), config.seed + index)
        cursor = 0
        for split in in_domain_splits:
            taken = 0
            while taken < wanted[split][name]:
                if cursor >= len(pool):
                    raise ConfigError(
                        f"text source {name!r} has {len(pool)} usable sentences of {config.min_words}-"
                        f"{config.max_words} words, fewer than the {need} the corpus sizes ask for"
                    )
                sentence = pool[cursor]
                cursor += 1
                if sentence not in seen:
                    seen.add(sentence)
                    plan[split].append((name, sentence))
                    taken += 1
    held_counts = _allocate(counts["test_text"], HELD_OUT_SHARES)
    for index, name in enumerate(sorted(HELD_OUT_SHARES)):
        pool = [s for s in SOURCES[name].load(config.min_words, config.max_words, 0, 0) if s not in seen]
        if len(pool) < held_counts[name]:
            raise ConfigError(f"held-out text source {name!r} has only {len(pool)} usable sentences")
        plan["test_text"] += [(name, s) for s in sample_sentences(pool, held_counts[name], config.seed + 50 + index)]
    for index, split in enumerate(SPLITS):  # interleave the sources
        random.Random(config.seed + 1000 + index).shuffle(plan[split])
    return plan


def plan_corpus(config: CorpusConfig, variants: Sequence[str]) -> list[UtteranceSpec]:
    """The full list of utterances to synthesise (deterministic in ``config``)."""
    if not 0.0 <= config.other_synthesizer_share <= 1.0:
        raise ConfigError(f"other_synthesizer_share: expected 0..1, got {config.other_synthesizer_share}")
    voices = split_voices(config, variants)
    text = plan_text(config)
    rng = random.Random(config.seed + 1)
    aug = config.augmentation
    specs = []
    for split in SPLITS:
        espeak = [v for v in voices[split] if v.synthesizer == "espeak-ng"]
        others = [v for v in voices[split] if v.synthesizer != "espeak-ng"]
        for index, (source, sentence) in enumerate(text[split]):
            if not espeak or (others and rng.random() < config.other_synthesizer_share):
                voice = rng.choice(others)
            else:
                voice = rng.choice(espeak)
            if voice.synthesizer == "espeak-ng":
                rate, pitch = float(rng.randint(*config.rate_wpm)), rng.randint(*config.pitch)
            else:
                rate, pitch = round(rng.uniform(*config.stretch), 3), None
            extra = {}
            if split == "train":
                extra["speed"] = rng.choice(aug.speed_factors)
                if rng.random() < aug.reverb_prob:
                    extra["rt60_s"] = round(rng.uniform(*aug.rt60_s), 3)
                if rng.random() < aug.noise_prob:
                    extra["noise"] = rng.choice(NOISE_KINDS)
                    extra["snr_db"] = round(rng.uniform(*aug.snr_db), 1)
                extra["seed"] = rng.randrange(2**31)
            specs.append(UtteranceSpec(
                utt_id=f"{split}-{index:06d}", split=split, voice=voice, rate=rate, pitch=pitch,
                text=sentence, source=source, **extra,
            ))
    if config.human:
        specs += plan_human(config)
    elif config.human_train_speeds:
        raise ConfigError("human_train_speeds needs the recordings of people (human: True; "
                          "build-corpus without --no-human)")
    return specs


# Prompts longer than this stay out of the training share: one demo batch is 12 s of
# audio, and 17 Asterisk prompts run 16-73 s (they are test_human material).
HUMAN_TRAIN_MAX_SECONDS = 12.0


def _capped(records: list, cap: int | None) -> list:
    """All of ``records``, or the ``cap`` shortest transcripts (the tests' tiny corpora)."""
    if cap is None:
        return records
    return sorted(records, key=lambda r: (len(r.text), r.rec_id))[:cap]


def plan_human(config: CorpusConfig) -> list[UtteranceSpec]:
    """The utterances read from recordings of people: ``test_human`` (held-out Asterisk
    prompt texts), ``test_human_unseen`` (other speakers) and, per factor of
    ``human_train_speeds``, one speed-perturbed ``train`` copy of every other prompt of at
    most :data:`HUMAN_TRAIN_MAX_SECONDS`."""
    for speed in config.human_train_speeds:
        if not 0.5 <= speed <= 2.0:
            raise ConfigError(f"human_train_speeds: expected speed factors in 0.5..2.0, got {speed}")
    if config.human_utterances is not None and config.human_utterances < 1:
        raise ConfigError(f"human_utterances: expected at least 1 (or None: all), got {config.human_utterances}")
    prompts, _ = human.asterisk_prompts()
    parts = human.split_prompts(prompts, config.human_test_share, config.seed)
    parts["test_human_unseen"] = human.unseen_speakers()
    cap = config.human_utterances
    specs = []
    for split in HUMAN_SPLITS:
        for index, rec in enumerate(_capped(parts[split], cap)):
            specs.append(UtteranceSpec(
                utt_id=f"{split}-{index:06d}", split=split, voice=Voice("human", rec.speaker, rec.speaker),
                rate=1.0, pitch=None, text=rec.text, source=rec.source, recording=rec.path,
            ))
    index = 0
    for speed in config.human_train_speeds:
        for rec in _capped([r for r in parts["train_human"] if r.seconds <= HUMAN_TRAIN_MAX_SECONDS], cap):
            specs.append(UtteranceSpec(
                utt_id=f"train-human-{index:06d}", split="train", voice=Voice("human", rec.speaker, rec.speaker),
                rate=1.0, pitch=None, text=rec.text, source=rec.source, recording=rec.path, speed=speed,
            ))
            index += 1
    return specs


# ---------------------------------------------------------------- building
def recorded_durations(root: Path) -> dict[str, str]:
    """``{utterance ID: duration}`` as the corpus's existing manifests wrote them (to
    1 ms, ``"1.234"``); empty for splits whose manifest is missing or unreadable (a first
    build that was interrupted writes none)."""
    recorded: dict[str, str] = {}
    for split in ALL_SPLITS:
        try:
            with open(root / f"{split}.csv", newline="", encoding="utf-8") as handle:
                recorded.update({row["ID"]: row["duration"] for row in csv.DictReader(handle)})
        except (OSError, KeyError, csv.Error, UnicodeDecodeError):
            continue
    return recorded


def _finished_seconds(path: Path, recorded: str | None) -> float | None:
    """Duration of a file an earlier run finished, or None when it must be synthesised
    (again): missing, undecodable, truncated, not 16 kHz mono, empty, or of another
    length than its manifest recorded. Our own writes are atomic, so such a file was
    damaged from outside (a copy cut short, a file rewritten); reusing it would put half
    an utterance under its whole transcript."""
    try:
        audio = check_audio_complete(path)
    except AudioError:
        return None
    if audio.sample_rate != SAMPLE_RATE or audio.channels != 1 or audio.frames == 0:
        return None
    seconds = audio.frames / SAMPLE_RATE
    if recorded is not None and f"{seconds:.3f}" != recorded:  # the manifests' own rounding
        return None
    return seconds


def _synthesize_to_file(args: tuple[UtteranceSpec, str, str | None]) -> tuple[str, float, bool]:
    """Worker: returns (utt_id, duration in seconds, whether it had to be synthesised).
    args: the utterance, the corpus folder, the duration its manifest recorded (or None)."""
    spec, root, recorded = args
    path = Path(root) / spec.relative_path
    finished = _finished_seconds(path, recorded)
    if finished is not None:
        return spec.utt_id, finished, False
    audio = augment(synthesize(spec), spec)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0.99:
        audio *= 0.99 / peak
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # a worker stopped mid-write (worker_pool unwinds its task) leaves no .tmp
        sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)  # an interrupted write never looks like a finished file
    finally:
        tmp.unlink(missing_ok=True)
    return spec.utt_id, len(audio) / SAMPLE_RATE, True


HUMAN_KEYS = ("human", "human_test_share", "human_train_speeds", "human_utterances")


def config_fingerprint(config: CorpusConfig) -> str:
    """sha1 (12 hex digits) of the synthetic corpus's settings (the human keys have their
    own, :func:`human_fingerprint`, so that a folder built before the recordings of
    people existed can be completed with them)."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in HUMAN_KEYS}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def human_fingerprint(config: CorpusConfig) -> str:
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k in HUMAN_KEYS}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def plan_fingerprint(specs: Sequence[UtteranceSpec]) -> str:
    """sha1 (12 hex digits) of every utterance's text, voice, style and augmentation
    (and recording, for recordings of people)."""
    digest = hashlib.sha1()
    for spec in specs:
        fields = dataclasses.asdict(spec)
        if not fields["recording"]:
            del fields["recording"]  # synthesised: hashed as before the field existed
        digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def unseen_word_rate(sentences: Sequence[str], known: set[str]) -> float:
    """Share of the word tokens of ``sentences`` that are not in ``known``."""
    tokens = [word for sentence in sentences for word in sentence.split()]
    return sum(word not in known for word in tokens) / max(1, len(tokens))


def corpus_report(specs: Sequence[UtteranceSpec], durations: dict[str, float]) -> dict:
    """Sizes, sources, voices, vocabulary and unseen-word rates of a planned corpus."""
    train_words = words_of(s.text for s in specs if s.split == "train")
    report: dict = {"train_vocabulary": len(train_words), "splits": {}}
    for split in ALL_SPLITS:
        part = [s for s in specs if s.split == split]
        sources: dict[str, int] = {}
        synths: dict[str, int] = {}
        for spec in part:
            sources[spec.source] = sources.get(spec.source, 0) + 1
            synths[spec.voice.synthesizer] = synths.get(spec.voice.synthesizer, 0) + 1
        entry = {
            "utterances": len(part),
            "hours": round(sum(durations.get(s.utt_id, 0.0) for s in part) / 3600, 3),
            "speakers": len({s.voice.speaker for s in part}),
            "voices": sorted({s.voice.spk_id for s in part}),
            "sources": dict(sorted(sources.items())),
            "synthesizers": dict(sorted(synths.items())),
            "words": len(words_of(s.text for s in part)),
        }
        if split != "train":
            entry["unseen_word_rate"] = round(unseen_word_rate([s.text for s in part], train_words), 4)
        report["splits"][split] = entry
    return report


UTTERANCE_FIELDS = ("ID", "split", "source", "synthesizer", "voice", "speaker", "rate", "pitch",
                    "speed", "noise", "snr_db", "rt60_s", "recording")


def build_corpus(
    data_folder: str | os.PathLike,
    config: CorpusConfig = CorpusConfig(),
    num_workers: int | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Synthesise the corpus into ``data_folder`` and write its manifests.

    Existing wav files are kept (resuming an interrupted build) when complete and as
    long as the manifests recorded; damaged ones are synthesised again. Manifests are
    written last and atomically. Raises ConfigError when the folder holds a corpus built
    with another configuration, SynthesizerMissingError naming the Debian package when a
    synthesiser or voice is missing. Returns {split: manifest path}.
    """
    from tqdm import tqdm

    root = Path(data_folder)
    stamp = root / "corpus.json"
    description = {"fingerprint": config_fingerprint(config), "human_fingerprint": human_fingerprint(config),
                   **dataclasses.asdict(config)}
    previous = json.loads(stamp.read_text()) if stamp.exists() else None
    # A stamp without human_fingerprint was written before the recordings of people
    # existed: its synthetic part is checked, and the recordings are added to it.
    if previous is not None:
        for key, keys in (("fingerprint", None), ("human_fingerprint", HUMAN_KEYS)):
            if key in previous and previous[key] != description[key]:
                now = json.loads(json.dumps(description))  # tuples as the stamp holds them: lists
                changed = [f"{name} {previous.get(name)!r} -> {value!r}" for name, value in now.items()
                           if name not in ("fingerprint", "human_fingerprint") and (keys is None or name in keys)
                           and name in previous and previous.get(name) != value]
                raise ConfigError(
                    f"{root} already holds a corpus built with other settings ({stamp}: "
                    f"{', '.join(changed) or 'the corpus plan changed'}); build into another folder or delete this one"
                )
    variants = list_variants()
    specs = plan_corpus(config, variants)
    # Files are reused by name, so a plan that changed for the same settings (another
    # streamasr version, other text-package data) must not be completed with old audio.
    description["plan"] = plan_fingerprint([s for s in specs if s.voice.synthesizer != "human"])
    description["human_plan"] = plan_fingerprint([s for s in specs if s.voice.synthesizer == "human"])
    for key in ("plan", "human_plan"):
        if previous is not None and key in previous and previous[key] != description[key]:
            raise ConfigError(
                f"{root} holds a corpus planned differently for the same settings (built by another version "
                f"of streamasr, of its text packages or of the recordings' packages, {stamp}); delete it or use "
                "another --data-folder"
            )
    check_synthesizers([spec.voice for spec in specs])
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(description, indent=2) + "\n")

    workers = num_workers or os.cpu_count() or 1
    durations: dict[str, float] = {}
    synthesised = 0
    # festival starts slowest: its jobs first, so no worker is left with them at the end
    order = sorted(range(len(specs)), key=lambda i: specs[i].voice.synthesizer != "festival")
    recorded = recorded_durations(root)  # what a reused file's length must match
    jobs = [(specs[i], str(root), recorded.get(specs[i].utt_id)) for i in order]
    with worker_pool(workers) as pool:  # its workers end with it (SIGTERM, Ctrl-C, errors)
        results = pool.map(_synthesize_to_file, jobs, chunksize=8)
        for utt_id, duration, fresh in tqdm(
            results, total=len(jobs), desc="synthesising", unit="utt", disable=not progress
        ):
            durations[utt_id] = duration
            synthesised += fresh

    manifests = {}
    for split in ALL_SPLITS:
        rows = [
            {"ID": spec.utt_id, "duration": f"{durations[spec.utt_id]:.3f}",
             "wav": f"$data_root/{spec.relative_path}", "spk_id": spec.speaker, "wrd": spec.text}
            for spec in specs if spec.split == split
        ]
        if rows:
            manifests[split] = write_manifest(root / f"{split}.csv", rows)
    _write_utterances(root / "utterances.csv", specs)
    report = corpus_report(specs, durations)
    if config.human:
        report["human_prompts_left_out"] = human.asterisk_prompts()[1]
    tmp = root / ".corpus_report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, root / "corpus_report.json")
    if progress:
        hours = sum(durations.values()) / 3600
        print(
            f"corpus ready in {root}: {len(specs)} utterances, {hours:.2f} h "
            f"({synthesised} synthesised now, {len(specs) - synthesised} reused); "
            f"{report['train_vocabulary']} distinct training words; unseen-word rate of test_text "
            f"{100 * report['splits']['test_text'].get('unseen_word_rate', 0):.1f} %"
        )
    return manifests


def _write_utterances(path: Path, specs: Sequence[UtteranceSpec]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(UTTERANCE_FIELDS)
        for s in specs:
            writer.writerow([s.utt_id, s.split, s.source, s.voice.synthesizer, s.voice.name, s.voice.speaker,
                             s.rate, "" if s.pitch is None else s.pitch, s.speed, s.noise,
                             s.snr_db if s.noise else "", s.rt60_s or "", s.recording])
    os.replace(tmp, path)
