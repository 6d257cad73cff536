"""``streamasr evaluate`` on a tiny model folder (random weights with wide greedy
margins, built without a training run: helpers.models): the sweep, its files and
plots, streaming = simulation, bad inputs before any work."""

from __future__ import annotations

import csv
import json

import pytest

from helpers.common import SMALL_YAML, TINY_MODEL_OVERRIDES
from helpers.models import build_model_folder
from streamasr.cli import main as cli
from streamasr.engine import EngineSpec
from streamasr.errors import ConfigError
from streamasr.evaluate import Grid, SweepOptions, evaluate, parse_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUIET = SweepOptions(progress=False)


@pytest.fixture(scope="module")
def model_folder(tiny_corpus, tmp_path_factory):
    """The random model's recipe with its output layer x30: the same greedy decisions,
    30 times their margins, so that streaming = simulation cannot hinge on a near-tie of
    random weights."""
    return build_model_folder(SMALL_YAML, tiny_corpus, tmp_path_factory.mktemp("sweep_model") / "run",
                              *TINY_MODEL_OVERRIDES, "--number_of_epochs=1", output_scale=30.0)


@pytest.fixture(scope="module")
def sweep(model_folder, tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    results = evaluate(
        str(model_folder), str(tiny_corpus / "test_voices.csv"), str(out),
        Grid(chunk_values=["160", "320"], unit="ms", left_values=["2", "unlimited"]), options=QUIET,
    )
    return out, results


def test_sweep_covers_full_context_and_every_cell(sweep):
    out, results = sweep
    cells = [(r.chunk_ms, r.left_label) for r in results]
    assert cells == [(None, "full"), (160, "2"), (320, "2"), (160, "unlimited"), (320, "unlimited")]
    for r in results[1:]:
        assert r.streaming_wer is not None and r.differing_hypotheses is not None
        assert r.algorithmic_latency_ms == pytest.approx(r.chunk_ms + 41 / 16)
        assert 0 < r.chunk_compute_ms_median <= r.chunk_compute_ms_p95
        assert r.real_time_factor > 0 and r.threads == 1


def test_results_files_table_and_plots(sweep):
    out, results = sweep
    data = json.loads((out / "results.json").read_text())
    assert len(data["cells"]) == 5 and data["meta"]["threads"] == 1
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 5
    table = (out / "results.md").read_text()
    assert "| left context (chunks), look-ahead | 160 ms | 320 ms | full context |" in table
    assert "\n| 2 |" in table and "\n| unlimited |" in table
    for name in ("wer_vs_chunk.png", "wer_vs_latency.png", "wer_vs_mean_latency.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


def test_streaming_agrees_with_simulation_in_the_sweep(sweep):
    _, results = sweep
    for r in results[1:]:
        assert r.differing_hypotheses == 0, r
        assert r.streaming_wer == pytest.approx(r.masked_wer)


def test_existing_results_are_not_overwritten(sweep, model_folder, tiny_corpus):
    out, _ = sweep
    before = (out / "results.json").read_text()
    with pytest.raises(FileExistsError, match="already holds results.*--overwrite"):
        evaluate(str(model_folder), str(tiny_corpus / "test_voices.csv"), str(out), Grid(chunk_values=["320"]))
    assert (out / "results.json").read_text() == before


@pytest.mark.parametrize(
    "chunks, unit, lefts, message",
    [
        (["100"], "ms", ["2"], r"chunk size 100 ms is not a positive multiple of the encoder frame \(40 ms\)"),
        (["0"], "ms", ["2"], r"chunk size 0 ms is not a positive multiple"),
        (["2.5"], "frames", ["2"], r"chunk size 2.5 frames is not a positive whole number"),
        (["320"], "ms", ["-1x"], r"left context '-1x' is not a whole number"),
        (["320"], "ms", ["-2"], r"left context -2 is negative"),
    ],
)
def test_bad_grid_values_are_named(chunks, unit, lefts, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(chunks, unit, lefts, 40.0)


def test_the_default_grid_is_the_commands():
    from streamasr.cli.parsers import build_parser

    args = build_parser().parse_args(["evaluate", "m", "--manifest", "x.csv", "--output", "o"])
    assert Grid() == Grid(args.chunk_ms.split(","), "ms", args.left_chunks.split(","), args.right_ms.split(","))
    assert Grid().chunk_values == ("160", "320", "640", "960", "1280")


def test_bad_inputs_fail_before_any_work(model_folder, tiny_corpus, tmp_path, capsys):
    manifest = tmp_path / "test.csv"
    lines = (tiny_corpus / "test_voices.csv").read_text().splitlines()
    lines[1] = lines[1].replace(".wav", "-missing.wav")
    manifest.write_text("\n".join(lines) + "\n")
    code = cli(["evaluate", str(model_folder), "--manifest", str(manifest), "--output", str(tmp_path / "o"),
                "--data-root", str(tiny_corpus)])
    assert code == 2
    assert "row 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

    code = cli(["evaluate", str(tmp_path), "--manifest", str(manifest), "--output", str(tmp_path / "o")])
    assert code == 2 and "is neither a training output folder" in capsys.readouterr().err


def test_checkpoint_that_does_not_match_the_yaml_is_a_clear_error(model_folder, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model_folder, copy)
    yaml = copy / "hyperparams.yaml"
    yaml.write_text(yaml.read_text().replace("d_model: 32", "d_model: 48"))
    from streamasr.model import ModelLoadError, load_model

    with pytest.raises(ModelLoadError, match=r"checkpoint .*CKPT.* does not match .*hyperparams.yaml"):
        load_model(copy)


def test_several_test_sets_are_evaluated_alone_and_compared(model_folder, tiny_corpus, tmp_path, capsys):
    out = tmp_path / "sets"
    manifests = [str(tiny_corpus / f"{name}.csv") for name in ("test_voices", "test_text", "test_synth")]
    assert cli(["evaluate", str(model_folder), "--manifest", *manifests, "--output", str(out),
                "--chunk-ms", "320", "--left-chunks", "2", "--masked-only", "--jobs", "1"]) == 0
    rows = {}
    for name in ("test_voices", "test_text", "test_synth"):
        data = json.loads((out / name / "results.json").read_text())
        full = next(c for c in data["cells"] if c["chunk_frames"] is None)
        chunked = next(c for c in data["cells"] if c["chunk_frames"] is not None)
        rows[name] = f"| {name} | {chunked['masked_wer']:.2f} | {full['masked_wer']:.2f} |"
    table = (out / "test_sets.md").read_text().splitlines()
    assert table[0] == "| test set | 320 ms / 2 | full context |"
    assert table[2:] == [rows["test_voices"], rows["test_text"], rows["test_synth"]]
    assert "== WER per test set" in capsys.readouterr().out


def test_several_test_sets_with_one_file_name_are_refused(model_folder, tiny_corpus, tmp_path, capsys):
    copy = tmp_path / "other"
    copy.mkdir()
    (copy / "test_voices.csv").write_text((tiny_corpus / "test_voices.csv").read_text())
    code = cli(["evaluate", str(model_folder), "--manifest", str(tiny_corpus / "test_voices.csv"),
                str(copy / "test_voices.csv"), "--output", str(tmp_path / "o")])
    assert code == 2 and "two manifests share a file name" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_lookahead_grid_latencies_and_left_context_in_ms(model_folder, tiny_corpus, tmp_path):
    """--right-ms adds look-ahead to the grid, --left-ms gives every chunk size the same
    past; each cell reports worst-case ((C + R) x 40 ms + front end) and mean ((C/2 +
    R) x 40 ms + front end) latency, and streaming equals the masked simulation."""
    out = tmp_path / "grid"
    assert cli(["evaluate", str(model_folder), "--manifest", str(tiny_corpus / "test_voices.csv"),
                "--output", str(out), "--chunk-ms", "80,160", "--left-ms", "640", "--right-ms", "0,120",
                "--limit", "2", "--jobs", "1"]) == 0
    data = json.loads((out / "results.json").read_text())
    cells = [(c["chunk_ms"], c["left_chunks"], c["right_ms"]) for c in data["cells"]]
    assert cells == [(None, None, 0.0), (80, 8, 0), (160, 4, 0), (80, 8, 120), (160, 4, 120)]
    front = 41 / 16
    for c in data["cells"][1:]:
        assert c["algorithmic_latency_ms"] == pytest.approx(c["chunk_ms"] + c["right_ms"] + front)
        assert c["mean_latency_ms"] == pytest.approx(c["chunk_ms"] / 2 + c["right_ms"] + front)
        assert c["differing_hypotheses"] == 0 and c["left_ms"] == 640
    table = (out / "results.md").read_text()
    assert "\n| 640 ms, +120 ms |" in table and "| 80 | 640 ms (8) | 120 |" in table
    assert (out / "wer_vs_mean_latency.png").read_bytes()[:8] == PNG_MAGIC


def test_lookahead_needs_what_it_streams_on(model_folder, tiny_corpus, tmp_path):
    common = [str(model_folder), str(tiny_corpus / "test_voices.csv"), str(tmp_path / "x")]
    with pytest.raises(ConfigError, match="look-ahead .* finite left context.*--masked-only"):
        evaluate(*common, Grid(["160"], left_values=["unlimited"], right_values=["120"]), options=QUIET)
    with pytest.raises(ConfigError, match="look-ahead 30 ms is not 0 or a positive multiple"):
        evaluate(*common, Grid(["160"], left_values=["2"], right_values=["30"]), options=QUIET)
    with pytest.raises(ConfigError, match="--frontend stock .* no look-ahead"):
        evaluate(*common, Grid(["160"], left_values=["2"], right_values=["40"]), EngineSpec(feature_path="stock"),
                 QUIET)
    assert not (tmp_path / "x").exists()
