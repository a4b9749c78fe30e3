#!/usr/bin/env bash
# The GPU check: bash benchmarks/gpu/check.sh [--dry-run] [WHEEL_DIR]
# About 8 minutes on one GPU; writes benchmarks/results/gpu.md (docs/scaling.md: "The GPU check").
# A GPU machine may have torch, torchvision and timm but not lrlab's pure-Python dependencies
# and no network: the missing ones are installed from WHEEL_DIR (made where there is network:
#   pip download -d wheels hydra-core omegaconf antlr4-python3-runtime PyYAML scikit-learn ...).
# --dry-run: the same steps on the CPU, tiny, writing under $TMPDIR (what the tests run).
# PYTHON=/path/to/python picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
DRY=""
WHEELS=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=--dry-run ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) WHEELS=$arg ;;
  esac
done

for module in torch torchvision timm; do
  "$PYTHON" -c "import $module" 2>/dev/null || { echo "check.sh: $module is not installed for $PYTHON: install it first (it is not pure Python)"; exit 2; }
done
# import name=distribution name of what lrlab needs beyond torch/torchvision/timm
NEEDED="hydra=hydra-core omegaconf=omegaconf antlr4=antlr4-python3-runtime yaml=PyYAML sklearn=scikit-learn pandas=pandas matplotlib=matplotlib tqdm=tqdm PIL=pillow"
missing=()
for pair in $NEEDED; do
  "$PYTHON" -c "import ${pair%%=*}" 2>/dev/null || missing+=("${pair#*=}")
done
if ((${#missing[@]})); then
  if [[ -z "$WHEELS" ]]; then
    echo "check.sh: missing ${missing[*]}; no wheel folder given: bash benchmarks/gpu/check.sh WHEEL_DIR (pip download -d WHEEL_DIR ${missing[*]} where there is network)"
    exit 2
  fi
  [[ -d "$WHEELS" ]] || { echo "check.sh: WHEEL_DIR=$WHEELS is not a directory"; exit 2; }
  echo "check.sh: installing ${missing[*]} from $WHEELS (no network)"
  "$PYTHON" -m pip install --no-index --find-links "$WHEELS" "${missing[@]}"
fi
# lrlab itself from this checkout, without touching the installed packages
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=benchmarks/results/gpu.md
if [[ -n "$DRY" ]]; then OUT="${TMPDIR:-/tmp}/lrlab-gpu-check-dry-run.md"; fi
exec "$PYTHON" benchmarks/gpu/check.py $DRY --out "${GPU_CHECK_OUT:-$OUT}"
