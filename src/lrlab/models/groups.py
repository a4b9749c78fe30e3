"""Layer groups: a model's parameters split the way timm splits them (stem, stages, head).

A model's layer groups come from its timm-style `group_matcher(coarse=True)` through
`timm.models.group_parameters`: stem, one group per stage (block), and the unmatched rest, which
is the head. Optimizer param groups (`lrlab.optim`) and freezing (`lrlab.models.freezing`) both
use these groups.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

from torch import nn


def layer_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names per layer group, stem first and head last.

    A model without `group_matcher()` is one group (no freezing, no differential lrs).
    """
    names = [n for n, _ in model.named_parameters()]
    if not hasattr(model, "group_matcher"):
        return [names]
    matcher = model.group_matcher(coarse=True)
    if "timm" in sys.modules or not isinstance(matcher, dict):
        from timm.models import group_parameters

        grouped = group_parameters(model, matcher)
        groups = [grouped[k] for k in sorted(grouped)]
    else:
        groups = group_names(names, matcher)
    if len(groups) > 1 and hasattr(model, "get_classifier"):
        # The head is timm's catch-all last group; check it really holds the classifier, or
        # `all_but_head` would freeze the classifier too.
        param_names = {id(p): n for n, p in model.named_parameters()}
        head = {param_names[id(p)] for p in model.get_classifier().parameters()}
        if not head <= set(groups[-1]):
            raise RuntimeError(
                f"{type(model).__name__}: the last layer group of group_matcher() does not hold "
                f"the classifier ({sorted(head - set(groups[-1]))[:3]}...)"
            )
    return groups


_MATCH_PREV_GROUP = 99999.0  # timm's MATCH_PREV_GROUP: merge into the previous group


def group_names(names: list[str], matcher: dict[str, Any]) -> list[list[str]]:
    """timm's `group_with_matcher` for a dict matcher (same groups; tests compare the two).

    Only for models outside timm: importing timm costs seconds, which the simple CNN's quick
    runs should not pay. `layer_groups` uses timm's own function once timm is imported.
    """
    compiled = []
    for ordinal, spec in enumerate(matcher.values()):
        if spec is None:
            continue
        for pattern, suffix in spec if isinstance(spec, (list, tuple)) else [(spec, None)]:
            compiled.append((re.compile(pattern), float(ordinal), suffix))

    def key(name: str) -> tuple[float, ...]:
        for regex, ordinal, suffix in compiled:
            if match := regex.match(name):
                return (ordinal, *map(float, match.groups()), *map(float, suffix or ()))
        return (math.inf,)  # unmatched (the head): last

    grouping: dict[tuple[float, ...], list[str]] = {}
    for name in names:
        grouping.setdefault(key(name), []).append(name)
    groups: list[list[str]] = []
    for k in sorted(grouping):
        if groups and k[-1] == _MATCH_PREV_GROUP:
            groups[-1].extend(grouping[k])
        else:
            groups.append(list(grouping[k]))
    return groups


def group_label(index: int, n_groups: int) -> str:
    """A readable name for layer group `index`: stem, stage<i>, head (or `all` for one group)."""
    if n_groups == 1:
        return "all"
    if index == n_groups - 1:
        return "head"
    return "stem" if index == 0 else f"stage{index}"
