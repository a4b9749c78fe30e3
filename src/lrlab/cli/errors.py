"""One line and exit status 2 for bad input, Hydra's own composition errors included.

Hydra prints its errors over several lines and exits 1; `main` lets them reach it (by setting
HYDRA_FULL_ERROR unless you set it yourself) and prints one line naming the problem instead.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from dataclasses import fields, is_dataclass

from lrlab.cli.distributed import share_run_stamp
from lrlab.cli.jobs import SweepReport, SweepStopped


def main(hydra_main: Callable[[], object], report: type[SweepReport] = SweepReport) -> None:
    """Run a `@hydra.main` function as a command-line program."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    share_run_stamp()  # torchrun: every process picks the same run dir
    full_error = "HYDRA_FULL_ERROR" in os.environ  # the user asked for Hydra's tracebacks
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        hydra_main()
    except SweepStopped as stop:
        report().report(stop.sweep_dir)
        raise SystemExit(stop.exit_code) from None
    except (HydraException, OmegaConfBaseException) as e:
        if full_error:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None


def one_line(error: BaseException) -> str:
    """Hydra's or OmegaConf's message on one line; an unknown key gets a did-you-mean."""
    cause = error.__cause__ or error
    key = getattr(cause, "full_key", None)
    schema = getattr(cause, "object_type", None)
    text = str(cause)
    if key and ("not in struct" in text or "not found" in text.lower()):
        path, _, name = key.rpartition(".")
        allowed = [f.name for f in fields(schema)] if is_dataclass(schema) else []
        close = difflib.get_close_matches(name, [a for a in allowed if not a.startswith("_")], 1)
        hint = f"; did you mean {path + '.' if path else ''}{close[0]}?" if close else ""
        return f"{key} is not a key of {path or 'the config'}{hint} (`--cfg job` shows them all)"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("full_key:", "object_type="))]
    text, listing = "", False
    for line in lines:  # "Available options in 'optimizer':" is followed by one per line
        if listing:
            text += ("" if text.endswith(": ") else ", ") + line
        else:
            text += ("; " if text else "") + line + (" " if line.endswith(":") else "")
            listing = line.endswith(":")
    if key and key not in text:
        text += f" ({key})"
    return text.strip()
