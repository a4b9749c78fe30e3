"""Every option of every group, experiment, recipe, debug and search preset composes to the same
config in two checkouts (e.g. before and after moving the values from the schemas into the
YAML files). Prints the differing options and exits 1, or says they are equal.

    git archive <commit> | tar -x -C /tmp/before
    .venv/bin/python benchmarks/same_configs.py /tmp/before .
"""

from __future__ import annotations

import json
import subprocess
import sys

DUMP = """
import json, sys
from pathlib import Path
root = Path(sys.argv[1]).resolve()
sys.path[:0] = [str(root / "src"), str(root)]
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from lrlab.tasks.config import register_configs
register_configs()
conf = root / "conf"
options = [[]]
for group in sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name != "hydra"):
    for path in sorted((conf / group).glob("*.yaml")):
        options.append([("+" if group == "recipe" else "") + f"{group}={path.stem}"])
out = {}
for overrides in options:
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        try:
            cfg = compose("train", overrides=overrides)
        except Exception as e:  # an option only one checkout has
            out[" ".join(overrides)] = f"does not compose: {type(e).__name__}"
            continue
    out[" ".join(overrides)] = OmegaConf.to_container(cfg, resolve=False)
print(json.dumps(out, default=str))
"""


def composed(root: str) -> dict:
    # One process per checkout: each imports its own lrlab.
    result = subprocess.run(
        [sys.executable, "-c", DUMP, root], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def main() -> int:
    before, after = composed(sys.argv[1]), composed(sys.argv[2])
    common = sorted(set(before) & set(after))
    differ = [o for o in common if before[o] != after[o]]
    only = sorted(set(before) ^ set(after))
    for option in differ:
        print(f"differs: {option or '(defaults)'}")
    print(f"{len(common) - len(differ)} of {len(common)} options compose to the same config; "
          f"in one checkout only: {', '.join(only) or 'none'}")  # fmt: skip
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
