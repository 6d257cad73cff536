"""``streamasr train-lm``: a token n-gram LM (ARPA) from transcripts, for beam search
fusion. Takes the parsed arguments and returns the exit status."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamasr.data.manifest import read_manifest
from streamasr.decoding.lm import train_token_lm
from streamasr.errors import ConfigError
from streamasr.streaming.onnx import load_any_model


def train_lm(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise ConfigError(f"{output} already exists (use --overwrite to replace it)")
    for manifest in args.manifest:
        if Path(manifest).resolve() == output.resolve():
            raise ConfigError(f"--output {output} is the manifest it reads: choose another file")
    if output.is_dir():
        raise ConfigError(f"--output {output} is a folder, expected an ARPA file name")
    model = load_any_model(args.model)
    texts = (row["wrd"] for manifest in args.manifest for row in read_manifest(manifest))
    lm, transcripts = train_token_lm(texts, model.tokenizer, model.blank_id, args.order, output)
    vocab = model.tokenizer.get_piece_size()
    sizes = ", ".join(f"{len(table)} {k + 1}-grams" for k, table in enumerate(lm.probs))
    print(f"wrote {output}: {args.order}-gram over {vocab} tokens from {transcripts} transcripts ({sizes})")
    return 0


__all__ = ["train_lm"]
