"""Stop cleanly on SIGTERM / SIGUSR1 / SIGUSR2 (what SLURM, submitit and most schedulers send before
a kill) and
SIGINT (Ctrl-C): the handler only records the signal; the loop finishes the current optimizer
step, the callbacks checkpoint it, and the run ends as `preempted` or `interrupted`."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lrlab.engine.state import Stop

log = logging.getLogger(__name__)

# SIGUSR2: what submitit (SLURM through Hydra's submitit launcher) sends before a time limit or
# preemption; its own handler, which requeues the job, runs after the checkpoint.
STATUS = {
    signal.SIGTERM: "preempted",
    signal.SIGUSR1: "preempted",
    signal.SIGUSR2: "preempted",
    signal.SIGINT: "interrupted",
}


class StopSignals:
    """`with StopSignals() as signals:` ... `signals.attach(state.stop)`. Outside the main thread
    (where Python cannot install handlers) it does nothing.

    Nested (a sweep's around each job's): the inner one starts with a signal the outer one
    already received (it came between two jobs), and hands its own to the outer one when it
    exits. `then` says what happens next, in the warning logged on a signal."""

    def __init__(self, then: str = "finishing the current step, then checkpointing and stopping"):
        self.received: tuple[str, str] | None = None  # (status, why)
        self.signum: int | None = None
        self.then = then
        self._stop: Stop | None = None
        self._previous: dict[int, Any] = {}

    def attach(self, stop: Stop) -> None:
        """Record signals in `stop.signal` from now on (and any received already); the loop
        acts on them at the next step's end (`loop.publish_stop`)."""
        self._stop = stop
        stop.signal = self.received

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            name = signal.Signals(signum).name
            self.received, self.signum = (STATUS[signum], f"stopped by {name}"), signum
            log.warning("%s: %s", name, self.then)
            if self._stop is not None:
                self._stop.signal = self.received
        if signum == signal.SIGINT:  # a second Ctrl-C stops at once
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STATUS}
            outer = getattr(self._previous[signal.SIGTERM], "__self__", None)
            if isinstance(outer, StopSignals) and outer.received is not None:
                self.received, self.signum = outer.received, outer.signum
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        previous = self._previous.get(self.signum) if self.signum is not None else None
        # A handler that was there before ours (e.g. a cluster launcher's requeue) still gets
        # the signal, now that the run is checkpointed.
        if callable(previous) and previous is not signal.default_int_handler:
            previous(self.signum, None)
