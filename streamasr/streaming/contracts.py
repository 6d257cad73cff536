"""The model contract: what the streaming recogniser needs from a model. ``AsrModel``
(PyTorch weights) and ``OnnxModel`` (an exported folder) both satisfy it (a test
checks), so nothing above it asks which one it has; the search contract is
``streamasr.decoding.search.Search``, the backend's ``streaming.backends.EncoderBackend``.
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import torch

from streamasr.decoding.search import Search


@runtime_checkable
class StreamingModel(Protocol):
    front_end: object  # streamasr.frontend.FrontEnd: Fbank, normaliser, geometry
    tokenizer: object  # SentencePiece (or an ONNX folder's token table)
    search: Optional[Search]  # None: the backend brings its own (an ONNX folder)
    blank_id: int
    source: str  # the folder it was loaded from
    device: torch.device

    @property
    def geometry(self) -> object: ...

    def decode_tokens(self, tokens: list[int]) -> str: ...

    def decode_continuation(self, tokens: list[int], at_start: bool) -> str: ...


__all__ = ["StreamingModel"]
