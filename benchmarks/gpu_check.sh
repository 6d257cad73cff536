#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py), prepared for the GPU machine that is lent to
# some tasks: an H100 or H200 with its own Python and torch but no SpeechBrain,
# hyperpyyaml or soundfile, and no network. Carry the wheels that `make gpu-wheels`
# downloads (benchmarks/gpu_wheels, ~40 MB) with the working tree, then:
#
#   bash benchmarks/gpu_check.sh            # ~5 minutes on an H100; prints the tables
#   bash benchmarks/gpu_check.sh --skip losses --updates 20
#
# Wheels whose module is missing are installed into a temporary folder (never into the
# machine's Python); streamasr runs from the checkout. Without a CUDA device it says so
# and exits 0. PYTHON picks the interpreter (default python3), PIP the installer
# (default: \$PYTHON -m pip).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
pip=${PIP:-"$python -m pip"}

# `--device cpu` (with --tiny) runs the same steps on a CPU: a dry run of this script.
if [[ " $* " != *" --device cpu "* ]] && ! "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  echo "gpu_check: no CUDA device (or no torch) for $python here: nothing to check."
  exit 0
fi

target=$(mktemp -d /tmp/gpu_check_wheels.XXXXXX)
trap 'rm -rf "$target"' EXIT
wanted=()
for wheel in benchmarks/gpu_wheels/*.whl; do
  [ -e "$wheel" ] || break
  # distribution name -> import name (ruamel_yaml -> ruamel.yaml, pyyaml -> yaml)
  dist=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z' 'a-z')
  case "$dist" in
    ruamel_yaml) module=ruamel.yaml ;;
    pyyaml) module=yaml ;;
    *) module=$dist ;;
  esac
  "$python" -c "import $module" 2>/dev/null || wanted+=("$wheel")
done
if ! "$python" -c "import speechbrain, hyperpyyaml" 2>/dev/null && [ ${#wanted[@]} -eq 0 ]; then
  echo "gpu_check: SpeechBrain is not installed and benchmarks/gpu_wheels has no wheels:" >&2
  echo "           run 'make gpu-wheels' where there is network, and carry benchmarks/gpu_wheels." >&2
  exit 2
fi
if [ ${#wanted[@]} -gt 0 ]; then
  echo "gpu_check: installing into $target: ${wanted[*]##*/}"
  $pip install -q --no-index --no-deps --target "$target" "${wanted[@]}"
fi
export PYTHONPATH="$PWD:$target${PYTHONPATH:+:$PYTHONPATH}"
timeout 540 "$python" benchmarks/gpu_check.py "$@"
