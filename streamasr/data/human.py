"""Recordings of people for the built-in corpus, read from Debian packages at build time.

The synthetic corpus says nothing about people; these packages hold the only transcribed
human speech that can be installed here (a survey: ``../shared/HUMAN_SPEECH.md``):

* ``asterisk-core-sounds-en`` (the transcript, one ``name: text`` line per prompt) with
  ``asterisk-core-sounds-en-g722`` (the prompts as 16 kHz G.722): one professional US
  speaker (Allison Smith), CC-BY-SA-3.0. After leaving out silences, tones and prompts
  whose words are not written (see :func:`normalize_prompt`) about 530 prompts remain.
  They are split by prompt text into ``test_human`` (a fixed share of the distinct texts,
  never in training) and ``train_human`` (the rest, mixed into ``train`` only when
  ``CorpusConfig.human_train_speeds`` asks for it).
* ``pocketsphinx-testdata``: 12 transcribed utterances of other speakers (5 LibriVox
  sentences, card names, a command, a digit string); BSD-2, the LibriVox audio public
  domain.
* ``alsa-utils``: the 8 speaker-test channel names ("front left", ...), GPL-2+.

The last two are ``test_human_unseen``: speakers never heard in training. Nothing of it is
committed: the packages are installed by ``tools/install.sh`` and decoded into the corpus
folder when it is built.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from streamasr.data.audio import to_16k_mono
from streamasr.data.normalize import normalize_text
from streamasr.errors import ConfigError, SynthesizerMissingError

SAMPLE_RATE = 16000
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
POCKETSPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
ALSA_NAMES = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
              "Side_Left", "Side_Right")
# Texts pocketsphinx-testdata ships outside a transcription file: its README and its unit
# tests assert these two.
POCKETSPHINX_SINGLES = {"goforward.raw": "go forward ten meters", "tidigits/dhd.2934z.raw": "two nine three four zero"}
# Packages that hold each source, for the error that names what to install.
PACKAGES = {"asterisk": ("asterisk-core-sounds-en", "asterisk-core-sounds-en-g722"),
            "pocketsphinx": ("pocketsphinx-testdata",), "alsa": ("alsa-utils",)}

G722_BYTES_PER_SECOND = 8000  # 64 kbit/s
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NOTE = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")


class PromptNotSpeakable(ValueError):
    """A prompt text whose spoken words cannot be written without guessing."""


@dataclasses.dataclass(frozen=True)
class Recording:
    """One transcribed recording of a person: ``rec_id`` is ``source/name``."""

    rec_id: str
    path: str
    text: str
    speaker: str
    source: str  # asterisk | pocketsphinx | alsa
    seconds: float = 0.0  # G.722 recordings: known from the file size (64 kbit/s)


def normalize_prompt(text: str) -> str:
    """The corpus transcript (upper case, ``A-Z`` and ``'``) of one prompt text, or
    PromptNotSpeakable naming why its words are not known.

    Notes in brackets (``dash [-]``, ``(simple tone sound plays)``, ``<beep ascending>``)
    are not spoken and go; ``#`` is said "pound" and ``*`` "star" (the keypad keys, as the
    recordings say them); a single digit is its name ("press 1" -> PRESS ONE). Left out,
    since the text does not say how they were read: numbers of two or more digits
    ("dial 500": five hundred or five oh oh), digits glued to letters ("3D", "H.323") and
    acronyms ("PBX": spelled or said as a word).
    """
    spoken = _NOTE.sub(" ", text)
    if not re.search(r"[A-Za-z0-9#*]", spoken):
        raise PromptNotSpeakable(f"only a note, no words: {text!r}")
    if re.search(r"\d[\d.,]*\d|\d[A-Za-z]|[A-Za-z]\d", spoken):
        raise PromptNotSpeakable(f"a number whose reading is not written: {text!r}")
    acronym = _ACRONYM.search(spoken)
    if acronym:
        raise PromptNotSpeakable(f"an acronym that may be spelled or said as a word ({acronym.group(0)}): {text!r}")
    spoken = spoken.replace("#", " pound ").replace("*", " star ")
    spoken = re.sub(r"\d", lambda m: f" {_DIGITS[int(m.group(0))]} ", spoken)
    words = normalize_text(spoken, "en")
    if not words:
        raise PromptNotSpeakable(f"no words left: {text!r}")
    return words


def _require(paths: Sequence[Path], source: str) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        names = " ".join(PACKAGES[source])
        raise SynthesizerMissingError(
            f"the {source} recordings are missing ({', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}): install the Debian package(s) {names} "
            f"(`sudo apt-get install {names}`; tools/install.sh does it as root)"
        )


def asterisk_prompts(
    sounds: Path | None = None, transcript: Path | None = None
) -> tuple[list[Recording], dict[str, str]]:
    """The Asterisk prompts that have a G.722 recording and speakable text, and
    ``{name: reason}`` of those left out (silences, tones, unwritten numbers, acronyms,
    text lines without a recording). Defaults: the Debian packages' paths."""
    sounds = Path(sounds or ASTERISK_SOUNDS)
    transcript = Path(transcript or ASTERISK_TRANSCRIPT)
    _require([sounds, transcript], "asterisk")
    kept: list[Recording] = []
    dropped: dict[str, str] = {}
    with gzip.open(transcript, "rt", encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    for line in lines:
        if not line or line.startswith(";"):
            continue
        name, sep, text = line.partition(":")
        name = name.strip()
        if not sep:
            dropped[name] = "no text on the line"
            continue
        path = sounds / f"{name}.g722"
        if name.startswith("silence/"):
            dropped[name] = "silence"
            continue
        if not path.is_file():
            dropped[name] = "no recording"
            continue
        try:
            words = normalize_prompt(text.strip())
        except PromptNotSpeakable as reason:
            dropped[name] = str(reason)
            continue
        kept.append(Recording(f"asterisk/{name}", str(path), words, "asterisk:allison", "asterisk",
                              seconds=path.stat().st_size / G722_BYTES_PER_SECOND))
    if not kept:
        raise SynthesizerMissingError(f"{transcript} names no prompt with a recording in {sounds}")
    return kept, dropped


def unseen_speakers(pocketsphinx: Path | None = None, alsa: Path | None = None) -> list[Recording]:
    """pocketsphinx-testdata's 12 transcribed utterances and the 8 ALSA channel names.
    Defaults: the Debian packages' paths."""
    pocketsphinx = Path(pocketsphinx or POCKETSPHINX_DATA)
    alsa = Path(alsa or ALSA_SOUNDS)
    records: list[Recording] = []
    _require([pocketsphinx / "librivox" / "transcription", pocketsphinx / "cards" / "cards.transcription"]
             + [pocketsphinx / name for name in POCKETSPHINX_SINGLES], "pocketsphinx")
    for folder, transcription, speaker in (("librivox", "transcription", "librivox"),
                                           ("cards", "cards.transcription", "cards")):
        for line in (pocketsphinx / folder / transcription).read_text(encoding="utf-8").splitlines():
            match = re.fullmatch(r"\s*<s>(.*)</s>\s*\((\S+)\)\s*", line)
            if not match:
                continue
            text, file_id = match.group(1), match.group(2)
            path = pocketsphinx / folder / f"{file_id}.wav"
            _require([path], "pocketsphinx")
            records.append(Recording(f"pocketsphinx/{folder}/{file_id}", str(path), normalize_text(text),
                                     f"pocketsphinx:{speaker}", "pocketsphinx"))
    for name, text in POCKETSPHINX_SINGLES.items():
        records.append(Recording(f"pocketsphinx/{Path(name).stem}", str(pocketsphinx / name), normalize_text(text),
                                 f"pocketsphinx:{Path(name).stem.split('.')[0]}", "pocketsphinx"))
    _require([alsa / f"{name}.wav" for name in ALSA_NAMES], "alsa")
    for name in ALSA_NAMES:
        records.append(Recording(f"alsa/{name}", str(alsa / f"{name}.wav"), normalize_text(name.replace("_", " ")),
                                 "alsa:speaker-test", "alsa"))
    return records


def split_prompts(prompts: Sequence[Recording], test_share: float, seed: int) -> dict[str, list[Recording]]:
    """``{"test_human": ..., "train_human": ...}``: the distinct prompt texts ordered by a
    seeded hash, the first ``round(test_share * texts)`` held out (every recording of a
    held-out text with it, so that no test text is heard in training)."""
    if not 0.0 < test_share < 1.0:
        raise ConfigError(f"human_test_share: expected a share between 0 and 1, got {test_share}")
    texts = sorted({p.text for p in prompts}, key=lambda t: hashlib.sha1(f"{seed}:{t}".encode()).hexdigest())
    held_out = set(texts[: round(test_share * len(texts))])
    return {"test_human": [p for p in prompts if p.text in held_out],
            "train_human": [p for p in prompts if p.text not in held_out]}


def ffmpeg_binary() -> str:
    """ffmpeg on PATH, or SynthesizerMissingError naming the package."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise SynthesizerMissingError("ffmpeg not found: it decodes the G.722 recordings "
                                      "(`sudo apt-get install ffmpeg`)")
    return binary


def read_recording(path: str | Path) -> np.ndarray:
    """Float32 mono samples at 16 kHz of a packaged recording: G.722 decoded by ffmpeg
    (16 kHz wideband), headerless ``.raw`` read as s16le 16 kHz, wav resampled to 16 kHz."""
    path = Path(path)
    if path.suffix == ".g722":
        result = subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "g722",
                                 "-i", str(path), "-ar", str(SAMPLE_RATE), "-ac", "1", "-f", "s16le", "-"],
                                capture_output=True, check=False)
        if result.returncode != 0 or not result.stdout:
            raise ConfigError(f"{path}: ffmpeg could not decode it as G.722: "
                              f"{result.stderr.decode(errors='replace').strip()}")
        return np.frombuffer(result.stdout, dtype="<i2").astype(np.float32) / 32768.0
    if path.suffix == ".raw":
        audio, rate = sf.read(path, samplerate=SAMPLE_RATE, channels=1, format="RAW", subtype="PCM_16",
                              dtype="float32")
    else:
        audio, rate = sf.read(path, dtype="float32")
    return to_16k_mono(audio, rate)
