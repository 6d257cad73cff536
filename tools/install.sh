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

# System packages (Debian/Ubuntu): the built-in corpus is spoken by espeak-ng, flite and
# festival (+ its English voices kal, ked, slt) and its text comes from fortunes,
# wordnet-base and dict-devil; alsa-utils ships 8 recordings of a person (the channel
# names of speaker-test); ffmpeg decodes what libsndfile cannot (other formats,
# URLs) for `streamasr transcribe`; chromium and chromium-driver run the browser test of
# `streamasr serve`'s page (headless, selenium). asterisk-core-sounds-en (+ -g722) and
# pocketsphinx-testdata hold recordings of people with transcripts: the corpus's
# test_human / test_human_unseen sets (streamasr/data/human.py). The tests use all of them.
system_packages=(espeak-ng ffmpeg flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
                 fortunes wordnet-base dict-devil alsa-utils chromium chromium-driver
                 asterisk-core-sounds-en asterisk-core-sounds-en-g722 pocketsphinx-testdata)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for package in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
else
  for program in espeak-ng ffmpeg flite text2wave; do
    command -v "$program" >/dev/null 2>&1 || missing+=("$program")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[install] missing: ${missing[*]}: installing with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[install] WARNING: ${missing[*]} missing and cannot be installed here (needs root + apt)."
    echo "[install]          Install them yourself (Debian/Ubuntu: sudo apt-get install ${missing[*]}):"
    echo "[install]          the built-in corpus needs the synthesisers and text packages, non-libsndfile"
    echo "[install]          formats and URLs need ffmpeg, the tests need all of them."
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
