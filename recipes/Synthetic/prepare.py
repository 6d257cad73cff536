"""Build the built-in espeak-ng corpus: ``python recipes/Synthetic/prepare.py data/synthetic``.

Same options as ``streamasr build-corpus`` (see ``--help``).
"""

import sys

from streamasr.cli import main

if __name__ == "__main__":
    sys.exit(main(["build-corpus", *sys.argv[1:]]))
