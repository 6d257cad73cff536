"""Beam search in the streaming engine and its front doors: streaming equals the masked
simulation, streams at different positions equal each alone, n-best at the end, the
onnx backend, evaluate's options and their errors (transcribe's, run as a process:
tests/e2e/test_transcribe_cli_options.py)."""

from __future__ import annotations

import json

import pytest
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from helpers.common import assert_same_or_near_tie, beam_gap, drive_staggered
from streamasr.decoding import Decoding
from streamasr.engine import EngineSpec
from streamasr.errors import ConfigError
from streamasr.evaluate import Grid, SweepOptions, evaluate
from streamasr.streaming import StreamingRecognizer
from streamasr.streaming.backends import make_backend


def test_streaming_beam_equals_masked_beam(model, utterances):
    config = DynChunkTrainConfig(8, 2)
    search = model.make_search("beam", 3)
    recognizer = StreamingRecognizer(model, config, decoding="beam", beam=3, nbest=3)
    identical = 0
    for utterance in utterances[:3]:
        expected = model.transcribe_masked([utterance.wav], config, search)[0]
        state, outputs = recognizer.transcribe(utterance.wav)
        scores = [score for _, score in state.result.nbest]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and len(expected.tokens) > 3
        assert [tokens for tokens, _ in state.result.nbest][0] == state.result.tokens
        # streaming and masked encoders round differently: equal, or a near-tie of the two best
        if not assert_same_or_near_tie(state.result.tokens, expected.tokens, (beam_gap(state.result.nbest),),
                                       utterance.utt_id):
            continue
        identical += 1
        frames = [e.frame for o in outputs for e in o.tokens]
        assert frames == expected.frames  # absolute frames, whichever chunk made a token stable
    assert identical >= 2


def test_beam_streams_at_different_positions_decode_as_each_alone(model, utterances):
    recognizer = StreamingRecognizer(model, DynChunkTrainConfig(4, 2), decoding="beam", beam=4, nbest=2)
    chosen = utterances[:3]
    alone = [recognizer.transcribe(u.wav)[0] for u in chosen]
    step = recognizer.chunk_samples
    streams, _, batch_sizes = drive_staggered(recognizer, [u.wav for u in chosen], step)
    assert max(batch_sizes) >= 2
    identical = 0
    for index, (stream, one) in enumerate(zip(streams, alone)):  # batched calls may round differently
        identical += assert_same_or_near_tie(stream.result.tokens, one.result.tokens, (
            beam_gap(stream.result.nbest), beam_gap(one.result.nbest)), f"stream {index}")
    assert identical >= 2


def test_beam_on_the_onnx_backend(model, utterances, onnx_folder):
    from streamasr.streaming.onnx import OnnxModel

    alone = OnnxModel(onnx_folder)
    config = DynChunkTrainConfig(8, 2)
    torch_engine = StreamingRecognizer(model, config, decoding="beam", beam=4)
    onnx_engine = StreamingRecognizer(alone, config, backend=make_backend(alone, config, backend="onnx"),
                                      decoding="beam", beam=4)
    agree = 0
    for utt in utterances[:3]:
        ours = torch_engine.transcribe(utt.wav)[0].result.tokens
        theirs = onnx_engine.transcribe(utt.wav)[0].result.tokens
        agree += ours == theirs  # onnxruntime rounds differently: a near-tie may flip one
    assert agree >= 2


def test_evaluate_with_beam_search(random_model_folder, tiny_corpus, tmp_path):
    results = evaluate(str(random_model_folder), str(tiny_corpus / "test_voices.csv"), str(tmp_path / "beam"),
                       Grid(["320"], left_values=["2"]), EngineSpec(decoding=Decoding("beam", 3)),
                       SweepOptions(limit=2, progress=False))
    assert results[1].differing_hypotheses == 0
    meta = json.loads((tmp_path / "beam" / "results.json").read_text())["meta"]
    assert meta["decoding"] == "beam 3"
    with pytest.raises(ConfigError, match="decoding must be one of greedy, beam, got 'viterbi'"):
        evaluate(str(random_model_folder), str(tiny_corpus / "test_voices.csv"), str(tmp_path / "x"),
                 Grid(["320"], left_values=["2"]), EngineSpec(decoding=Decoding("viterbi")),
                 SweepOptions(progress=False))


def test_input_finished_after_the_last_chunk_still_flushes_the_beams(model, utterances):
    """A stream whose input ends after its last chunk ran (``input_finished`` late):
    decode_streams finishes it with an empty final chunk that carries the rest of the
    best hypothesis."""
    recognizer = StreamingRecognizer(model, DynChunkTrainConfig(8, 2), decoding="beam", beam=4)
    wav = utterances[0].wav
    expected = recognizer.transcribe(wav)[0]
    stream = recognizer.create_stream()
    recognizer.accept_waveform(stream, wav)
    tokens = []
    while recognizer.is_ready(stream):
        tokens.extend(e.token_id for e in recognizer.decode_streams([stream])[0].tokens)
    recognizer.input_finished(stream)
    while not stream.finished:
        output = recognizer.decode_streams([stream])[0]
        if output is not None:
            tokens.extend(e.token_id for e in output.tokens)
    assert tokens == stream.result.tokens == expected.result.tokens
