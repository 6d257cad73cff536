"""Transcript normalisation for the real-corpus recipes (English, French, Italian).

One rule set for every recipe, so manifests from LibriSpeech, CommonVoice and
VoxPopuli look alike: Unicode NFC, upper case, letters with their accents kept,
digits kept, word-internal apostrophes kept (``DON'T``, ``L'HOMME``,
``DELL'ITALIA``), every other punctuation mark removed, whitespace collapsed.

Language-aware parts:

* all: typographic apostrophes (’ ‘ ʼ ´ `) become ``'``; quotes made of apostrophes
  around a word are dropped (``'hello'`` -> ``HELLO``).
* ``fr``: hyphens join words that are spoken separately (``PEUT-ÊTRE`` ->
  ``PEUT ÊTRE``); elisions keep their apostrophe (``QU'IL``); ligatures œ/æ are kept.
* ``it``: an apostrophe typed for a final accent is restored to the accented vowel
  (``perche'`` -> ``PERCHÉ``, ``citta'`` -> ``CITTÀ``), as Italian speakers often
  type on keyboards without accented keys; elisions keep theirs (``L'ANNO``).
* ``en``: hyphenated words are split (``WELL-KNOWN`` -> ``WELL KNOWN``).

Returns ``""`` when nothing speakable is left; the recipes report such rows as bad.
"""

from __future__ import annotations

import re
import unicodedata

from streamasr.errors import NormalizationError  # noqa: F401  (re-exported)

SUPPORTED_LANGUAGES = ("en", "fr", "it")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"})
# Italian: vowel + apostrophe at the end of a word stands for the accented vowel.
_ITALIAN_ACCENT = {"a": "à", "e": "è", "i": "ì", "o": "ò", "u": "ù",
                   "A": "À", "E": "È", "I": "Ì", "O": "Ò", "U": "Ù"}
# Italian words whose final -e takes the acute accent (perché, poiché, né, sé...).
_ITALIAN_ACUTE_E = re.compile(r"(?:ch|n|s|tr|fin|pur)e$", re.IGNORECASE)
# Elided Italian articles/prepositions end in an apostrophe but are not accents.
_ITALIAN_ELISIONS = {"l", "un", "dell", "nell", "all", "dall", "sull", "coll", "quell",
                     "bell", "sant", "c", "d", "m", "t", "s", "v", "po", "mo", "de"}




def require_language(language: str, what: str = "text") -> str:
    """``language`` if it has a normaliser, else a ``NormalizationError`` naming ``what``."""
    if language not in SUPPORTED_LANGUAGES:
        raise NormalizationError(
            f"{what}: language {language!r} has no text normalisation; expected one of "
            f"{', '.join(SUPPORTED_LANGUAGES)}"
        )
    return language


def _is_word_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in ("L", "N") or category == "Mn"


def _restore_italian_accents(text: str) -> str:
    def fix(match: re.Match) -> str:
        word, vowel = match.group(1), match.group(2)
        if (word + vowel).lower() in _ITALIAN_ELISIONS:
            return match.group(0)
        if vowel in "eE" and _ITALIAN_ACUTE_E.search(word + vowel):
            return word + ("é" if vowel == "e" else "É")
        return word + _ITALIAN_ACCENT[vowel]

    # A word ending in vowel + apostrophe, followed by whitespace/punctuation/end.
    return re.sub(r"(\w*?)([aeiouAEIOU])'(?=[\s.,;:!?\"»)]|$)", fix, text)


def normalize_text(text: str, language: str = "en") -> str:
    """Normalised upper-case transcript of ``text`` in ``language`` (en/fr/it)."""
    require_language(language)
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
    if language == "it":
        text = _restore_italian_accents(text)
    chars = []
    for index, char in enumerate(text):
        if char == "'":
            before = text[index - 1] if index > 0 else " "
            after = text[index + 1] if index + 1 < len(text) else " "
            # keep only word-internal apostrophes
            chars.append("'" if _is_word_char(before) and _is_word_char(after) else " ")
        elif _is_word_char(char):
            chars.append(char)
        else:  # punctuation, symbols, hyphens, spaces of every kind
            chars.append(" ")
    return " ".join("".join(chars).upper().split())
