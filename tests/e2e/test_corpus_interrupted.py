"""``streamasr build-corpus`` stopped by SIGTERM (``kill PID``, ``timeout``, a job
scheduler): exit 143, no worker process left behind, no half-written file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from helpers.common import REPO
from helpers.processes import descendants, wait_gone, wait_until


def test_build_corpus_killed_by_sigterm_leaves_no_worker_and_no_partial_file(tmp_path):
    out = tmp_path / "corpus"
    args = [sys.executable, "-m", "streamasr.cli", "build-corpus", str(out), "--train-utterances", "400",
            "--valid-utterances", "5", "--test-voices-utterances", "5", "--test-text-utterances", "5",
            "--test-synth-utterances", "5", "--workers", "2"]
    parent = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # both workers are up and synthesising (wav files appear)
    wait_until(lambda: len(descendants(parent.pid)) >= 2 and any(out.rglob("*.wav")), 120,
               "two workers writing audio")
    below = descendants(parent.pid)
    os.kill(parent.pid, signal.SIGTERM)
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert wait_gone(below, 10) == []
    assert list(out.rglob("*.tmp")) == [] and list(out.rglob(".*.wav*")) == []
