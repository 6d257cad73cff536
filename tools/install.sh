#!/usr/bin/env bash
# Install everything streamasr needs into one virtual environment.
#
#   STREAMASR_VENV   where the venv lives (default: ~/.cache/streamasr/venv, outside the
#                    checkout so fresh clones and CI reuse the ~7 GB torch install)
#   STREAMASR_PYTHON the interpreter that creates it (default: python3)
#
# The torch stack is pinned (torch 2.9.1, torchaudio 2.9.x, speechbrain 1.1.2): torch is
# installed first, alone, so that torchaudio cannot drag in another torch release.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${STREAMASR_VENV:-$HOME/.cache/streamasr/venv}
python=${STREAMASR_PYTHON:-python3}

# System programs: espeak-ng synthesises the built-in corpus; ffmpeg decodes what
# libsndfile cannot (other formats, URLs) for `streamasr transcribe`. The tests use both.
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[install] missing: ${missing[*]}: installing with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[install] WARNING: ${missing[*]} missing and cannot be installed here (needs root + apt)."
    echo "[install]          Install it yourself (Debian/Ubuntu: sudo apt-get install ${missing[*]};"
    echo "[install]          macOS: brew install ${missing[*]}): the built-in corpus needs espeak-ng,"
    echo "[install]          non-libsndfile formats and URLs need ffmpeg, the tests need both."
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "[install] creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip="$venv/bin/python -m pip"
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.9.1')" 2>/dev/null; then
  $pip install -q --upgrade pip
  $pip install -q torch==2.9.1
fi
if ! "$venv/bin/python" -c "import torchaudio, sys; sys.exit(not torchaudio.__version__.startswith('2.9.'))" 2>/dev/null; then
  $pip install -q torch==2.9.1 'torchaudio==2.9.*'
fi
$pip install -q -e "$here[dev]"
echo "[install] ready: $venv"
