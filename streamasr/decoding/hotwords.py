"""Hotwords (contextual biasing) for beam search: an Aho-Corasick automaton over token
ids with icefall's ``ContextGraph`` scoring.

Every phrase is a token sequence with a bonus per matched token. A hypothesis carries
a node of the automaton; extending it by a token moves along the goto / fail links:

* a token that continues a match earns its bonus (provisionally);
* a token that breaks a match refunds what the broken partial match had earned, and
  earns what the longest phrase prefix ending here is worth (the fail link);
* reaching the end of a phrase (or a node whose fail chain holds phrase ends: the
  phrases that end here as suffixes) earns the whole phrase's bonus once more,
  permanently (``output_score``); the provisional part is refunded when the match
  is left by a fail link or at the end of the stream (``finish``).

So a completed phrase keeps its bonus, a partial one keeps nothing, and overlapping
phrases (SHE inside SHELL, HE inside SHE) are each credited when they end.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
import os
from pathlib import Path
from typing import Optional, Sequence

from streamasr.errors import ConfigError

DEFAULT_HOTWORD_SCORE = 1.5  # bonus per token (sherpa-onnx's default --hotwords-score)
# Why a score must be > 0: a negative bonus does not keep a phrase out of the transcript;
# every hypothesis that begins like the phrase is penalised token by token and pruned,
# so the whole transcript changes (probe: FOX :-100). Zero is a phrase that does nothing.
_POSITIVE = ("a bonus per matched token; a negative one does not suppress the phrase, it prunes every hypothesis "
             "that begins like it")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclasses.dataclass
class _Node:
    token: int
    token_score: float
    node_score: float  # bonus accumulated along the path from the root (provisional)
    depth: int
    is_end: bool = False
    phrase: int = -1
    next: dict = dataclasses.field(default_factory=dict)
    fail: int = 0
    output: int = -1  # nearest node on the fail chain that ends a phrase (-1: none)
    output_score: float = 0.0  # permanent bonus earned on reaching this node


class ContextGraph:
    """Aho-Corasick over token id sequences (module docstring). Node 0 is the root."""

    def __init__(self, phrases: Sequence[Sequence[int]], scores: Optional[Sequence[float]] = None,
                 default_score: float = DEFAULT_HOTWORD_SCORE):
        self.nodes = [_Node(-1, 0.0, 0.0, 0)]
        self.phrases = [tuple(p) for p in phrases]
        scores = list(scores) if scores is not None else [default_score] * len(self.phrases)
        if len(scores) != len(self.phrases):
            raise ConfigError(f"{len(self.phrases)} hotwords but {len(scores)} scores")
        for index, (phrase, score) in enumerate(zip(self.phrases, scores)):
            if not phrase:
                raise ConfigError(f"hotword {index + 1} has no tokens")
            if not math.isfinite(score) or score <= 0:
                raise ConfigError(f"hotword {index + 1}: score {score:g} must be a finite number > 0 ({_POSITIVE})")
            node = 0
            for position, token in enumerate(phrase):
                child = self.nodes[node].next.get(token)
                if child is None:
                    parent = self.nodes[node]
                    self.nodes.append(_Node(token, score, parent.node_score + score, parent.depth + 1))
                    child = len(self.nodes) - 1
                    parent.next[token] = child
                if position == len(phrase) - 1:
                    self.nodes[child].is_end, self.nodes[child].phrase = True, index
                node = child
        self._fill_fail_and_output()
        self._moves: dict = {}

    def _fill_fail_and_output(self) -> None:
        queue = []
        for child in self.nodes[0].next.values():
            self.nodes[child].fail = 0
            queue.append(child)
        for node_id in queue:  # breadth first: a node's fail target is shallower, so done first
            node = self.nodes[node_id]
            for token, child in node.next.items():
                fail = node.fail
                while token not in self.nodes[fail].next and fail != 0:
                    fail = self.nodes[fail].fail
                target = self.nodes[fail].next.get(token, 0)
                self.nodes[child].fail = target if target != child else 0
                queue.append(child)
        for node_id in queue:
            node = self.nodes[node_id]
            fail = node.fail
            while fail != 0 and not self.nodes[fail].is_end:
                fail = self.nodes[fail].fail
            node.output = fail if fail != 0 else -1
            own = node.node_score if node.is_end else 0.0
            node.output_score = own + (self.nodes[node.output].output_score if node.output >= 0 else 0.0)

    def step(self, state: int, token: int) -> tuple[float, int]:
        """(bonus, next state) for ``token`` after ``state``."""
        key = (state, token)
        move = self._moves.get(key)
        if move is None:
            node = self.nodes[state]
            if token in node.next:
                target = node.next[token]
                score = self.nodes[target].token_score
            else:
                fail = state
                while token not in self.nodes[fail].next and fail != 0:
                    fail = self.nodes[fail].fail
                target = self.nodes[fail].next.get(token, 0)
                score = self.nodes[target].node_score - node.node_score
            move = (score + self.nodes[target].output_score, target)
            self._moves[key] = move
        return move

    def bonus_vector(self, state: int, vocab: int):
        """The bonus of every token id ``0..vocab-1`` after ``state`` (float64 tensor, cached)."""
        import torch

        cache = self.__dict__.setdefault("_vectors", {})
        vector = cache.get((state, vocab))
        if vector is None:
            vector = torch.tensor([self.step(state, t)[0] for t in range(vocab)], dtype=torch.float64)
            cache[(state, vocab)] = vector
        return vector

    def finish(self, state: int) -> float:
        """The refund of an unfinished match at the end of a stream."""
        return -self.nodes[state].node_score

    def matches(self, tokens: Sequence[int]) -> list[tuple[int, int]]:
        """(phrase index, end position) of every phrase occurrence in ``tokens``."""
        found, state = [], 0
        for position, token in enumerate(tokens):
            _, state = self.step(state, token)
            node = state
            while node > 0:
                if self.nodes[node].is_end:
                    found.append((self.nodes[node].phrase, position))
                node = self.nodes[node].output if self.nodes[node].output >= 0 else 0
        return found


def read_hotwords(path: str | os.PathLike, tokenizer, default_score: float = DEFAULT_HOTWORD_SCORE,
                  blank_id: int = 0) -> ContextGraph:
    """A hotwords file: UTF-8 text (a UTF-8 byte order mark, as Notepad writes, is
    skipped), one phrase per line, optionally `` :score`` (bonus per token, > 0) at the
    end; blank lines and ``#`` comments skipped. ``ConfigError`` naming the line for a
    phrase the tokenizer cannot encode or a bad score, and naming the file when it is not
    UTF-8 text (the bytes are checked here so that a UTF-16 file is one line, never a
    ``UnicodeDecodeError`` traceback)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"hotwords file {path} is a folder, expected a text file")
    if not path.is_file():
        raise ConfigError(f"hotwords file {path} does not exist")
    data = path.read_bytes()
    if data.startswith(_UTF16_BOMS):
        raise ConfigError(f"hotwords file {path} looks like UTF-16 (it starts with a UTF-16 byte order mark): "
                          "save it as UTF-8")
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    bad = data.find(b"\0")  # valid UTF-8, but no phrase holds one: UTF-16 without a byte order mark, or binary
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        text, bad = "", start + exc.start if bad < 0 else min(bad, start + exc.start)
    if bad >= 0:
        raise ConfigError(f"hotwords file {path} is not UTF-8 text (byte offset {bad}): save it as UTF-8")
    graph = hotwords_from_lines(text.splitlines(), tokenizer, default_score, blank_id, source=str(path))
    if not graph.phrases:
        raise ConfigError(f"hotwords file {path} has no phrase")
    return graph


