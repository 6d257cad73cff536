"""Written English -> the words a synthesiser says, for the built-in corpus.

The built-in corpus is synthesised from its own transcripts, so what matters is that the
transcript is exactly what is spoken: every number, date, price, time and abbreviation
is written out as words before synthesis, and a sentence that cannot be written out
unambiguously (acronyms, code, URLs, symbols, non-Latin letters) is rejected rather than
guessed. The result uses only ``A-Z``, the apostrophe and single spaces, which the
SentencePiece tokenizer can always encode (a character it cannot encode would become id
0, the blank).

``num2words`` says the numbers (cardinals, ordinals, years); the rules around it
(currency, percentages, clock times, decimals, abbreviations) are ours: no library in the
stack does English text normalisation for speech.
"""

from __future__ import annotations

import re
import unicodedata

_PUNCT = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u2013": " - ", "\u2014": " - ", "\u2026": "...",
    "\u00a0": " ",
})
_ABBREVIATIONS = {
    "mr.": "mister", "mrs.": "missus", "ms.": "miz", "dr.": "doctor", "st.": "saint",
    "jr.": "junior", "sr.": "senior", "vs.": "versus", "etc.": "et cetera",
    "e.g.": "for example", "i.e.": "that is", "prof.": "professor", "mt.": "mount",
    "approx.": "approximately", "dept.": "department", "no.": "number",
}
_ABBREVIATION_RE = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")",
    re.IGNORECASE,
)
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "\u00a3": ("pound", "pounds", "penny", "pence"),
             "\u20ac": ("euro", "euros", "cent", "cents")}
_MONEY_RE = re.compile(r"([$\u00a3\u20ac])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?(?!\d)")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})(?:\s?([ap])\.?m\.?(?![a-z]))?", re.IGNORECASE)
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d+)\b")
_NUMBER_RE = re.compile(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b")
_ALLOWED = re.compile(r"^[A-Za-z' .,;:!?\"()\-]*$")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


def _words(number: int | str, to: str = "cardinal") -> str:
    from num2words import num2words

    return num2words(int(number), lang="en", to=to).replace("-", " ").replace(",", "")


def _money(match: re.Match) -> str:
    one, many, small_one, small_many = _CURRENCY[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    text = f"{_words(whole)} {one if whole == 1 else many}"
    if match.group(3) and int(match.group(3)):
        cents = int(match.group(3))
        text += f" and {_words(cents)} {small_one if cents == 1 else small_many}"
    return f" {text} "


def _time(match: re.Match) -> str:
    hour, minute, half = int(match.group(1)), int(match.group(2)), match.group(3)
    if hour > 23 or minute > 59:
        return match.group(0)  # not a clock time: left for the number rules / rejection
    if minute == 0:
        text = f"{_words(hour)} o'clock" if half is None else _words(hour)
    elif minute < 10:
        text = f"{_words(hour)} oh {_words(minute)}"
    else:
        text = f"{_words(hour)} {_words(minute)}"
    if half:
        text += " in the morning" if half.lower() == "a" else " in the evening"
    return f" {text} "


def _number(match: re.Match) -> str:
    digits = match.group(0).replace(",", "")
    value = int(digits)
    if len(digits) > 1 and digits.startswith("0"):  # 007, 0800: said digit by digit
        return " " + " ".join("oh" if d == "0" else _words(d) for d in digits) + " "
    if "," not in match.group(0) and 1100 <= value <= 2099 and value % 100 != 0 and len(digits) == 4:
        return f" {_words(value, to='year')} "
    if value > 999_999_999:
        return match.group(0)  # too long to be said naturally: rejected below
    return f" {_words(value)} "


def spoken_form(text: str, min_words: int = 1, max_words: int = 1000) -> str | None:
    """The upper-case words a synthesiser says for ``text``, or None when ``text`` cannot
    be written out unambiguously or has fewer than ``min_words`` / more than
    ``max_words`` words.

    Examples: ``"Dr. Smith paid $3.50 on May 3rd, 1984."`` ->
    ``"DOCTOR SMITH PAID THREE DOLLARS AND FIFTY CENTS ON MAY THIRD NINETEEN EIGHTY FOUR"``;
    ``"The NASA budget"`` -> None (an acronym could be said as a word or spelled).
    """
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    # Accented Latin letters lose their accents (cafe, naive); other scripts are rejected.
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    for word in _WORD.findall(text):  # acronyms and shouting: ambiguous to say
        if len(word) > 1 and word.isupper() and word not in ("I", "OK"):
            return None
    text = _ABBREVIATION_RE.sub(lambda m: " " + _ABBREVIATIONS[m.group(1).lower()] + " ", text)
    text = text.replace("&", " and ")
    text = _MONEY_RE.sub(_money, text)
    text = _PERCENT_RE.sub(lambda m: f" {m.group(1)} percent ", text)
    text = _TIME_RE.sub(_time, text)
    text = _ORDINAL_RE.sub(lambda m: f" {_words(m.group(1), to='ordinal')} ", text)
    text = _DECIMAL_RE.sub(
        lambda m: f" {_words(m.group(1))} point " + " ".join(_words(d) for d in m.group(2)) + " ", text
    )
    text = _NUMBER_RE.sub(_number, text)
    if not _ALLOWED.match(text):
        return None  # digits left over, symbols, other scripts, markup
    words = []
    for token in re.split(r"[\s.,;:!?\"()\-]+", text):
        token = token.strip("'")
        if not token:
            continue
        if not _WORD.fullmatch(token):
            return None
        words.append(token.upper())
    if not min_words <= len(words) <= max_words:
        return None
    return " ".join(words)
