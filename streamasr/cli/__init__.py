"""The ``streamasr`` command: one entry point for the toolkit's tools.

Subcommands
-----------
build-corpus     synthesise the built-in corpus (espeak-ng, flite, festival; train/valid/5 test sets)
prepare          LibriSpeech / CommonVoice / VoxPopuli (official layouts) -> manifests
validate         check a manifest's audio and transcripts before training
evaluate         WER / latency / compute against chunk size and left context
check-streaming  prove (or refute) that no encoder output depends on a later chunk
export           package a trained model for SpeechBrain's StreamingASR / the HF hub
export-onnx      ONNX encoder / decoder / joiner of one chunk config, for onnxruntime or sherpa-onnx
check-sherpa     decode a test set with sherpa-onnx (Python API, C++ server) and compare with ours
serve            WebSocket server: many live streams batched across connections (sherpa-onnx protocol)
transcribe       live chunk-by-chunk transcription of a file, stdin, a URL or a microphone
train-lm         a token n-gram LM (ARPA) from transcripts, for beam search fusion

Layout: ``parsers`` (argparse, light), ``options`` (the value types and cross-option
checks, light), then what each subcommand does, one module per command group: ``data``
(build-corpus, prepare, validate), ``evaluating`` (evaluate, check-streaming),
``exporting`` (export, export-onnx, check-sherpa), ``running`` (transcribe, serve), ``lm``
(train-lm), with ``common`` (the device check, the cell and the decoding the options
ask for). The command modules load the library (torch); each parser names its handler
as ``"module:function"`` (``resolve_handler``), imported only after the arguments parse.
Errors: a bad argument is one line and exit status 2 before any model is loaded;
``StreamAsrError`` (bad input, described in words) becomes a one-line message with exit
status 2; anything else keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Optional

from streamasr.errors import StreamAsrError


def main(argv: list[str] | None = None, before_command: Optional[Callable[[], object]] = None) -> int:
    """Parse ``argv`` and run its subcommand; returns the exit status.
    ``before_command`` runs once the arguments are valid, before the library loads."""
    from streamasr.cli.options import check_args
    from streamasr.cli.parsers import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
        if before_command is not None:
            before_command()
        handler = args.handler
        if isinstance(handler, str):  # loads the library (torch) only now
            handler = resolve_handler(handler)
        return handler(args)
    except StreamAsrError as error:
        print(f"streamasr {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"streamasr {args.command}: interrupted", file=sys.stderr)
        return 130


def resolve_handler(name: str) -> Callable[[argparse.Namespace], int]:
    """The function a parser names (``"running:transcribe"``: ``transcribe`` in
    ``streamasr.cli.running``); importing its module loads the library."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(f"streamasr.cli.{module}"), function)


def _flush_denormals() -> None:
    from streamasr.cpu import flush_denormals  # imports torch: only once the arguments parse

    flush_denormals()


def run() -> int:
    """The ``streamasr`` console command: ``main`` with the denormal flush before any
    command runs (before torch starts its worker threads, see streamasr/cpu.py; after
    parsing, so that ``--help`` does not load torch). ``main`` itself leaves the
    process's floating-point mode alone, so calling it inside another program (or a
    test run) cannot put some threads in flush-to-zero mode and not others.

    Output into a closed pipe (``streamasr transcribe ... --json | head -n 1``) ends the
    command quietly with status 141, as a process killed by SIGPIPE: stdout is pointed
    at /dev/null so the interpreter's final flush cannot fail again, and the process
    leaves at once (``os._exit``), because finalising torch / onnxruntime thread pools
    while an exception unwinds aborted the process (SIGABRT) before."""
    try:
        code = main(before_command=_flush_denormals)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.stderr.flush()
        os._exit(141)
    return code


__all__ = ["main", "resolve_handler", "run"]
