"""``streamasr check-streaming``'s report: fails naming the frames for a module that
sees the future (the command itself, passing for the DCT encoder:
tests/e2e/test_check_streaming.py)."""

from __future__ import annotations

import torch

from streamasr.evaluate.dependency import dependency_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class LeakyEncoder(torch.nn.Module):
    """A non-causal convolution with no chunk masking: sees 2 frames ahead."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(3, 3, kernel_size=5, padding=2)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


def test_check_streaming_fails_for_a_leaky_module_naming_the_frames(tmp_path):
    report = dependency_report(LeakyEncoder().eval(), input_dim=3, frames=12, chunk_size=4, plot=tmp_path / "leak.png")
    assert not report.ok
    # the last two outputs of each chunk see the first frames of the next chunk
    assert (3, 4) in report.leaks and (2, 4) in report.leaks and (3, 5) in report.leaks
    assert all(i // 4 > o // 4 for o, i in report.leaks)
    assert "LEAK" in report.describe() and "out 2 <- in 4" in report.describe()
    assert (tmp_path / "leak.png").read_bytes()[:8] == PNG_MAGIC
