"""The streaming contract for the encoder of each shipped YAML: chunk-by-chunk
``encode_streaming`` equals masked ``encode``, and no output depends on a later chunk.
The encoder is the real architecture (RelPosMHAXL Conformer, DCConv, the real CNN
front end) but is shrunk in width/depth so the test runs in seconds."""

from __future__ import annotations

import pytest
import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig
from speechbrain.utils.streaming import infer_dependency_matrix

from helpers.models import SHRUNK_ENCODERS, encoder_input, shrunk_encoder
from streamasr.streaming import encode_chunk_by_chunk

CONFIGS = [DynChunkTrainConfig(size, left) for size in (4, 8, 16) for left in (2, None)]


@pytest.fixture(scope="module", params=sorted(SHRUNK_ENCODERS))
def transformer(request):
    return shrunk_encoder(request.param)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"chunk{c.chunk_size}-left{c.left_context_size}")
def test_streaming_equals_masked_encode(transformer, config):
    src = encoder_input(frames=5 * config.chunk_size + 3)  # ragged last chunk too
    with torch.no_grad():
        masked = transformer.encode(src, dynchunktrain_config=config)
    streamed = encode_chunk_by_chunk(transformer, src, config)
    assert streamed.shape == masked.shape
    assert (streamed - masked).abs().max().item() <= 1e-4


@pytest.mark.parametrize("config", [DynChunkTrainConfig(4, 2), DynChunkTrainConfig(8, None)], ids=str)
def test_no_output_depends_on_a_later_chunk(transformer, config):
    frames = 4 * config.chunk_size

    def model(x):
        return transformer.encode(x, dynchunktrain_config=config)

    deps = infer_dependency_matrix(model, seq_shape=[1, frames, 640])  # [in, out]
    chunk = torch.arange(frames) // config.chunk_size
    future = chunk[:, None] > chunk[None, :]  # input chunk later than output chunk
    leaks = (deps & future).nonzero().tolist()
    assert leaks == [], f"output frames depend on later input frames: {leaks[:10]}"
    # Sanity check of the probe: within a chunk, outputs do see their own chunk.
    assert deps[0, 0] and deps[config.chunk_size - 1, 0]


def test_probe_detects_full_context_dependencies(transformer):
    def model(x):
        return transformer.encode(x)

    deps = infer_dependency_matrix(model, seq_shape=[1, 16, 640])
    assert deps[15, 0], "full-context output 0 should depend on the last input frame"
