"""Write CommonVoice manifests: ``python recipes/CommonVoice/prepare.py DATA_FOLDER MANIFEST_FOLDER``.

Same as ``streamasr prepare commonvoice ...`` (see ``--help`` and this folder's README).
"""

import sys

from streamasr.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "commonvoice", *sys.argv[1:]]))
