"""Process-wide settings that must be made before torch loads: call `configure_process()`
first thing in an entry point (train.py, find_lr.py), before anything imports torch.

- OpenMP waits passively (`OMP_WAIT_POLICY=PASSIVE`). torch's bundled OpenMP runtime otherwise
  spins its idle threads, so when another process takes a core, every parallel region waits
  for a descheduled thread: a flowers step took 540 ms instead of 80 ms with one competing
  process (benchmarks/peers/README.md). libgomp reads the variable once, when torch's
  libraries load, hence "before torch".
- glibc's malloc keeps freed memory instead of returning it to the OS after every step
  (`mallopt` M_MMAP_THRESHOLD / M_TRIM_THRESHOLD). By default the per-step activations are
  given back and faulted in again each step, which shows up as system time.
- The interpreter's exit skips its last garbage collections over every object torch and
  torch._dynamo made (`gc.freeze()` as the last exit handler, after W&B's, logging's and
  multiprocessing's): about 1 s of `python train.py` on a loaded 2-core machine. Objects are
  still freed by reference counting; only objects kept alive by reference cycles are left
  to the OS, as they would be at `os._exit`, and lrlab closes its records explicitly.

Each setting steps aside where the user chose otherwise (the variable already set, another
allocator preloaded), where it does not apply (not glibc; torch already imported), or with
`LRLAB_CONFIGURE_PROCESS=0` (the A/B switch the benchmarks use).
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import os
import sys
import time

DISABLE_ENV = "LRLAB_CONFIGURE_PROCESS"  # "0": change nothing
FIRST_STEP_ENV = "LRLAB_FIRST_STEP_FILE"  # benchmarks: when the first optimizer step ended

# glibc mallopt parameters (malloc.h) and lrlab's values. 32 MiB is the largest mmap
# threshold glibc accepts on 64-bit (half its 64 MiB heap size); requests below it come from
# the heap. Freed heap memory is returned to the OS only beyond 1 GiB at the heap's top.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def configure_process(environ: os._Environ | dict[str, str] | None = None) -> dict[str, str]:
    """Apply lrlab's process defaults; returns {setting: what happened} (for logs and tests).

    Idempotent: a second call changes nothing and returns the same."""
    env = os.environ if environ is None else environ
    if env.get(DISABLE_ENV) == "0":
        return {"process": f"unchanged ({DISABLE_ENV}=0)"}
    return {"openmp": passive_openmp(env), "malloc": keep_freed_memory(env), "exit": quick_exit()}


def passive_openmp(env: os._Environ | dict[str, str]) -> str:
    if "OMP_WAIT_POLICY" in env:  # the user's choice, or an earlier call's
        return f"OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}"
    if "GOMP_SPINCOUNT" in env:  # the user's spin-then-sleep choice (benchmarks/peers/README.md)
        return f"unchanged (GOMP_SPINCOUNT={env['GOMP_SPINCOUNT']})"
    if torch_loaded():  # the OpenMP runtime has read its settings already
        return "unchanged (torch was imported first)"
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return "OMP_WAIT_POLICY=PASSIVE"


def keep_freed_memory(env: os._Environ | dict[str, str]) -> str:
    if not glibc():
        return "unchanged (not glibc)"
    preload = env.get("LD_PRELOAD", "")
    if any(name in preload for name in OTHER_ALLOCATORS):
        return f"unchanged (LD_PRELOAD={preload})"
    if any(name in env for name in MALLOC_ENV):
        return "unchanged (malloc settings in the environment)"
    libc = ctypes.CDLL("libc.so.6")  # glibc's soname on every Linux architecture
    # mmap first: setting either value turns off glibc's dynamic thresholds, and a fixed
    # 128 KiB mmap threshold (the default) would map and fault every tensor afresh.
    if not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return "unchanged (mallopt refused M_MMAP_THRESHOLD)"
    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return f"mallopt mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"


_EXIT_HANDLER: list[bool] = []  # registered once per process


def quick_exit() -> str:
    if not _EXIT_HANDLER:
        atexit.register(gc.freeze)  # the first registered handler runs last
        _EXIT_HANDLER.append(True)
    return "gc.freeze() at exit"


def torch_loaded() -> bool:
    return "torch" in sys.modules


def glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or not glibc
        return False


def report_first_step() -> None:
    """Benchmark hook: with LRLAB_FIRST_STEP_FILE set, write the wall-clock time (time.time())
    at the end of the process's first optimizer step into that file. Imports torch."""
    path = os.environ.get(FIRST_STEP_ENV)
    if not path:
        return
    from pathlib import Path

    from torch.optim.optimizer import register_optimizer_step_post_hook

    def on_step(*_) -> None:
        handle.remove()
        Path(path).write_text(f"{time.time()}\n")

    handle = register_optimizer_step_post_hook(on_step)
