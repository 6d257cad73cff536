"""Flush-to-zero for denormals must reach torch's worker threads (streamasr/cpu.py)."""

import subprocess
import sys

import pytest
import torch

PROBE = """
import sys, torch
torch.set_num_threads(2)
if sys.argv[1] == "late":
    torch.ones(512, 512) @ torch.ones(512, 512)  # the worker threads exist from here on
{setup}
a = torch.full((512, 512), 1e-21)
print(int(((a @ a) != 0).sum()))  # products 1e-42 and sums 5e-40: denormals; blocks on both threads
"""


def run_probe(mode: str, setup: str) -> int:
    result = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup), mode],
                            capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def test_flush_denormals_first_thing_covers_every_thread():
    # what train.py and the streamasr command do: the call comes before any parallel op
    setup = "from streamasr.cpu import flush_denormals\nassert flush_denormals()"
    assert run_probe("early", setup) == 0


def test_flush_after_the_pool_exists_misses_the_workers():
    """Why the call has to come first (and why torch.set_flush_denormal was not enough
    where the losses called it): the worker threads keep computing on denormals."""
    if torch.get_num_threads() < 2:
        pytest.skip("needs 2 threads")
    setup = "from streamasr.cpu import flush_denormals\nflush_denormals()"
    assert 0 < run_probe("late", setup) < 512 * 512


def test_train_py_and_the_cli_flush_first_when_run_as_programs():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    train = (root / "train.py").read_text()
    entry = train[train.index('if __name__ == "__main__":'):]
    assert entry.index("flush_denormals()") < entry.index("main(sys.argv[1:])")
    cli = (root / "streamasr/cli.py").read_text()
    entry = cli[cli.index("def run("):]
    assert re.search(r"flush_denormals\(\)\s+return main\(\)", entry)
    assert "streamasr = streamasr.cli:run" in (root / "setup.cfg").read_text()
