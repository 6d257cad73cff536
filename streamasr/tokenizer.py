"""SentencePiece tokenizers: where a run keeps its model, and loading one (one home)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import sentencepiece

from streamasr.errors import ModelLoadError


def tokenizer_model_path(hparams: Mapping) -> Path:
    """``<save_folder>/tokenizer/<output_neurons>_<token_type>.model``: where ``train.py``
    writes the tokenizer of a run."""
    return Path(hparams["save_folder"]) / "tokenizer" / (
        f"{hparams['output_neurons']}_{hparams['token_type']}.model"
    )


def load_tokenizer(path: str | os.PathLike) -> sentencepiece.SentencePieceProcessor:
    """A SentencePiece model from a file; ``ModelLoadError`` naming it when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"tokenizer {path} is missing")
    tokenizer = sentencepiece.SentencePieceProcessor()
    tokenizer.load(str(path))
    return tokenizer


def continuation_text(tokenizer: object, tokens: list[int], at_start: bool) -> str:
    """Text of ``tokens`` appended to a transcript: SentencePiece pieces joined, word
    boundaries (``▁``) as spaces, no leading space at the transcript start. Concatenating
    the pieces of a stream equals decoding all its tokens at once, in O(new tokens) per
    chunk (re-decoding everything would be quadratic over hours). ``tokenizer``: anything
    with ``id_to_piece``."""
    text = "".join(tokenizer.id_to_piece(token) for token in tokens).replace("\u2581", " ")
    return text.lstrip(" ") if at_start else text
