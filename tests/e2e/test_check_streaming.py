"""``streamasr check-streaming`` run as a process: passes for the DCT encoder of the
small YAML and plots its dependency matrix."""

from __future__ import annotations

import subprocess
import sys

from helpers.common import REPO, SMALL_YAML

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_check_streaming_passes_for_the_dct_encoder(tmp_path):
    plot = tmp_path / "deps.png"
    result = subprocess.run(
        [sys.executable, "-m", "streamasr.cli", "check-streaming", str(SMALL_YAML), "--chunk-frames", "4",
         "--left-chunks", "1", "--plot", str(plot)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK: no output frame depends on a later chunk" in result.stdout
    assert plot.read_bytes()[:8] == PNG_MAGIC
