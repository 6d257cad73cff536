"""Token n-gram language model for shallow fusion in beam search.

``train_ngram`` estimates an interpolated Kneser-Ney model (one absolute discount per
order, ``D = n1 / (n1 + 2 n2)`` from the count-of-counts, Chen & Goodman) from token
sequences; lower orders use continuation counts, the unigram is interpolated with the
uniform distribution, so every context has a proper distribution over the vocabulary
and the end of sentence. Stored and exchanged as an ARPA file of SentencePiece pieces
(``write_arpa`` / ``read_arpa``), so models made elsewhere (KenLM's ``lmplz`` over the
same pieces, gzip-compressed or not) load too; the reader checks the header's n-gram
counts and the ``\\end\\`` line, so a truncated file is refused, not fused silently.

Why our own: the ``kenlm`` wheel only queries (it has no ``lmplz``), and the beam search
wants a whole distribution over the vocabulary per hypothesis at once (a dense vector,
computed once per context and cached), not word-by-word queries.
"""

from __future__ import annotations

import collections
import gzip
import itertools
import math
import os
import re
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

from streamasr.errors import ConfigError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LOG10 = math.log(10.0)


class NgramLM:
    """A backoff n-gram model over ids ``0..vocab-1`` (the model's token ids; ``exclude``
    ids, e.g. blank, are never predicted) plus the end of sentence at id ``vocab``.

    ``probs[k]``: ``{(h..., w): natural-log prob}`` for n-grams of length k + 1;
    ``backoffs``: ``{h: natural-log backoff weight}``."""

    def __init__(self, order: int, vocab: int, probs: list[dict], backoffs: dict, exclude: Sequence[int] = (),
                 unknown_logp: float = math.log(1e-10)):
        if order < 1:
            raise ConfigError(f"n-gram order must be >= 1, got {order}")
        self.order, self.vocab = order, vocab
        self.probs, self.backoffs = probs, backoffs
        self.exclude = tuple(exclude)
        self.bos, self.eos = vocab + 1, vocab  # ids of <s> (context only) and </s>
        self._cache: dict = {}
        self._children: dict = {}
        for table in probs[1:]:
            for gram, logp in table.items():
                words, values = self._children.setdefault(gram[:-1], ([], []))
                words.append(gram[-1])
                values.append(logp)
        # a token the model has but the LM never listed (an ARPA file made elsewhere, e.g.
        # KenLM over the pieces it saw) gets the LM's <unk> probability, never -inf
        # (which the LODR term, subtracted, would turn into +inf)
        unigram = torch.full((vocab + 1,), unknown_logp, dtype=torch.float64)
        for (word,), logp in probs[0].items():
            unigram[word] = logp
        unigram[list(self.exclude)] = -math.inf
        self._unigram = unigram

    def context(self, tokens: Sequence[int]) -> tuple:
        """The LM context of a token history: its last ``order - 1`` tokens, ``<s>`` before the start."""
        width = self.order - 1
        if width == 0:
            return ()
        history = (self.bos,) + tuple(tokens)
        return history[-width:]

    def log_probs(self, context: tuple) -> torch.Tensor:
        """Natural-log probabilities ``[vocab + 1]`` of every token and ``</s>`` after
        ``context`` (-inf for excluded ids), backing off where the n-gram is unseen."""
        cached = self._cache.get(context)
        if cached is not None:
            return cached
        if not context:
            out = self._unigram.clone()
        else:
            out = self.log_probs(context[1:]) + self.backoffs.get(context, 0.0)
            words, values = self._children.get(context, ((), ()))
            if words:
                out = out.clone()
                out[list(words)] = torch.tensor(values, dtype=torch.float64)
                out[list(self.exclude)] = -math.inf
        self._cache[context] = out
        return out

    def sequence_log_prob(self, tokens: Sequence[int]) -> float:
        """log P(tokens, </s>) (natural log)."""
        total, history = 0.0, []
        for token in list(tokens) + [self.eos]:
            total += float(self.log_probs(self.context(history))[token])
            history.append(token)
        return total

    # ------------------------------------------------------------------ ARPA
    def write_arpa(self, path: str | os.PathLike, pieces: Sequence[str]) -> None:
        """ARPA text (log10) with pieces as words, ``<s>`` / ``</s>`` for the sentence ends."""
        def name(token: int) -> str:
            return BOS if token == self.bos else EOS if token == self.eos else pieces[token]

        lines = ["", "\\data\\"] + [f"ngram {k + 1}={len(table) + (1 if k == 0 else 0)}"
                                    for k, table in enumerate(self.probs)]
        for k, table in enumerate(self.probs):
            lines += ["", f"\\{k + 1}-grams:"]
            if k == 0:  # <s> is a context only: probability 0 (log10 -99, as SRILM writes it)
                lines.append(f"-99\t{BOS}\t{self.backoffs.get((self.bos,), 0.0) / LOG10:.6f}")
            for gram, logp in table.items():
                text = f"{logp / LOG10:.6f}\t{' '.join(name(t) for t in gram)}"
                if gram in self.backoffs and k + 1 < self.order:
                    text += f"\t{self.backoffs[gram] / LOG10:.6f}"
                lines.append(text)
        lines += ["", "\\end\\", ""]
        Path(path).write_text("\n".join(lines), encoding="utf-8")

    @classmethod
    def read_arpa(cls, path: str | os.PathLike, piece_ids: dict, exclude: Sequence[int] = ()) -> "NgramLM":
        """Load an ARPA file whose words are the model's pieces (plain text, or gzip-compressed:
        ``lm.arpa.gz`` is read as KenLM reads it); ``ConfigError`` naming the file, line and
        piece when a word is not in ``piece_ids`` (another tokenizer).

        The file must be whole: the ``\\data\\`` header's ``ngram N=COUNT`` lines must match
        the entries of each ``\\N-grams:`` section, and the ``\\end\\`` line must be there.
        A truncated file otherwise loads as a weaker model and changes transcripts silently.
        A KenLM binary, or any file that is not UTF-8 text, is refused in one line
        (``_arpa_lines``), never with a decoding traceback."""
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"language model {path} is a folder, expected an ARPA file")
        if not path.is_file():
            raise ConfigError(f"language model {path} does not exist")
        vocab = max(piece_ids.values()) + 1
        special = {BOS: vocab + 1, EOS: vocab}
        unknown_logp = math.log(1e-10)
        probs: list[dict] = []
        backoffs: dict = {}
        declared: dict[int, int] = {}  # order -> the count the \data\ header gives
        found: collections.Counter = collections.Counter()  # order -> entries read
        in_header, section, ended = False, 0, False
        for number, line in _arpa_lines(path):
            if not line:
                continue
            if line == "\\end\\":
                ended = True
                break
            if line == "\\data\\" and section == 0:
                in_header = True
                continue
            if in_header and section == 0 and line.startswith("ngram "):
                match = _COUNT_LINE.fullmatch(line)
                if match is None:
                    raise ConfigError(f"{path}:{number}: bad n-gram count {line!r} (expected 'ngram N=COUNT')")
                order, count = int(match.group(1)), int(match.group(2))
                if order < 1:
                    raise ConfigError(f"{path}:{number}: bad n-gram count {line!r} (orders start at 1)")
                if order in declared:
                    raise ConfigError(f"{path}:{number}: the header declares the {order}-grams twice")
                declared[order] = count
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                try:
                    section = int(line[1:].split("-")[0])
                except ValueError:
                    raise ConfigError(f"{path}:{number}: bad section header {line!r}") from None
                if not in_header:
                    raise ConfigError(f"{path}:{number}: not an ARPA file ({line} before the \\data\\ header)")
                if section not in declared:
                    raise ConfigError(f"{path}:{number}: a {line} section, but the \\data\\ header declares no "
                                      f"{section}-grams")
                while len(probs) < section:
                    probs.append({})
                continue
            if section == 0:
                raise ConfigError(f"{path}:{number}: not an ARPA file (text before the first \\N-grams: section)")
            found[section] += 1
            fields = line.split()
            if section == 1 and len(fields) >= 2 and fields[1] == UNK:
                try:
                    unknown_logp = float(fields[0]) * LOG10
                except ValueError:
                    raise ConfigError(f"{path}:{number}: not a number in {line!r}") from None
                if UNK not in piece_ids:
                    continue
            if len(fields) not in (section + 1, section + 2):
                raise ConfigError(f"{path}:{number}: expected log10 prob, {section} words and an optional "
                                  f"backoff, got {line!r}")
            ids = []
            for word in fields[1 : section + 1]:
                if word in special:
                    ids.append(special[word])
                elif word in piece_ids:
                    ids.append(piece_ids[word])
                else:
                    raise ConfigError(f"{path}:{number}: {word!r} is not a piece of this model's tokenizer "
                                      "(an LM over another token inventory?)")
            gram = tuple(ids)
            try:
                logp = float(fields[0]) * LOG10
                if len(fields) == section + 2:
                    backoffs[gram] = float(fields[-1]) * LOG10
            except ValueError:
                raise ConfigError(f"{path}:{number}: not a number in {line!r}") from None
            if gram != (special[BOS],):
                probs[section - 1][gram] = logp
        if not any(declared.values()):
            raise ConfigError(f"{path}: no n-grams found (not an ARPA file?)")
        for order in sorted(declared):
            if found[order] != declared[order]:
                hint = " (truncated?)" if found[order] < declared[order] else ""
                raise ConfigError(f"{path}: the header declares {declared[order]} {order}-grams, the file holds "
                                  f"{found[order]}{hint}")
        if not ended:
            raise ConfigError(f"{path}: no \\end\\ line (truncated?)")
        while len(probs) < max(declared):  # an order declared with 0 entries and no section
            probs.append({})
        for token in exclude:  # e.g. <unk> sharing the blank's id: never predicted
            probs[0].pop((token,), None)
        return cls(len(probs), vocab, probs, backoffs, exclude, unknown_logp)