def hotwords_from_lines(lines: Sequence[str], tokenizer, default_score: float = DEFAULT_HOTWORD_SCORE,
                        blank_id: int = 0, source: str = "hotwords") -> ContextGraph:
    """The context graph of phrases given as lines (``PHRASE`` or ``PHRASE :score``);
    errors name ``source`` and the line number. Every score, ``default_score``
    (``--hotwords-score``) included, must be a finite number > 0 (``_POSITIVE``)."""
    if not math.isfinite(default_score):
        raise ConfigError(f"default hotword score {default_score:g} (--hotwords-score) is not a finite number")
    if default_score <= 0:
        raise ConfigError(f"default hotword score {default_score:g} (--hotwords-score) must be > 0 ({_POSITIVE})")
    phrases, scores = [], []
    unknown = {tokenizer.unk_id()} if hasattr(tokenizer, "unk_id") else set()
    for number, raw in enumerate(lines, 1):
        if not isinstance(raw, str):
            raise ConfigError(f"{source}:{number}: a hotword must be text, got {raw!r}")
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        score = default_score
        if " :" in line:
            line, _, value = line.rpartition(" :")
            try:
                score = float(value)
            except ValueError:
                raise ConfigError(f"{source}:{number}: score {value!r} is not a number") from None
            if not math.isfinite(score):
                raise ConfigError(f"{source}:{number}: score {value.strip()} is not a finite number")
            if score <= 0:
                raise ConfigError(f"{source}:{number}: score {value.strip()} must be > 0 ({_POSITIVE})")
        ids = tokenizer.encode_as_ids(line.strip())
        bad = [i for i in ids if i in unknown or i == blank_id]
        if not ids or bad:
            upper = tokenizer.encode_as_ids(line.strip().upper())
            hint = " (its pieces are upper case: write the phrase in upper case)" if ids and upper and not any(
                i in unknown or i == blank_id for i in upper) else ""
            raise ConfigError(f"{source}:{number}: the tokenizer cannot encode {line.strip()!r} "
                              f"({'nothing to encode' if not ids else 'unknown characters'}){hint}")
        phrases.append(ids)
        scores.append(score)
    return ContextGraph(phrases, scores)


__all__ = ["DEFAULT_HOTWORD_SCORE", "ContextGraph", "hotwords_from_lines", "read_hotwords"]
