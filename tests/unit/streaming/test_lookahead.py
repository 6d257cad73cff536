"""Look-ahead (right context) in Dynamic Chunk Training (streamasr.dct): the masked pass
with R equals chunk-by-chunk streaming with R, depends on nothing past chunk end + R,
while a per-layer R mask does; the sampler's proportions; the causal mode (C = 1)."""

from __future__ import annotations

import math

import pytest
import speechbrain as sb
import torch
from speechbrain.lobes.models.transformer.TransformerASR import make_transformer_src_mask
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig
from speechbrain.utils.streaming import infer_dependency_matrix

from helpers.common import SMALL_YAML, assert_same_or_near_tie, drive_staggered
from helpers.models import encoder_input, shrunk_encoder
from streamasr.dct import (
    ChunkConfig,
    DynChunkLookaheadSampler,
    LookaheadEncoderWrapper,
    chunk_attention_mask,
    encode_masked,
    with_right_frames,
)
from streamasr.errors import ConfigError
from streamasr.evaluate.dependency import check_encoder, dependency_report
from streamasr.frontend.paths import WindowPath
from streamasr.streaming import StreamingRecognizer
from streamasr.streaming.backends import FixedShapeBackend, StepBackend
from streamasr.streaming.fixed import CacheAwareEncoder


@pytest.fixture(scope="module")
def transformer():
    return shrunk_encoder("small")


CELLS = [(4, 2, 0), (4, 2, 2), (4, 2, 4), (8, 1, 4), (2, 6, 4), (1, 8, 2), (1, 16, 0), (6, 0, 3)]


@pytest.mark.parametrize("chunk,left,right", CELLS, ids=lambda v: str(v))
def test_masked_pass_with_lookahead_equals_chunk_by_chunk(transformer, chunk, left, right):
    """Encoder input frames fed C at a time with their R look-ahead frames through the
    fixed-shape step equal the masked pass, for every frame including a ragged end."""
    config = ChunkConfig(chunk, left, right)
    frames = 5 * chunk + 3
    src = encoder_input(frames)
    step = CacheAwareEncoder(transformer, config).eval()
    with torch.no_grad():
        masked = encode_masked(transformer, src, dynchunktrain_config=config)
        state = step.initial_state(src.shape[0])
        outputs = []
        for start in range(0, frames, chunk):
            piece = src[:, start : start + chunk + right]
            valid = torch.full((src.shape[0],), piece.shape[1])
            piece = torch.nn.functional.pad(piece, (0, 0, 0, chunk + right - piece.shape[1]))
            out, state = step.step(piece, valid, state)
            outputs.append(out[:, : min(chunk, frames - start)])
    streamed = torch.cat(outputs, dim=1)
    assert streamed.shape == masked.shape
    assert torch.allclose(streamed, masked, atol=1e-4), (streamed - masked).abs().max()


def test_right_zero_is_speechbrains_own_pass(transformer):
    src = encoder_input(37)
    for config in (DynChunkTrainConfig(4, 2), DynChunkTrainConfig(1, None), DynChunkTrainConfig(8, 0)):
        assert torch.equal(chunk_attention_mask(37, config), make_transformer_src_mask(src, dynchunktrain_config=config))
        with torch.no_grad():
            ours = encode_masked(transformer, src, dynchunktrain_config=ChunkConfig(config.chunk_size,
                                                                                    config.left_context_size))
            theirs = transformer.encode(src, dynchunktrain_config=config)
        assert torch.equal(ours, theirs)


def test_lookahead_changes_the_output_and_padding_is_respected(transformer):
    """R > 0 is not a no-op, and a padded batch row equals the row alone (key padding)."""
    src = encoder_input(24)
    with torch.no_grad():
        plain = encode_masked(transformer, src, dynchunktrain_config=ChunkConfig(4, 2, 0))
        ahead = encode_masked(transformer, src, dynchunktrain_config=ChunkConfig(4, 2, 3))
        assert (plain - ahead).abs().max() > 1e-3
        lens = torch.tensor([1.0, 18 / 24])
        batch = encode_masked(transformer, src, lens, dynchunktrain_config=ChunkConfig(4, 2, 3))
        alone = encode_masked(transformer, src[1:, :18], dynchunktrain_config=ChunkConfig(4, 2, 3))
    # the DCConv of SpeechBrain sees padded frames of a batch only after the last valid
    # chunk; frames of the chunks before it are exact
    assert torch.allclose(batch[1, :16], alone[0, :16], atol=1e-5)


