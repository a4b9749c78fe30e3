"""fastai's annealing formulas (SchedLin/SchedCos/SchedExp/SchedPoly): start -> end as pct 0 -> 1."""

from __future__ import annotations

import math
from collections.abc import Callable


def anneal_linear(start: float, end: float, pct: float) -> float:
    return start + (end - start) * pct


def anneal_cos(start: float, end: float, pct: float) -> float:
    return start + (1 + math.cos(math.pi * (1 - pct))) * (end - start) / 2


def anneal_exp(start: float, end: float, pct: float) -> float:
    return start * (end / start) ** pct


def anneal_poly(start: float, end: float, pct: float, power: float = 2.0) -> float:
    return start + (end - start) * pct**power


ANNEALERS: dict[str, Callable[[float, float, float], float]] = {
    "cos": anneal_cos,
    "linear": anneal_linear,
    "exp": anneal_exp,
}
