"""The benchmark scripts run and print their tables (timings are not asserted: speed
targets live in the benchmarks' output, not in unit tests)."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers.common import REPO, SMALL_YAML, TINY_MODEL_OVERRIDES

ROOT = REPO


def run_script(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_lattice_gradient_benchmark_prints_equal_gradients():
    out = run_script("benchmarks/lattice_gradient.py", "--shapes", "2,12,4", "3,7,0", "--repeats", "2")
    rows = [line for line in out.splitlines() if re.match(r"\| \d", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["2, 12, 4", "3, 7, 0"]
    for row in rows:
        assert float(row.split("|")[5]) < 1e-10, row  # forward-backward gradient == autograd's


def test_train_step_benchmark_compares_lattice_gradients_and_restores_the_loss():
    out = run_script("benchmarks/train_step.py", "--compare", "lattice-gradient", "--steps", "1",
                     "--batch-seconds", "2")
    assert "| pruned, lattice gradient by autograd |" in out
    assert "| pruned, forward-backward lattice gradient |" in out
    assert re.search(r"speed-up: \d+\.\d\dx", out), out


def test_train_step_breakdown_times_every_phase_of_two_recipes(tiny_corpus, tmp_path):
    tiny = ",".join(o for o in TINY_MODEL_OVERRIDES)
    out = run_script("benchmarks/train_step.py", "--breakdown", "--steps", "1", "--data-folder", str(tiny_corpus),
                     "--output", str(tmp_path), "--batch-seconds", "6",
                     "--recipe", f"4x={SMALL_YAML},{tiny}",
                     "--recipe", f"8x={SMALL_YAML},{REPO / 'hparams/subsampling8.yaml'},{tiny}")
    for phase in ("data", "Fbank", "CNN front end", "encoder layers", "joiner + transducer loss", "backward",
                  "optimizer"):
        assert re.search(rf"^\| {re.escape(phase)} \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M), phase
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith(("| 4x |", "| 8x |"))}
    assert set(rows) == {"4x", "8x"}
    # FLOP counted: GFLOP/s (a tiny batch of one-word prompts can print 0.0 GFLOP per step)
    assert all(float(row.split("|")[7]) > 0 for row in rows.values())
    assert re.search(r"^\| 8x \| .*\| \d+\.\d\dx \|$", out, re.M)  # the speed against the first recipe
    assert "matmul 2048^2 fp32:" in out


def test_interleaved_medians_runs_variants_in_turn_and_drops_the_warm_up():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _interleaved import interleaved_medians
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    calls = []

    def variant(label, seconds):
        def run(index):
            calls.append((label, index))
            return seconds[index]
        return run

    medians = interleaved_medians([("a", variant("a", [100.0, 1.0, 3.0, 2.0])),
                                   ("b", variant("b", [100.0, 5.0, 4.0, 6.0]))], repeats=3)
    assert medians == {"a": 2.0, "b": 5.0}
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]


def test_gpu_check_runs_every_part_on_tiny_shapes_and_our_full_loss_equals_torchaudios():
    out = run_script("benchmarks/gpu_check.py", "--device", "cpu", "--tiny")
    for title in ("### Training the full-size YAML", "### Transducer losses", "### Evaluation and streaming"):
        assert title in out, out
    assert re.search(r"^\| bf16 \| [\d.]+ M \| 2 x 2 x 2 x 1 s \|", out, re.M), out
    full_rows = [line.split("|") for line in out.splitlines() if re.match(r"\| [\d, ]+ \| full \|", line)]
    assert len(full_rows) == 2, out
    for row in full_rows:  # relative loss difference / largest gradient difference
        loss_diff, grad_diff = (float(x) for x in row[8].split("/"))
        assert loss_diff < 1e-5 and grad_diff < 1e-3, row
    streaming = [line for line in out.splitlines() if line.startswith("| streaming engine")]
    assert [line.split("|")[2].strip() for line in streaming] == ["1", "3"], out
    assert "gpu_check: done" in out


def test_gpu_check_script_without_cuda_says_so_and_succeeds():
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**__import__("os").environ, "PYTHON": sys.executable,
                                                                   "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr
    assert "no CUDA device" in result.stdout


def test_streaming_runtime_benchmark_prints_its_tables(random_model_folder, tiny_corpus, tmp_path):
    import shutil

    folder = tmp_path / "run"  # the onnx cache is written beside the model
    shutil.copytree(random_model_folder, folder)
    out = run_script("benchmarks/streaming_runtime.py", "--model", str(folder), "--manifest",
                     str(tiny_corpus / "test_voices.csv"), "--limit", "2", "--repeats", "1", "--streams", "3",
                     "--chunk-ms", "320", "--left-chunks", "2", "--stream-seconds", "3")
    for engine in ("PyTorch, SpeechBrain contexts", "PyTorch, fixed-shape step", "onnxruntime"):
        assert re.search(rf"^\| {re.escape(engine)} \| \d+\.\d{{4}} \| \d+\.\d\dx \|$", out, re.M), out
    assert re.search(r"^\| onnxruntime \| 3 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M), out
    assert (folder / "onnx" / "320ms_left2" / "encoder.onnx").is_file()


def test_serve_load_benchmark_drives_both_servers(kaldi_model_folder, tiny_corpus, tmp_path):
    import shutil

    folder = tmp_path / "run"  # the onnx and sherpa-onnx caches are written beside the model
    shutil.copytree(kaldi_model_folder, folder)
    out = run_script("benchmarks/serve_load.py", "--model", str(folder), "--manifest",
                     str(tiny_corpus / "test_voices.csv"), "--servers", "streamasr-onnx,sherpa-onnx",
                     "--streams", "2", "--seconds", "1.5", "--chunk-ms", "320", "--limit", "2")
    for server in ("streamasr-onnx", "sherpa-onnx"):
        assert re.search(rf"^\| {server} \| 2 \| ([\d.]+ s \| ){{5}}[\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \| (yes|no) \|$",
                         out, re.M), out
        assert re.search(rf"^{server}: largest N with partial-latency p95 below the chunk \(320 ms\): (2|none tried)$",
                         out, re.M), out


def test_serve_soak_benchmark_reports_flat_memory_table(random_model_folder, tiny_corpus):
    out = run_script("benchmarks/serve_soak.py", "--model", str(random_model_folder), "--manifest",
                     str(tiny_corpus / "test_voices.csv"), "--backend", "torch", "--connections", "12",
                     "--concurrency", "6", "--minutes", "0.1", "--streams", "3")
    assert "server exit status after SIGTERM: 0" in out, out
    assert re.search(r'^\| after 12 connections \(\d+ s\) \| \d+ \| \d+ \| 0 \| \{"abandon": 2, "cut": 2, "done": 2\} \|$',
                     out, re.M), out
    assert re.search(r"^\| 3 real-time streams, minute 1 \| \d+ \| \d+ \| 0 \| final latency p95 [\d.]+ s \|$", out, re.M), out
    # where the memory is: the kinds of mappings add up to the resident memory (VmRSS)
    end = re.search(r"^\| end \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", out, re.M)
    last = re.search(r"^\| 3 real-time streams, minute 1 \| (\d+) \|", out, re.M)
    assert end and last, out
    assert abs(sum(map(int, end.groups())) - int(last.group(1))) <= 0.05 * int(last.group(1)) + 10, out


def test_cli_startup_benchmark_prints_every_answer_and_the_torch_reference():
    out = run_script("benchmarks/cli_startup.py", "--repeats", "1")
    for name in ("streamasr --help", "streamasr transcribe --help", "streamasr --version", "--rate 0",
                 "import torch"):
        assert name in out, out
    assert re.search(r"\| `streamasr --help` \| \d+\.\d\d \| \d+ \| (met|MISSED) \|", out), out


def test_reference_recognizer_scores_the_human_test_sets_with_pocketsphinx(tiny_corpus, tmp_path):
    out = run_script("benchmarks/reference_recognizer.py", "--data-folder", str(tiny_corpus), "--sets",
                     "test_human", "test_human_unseen", "--output", str(tmp_path))
    rows = [line for line in out.splitlines() if line.startswith("| test_human")]
    assert [row.split("|")[1].strip() for row in rows] == ["test_human", "test_human_unseen"]
    assert all(row.split("|")[2].strip() == "3" for row in rows)
    hyps = (tmp_path / "hyp_test_human_unseen.txt").read_text().splitlines()
    assert len(hyps) == 3 and all("\tREF " in h and "\tHYP " in h for h in hyps)
    # the package's own check: PocketSphinx says goforward.raw exactly
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reference_recognizer import decoder, transcribe

    from streamasr.data.human import POCKETSPHINX_DATA, read_recording

    assert transcribe(decoder(), read_recording(POCKETSPHINX_DATA / "goforward.raw")) == "GO FORWARD TEN METERS"
    missing = subprocess.run([sys.executable, "benchmarks/reference_recognizer.py", "--data-folder",
                              str(tmp_path / "none")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "build-corpus" in missing.stderr