def _leaky_per_layer_mask(transformer, config):
    """The naive scheme: every layer attends to chunk + R (not exact)."""
    def model(x):
        mask = chunk_attention_mask(x.shape[1], config, config.right_frames, x.device)
        h = transformer.custom_src_module(x)
        pos = transformer.positional_encoding(h)
        plain = DynChunkTrainConfig(config.chunk_size, config.left_context_size)
        for layer in transformer.encoder.layers:
            h, _ = layer(h, src_mask=mask, pos_embs=pos, dynchunktrain_config=plain)
        return transformer.encoder.norm(h)
    return model


@pytest.mark.parametrize("chunk,right", [(4, 2), (8, 4), (1, 2)])
def test_dependency_check_passes_for_first_layer_lookahead_and_fails_for_per_layer(transformer, chunk, right):
    report = check_encoder(transformer, chunk, 2, chunks=4, right_frames=right)
    assert report.ok, report.describe()
    assert "past its chunk's end + %d look-ahead frames" % right in report.describe()
    # it does use the look-ahead: an output depends on an input frame in [end, end + R)
    config = ChunkConfig(chunk, 2, right)
    deps = infer_dependency_matrix(lambda x: encode_masked(transformer, x, dynchunktrain_config=config),
                                   seq_shape=[1, 4 * chunk + right, 640])
    assert deps[chunk, 0], "the first chunk's first frame should see the first look-ahead frame"
    leaky = dependency_report(_leaky_per_layer_mask(transformer, config), 640, 4 * chunk + right, chunk, 2,
                              right_frames=right)
    assert not leaky.ok
    # layer n reaches n x R past the chunk: the first chunk's output sees frame chunk + R
    assert (0, chunk + right) in leaky.leaks
    assert leaky.describe().startswith(f"LEAK: {len(leaky.leaks)} output/input frame pairs reach input past its chunk")
    # and without look-ahead allowed, the first-layer scheme is itself a leak
    strict = dependency_report(lambda x: encode_masked(transformer, x, dynchunktrain_config=config), 640,
                               4 * chunk + right, chunk, 2, right_frames=0)
    assert not strict.ok and all(i < (o // chunk + 1) * chunk + right for o, i in strict.leaks)


def test_causal_mode_chunk_of_one_frame(transformer):
    """C = 1, R = 0: every output depends only on its own and past input frames."""
    config = ChunkConfig(1, 16, 0)
    deps = infer_dependency_matrix(lambda x: encode_masked(transformer, x, dynchunktrain_config=config),
                                   seq_shape=[1, 12, 640])
    inputs, outputs = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    assert not (deps & (inputs > outputs)).any()
    assert deps[3, 3] and deps[0, 3]


def test_wrapper_is_speechbrains_wrapper_with_lookahead(transformer):
    wrapper = LookaheadEncoderWrapper(transformer)
    assert [n for n, _ in wrapper.named_parameters()] == [f"transformer.{n}" for n, _ in transformer.named_parameters()]
    src = encoder_input(20)
    config = ChunkConfig(4, 2, 2)
    with torch.no_grad():
        assert torch.equal(wrapper(src, torch.ones(2), dynchunktrain_config=config),
                           encode_masked(transformer, src, torch.ones(2), dynchunktrain_config=config))


def test_chunk_config_errors():
    with pytest.raises(ConfigError, match="right_frames must be a whole number of encoder frames >= 0, got -1"):
        ChunkConfig(4, 2, -1)
    with pytest.raises(ConfigError, match="chunk_size must be a whole number of encoder frames >= 1, got 0"):
        ChunkConfig(0, 2, 0)
    with pytest.raises(ConfigError, match="left_context_size must be a number of chunks >= 0 or None"):
        ChunkConfig(4, -2, 0)
    assert type(with_right_frames(DynChunkTrainConfig(4, 2), 0)) is DynChunkTrainConfig
    assert with_right_frames(DynChunkTrainConfig(4, None), 3) == ChunkConfig(4, None, 3)


def test_sampler_proportions():
    sampler = DynChunkLookaheadSampler(chunkwise_prob=0.6, chunk_sizes=(1, 2, 4, 8, 16), right_context_prob=0.5,
                                       right_frames_min=1, right_frames_max=8, limited_left_context_prob=0.75,
                                       left_context_frames_min=16, left_context_frames_max=512)
    torch.manual_seed(0)
    draws = [sampler(sb.Stage.TRAIN) for _ in range(8000)]
    chunked = [c for c in draws if c is not None]
    assert len(chunked) / len(draws) == pytest.approx(0.6, abs=0.02)
    assert all(isinstance(c, ChunkConfig) for c in chunked)
    with_right = [c for c in chunked if c.right_frames > 0]
    assert len(with_right) / len(chunked) == pytest.approx(0.5, abs=0.025)
    assert {c.right_frames for c in with_right} == set(range(1, 9))
    sizes = [c.chunk_size for c in chunked]
    assert set(sizes) == {1, 2, 4, 8, 16}
    for size in (1, 16):
        assert sizes.count(size) / len(sizes) == pytest.approx(1 / 5, abs=0.02)
    limited = [c for c in chunked if c.left_context_size is not None]
    assert len(limited) / len(chunked) == pytest.approx(0.75, abs=0.025)
    # left context drawn as frames, then whole chunks (at least one): the same past for every chunk size
    for c in limited:
        assert 1 <= c.left_context_size <= math.ceil(512 / c.chunk_size)
        assert c.left_context_size * c.chunk_size >= 16
    assert max(c.left_context_size for c in limited if c.chunk_size == 1) > 400


def test_sampler_stages_and_errors():
    fixed = ChunkConfig(8, 4, 4)
    sampler = DynChunkLookaheadSampler(valid_config=fixed, test_config=None)
    assert sampler(sb.Stage.VALID) is fixed and sampler(sb.Stage.TEST) is None
    with pytest.raises(ConfigError, match="chunkwise_prob must be a probability in \\[0, 1\\], got 1.5"):
        DynChunkLookaheadSampler(chunkwise_prob=1.5)
    with pytest.raises(ConfigError, match="chunk_sizes must be encoder frame counts >= 1, got \\[4, 0\\]"):
        DynChunkLookaheadSampler(chunk_sizes=[4, 0])
    with pytest.raises(ConfigError, match="right_frames_min <= right_frames_max, got 5..2"):
        DynChunkLookaheadSampler(right_frames_min=5, right_frames_max=2)


def test_lookahead_yaml_draws_the_documented_configs():
    from hyperpyyaml import load_hyperpyyaml

    from helpers.common import REPO
    from streamasr.training.recipe import merge_overrides

    text = SMALL_YAML.read_text(encoding="utf-8")
    overrides = merge_overrides([str(REPO / "hparams" / "lookahead.yaml")], "data_folder: unused")
    sampler = load_hyperpyyaml(text, overrides)["dynchunktrain_config_sampler"]
    assert isinstance(sampler, DynChunkLookaheadSampler)
    assert sampler.chunk_sizes == (1, 2, 4, 8, 12, 16, 24, 32)
    assert (sampler.chunkwise_prob, sampler.right_context_prob, sampler.right_frames_max) == (0.6, 0.5, 8)


# ------------------------------------------------------------ the whole engine, with R
@pytest.mark.parametrize("chunk,left,right", [(4, 2, 2), (2, 8, 4), (8, 1, 8), (1, 16, 3)], ids=lambda v: str(v))
def test_engine_with_lookahead_equals_masked_simulation(model, utterances, chunk, left, right):
    """Audio in, exact front end, both fixed-shape backends: the projected encoder frames
    the search sees equal the masked simulation's, and so do the hypotheses."""
    config = ChunkConfig(chunk, left, right)
    for utterance in utterances[:2]:
        src, lengths = model.encoder_inputs([utterance.wav])
        reference = model.encode_features(src, lengths, config)[0]
        masked = model.transcribe_masked([utterance.wav], config)[0]
        expected = masked.tokens
        for backend in (FixedShapeBackend(model, config), StepBackend(model, config)):
            recognizer = StreamingRecognizer(model, config, backend=backend)
            seen = []
            encode = backend.encode

            def spy(features, lengths, state, encode=encode):
                out, frames, state = encode(features, lengths, state)
                seen.append(out[0, : int(frames[0])])
                return out, frames, state

            backend.encode = spy
            state, outputs = recognizer.transcribe(utterance.wav)
            streamed = torch.cat(seen)
            assert streamed.shape == reference.shape
            assert torch.allclose(streamed, reference, atol=1e-4)
            assert_same_or_near_tie(state.result.tokens, expected, (state.decoder_state.min_margins[0], masked.min_margin),
                                    utterance.utt_id)
            assert [o.end_frame - o.start_frame for o in outputs][:-1] == [chunk] * (len(outputs) - 1)


def test_window_path_waits_for_the_lookahead(model):
    """A chunk is ready only once the audio of its look-ahead frames has arrived."""
    geometry = model.geometry
    config = ChunkConfig(4, 2, 3)
    recognizer = StreamingRecognizer(model, config)
    assert isinstance(recognizer.path, WindowPath)
    assert recognizer.path.window_frames == geometry.subsampling * (4 + 3 + geometry.margin_frames) + 1
    stream = recognizer.create_stream()
    recognizer.accept_waveform(stream, torch.zeros(geometry.samples_needed(4 + 3) - 1))
    assert not recognizer.is_ready(stream)
    recognizer.accept_waveform(stream, torch.zeros(1))
    assert recognizer.is_ready(stream)
    (output,) = recognizer.decode_streams([stream])
    assert (output.start_frame, output.end_frame) == (0, 4)
    assert not recognizer.is_ready(stream)  # the next chunk needs frames up to 4 + 4 + 3


def test_lookahead_refuses_what_cannot_stream_it(model):
    with pytest.raises(ConfigError, match="look-ahead .* finite left context"):
        StreamingRecognizer(model, ChunkConfig(4, None, 2))
    with pytest.raises(ConfigError, match="--frontend stock .* no look-ahead"):
        StreamingRecognizer(model, ChunkConfig(4, 2, 2), frontend="stock",
                            backend=FixedShapeBackend(model, ChunkConfig(4, 2, 2)))


def test_streams_at_different_positions_with_lookahead_decode_as_each_alone(model, utterances):
    """decode_streams (the server's driving) with look-ahead: streams joining at
    different ticks share batches and give each stream's own transcript."""
    recognizer = StreamingRecognizer(model, ChunkConfig(4, 4, 3))
    chosen = utterances[:3]
    alone = [recognizer.transcribe(u.wav)[0] for u in chosen]
    step = recognizer.chunk_samples // 2  # half a chunk per tick: readiness depends on the look-ahead
    streams, _, batch_sizes = drive_staggered(recognizer, [u.wav for u in chosen], step)
    assert max(batch_sizes) >= 2
    identical = 0
    for index, (stream, one) in enumerate(zip(streams, alone)):  # batched calls may round differently
        identical += assert_same_or_near_tie(stream.result.tokens, one.result.tokens, (
            stream.decoder_state.min_margins[0], one.decoder_state.min_margins[0]), f"stream {index}")
    assert identical >= 2
    assert all(len(one.result.tokens) > 3 for one in alone), "vacuous: the random model emits many tokens"


def test_only_the_last_chunk_is_final_when_the_lookahead_reaches_past_the_end(model, utterances):
    """With R > 0 several chunks at the end have their look-ahead cut by the end of the
    stream; only the last is final (the server ends a stream at its final output)."""
    config = ChunkConfig(4, 4, 8)
    recognizer = StreamingRecognizer(model, config)
    wav = utterances[0].wav
    expected = recognizer.transcribe(wav)[0].result.text
    stream = recognizer.create_stream()
    recognizer.accept_waveform(stream, wav)
    recognizer.input_finished(stream)
    outputs = []
    while not stream.finished:
        output = recognizer.decode_streams([stream])[0]
        if output is not None:
            outputs.append(output)
    assert [o.final for o in outputs] == [False] * (len(outputs) - 1) + [True]
    assert "".join(o.text for o in outputs) == expected
