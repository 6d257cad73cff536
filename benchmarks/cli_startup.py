"""How fast the ``streamasr`` command answers before it does any work: ``--help``, a
subcommand's ``--help``, ``--version`` and a bad option value, each run as a fresh
process (wall time and peak resident memory, median of ``--repeats`` runs), beside the
cost of importing torch in the same run (what every answer paid before the command
line loaded the library only after parsing).

    python benchmarks/cli_startup.py [--repeats 5]

Targets: < 1 s and < 150 MB for each answer on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = [
    ("streamasr --help", ["-m", "streamasr.cli", "--help"], 0),
    ("streamasr transcribe --help", ["-m", "streamasr.cli", "transcribe", "--help"], 0),
    ("streamasr --version", ["-m", "streamasr.cli", "--version"], 0),
    ("streamasr transcribe - --model M --rate 0", ["-m", "streamasr.cli", "transcribe", "-", "--model", "M",
                                                     "--rate", "0"], 2),
    ("python -c 'import torch' (reference)", ["-c", "import torch"], 0),
]


def measure(argv: list[str], expected: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh ``python ARGV`` process."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != expected:
        raise SystemExit(f"{' '.join(argv)} exited {code}, expected {expected}")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeats):  # interleaved, so that a busy moment hits every case alike
        for index, (_, argv, expected) in enumerate(CASES):
            wall, rss = measure(argv, expected)
            if len(rows) <= index:
                rows.append(([], []))
            rows[index][0].append(wall)
            rows[index][1].append(rss)
    print(f"| command | wall (s), median of {args.repeats} | peak RSS (MB) | target |")
    print("|---|---|---|---|")
    for (name, _, _), (walls, rsses) in zip(CASES, rows):
        wall, rss = statistics.median(walls), statistics.median(rsses)
        target = "reference" if "reference" in name else ("met" if wall < 1.0 and rss < 150 else "MISSED")
        print(f"| `{name}` | {wall:.2f} | {rss:.0f} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
