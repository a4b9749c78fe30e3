"""One line and exit status 2 for bad input, Hydra's own composition errors included.

Hydra prints its errors over several lines and exits 1; `main` lets them reach it (by setting
HYDRA_FULL_ERROR unless you set it yourself) and prints one line naming the problem instead.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import fields, is_dataclass

from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from lrlab.cli.distributed import share_run_stamp
from lrlab.cli.sweeps import SweepReport, SweepStopped
from lrlab.errors import UNWRITABLE


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
    except KeyboardInterrupt:  # a second Ctrl-C: the run is recorded as interrupted already
        print(
            "interrupted (a second Ctrl-C: stopped at once, mid-step); a checkpoint written "
            "before is kept: re-run the same command with trainer.resume=auto to continue",
            file=sys.stderr,
        )
        raise SystemExit(128 + signal.SIGINT) from None
    except (HydraException, OmegaConfBaseException) as e:
        if full_error:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as e:  # Hydra creating a run dir on a full or read-only disk
        if full_error or e.errno not in UNWRITABLE:
            raise
        print(f"error: cannot write {e.filename}: {e.strerror}", file=sys.stderr)
        raise SystemExit(2 if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else 1) from None


def keyed_cause(error: BaseException) -> BaseException:
    """The OmegaConf error naming the key behind Hydra's: its cause, or the error it was
    raised while handling (a key in a config file)."""
    seen: BaseException | None = error
    while seen is not None:
        if getattr(seen, "full_key", None):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error.__cause__ or error


def one_line(error: BaseException) -> str:
    """Hydra's or OmegaConf's message on one line; an unknown key gets a did-you-mean."""
    cause = keyed_cause(error)
    key = getattr(cause, "full_key", None)
    schema = getattr(cause, "object_type", None)
    first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    where = re.match(r"In '([^']+)'", str(error))  # the config file it came from
    where_text = f" (in {where[1]}.yaml)" if where else ""
    if key and isinstance(cause, ConfigAttributeError | ConfigKeyError) and "not in" in first:
        path, _, name = key.rpartition(".")
        parent = getattr(cause, "parent_node", None)
        if is_dataclass(schema):
            allowed = [f.name for f in fields(schema)]
        else:  # a node without a schema (an optimizer): its own keys
            allowed = [str(k) for k in parent] if hasattr(parent, "keys") else []
        close = difflib.get_close_matches(name, [a for a in allowed if not a.startswith("_")], 1)
        hint = f"; did you mean {path + '.' if path else ''}{close[0]}?" if close else ""
        return (
            f"{key} is not a key of {path or 'the config'}{hint}{where_text} "
            "(`--cfg job` shows them all)"
        )
    if key and isinstance(cause, ValidationError):  # a value of the wrong type
        return f"{key}: {first}{where_text}"
    text = str(error).split("Config search path:")[0]  # Hydra appends its search path
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("full_key:", "object_type="))]
    lines = [line for line in lines if not line.startswith("reference_type=")]
    out, listing = "", False
    for line in lines:  # "Available options in 'optimizer':" is followed by one per line
        if listing:
            out += ("" if out.endswith(": ") else ", ") + line
        else:
            out += ("; " if out else "") + line + (" " if line.endswith(":") else "")
            listing = line.endswith(":")
    if key and key not in out:
        out += f" ({key})"
    return out.strip()
