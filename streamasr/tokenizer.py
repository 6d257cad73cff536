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


def portable_tokenizer_bytes(path: str | os.PathLike) -> bytes:
    """The SentencePiece model at ``path`` with the training-time file paths in its
    trainer spec (``input``: the text it was trained on, ``model_prefix``) reduced to
    their file names: an exported model must not name the machine it was trained on.
    The trainer spec is a record of how the model was made; encoding and decoding read
    only the pieces and the normaliser spec, which are kept as they are."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(Path(path).read_bytes())
    names = [Path(item).name for item in model.trainer_spec.input]
    del model.trainer_spec.input[:]
    model.trainer_spec.input.extend(names)
    if model.trainer_spec.model_prefix:
        model.trainer_spec.model_prefix = Path(model.trainer_spec.model_prefix).name
    return model.SerializeToString()
