"""``streamasr build-corpus`` stopped half way (SIGTERM: 143, Ctrl-C: 130) leaves no
process behind (its synthesis workers and their synthesisers end with it; they were
once orphaned for good), no temporary file and no manifest. The real command runs, in
a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from helpers.common import REPO
from helpers.processes import command_line, descendants, survivors, wait_gone, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

COMMAND = ["-m", "streamasr.cli", "build-corpus", "--train-utterances", "400", "--valid-utterances", "5",
           "--test-voices-utterances", "5", "--test-text-utterances", "5", "--test-synth-utterances", "5",
           "--workers", "2"]


@pytest.mark.parametrize(("signum", "returncode"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_build_corpus_stopped_half_way_leaves_no_worker_and_no_partial_file(tmp_path, signum, returncode):
    out = tmp_path / "corpus"
    stderr_path = tmp_path / "stderr.txt"  # a file: orphans would hold a pipe open
    with open(stderr_path, "w") as stderr:
        build = subprocess.Popen([sys.executable, *COMMAND[:3], str(out), *COMMAND[3:]], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    seen: dict[int, str] = {}

    def synthesising() -> bool:
        if build.poll() is not None:
            return True
        below = descendants(build.pid)
        seen.update(below)
        workers = [pid for pid in below if "streamasr.cli build-corpus" in command_line(pid)]
        return len(workers) == 2 and any(out.rglob("*.wav"))

    try:
        wait_until(synthesising, 60, "2 synthesis workers and a first wav")
        assert build.poll() is None, stderr_path.read_text()[-2000:]
        seen.update(descendants(build.pid))  # synthesisers started since
        # SIGTERM to the command alone (`kill PID`); SIGINT to its whole process group,
        # as Ctrl-C in a terminal sends it
        (os.kill if signum == signal.SIGTERM else os.killpg)(build.pid, signum)
        build.wait(timeout=20)
        report = stderr_path.read_text()
        assert build.returncode == returncode, report[-2000:]
        assert "Traceback" not in report, report[-2000:]
        if signum == signal.SIGINT:
            assert report.count("interrupted") == 1, report[-2000:]  # the workers ignore Ctrl-C
        assert not wait_gone(seen, 5)
        assert not list(out.rglob("*.tmp"))
        assert not (out / "train.csv").exists()
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        for line in survivors(seen):  # a regression's orphans, by pid
            os.kill(int(line.split()[0]), signal.SIGKILL)
