"""streamasr: train, evaluate, export and serve streaming speech recognisers built with
Dynamic Chunk Training on SpeechBrain.

The public API, in ten lines::

    import streamasr

    model = streamasr.load_model("results/demo/model")   # a training run, an export or an ONNX folder
    print(streamasr.transcribe_file("talk.wav", model))  # streamed in 640 ms chunks, 4 left chunks

    spec = streamasr.EngineSpec(streamasr.Cell(chunk_ms=320, left_chunks=8), backend="onnx")
    recognizer = streamasr.build_recognizer(model, spec)  # sherpa-onnx's verbs: create_stream,
    stream = recognizer.create_stream()                   # accept_waveform, decode_streams, ...

The names are imported on first use (PEP 562), so that ``import streamasr`` (and the
command line's ``--help``) does not load torch.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "load_model": ("streamasr.streaming.onnx", "load_any_model"),
    "Cell": ("streamasr.engine", "Cell"),
    "EngineSpec": ("streamasr.engine", "EngineSpec"),
    "build_recognizer": ("streamasr.engine", "build_recognizer"),
    "Decoding": ("streamasr.decoding", "Decoding"),
    "Endpointing": ("streamasr.streaming.endpoint", "Endpointing"),
    "Transcriber": ("streamasr.live.transcriber", "Transcriber"),
    "transcribe_file": ("streamasr.live.transcriber", "transcribe_file"),
    "StreamAsrError": ("streamasr.errors", "StreamAsrError"),
}


def __getattr__(name: str):
    if name == "__version__":
        from streamasr.version import version

        return version()
    if name in _HOMES:
        module, attribute = _HOMES[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'streamasr' has no attribute {name!r}")


__all__ = sorted(_HOMES)
