"""fastai's four lr suggestions, read off the smoothed loss curve of an LR range test.

Each takes the trimmed curve (`suggestion_window`) and returns an lr; the definitions are
fastai's (fastai/callback/schedule.py: `valley`, `slide`, `minimum`, `steep`, `lr_find`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# fastai's `lr_find` drops the first num_it//10 and the last 5 points before suggesting.
SKIP_END = 5


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The longest valley: the longest strictly decreasing subsequence (by index) of the loss.

    As fastai: with L its length and `end` the first index where it ends, start = end - L and
    the pick is start + int(L/3) + int(L/3/2), a bit past the middle of the valley.
    """
    n = len(losses)
    run = [1] * n  # length of the longest decreasing subsequence that ends at i
    for i in range(n):
        for j in range(i):
            if losses[i] < losses[j]:
                run[i] = max(run[i], run[j] + 1)
    end = int(np.argmax(run))  # the first index reaching the longest, as fastai's strict `<`
    # fastai only moves its (start, end) = (0, 0) when some run is longer than 1.
    start = end - run[end] if run[end] > 1 else 0
    sections = (end - start) / 3
    idx = start + int(sections) + int(sections / 2)
    # start can be -1 (a valley from the first point); fastai would then wrap a 2-point valley
    # round to the last point. Clamp instead.
    return float(lrs[max(idx, 0)])


def slide(
    lrs: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005
) -> float | None:
    """fastai's interval slide rule on the loss gradient (np.gradient over the index).

    A window of `lr_diff` points slides left from the end of the curve while the gradients at its
    two ends differ by more than `thresh`; the suggestion is the left end of the last window that
    still differed (the first window's left end if none did). None: fewer than lr_diff+1 points.
    """
    n = len(losses)
    if n < lr_diff + 1:
        return None
    grad = np.gradient(np.asarray(losses, dtype=float))
    right = n - 1
    left = right - lr_diff
    suggestion = lrs[left]
    while left >= 0 and abs(grad[right] - grad[left]) > thresh:
        suggestion = lrs[left]
        right -= 1
        left -= 1
    return float(suggestion)


def minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """One tenth of the lr at the lowest loss."""
    return float(lrs[int(np.argmin(losses))]) / 10


def steep(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """The lr where the loss falls fastest against log(lr): the left end of the steepest segment."""
    if len(losses) < 2:
        return None
    grads = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(grads))])


SUGGESTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float | None]] = {
    "valley": valley,
    "slide": slide,
    "minimum": minimum,
    "steep": steep,
}


def suggestion_window(
    lrs: Sequence[float], losses: Sequence[float], num_it: int, skip_end: int = SKIP_END
) -> tuple[np.ndarray, np.ndarray]:
    """The part of the curve fastai suggests from: `[num_it//10 : -skip_end]`, cut at the first
    non-finite loss (fastai cuts at the first NaN; an inf is as diverged, so it is cut too)."""
    end = len(lrs) - skip_end if skip_end > 0 else len(lrs)
    lrs_a = np.asarray(lrs, dtype=float)[num_it // 10 : end]
    losses_a = np.asarray(losses, dtype=float)[num_it // 10 : end]
    bad = np.flatnonzero(~np.isfinite(losses_a))
    if len(bad):
        lrs_a, losses_a = lrs_a[: bad[0]], losses_a[: bad[0]]
    return lrs_a, losses_a


def suggest(lrs: Sequence[float], losses: Sequence[float], num_it: int) -> dict[str, float | None]:
    """All four suggestions on the trimmed (smoothed) curve; None where too few points are left."""
    lrs_a, losses_a = suggestion_window(lrs, losses, num_it)
    if len(losses_a) == 0:
        return dict.fromkeys(SUGGESTIONS)
    return {name: fn(lrs_a, losses_a) for name, fn in SUGGESTIONS.items()}
