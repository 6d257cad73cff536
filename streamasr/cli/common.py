"""What several command modules need once the arguments have parsed: the device check,
the streaming cell and the decoding the options ask for. Loads torch (the command
modules import it only after parsing, see ``streamasr.cli``)."""

from __future__ import annotations

import argparse

import torch

from streamasr.cli.options import NOT_GIVEN
from streamasr.decoding import Decoding, load_lm, read_hotwords
from streamasr.engine import Cell, model_cell
from streamasr.errors import ConfigError
from streamasr.model import AsrModel
from streamasr.units import DEFAULT_BEAM


def checked_device(name: str) -> str:
    """``name`` when torch can use that device here; ``ConfigError`` naming what is there
    otherwise (``--device cuda`` on a machine without a GPU)."""
    kind, _, index = name.partition(":")
    available = {"cpu": lambda: True, "cuda": torch.cuda.is_available,
                 "mps": lambda: bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
                 "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available()}[kind]
    if not available():
        raise ConfigError(f"--device {name}: this machine has no {kind.upper()} device that torch can use "
                          "(use --device cpu)")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"numbered 0 to {torch.cuda.device_count() - 1}")
    return name


def requested_decoding(args: argparse.Namespace, model: AsrModel) -> Decoding:
    """The search the command line asks for, LMs loaded and checked before any work."""
    weights = {}
    for name in ("lm_weight", "lodr_weight", "hotwords_score"):
        try:
            weights[name] = float(getattr(args, name))
        except ValueError:
            raise ConfigError(f"--{name.replace('_', '-')} must be a number, got {getattr(args, name)!r}") from None
    beam = args.beam if args.beam is not None else DEFAULT_BEAM
    spec = Decoding(args.decoding, beam, getattr(args, "nbest", 1), lm_weight=weights["lm_weight"],
                    lodr_weight=weights["lodr_weight"])
    if args.lodr and not args.lm:
        raise ConfigError("--lodr needs --lm (LODR subtracts a low-order LM from the fused one)")
    if args.lm:
        if args.decoding != "beam":
            raise ConfigError("--lm is fused in beam search only: add --decoding beam")
        spec.lm = load_lm(args.lm, model.tokenizer, model.blank_id)
        spec.lodr = load_lm(args.lodr, model.tokenizer, model.blank_id) if args.lodr else None
    if args.hotwords:
        if args.decoding != "beam":
            raise ConfigError("--hotwords are applied in beam search only: add --decoding beam")
        spec.hotwords = read_hotwords(args.hotwords, model.tokenizer, weights["hotwords_score"], model.blank_id)
    return spec.check()


def requested_cell(args: argparse.Namespace, model: AsrModel) -> Cell:
    """The cell the options ask for, each value not given taken from the model's own
    (an ONNX folder's cell, else 640 ms / 4 left chunks / no look-ahead)."""
    own = model_cell(model)
    cell = Cell(args.chunk_ms if args.chunk_ms is not None else own.chunk_ms,
                args.left_chunks if args.left_chunks is not NOT_GIVEN else own.left_chunks,
                args.right_ms if args.right_ms is not None else own.right_ms)
    cell.config(model)  # a chunk or look-ahead off the model's frame grid fails before any audio is read
    return cell


__all__ = ["checked_device", "requested_cell", "requested_decoding"]
