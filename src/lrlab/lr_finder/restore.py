"""Put a model, optimizer, RNGs and loader shuffling back exactly as they were."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from lrlab.utils import rng_state, set_rng_state


def _loader_generators(loaders: Iterable[Any]) -> list[torch.Generator]:
    """The torch.Generators a DataLoader's shuffling draws from (its own, its samplers')."""
    found: dict[int, torch.Generator] = {}
    for loader in loaders:
        candidates = [
            getattr(loader, "generator", None),
            getattr(getattr(loader, "sampler", None), "generator", None),
            getattr(
                getattr(getattr(loader, "batch_sampler", None), "sampler", None), "generator", None
            ),
        ]
        for gen in candidates:
            if isinstance(gen, torch.Generator):
                found[id(gen)] = gen
    return list(found.values())


@contextmanager
def preserved_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loaders: Iterable[Any] = (),
    extra: Iterable[Any] = (),
) -> Iterator[None]:
    """Put model (parameters, buffers, grads, train/eval modes), optimizer (state and param groups),
    global RNGs, the loaders' shuffling generators and any `extra` objects with
    state_dict/load_state_dict (e.g. a GradScaler) back exactly as they were on exit."""
    # Model tensors go to the CPU so a GPU run does not hold two copies; load_state_dict copies
    # them back in place, bit for bit, so the optimizer keeps pointing at the same parameters.
    model_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    optim_state = copy.deepcopy(optimizer.state_dict())
    rng = rng_state()
    generators = _loader_generators(loaders)
    generator_states = [g.get_state() for g in generators]
    extras = [(obj, copy.deepcopy(obj.state_dict())) for obj in extra]
    try:
        yield
    finally:
        model.load_state_dict(model_state)
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g
        for m, training in zip(model.modules(), modes, strict=True):
            m.training = training
        optimizer.load_state_dict(optim_state)
        set_rng_state(rng)
        for g, s in zip(generators, generator_states, strict=True):
            g.set_state(s)
        for obj, s in extras:
            obj.load_state_dict(s)
