"""Is a difference between two groups resolved? Pairwise confidence intervals of the difference
of means (Welch's t or a bootstrap, both from scipy.stats) over the groups' counted runs.

A pair is *resolved* when its interval excludes 0: with 3 seeds a group, two recipes whose
seeds overlap are typically not. Welch's t does not assume equal variances; the bootstrap
(percentile intervals, a fixed seed for a reproducible report) assumes no distribution but is
coarse with few runs: 3 values a group have only 10 distinct resampled means.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from lrlab.errors import ConfigError

METHODS = ("welch", "bootstrap")
COLUMNS = [
    "group_a", "group_b", "n_a", "n_b", "mean_a", "mean_b",
    "difference", "ci_low", "ci_high", "p_value", "resolved",
]  # fmt: skip


def pairwise_differences(
    values: pd.Series,
    groups: pd.Series,
    confidence: float = 0.95,
    method: str = "welch",
    n_resamples: int = 9999,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per pair of groups (a before b, in `groups`' order; categories kept in their
    order): `difference` = mean_a - mean_b, its `confidence` interval `ci_low`..`ci_high`,
    Welch's two-sided `p_value` (NaN for the bootstrap), and `resolved` (the interval excludes
    0). NaN values are left out; a group with fewer than 2 values gives a NaN interval and is
    not resolved."""
    if method not in METHODS:
        raise ConfigError(f"pairwise method {method!r} is not one of {list(METHODS)}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    order = list(groups.cat.categories) if hasattr(groups, "cat") else list(dict.fromkeys(groups))
    samples = {g: values[(groups == g).to_numpy()].dropna().to_numpy(float) for g in order}
    rows = []
    for a, b in itertools.combinations(order, 2):
        xa, xb = samples[a], samples[b]
        low, high, p = _interval(xa, xb, confidence, method, n_resamples, seed)
        rows.append([a, b, xa.size, xb.size, _mean(xa), _mean(xb), _mean(xa) - _mean(xb),
                     low, high, p, bool(low > 0 or high < 0)])  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _interval(
    xa: np.ndarray, xb: np.ndarray, confidence: float, method: str, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """(low, high, p) of mean(xa) - mean(xb); NaNs where it is not defined."""
    from scipy import stats  # lazy: scipy costs a second at import

    if xa.size < 2 or xb.size < 2:
        return math.nan, math.nan, math.nan
    if np.ptp(xa) == 0 and np.ptp(xb) == 0:
        # no spread at all: Welch's standard error is 0; the difference is exact
        d = float(xa.mean() - xb.mean())
        return d, d, 0.0 if d else 1.0
    if method == "welch":
        result = stats.ttest_ind(xa, xb, equal_var=False)
        ci = result.confidence_interval(confidence_level=confidence)
        return float(ci.low), float(ci.high), float(result.pvalue)
    result = stats.bootstrap(
        (xa, xb),
        lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        vectorized=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high), math.nan


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else math.nan