_COUNT_LINE = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")
# every KenLM binary starts with this (lm/binary_format.cc: "... format version 5\n\0",
# or "... incomplete\n" when build_binary failed)
_KENLM_MAGIC = b"mmap lm http://kheafield.com/code"
_GZIP_MAGIC = b"\x1f\x8b"


def _arpa_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of an ARPA file, gunzipped on the fly when it starts
    with the gzip magic (KenLM reads ``.arpa.gz`` too, and LMs are often shipped so).

    Bytes are read and decoded line by line, so that a file that is not an ARPA file is
    named in one line: a KenLM binary (``build_binary`` output: this reader needs the ARPA
    text it was built from), or bytes that are not UTF-8 text (a NUL byte, another
    encoding, some other binary file), with the offset of the first bad byte (in the
    decompressed text, for a gzip file)."""
    with open(path, "rb") as probe:
        compressed = probe.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
    where = " of its decompressed text" if compressed else ""
    offset = 0
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
        lines: Iterator[bytes] = iter(handle)
        for number in itertools.count(1):
            try:
                raw = next(lines, None)
            except (OSError, EOFError, zlib.error) as exc:  # only gzip raises these here
                raise ConfigError(f"{path}:{number}: the gzip data is truncated or corrupt ({exc})") from None
            if raw is None:
                return
            if number == 1 and raw.startswith(_KENLM_MAGIC):  # checked first: the magic line is ASCII
                raise ConfigError(f"{path} looks like a binary KenLM file: write an ARPA file instead "
                                  "(streamasr train-lm, or KenLM's lmplz output before build_binary)")
            bad = raw.find(b"\0")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                text, bad = "", exc.start if bad < 0 else min(bad, exc.start)
            if bad >= 0:
                raise ConfigError(f"{path} is not a UTF-8 text file (byte offset {offset + bad}{where}): "
                                  "expected an ARPA file")
            offset += len(raw)
            yield number, text.strip()


def _discount(counts: Iterable[int]) -> float:
    histogram = collections.Counter(c for c in counts if c <= 2)
    n1, n2 = histogram[1], histogram[2]
    if n1 == 0:
        return 0.5
    return min(0.9, max(0.1, n1 / (n1 + 2 * n2)))


def train_ngram(sequences: Iterable[Sequence[int]], vocab: int, order: int = 3,
                exclude: Sequence[int] = (0,)) -> NgramLM:
    """Interpolated Kneser-Ney over token id sequences (module docstring). ``vocab``:
    ids ``0..vocab-1``; ``exclude`` (blank) is never predicted. Each sequence is
    ``<s> tokens </s>``; lower orders count how many distinct tokens precede an n-gram,
    except n-grams that start with ``<s>`` (nothing precedes it), which keep their
    counts, as KenLM does."""
    if order < 1:
        raise ConfigError(f"n-gram order must be >= 1, got {order}")
    bos, eos = vocab + 1, vocab
    banned = set(exclude)
    counts = [collections.Counter() for _ in range(order)]  # counts[k]: n-grams of length k + 1
    for sequence in sequences:
        padded = [bos] + list(sequence) + [eos]
        bad = [t for t in sequence if t in banned or not 0 <= t < vocab]
        if bad:
            raise ConfigError(f"token {bad[0]} cannot be in an LM over ids 0..{vocab - 1} without {sorted(banned)}")
        for end in range(1, len(padded)):
            for k in range(min(order, end + 1)):
                counts[k][tuple(padded[end - k : end + 1])] += 1
    adjusted = [collections.Counter() for _ in range(order)]
    adjusted[order - 1] = counts[order - 1]
    for k in range(order - 1):  # continuation counts
        for gram in counts[k + 1]:
            adjusted[k][gram[1:]] += 1
        for gram, c in counts[k].items():
            if gram[0] == bos:
                adjusted[k][gram] = c
    if not counts[0]:
        raise ConfigError("no transcripts to estimate an n-gram LM from")
    words = [w for w in range(vocab + 1) if w not in banned]  # tokens and </s>
    probs: list[dict] = [dict() for _ in range(order)]
    backoffs: dict = {}
    unigrams = {g: c for g, c in adjusted[0].items() if g[0] != bos}
    discount = _discount(unigrams.values())
    total = sum(unigrams.values())
    uniform = discount * len(unigrams) / total / len(words)  # the mass given to the uniform distribution
    for w in words:
        probs[0][(w,)] = math.log(max(unigrams.get((w,), 0) - discount, 0) / total + uniform)
    for k in range(1, order):
        discount = _discount(adjusted[k].values())
        by_context: dict = collections.defaultdict(dict)
        for gram, c in adjusted[k].items():
            by_context[gram[:-1]][gram[-1]] = c
        for context, followers in by_context.items():
            total = sum(followers.values())
            gamma = discount * len(followers) / total
            backoffs[context] = math.log(gamma)
            for w, c in followers.items():
                lower = math.exp(_backoff_log_prob(context[1:] + (w,), backoffs, probs))
                probs[k][context + (w,)] = math.log((c - discount) / total + gamma * lower)
    return NgramLM(order, vocab, probs, backoffs, exclude)


def _backoff_log_prob(gram: tuple, backoffs: dict, probs: list[dict]) -> float:
    """log P(w | h) for ``gram = h + (w,)`` from the orders built so far, backing off."""
    logp = 0.0
    while gram not in probs[len(gram) - 1]:
        logp += backoffs.get(gram[:-1], 0.0)
        gram = gram[1:]
    return logp + probs[len(gram) - 1][gram]


def load_lm(path: str | os.PathLike, tokenizer, blank_id: int) -> NgramLM:
    """An ARPA file (or ``.arpa.gz``) over ``tokenizer``'s pieces (``streamasr train-lm``
    writes one); a truncated, binary or non-UTF-8 file is a ``ConfigError`` (``read_arpa``)."""
    pieces = {tokenizer.id_to_piece(i): i for i in range(tokenizer.get_piece_size())}
    return NgramLM.read_arpa(path, pieces, exclude=(blank_id,))


__all__ = ["NgramLM", "load_lm", "train_ngram"]


def train_token_lm(transcripts: Iterable[str], tokenizer, blank_id: int, order: int,
                   output: str | os.PathLike) -> tuple[NgramLM, int]:
    """``streamasr train-lm``: tokenize ``transcripts`` with the model's SentencePiece
    ``tokenizer``, estimate an interpolated Kneser-Ney ``order``-gram over the token ids
    (blank excluded) and write it to ``output`` as an ARPA file of pieces, atomically (a
    failure leaves no half file). Returns the LM and the number of transcripts."""
    sequences = [[t for t in tokenizer.encode_as_ids(text) if t != blank_id] for text in transcripts]
    vocab = tokenizer.get_piece_size()
    lm = train_ngram(sequences, vocab, order, exclude=(blank_id,))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(output.name + ".partial")
    lm.write_arpa(staging, [tokenizer.id_to_piece(i) for i in range(vocab)])
    staging.replace(output)
    return lm, len(sequences)
