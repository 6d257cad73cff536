"""Write VoxPopuli manifests: ``python recipes/VoxPopuli/prepare.py DATA_FOLDER MANIFEST_FOLDER``.

Same as ``streamasr prepare voxpopuli ...`` (see ``--help`` and this folder's README).
"""

import sys

from streamasr.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "voxpopuli", *sys.argv[1:]]))
