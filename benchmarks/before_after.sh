#!/usr/bin/env bash
# Interleaved before/after epoch times of two checkouts of lrlab (e.g. before and after a
# refactor): digits 5 epochs and flowers 2 epochs, one thread, rounds A B A B ...
#   git worktree add ../lrlab-before <commit>
#   bash benchmarks/before_after.sh ../lrlab-before . ../shared/data/flowers 3
# Writes <out>/<data>_<before|after>_<round>/ run dirs; prints the median epoch time per variant.
set -euo pipefail
before=$(realpath "$1"); after=$(realpath "$2"); flowers=$(realpath "$3"); rounds=${4:-3}
out=$(realpath -m "${OUT:-outputs/before_after}"); mkdir -p "$out"
py=$(realpath "${PYTHON:-.venv/bin/python}")
for round in $(seq "$rounds"); do
  for variant in before after; do
    repo=$before; [ "$variant" = after ] && repo=$after
    common=(trainer.num_threads=1 trainer.progress_bar=false trainer.checkpoint=false)
    (cd "$repo" && PYTHONPATH="$repo/src" "$py" train.py "${common[@]}" \
      hydra.run.dir="$out/digits_${variant}_$round" > /dev/null 2>&1)
    (cd "$repo" && PYTHONPATH="$repo/src" "$py" train.py "${common[@]}" data=flowers \
      data.root="$flowers" trainer.epochs=2 hydra.run.dir="$out/flowers_${variant}_$round" \
      > /dev/null 2>&1)
    echo "round $round $variant done; load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
"$py" - "$out" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
for data in ("digits", "flowers"):
    med = {}
    for variant in ("before", "after"):
        times = [r["epoch_time_s"] for f in out.glob(f"{data}_{variant}_*/metrics.jsonl")
                 for r in map(json.loads, f.open()) if r.get("type") == "epoch"]
        med[variant] = statistics.median(times)
    print(f"{data}: epoch median before {med['before']:.2f} s, after {med['after']:.2f} s, "
          f"after/before {med['after'] / med['before']:.2f}")
PY
