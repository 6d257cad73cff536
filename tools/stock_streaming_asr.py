#!/usr/bin/env python3
"""Transcribe files with an exported model using stock SpeechBrain only (no streamasr).

    python tools/stock_streaming_asr.py MODEL_FOLDER AUDIO [AUDIO ...] \
        [--chunk-frames 16] [--left-chunks 4] [--json]

Loads the folder with ``speechbrain.inference.ASR.StreamingASR.from_hparams`` and runs
``transcribe_file(path, DynChunkTrainConfig(chunk, left), use_torchaudio_streaming=False)``
per file, then all files at once as one batch of streams with ``transcribe_chunk``.
This is what a user of the exported (or hub) folder runs; ``make demo`` uses it, and
the tests run it in a subprocess to prove the folder needs nothing but SpeechBrain.
"""

import argparse
import json
import sys
import tempfile

import torch
from speechbrain.inference.ASR import StreamingASR
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig


def batch_of_streams(asr, config, wavs):
    """All waveforms at once, chunk by chunk, zero-padded to a common length plus the
    final zero chunks SpeechBrain's ``transcribe_file_streaming`` appends."""
    chunk = asr.get_chunk_size_frames(config)
    final = asr.hparams.fea_streaming_extractor.get_recommended_final_chunk_count(chunk)
    longest = max(len(w) for w in wavs)
    total = -(-longest // chunk) * chunk + final * chunk
    batch = torch.zeros(len(wavs), total)
    for row, wav in enumerate(wavs):
        batch[row, : len(wav)] = wav
    context = asr.make_streaming_context(config)
    texts = ["" for _ in wavs]
    for begin in range(0, total, chunk):
        words = asr.transcribe_chunk(context, batch[:, begin : begin + chunk], torch.ones(len(wavs)))
        for row, word in enumerate(words):
            texts[row] += word
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_folder")
    parser.add_argument("audio", nargs="+")
    parser.add_argument("--chunk-frames", type=int, default=16, help="encoder frames per chunk: 40 ms each with 4x subsampling, 80 ms with 8x (default 16)")
    parser.add_argument("--left-chunks", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print one JSON object (used by the tests)")
    args = parser.parse_args()
    config = DynChunkTrainConfig(args.chunk_frames, args.left_chunks)
    with tempfile.TemporaryDirectory() as savedir:
        asr = StreamingASR.from_hparams(source=args.model_folder, savedir=savedir, run_opts={"device": "cpu"})
        single = [asr.transcribe_file(p, config, use_torchaudio_streaming=False) for p in args.audio]
        wavs = [asr.load_audio(p) for p in args.audio]
        batched = batch_of_streams(asr, config, wavs)
        alone = [batch_of_streams(asr, config, [wav])[0] for wav in wavs] if args.json else None
    if args.json:
        print(json.dumps({
            "single": single,
            "batched": batched,
            "alone": alone,  # each stream through the same batch code, on its own
            "streamasr_imported": any(name.startswith("streamasr") for name in sys.modules),
        }))
        return
    for path, text in zip(args.audio, single):
        print(f"{path}: {text.strip()}")


if __name__ == "__main__":
    main()
