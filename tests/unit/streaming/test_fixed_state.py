"""The cache-aware encoder step with fixed-shape state: equal to SpeechBrain's
``encode_streaming`` and to the masked simulation (first chunks, short last chunks,
every DCT config of the sweep), streams at different positions stacked in one call give
their own outputs, stack / unstack round trips, and bad use is named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from helpers.common import FULL_YAML, SMALL_YAML, random_encoder
from streamasr.errors import ConfigError
from streamasr.frontend import ExactPath, WindowPath
from streamasr.streaming import encode_chunk_by_chunk
from streamasr.streaming.backends import FixedShapeBackend, StepBackend
from streamasr.streaming.fixed import CacheAwareEncoder, stack_states, unstack_states
from streamasr.streaming.recognizer import StreamState

YAMLS = {
    "small": (SMALL_YAML, {"num_encoder_layers": 2}),
    "full": (FULL_YAML, {"data_folder": "unused", "d_model": 64, "nhead": 4, "num_encoder_layers": 2, "d_ffn": 128}),
}
CONFIGS = [DynChunkTrainConfig(chunk, left) for chunk in (2, 4, 8, 16, 32) for left in (0, 1, 4)]


@pytest.fixture(scope="module", params=sorted(YAMLS))
def encoder(request):
    return random_encoder(*YAMLS[request.param])


def frames(count: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, count, 640, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def chunk_by_chunk(step: CacheAwareEncoder, src: torch.Tensor) -> torch.Tensor:
    """Feed ``src`` ``[B, T, F]`` one fixed-size chunk at a time (the last one padded, with
    its valid length) and return the valid outputs ``[B, T, D]``."""
    chunk = step.geometry.chunk_frames
    state = step.initial_state(src.shape[0])
    outputs = []
    for start in range(0, src.shape[1], chunk):
        piece = src[:, start : start + chunk]
        valid = piece.shape[1]
        out, state = step.step(F.pad(piece, (0, 0, 0, chunk - valid)), torch.full((src.shape[0],), valid), state)
        outputs.append(out[:, :valid])
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"chunk{c.chunk_size}-left{c.left_context_size}")
def test_fixed_shape_steps_equal_speechbrain_streaming_and_the_masked_simulation(encoder, config):
    src = frames(3 * config.chunk_size + 3, batch=2)  # a short last chunk
    ours = chunk_by_chunk(CacheAwareEncoder(encoder, config), src)
    with torch.no_grad():
        speechbrain = encode_chunk_by_chunk(encoder, src, config)
        masked = encoder.encode(src, dynchunktrain_config=config)
    torch.testing.assert_close(ours, speechbrain, atol=1e-4, rtol=0)
    torch.testing.assert_close(ours, masked, atol=1e-4, rtol=0)


def test_streams_at_different_positions_in_one_call_give_their_own_outputs(encoder):
    step = CacheAwareEncoder(encoder, DynChunkTrainConfig(8, 2))
    new, long, ending = frames(8, seed=1), frames(8 * 51, seed=2), frames(21, seed=3)
    alone = [chunk_by_chunk(step, x) for x in (new, long, ending)]
    with torch.no_grad():
        long_state = step.initial_state(1)
        for k in range(50):  # 50 chunks in
            _, long_state = step.step(long[:, 8 * k : 8 * k + 8], torch.tensor([8]), long_state)
        ending_state = step.initial_state(1)
        for k in range(2):
            _, ending_state = step.step(ending[:, 8 * k : 8 * k + 8], torch.tensor([8]), ending_state)
        batch = torch.cat([new, long[:, 400:408], F.pad(ending[:, 16:21], (0, 0, 0, 3))])
        state = stack_states([step.initial_state(1), long_state, ending_state])
        out, state = step.step(batch, torch.tensor([8, 8, 5]), state)
    torch.testing.assert_close(out[0], alone[0][0], atol=1e-5, rtol=0)  # its first chunk
    torch.testing.assert_close(out[1], alone[1][0, 400:408], atol=1e-5, rtol=0)  # 50 chunks in
    torch.testing.assert_close(out[2, :5], alone[2][0, 16:21], atol=1e-5, rtol=0)  # its short last chunk
    assert state.cache_last_channel_len.tolist() == [8, 16, 16]  # min(frames seen, max(N, P))


def test_stack_and_unstack_round_trip(encoder):
    step = CacheAwareEncoder(encoder, DynChunkTrainConfig(4, 2))
    state = step.initial_state(3)
    with torch.no_grad():
        _, state = step.step(frames(4, batch=3), torch.tensor([4, 4, 2]), state)
    parts = unstack_states(state)
    assert [p.batch_size for p in parts] == [1, 1, 1]
    again = stack_states(parts)
    for a, b in zip(state.tensors(), again.tensors()):
        assert torch.equal(a, b)
    g = step.geometry
    assert tuple(state.cache_last_channel.shape) == (3, g.layers, 8, g.d_model)
    assert tuple(state.cache_last_time.shape) == (3, g.layers, g.d_model, g.conv_frames)


def test_bad_use_is_named(encoder):
    with pytest.raises(ConfigError, match="needs a finite left context"):
        CacheAwareEncoder(encoder, DynChunkTrainConfig(8, None))
    four, eight = CacheAwareEncoder(encoder, DynChunkTrainConfig(4, 2)), CacheAwareEncoder(encoder, DynChunkTrainConfig(8, 2))
    with pytest.raises(ConfigError, match="streams of different chunk configs or models cannot share a batch"):
        stack_states([four.initial_state(1), eight.initial_state(1)])
    with pytest.raises(ConfigError, match=r"chunk input \(1, 8, 640\) does not fit batch 1 x 4 frames"):
        four.step(frames(8), torch.tensor([8]), four.initial_state(1))
    with pytest.raises(ConfigError, match="encoder state is for"):
        four.step(frames(4), torch.tensor([4]), eight.initial_state(1))


@pytest.mark.parametrize("chunk, left", [(4, 1), (8, 2), (16, 4)])
def test_the_whole_step_on_fbank_windows_equals_the_front_end_then_the_encoder(model, utterances, chunk, left):
    """``StreamingStep`` (normaliser + our windowed CNN pass + cache-aware encoder +
    projection, on fixed-size Fbank windows) equals our exact ``FrontEnd`` followed by
    the cache-aware encoder, chunk by chunk, first and last chunks included."""
    config = DynChunkTrainConfig(chunk, left)
    window_backend, frames_backend = StepBackend(model, config), FixedShapeBackend(model, config)
    window_path = WindowPath(model.front_end, chunk)
    for utt in utterances[:3]:
        streams = [StreamState(buffer=utt.wav[None].clone()) for _ in range(2)]
        states = [window_backend.init_state(1), frames_backend.init_state(1)]
        chunk_iters = [window_path.finish(streams[0], chunk), ExactPath(model.front_end).finish(streams[1], chunk)]
        with torch.no_grad():
            for (window, valid_w, _), (src, valid_f, _) in zip(*chunk_iters):
                out_w, frames_w, states[0] = window_backend.encode(window, torch.tensor([valid_w]), states[0])
                out_f, frames_f, states[1] = frames_backend.encode(src, torch.tensor([valid_f]), states[1])
                assert int(frames_w) == int(frames_f) == valid_f
                torch.testing.assert_close(out_w[:, :valid_f], out_f[:, :valid_f], atol=1e-4, rtol=0)
                for stream, frames in zip(streams, (frames_w, frames_f)):
                    stream.frames_done += int(frames)
        assert streams[0].frames_done == model.geometry.num_encoder_frames(utt.wav.shape[-1])
