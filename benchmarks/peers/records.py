"""The lines a peer script prints for run.py: one JSON object per line after a prefix, so
that library logs on the same stream do not interfere. No torch import: run.py uses it too."""

from __future__ import annotations

import json
import time

PREFIX = "PEERS "


def emit(event: str, **fields) -> None:
    """A record for run.py; `time` is the wall clock (time.time()), comparable across processes."""
    print(PREFIX + json.dumps({"event": event, "time": time.time(), **fields}), flush=True)


def parse(stdout: str) -> list[dict]:
    return [json.loads(ln[len(PREFIX) :]) for ln in stdout.splitlines() if ln.startswith(PREFIX)]
