"""Streaming: chunking configs, the encoder's streaming contexts, and the engine
(``StreamingRecognizer`` over explicit ``StreamState``, one ``StreamResult`` per
stream); room for the fixed-shape tensor state and the onnxruntime backend."""

from streamasr.streaming.config import chunk_config
from streamasr.streaming.encoder import UNLIMITED_LEFT_CONTEXT_FRAMES, encode_chunk_by_chunk, make_encoder_context
from streamasr.streaming.recognizer import (
                                            FRONTENDS,
                                            ChunkOutput,
                                            StreamingRecognizer,
                                            StreamResult,
                                            StreamState,
                                            TokenEvent,
)

__all__ = ["FRONTENDS", "UNLIMITED_LEFT_CONTEXT_FRAMES", "ChunkOutput", "StreamResult", "StreamState",
           "StreamingRecognizer", "TokenEvent", "chunk_config", "encode_chunk_by_chunk", "make_encoder_context"]
