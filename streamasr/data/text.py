"""Offline English text for the built-in corpus.

Sentences come from a seeded random walk over the word-trigram Markov chain that the
``essential-generators`` wheel ships (trained on Wikipedia-like prose), so word order is
natural at the trigram level. The walk only steps onto words from a closed vocabulary
(the most frequent English words of ``wordfreq``), which keeps the word inventory small
enough for a laptop-sized model while staying well above 1,000 distinct words.

Output is a pure function of the arguments: the same seed gives the same sentences on
every machine (no global ``random`` state, the chain is iterated in file order).
"""

from __future__ import annotations

import json
import os
import random
import re
from functools import lru_cache
from typing import Iterator

_WORD_RE = re.compile(r"^[A-Za-z]+(?:'[A-Za-z]+)?$")
_END_PUNCT = (".", "?", "!")
_CLAUSE_PUNCT = (",", ";", ":")


def normalize_word(token: str) -> str | None:
    """Return the spoken form of one chain token (upper case, no punctuation), or None
    when the token is not a plain English word (digits, symbols, non-ASCII letters)."""
    stripped = token.strip("\"'()[]").rstrip(".,;:?!").strip("\"'()[]")
    if not _WORD_RE.match(stripped):
        return None
    return stripped.upper()


@lru_cache(maxsize=4)
def closed_vocabulary(size: int) -> frozenset[str]:
    """The ``size`` most frequent alphabetic English words (upper case) of wordfreq."""
    from wordfreq import top_n_list

    words = []
    for word in top_n_list("en", size * 3):
        if _WORD_RE.match(word) and (len(word) > 1 or word in ("a", "i")):
            words.append(word.upper())
        if len(words) == size:
            break
    return frozenset(words)


@lru_cache(maxsize=1)
def _load_chain() -> dict:
    import essential_generators

    path = os.path.join(os.path.dirname(essential_generators.__file__), "markov_textgen.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def generate_sentences(
    count: int,
    seed: int,
    vocabulary_size: int | None = 2000,
    min_words: int = 4,
    max_words: int = 14,
) -> list[str]:
    """Generate ``count`` distinct upper-case sentences.

    Arguments
    ---------
    count: number of sentences.
    seed: RNG seed; equal seeds give equal output.
    vocabulary_size: how many of the most frequent English words may appear; None: any
        plain English word of the chain (open vocabulary).
    min_words, max_words: sentence length bounds in words.
    """
    if count <= 0:
        return []
    sentences: list[str] = []
    seen: set[str] = set()
    for sentence in _walk(seed, vocabulary_size, min_words, max_words):
        if sentence in seen:
            continue
        seen.add(sentence)
        sentences.append(sentence)
        if len(sentences) == count:
            break
    return sentences


def _walk(seed: int, vocabulary_size: int | None, min_words: int, max_words: int) -> Iterator[str]:
    chain = _load_chain()
    vocabulary = closed_vocabulary(vocabulary_size) if vocabulary_size else None
    rng = random.Random(seed)

    verdicts: dict[str, bool] = {}

    def in_vocab(token: str) -> bool:
        verdict = verdicts.get(token)
        if verdict is None:
            word = normalize_word(token)
            verdict = verdicts[token] = word is not None and (vocabulary is None or word in vocabulary)
        return verdict

    # Sentence starts: bigrams whose first token is capitalised and whose two tokens
    # are in the vocabulary and do not already end the clause.
    starts = [
        key
        for key, entry in chain.items()
        if entry["left"][:1].isupper()
        and in_vocab(entry["left"])
        and in_vocab(entry["right"])
        and not entry["left"].endswith(_END_PUNCT + _CLAUSE_PUNCT)
        and not entry["right"].endswith(_END_PUNCT)
    ]
    if not starts:
        raise RuntimeError("the essential-generators Markov chain yielded no sentence starts")
    attempts = 0
    while True:
        attempts += 1
        if attempts > 10_000_000:
            raise RuntimeError("text generation stalled: vocabulary too small for the chain")
        key = rng.choice(starts)
        tokens = [chain[key]["left"], chain[key]["right"]]
        while len(tokens) <= max_words:
            last = tokens[-1]
            if last.endswith(_END_PUNCT) or (
                last.endswith(_CLAUSE_PUNCT) and len(tokens) >= min_words and rng.random() < 0.5
            ):
                break
            entry = chain.get(f"{tokens[-2]} {tokens[-1]}")
            if entry is None:
                break
            options = [
                (token, weight)
                for token, weight in zip(entry["transitions"], entry["weights"])
                if in_vocab(token)
            ]
            if not options:
                break
            tokens.append(rng.choices([o[0] for o in options], [o[1] for o in options])[0])
        last = tokens[-1]
        ends_cleanly = last.endswith(_END_PUNCT) or last.endswith(_CLAUSE_PUNCT)
        if not ends_cleanly or not (min_words <= len(tokens) <= max_words):
            continue
        yield " ".join(normalize_word(token) for token in tokens)
