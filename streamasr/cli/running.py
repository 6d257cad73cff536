"""The commands that run a recogniser live: ``transcribe`` (a file, stdin, a URL or a
microphone) and ``serve`` (the WebSocket server). Each takes the parsed arguments and
returns the exit status."""

from __future__ import annotations

import argparse
import os

import torch

from streamasr.cli.common import checked_device, requested_cell, requested_decoding
from streamasr.engine import EngineSpec, build_recognizer, describe
from streamasr.errors import ConfigError
from streamasr.live import open_source, transcribe_source
from streamasr.serve import serve_forever
from streamasr.serve.config import ServeConfig
from streamasr.serve.server import bind_listener
from streamasr.streaming.endpoint import Endpointing
from streamasr.streaming.onnx import load_any_model


def transcribe(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model = load_any_model(args.model, device=checked_device(args.device))
    spec = EngineSpec(requested_cell(args, model), feature_path=args.frontend, backend=args.backend, int8=args.int8,
                      decoding=requested_decoding(args, model), endpointing=Endpointing() if args.endpoint else None)
    source = open_source(args.source, pcm_rate=args.rate, pcm_channels=args.channels)
    for event in transcribe_source(model, source, spec):
        if args.json:
            print(event.to_json(), flush=True)  # a closed pipe ends the command quietly (streamasr.cli.run)
        elif event.kind == "partial" and event.text:
            print(event.text, end="", flush=True)
        elif event.kind in ("segment", "final"):
            print(flush=True)
    return 0


def serve(args: argparse.Namespace) -> int:
    config = ServeConfig(host=args.host, port=args.port, max_batch=args.max_batch, workers=args.workers,
                         max_connections=args.max_connections, max_message_bytes=args.max_message_bytes,
                         max_buffer_seconds=args.max_buffer_seconds, buffer_deadline=args.buffer_deadline,
                         idle_timeout=args.idle_timeout, drain_seconds=args.drain_seconds,
                         certfile=args.certfile, keyfile=args.keyfile, record_dir=args.record_dir,
                         reuse_port=args.reuse_port)
    config.check()
    listener = bind_listener(config)  # a busy or bad port fails now, not after the model's warm-up
    per_worker = max(1, (args.threads or os.cpu_count() or 1) // config.workers)
    torch.set_num_threads(per_worker)  # per model thread: each runs its own intra-op team
    model = load_any_model(args.model, threads=per_worker)
    cell = requested_cell(args, model)
    if cell.left_chunks is None:
        raise ConfigError("serve needs a finite --left-chunks (streams at different positions share batches "
                          "through the fixed-shape state)")
    spec = EngineSpec(cell, backend=args.backend, int8=args.int8, threads=per_worker,
                      decoding=requested_decoding(args, model),
                      endpointing=Endpointing() if args.endpoint else None).resolved(model)
    recognizer = build_recognizer(model, spec)
    recognizer.create_stream()  # refuses what cannot batch streams at different positions, before listening

    def ready(server) -> None:
        print(f"streamasr serve: {server.url} ({spec.backend}, {describe(model, recognizer.config)}, "
              f"{config.workers} model threads x {per_worker} cores, max batch {config.max_batch}, "
              f"max {config.max_connections} streams)", flush=True)

    return serve_forever(recognizer, config, ready=ready, listener=listener)


__all__ = ["serve", "transcribe"]
