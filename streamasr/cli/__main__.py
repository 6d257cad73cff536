"""``python -m streamasr.cli``: the ``streamasr`` command."""

import sys

from streamasr.cli import run

sys.exit(run())
