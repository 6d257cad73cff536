#!/usr/bin/env python3
"""Where inside a chunk does a chunked encoder lose? Deviation of the chunked encoder
output from the full-context one, by a frame's distance to the end of its chunk.

    python tools/chunk_position.py results/demo --manifest data/synthetic/test_voices.csv \
        [--chunk-ms 320,640] [--left-chunks 4] [--right-ms 0,160] [--limit 100] [--json out.json]

For each utterance (one at a time, so no padding is involved) the encoder runs twice on
the same features: full context, and with the chunk masks of ``DynChunkTrainConfig``
(the masked simulation, equal to true streaming; see ``streamasr evaluate``). For
every frame of a complete chunk it takes ``|chunked - full| / |full|`` of the encoder
output the transducer joint sees, and averages it over frames at the same distance
from their chunk's end (1 = the chunk's last frame, which sees no future frame at all).

A deviation that grows towards the chunk end says the loss comes from the missing
look-ahead; a deviation that is high at the chunk start would point to the cut history.
``--right-ms`` adds look-ahead (``streamasr.dct``, a model trained with
``hparams/lookahead.yaml``): one column per chunk size and look-ahead, so the table
shows how much of the chunk-end departure R frames of future win back.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig
from tqdm import tqdm

from streamasr.dct import with_right_frames
from streamasr.evaluate import load_utterances, parse_grid
from streamasr.model import load_model


@torch.no_grad()
def deviation_by_position(model, wavs, chunk: int, left: Optional[int], right: int = 0) -> list[float]:
    """Mean relative deviation for frames 1..chunk before their chunk's end (index 0 =
    the chunk's last frame), with ``right`` look-ahead frames. Frames of a final partial
    chunk are left out."""
    config = with_right_frames(DynChunkTrainConfig(chunk, left), right)
    totals, counts = torch.zeros(chunk, dtype=torch.float64), torch.zeros(chunk, dtype=torch.float64)
    for wav in wavs:
        src, lengths = model.encoder_inputs([wav])  # the front end once, for both passes
        full = model.encode_features(src, lengths, None)[0]
        chunked = model.encode_features(src, lengths, config)[0]
        whole = int(lengths[0]) // chunk * chunk
        if whole == 0:
            continue
        ratio = (chunked[:whole] - full[:whole]).norm(dim=-1) / full[:whole].norm(dim=-1).clamp_min(1e-12)
        by_position = ratio.view(-1, chunk).double()  # [chunks, position from start]
        totals += by_position.sum(0).flip(0).cpu()
        counts += by_position.shape[0]
    if not counts[0]:
        raise ValueError(f"no utterance has a complete chunk of {chunk} frames")
    return (totals / counts).tolist()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="train.py output folder or exported model folder")
    parser.add_argument("--manifest", required=True, help="test manifest CSV")
    parser.add_argument("--chunk-ms", default="320,640", help="comma-separated, multiples of the encoder frame")
    parser.add_argument("--left-chunks", default="4", help="chunks of history, or 'unlimited'")
    parser.add_argument("--right-ms", default="0", help="comma-separated look-ahead in ms (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="first N utterances (shortest first)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    try:
        chunks, (left,), rights = parse_grid(args.chunk_ms.split(","), "ms", [args.left_chunks],
                                             model.geometry.frame_ms, args.right_ms.split(","))
    except ValueError as error:
        parser.error(str(error))
    wavs = [u.wav for u in load_utterances(args.manifest, None, args.limit)]
    columns = [(c, r) for r in rights for c in chunks]
    results = {}
    for chunk, right in tqdm(columns, desc="chunk sizes", unit="cell"):
        results[chunk, right] = deviation_by_position(model, wavs, chunk, left, right)
    frame_ms = model.geometry.frame_ms
    left_label = "unlimited" if left is None else str(left)
    print(f"relative deviation |chunked - full| / |full| of the encoder output, {len(wavs)} utterances, "
          f"left context {left_label} chunks")

    def name(chunk: int, right: int) -> str:
        return f"{chunk * frame_ms:g} ms chunks" + (f" + {right * frame_ms:g} ms look-ahead" if right else "")

    print("| frames before chunk end | " + " | ".join(name(c, r) for c, r in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for position in range(max(chunks)):
        cells = [f"{results[c, r][position]:.3f}" if position < c else "" for c, r in columns]
        print(f"| {position + 1} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"left_chunks": left, "frame_ms": frame_ms, "utterances": len(wavs),
                       "deviation_by_frames_before_chunk_end": {
                           str(c) + (f"+{r}" if r else ""): results[c, r] for c, r in columns}},
                      handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
