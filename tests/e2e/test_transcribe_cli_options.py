"""``streamasr transcribe`` run as a process with the engine's decoding and look-ahead
options: beam search with n-best in the JSON output, look-ahead chunks, and the errors
of bad values (each output equals the in-process engine's, or differs at a near-tie:
another process may round differently)."""

from __future__ import annotations

import json

import soundfile as sf
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from helpers.common import NEAR_TIE, beam_gap, cli
from streamasr.dct import ChunkConfig
from streamasr.streaming import StreamingRecognizer


def test_transcribe_nbest_and_bad_options(random_model_folder, model, utterances, tmp_path):
    path = tmp_path / "utt.wav"
    sf.write(path, utterances[0].wav.numpy(), 16000)
    result = cli("transcribe", path, "--model", random_model_folder, "--chunk-ms", "320", "--left-chunks", "2",
                 "--decoding", "beam", "--beam", "3", "--nbest", "2", "--json")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    final = json.loads(result.stdout.decode().splitlines()[-1])
    assert final["type"] == "final" and len(final["nbest"]) == 2
    assert final["nbest"][0]["text"] == final["text"] and final["nbest"][0]["score"] >= final["nbest"][1]["score"]
    expected = StreamingRecognizer(model, DynChunkTrainConfig(8, 2), decoding="beam", beam=3, nbest=2).transcribe(
        utterances[0].wav)[0]  # another process may round differently: equal, or a near-tie
    assert final["text"] == expected.result.text.strip() or beam_gap(expected.result.nbest) < NEAR_TIE
    for options, message in ((["--decoding", "beam", "--beam", "0"], "argument --beam: 0 is out of range: expected 1 to 128 hypotheses"),
                             (["--nbest", "2"], "nbest must be between 1 and 1 (greedy decoding), got 2")):
        bad = cli("transcribe", path, "--model", random_model_folder, *options)
        assert bad.returncode != 0 and message in bad.stderr.decode()


def test_transcribe_cli_with_lookahead(random_model_folder, model, utterances, tmp_path):
    path = tmp_path / "utt.wav"
    sf.write(path, utterances[0].wav.numpy(), 16000)
    result = cli("transcribe", path, "--model", random_model_folder, "--chunk-ms", "160", "--left-chunks", "4",
                 "--right-ms", "120", "--json")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    final = json.loads(result.stdout.decode().splitlines()[-1])
    expected = StreamingRecognizer(model, ChunkConfig(4, 4, 3)).transcribe(utterances[0].wav)[0]
    assert final["type"] == "final"  # another process may round differently: equal, or a near-tie
    assert final["text"] == expected.result.text.strip() or expected.decoder_state.min_margins[0] < NEAR_TIE
    bad = cli("transcribe", path, "--model", random_model_folder, "--right-ms", "30")
    assert bad.returncode != 0
    assert "look-ahead 30 ms is not 0 or a positive multiple of the encoder frame (40 ms)" in bad.stderr.decode()
