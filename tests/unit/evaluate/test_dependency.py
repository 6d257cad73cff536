"""``streamasr check-streaming``: passes for the DCT encoder, fails naming the frames
for a module that sees the future."""

from __future__ import annotations

import subprocess
import sys

import torch

from helpers.common import REPO, SMALL_YAML
from streamasr.evaluate.dependency import dependency_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class LeakyEncoder(torch.nn.Module):
    """A non-causal convolution with no chunk masking: sees 2 frames ahead."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(3, 3, kernel_size=5, padding=2)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


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


def test_check_streaming_fails_for_a_leaky_module_naming_the_frames(tmp_path):
    report = dependency_report(LeakyEncoder().eval(), input_dim=3, frames=12, chunk_size=4, plot=tmp_path / "leak.png")
    assert not report.ok
    # the last two outputs of each chunk see the first frames of the next chunk
    assert (3, 4) in report.leaks and (2, 4) in report.leaks and (3, 5) in report.leaks
    assert all(i // 4 > o // 4 for o, i in report.leaks)
    assert "LEAK" in report.describe() and "out 2 <- in 4" in report.describe()
    assert (tmp_path / "leak.png").read_bytes()[:8] == PNG_MAGIC
