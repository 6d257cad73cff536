"""Write LibriSpeech manifests: ``python recipes/LibriSpeech/prepare.py DATA_FOLDER MANIFEST_FOLDER``.

Same as ``streamasr prepare librispeech ...`` (see ``--help`` and this folder's README).
"""

import sys

from streamasr.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "librispeech", *sys.argv[1:]]))
