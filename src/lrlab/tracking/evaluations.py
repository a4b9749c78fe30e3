"""`eval.json` in a run dir: the evaluations `eval.py` made of the run's checkpoints, keyed
`<split>_<checkpoint>[_ema][_tta]` (e.g. `test_best`), each with its accuracy, loss, ..."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lrlab.errors import ConfigError
from lrlab.tracking.records import write_json_atomic
from lrlab.utils import json_safe

EVAL_FILE = "eval.json"


def read_evaluations(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e}); move it away") from None


def add_evaluation(run_dir: Path, key: str, result: dict[str, Any]) -> Path:
    entries = read_evaluations(run_dir)
    entries[key] = result
    path = Path(run_dir) / EVAL_FILE
    write_json_atomic(path, json_safe(entries))
    return path
