#!/usr/bin/env bash
# Start-up of two checkouts of lrlab, interleaved: a flowers run of one train and one
# validation batch (command to exit, about start-up + 0.3 s), each checkout with its own warm
# stats/split caches, the same OpenMP and malloc settings for both (so only the code differs).
#   benchmarks/peers/startup_ab.sh BEFORE_CHECKOUT AFTER_CHECKOUT FLOWERS_DIR [REPEATS]
#   e.g. benchmarks/peers/startup_ab.sh ../main . ../shared/data/flowers 5
set -euo pipefail
before=$(realpath "$1") after=$(realpath "$2") flowers=$(realpath "$3") repeats=${4:-5}
python=${PYTHON:-$after/.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(data=flowers "data.root=$flowers" trainer.epochs=1 trainer.limit_train_batches=1
      trainer.limit_val_batches=1 trainer.checkpoint=false)
export OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824
run() {  # checkout, run name
  PYTHONPATH="$1/src" "$python" "$1/train.py" "${args[@]}" "hydra.run.dir=$tmp/$2" \
    "paths.data_dir=$tmp/data-$(basename "$1")" > /dev/null 2>&1
}
run "$before" warm-before && run "$after" warm-after  # fill each checkout's caches
for i in $(seq "$repeats"); do
  for tree in "$before" "$after"; do
    start=$(date +%s.%N); run "$tree" "r$i"; end=$(date +%s.%N)
    echo "$tree $(echo "$end - $start" | bc) s, load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
