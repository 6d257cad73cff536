"""Endpointing with sherpa-onnx's rules: the rule arithmetic, segments in the engine
(the first segment equals the unsegmented decode up to the endpoint, the search restarts
after it, the whole transcript joins the segments) and in `streamasr serve` (one final
per segment). Rule 1 on silence needs a trained model: tests/e2e/test_silence.py."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch
import websockets
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.errors import ConfigError
from streamasr.export.sherpa_check import load_manifest
from streamasr.serve import ServeConfig, start_server
from streamasr.streaming import StreamingRecognizer
from streamasr.streaming.endpoint import Endpointing, EndpointRule

CONFIG = DynChunkTrainConfig(8, 4)  # 320 ms chunks
EVERY_SECOND = Endpointing(rule3=EndpointRule(False, 0.0, 1.0))  # rule 3 after 1 s: segments in any speech


def test_rules_as_sherpa_onnx():
    rules = Endpointing()
    frame = 0.04
    assert rules.rule_fired(59, 59, frame) == 0  # 2.36 s of silence, nothing decoded
    assert rules.rule_fired(60, 60, frame) == 1  # 2.4 s: rule 1
    assert rules.rule_fired(80, 30, frame) == 2  # 1.2 s of silence after speech: rule 2
    assert rules.rule_fired(80, 29, frame) == 0
    assert rules.rule_fired(40, 30, frame) == 2
    assert rules.rule_fired(500, 0, frame) == 3  # a 20 s segment
    assert rules.rule_fired(499, 0, frame) == 0
    with pytest.raises(ConfigError, match="would end every chunk"):
        Endpointing(rule2=EndpointRule(True, 0.0, 0.0))
    with pytest.raises(ConfigError, match="durations must be >= 0"):
        Endpointing(rule1=EndpointRule(False, -1.0, 0.0))


@pytest.fixture(scope="module")
def wave(tiny_corpus):
    return torch.cat([u.wave for u in load_manifest(tiny_corpus / "test_voices.csv")[:2]])


def test_engine_segments(kaldi_model, wave):
    plain_state, plain = StreamingRecognizer(kaldi_model, CONFIG).transcribe(wave)
    recognizer = StreamingRecognizer(kaldi_model, CONFIG, endpointing=EVERY_SECOND)
    state, outputs = recognizer.transcribe(wave)
    ends = [o for o in outputs if o.endpoint]
    assert len(ends) >= 2 and all(o.endpoint == 3 for o in ends)
    assert [o.segment for o in ends] == list(range(len(ends)))
    assert state.result.segments == [o.segment_text for o in ends] and state.result.segment == len(ends)
    # the first segment is the unsegmented decode up to the endpoint
    first = ends[0].chunk_index
    assert ends[0].segment_text == "".join(o.text for o in plain[: first + 1]).strip()
    assert len(ends[0].segment_text) > 5
    assert state.result.full_text == " ".join(t for t in state.result.segments + [state.result.text.strip()] if t)
    # frames and token times stay relative to the stream start
    frames = [e.frame for o in outputs for e in o.tokens]
    assert frames == sorted(frames) and frames[-1] > ends[-1].end_frame - 8
    with pytest.raises(ConfigError, match="batch 1"):
        recognizer.init_state(2)


def test_server_sends_one_final_per_segment(kaldi_model, wave):
    reference = StreamingRecognizer(kaldi_model, CONFIG, endpointing=EVERY_SECOND)
    state, _ = reference.transcribe(wave)

    async def body():
        server = await start_server(StreamingRecognizer(kaldi_model, CONFIG, endpointing=EVERY_SECOND),
                                    ServeConfig(port=0))
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
                samples = wave.numpy()
                for begin in range(0, len(samples), 3200):
                    await ws.send(samples[begin : begin + 3200].tobytes())
                await ws.send("Done")
                return [m async for m in ws]
        finally:
            await server.shutdown()

    messages = asyncio.run(body())
    assert messages[-1] == "Done!"
    results = [json.loads(m) for m in messages[:-1]]
    finals = [r for r in results if r["is_final"]]
    assert [r["segment"] for r in finals] == list(range(len(state.result.segments) + 1))
    assert [r["text"] for r in finals[:-1]] == state.result.segments
    assert finals[-1]["is_eof"] and finals[-1]["text"] == state.result.text.strip()
    assert not any(r["is_eof"] for r in results[:-1])
    stamps = [t for r in finals for t in r["timestamps"]]
    assert stamps == sorted(stamps)  # relative to the stream start across segments


def test_beam_search_finalises_each_segment(kaldi_model, wave):
    """With beam search an endpoint finalises the beams like the end of a stream: the
    first segment is the beam transcript of the audio up to that endpoint, decoded as
    a whole stream."""
    recognizer = StreamingRecognizer(kaldi_model, CONFIG, endpointing=EVERY_SECOND, decoding="beam", beam=4)
    state, outputs = recognizer.transcribe(wave)
    ends = [o for o in outputs if o.endpoint]
    assert len(ends) >= 2 and state.result.segments == [o.segment_text for o in ends]
    cut = ends[0].end_frame * kaldi_model.geometry.frame_samples
    prefix = StreamingRecognizer(kaldi_model, CONFIG, decoding="beam", beam=4)
    alone = prefix.init_state(1)
    prefix.accept_audio(alone, wave[None, : cut + kaldi_model.geometry.lookahead_samples])
    chunks = ends[0].chunk_index + 1
    assert alone.chunks_done == chunks  # the same chunks ran, then the stream ends
    rest, _ = prefix.search.finish(alone.decoder_state)
    text = (alone.result.text + kaldi_model.decode_continuation(rest[0].tokens, not alone.result.tokens)).strip()
    assert ends[0].segment_text == text and len(text) > 5
    assert state.result.full_text == " ".join(t for t in state.result.segments + [state.result.text.strip()] if t)
