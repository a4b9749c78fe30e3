"""Checkpoints: everything a run needs to continue exactly, mid-epoch included.

A checkpoint holds the model, optimizer, schedule and grad-scaler states, every RNG, the data
order of the current epoch (the loader generator's state at the epoch's start and how many
optimizer steps of it were taken), the epoch's running sums, each stateful callback's state and
the run's composed config (a resume compares it with its own), and a checksum of all of it
(`CHECKSUM`), verified on load: flipped bytes in a tensor are refused, not trained on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lrlab.engine.callbacks import Callback, callback_states, load_callback_states, state_key
from lrlab.engine.state import EpochSums, TrainState
from lrlab.errors import ConfigError, unwritable
from lrlab.parallel import is_main_process
from lrlab.utils import rng_state

FORMAT = 2  # format 1 (before the run's config and mid-epoch positions were stored): refused
CHECKSUM = "checksum"  # "sha256:<hex>" of every other entry; absent in older lrlab's
# What a file that is not a checkpoint starts with, to say what it is instead.
MAGIC = {
    b"PK\x03\x04": "a ZIP archive that is not a torch checkpoint",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip file",
    b"\x89HDF": "an HDF5 file (Keras?)",
}


class Checkpointer:
    """Saves a `TrainState` with the run's config, schedule plan and callbacks."""

    def __init__(
        self, config: dict[str, Any], plan: dict[str, int], callbacks: Sequence[Callback] = ()
    ) -> None:
        self.config, self.plan, self.callbacks = config, plan, list(callbacks)

    def payload(self, state: TrainState) -> dict[str, Any]:
        mid_epoch = state.step_in_epoch > 0
        gen = state.loader_generator
        loader_rng = state.epoch_start_generator_state if mid_epoch else gen and gen.get_state()
        return {
            "format": FORMAT,
            "config": self.config,
            **self.plan,  # planned_epochs, steps_per_epoch
            "epoch": state.epoch,
            "step": state.step,
            "step_in_epoch": state.step_in_epoch,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "scaler": state.step_fn.scaler.state_dict(),
            "rng": rng_state(),
            "loader_rng": loader_rng,
            "epoch_sums": {
                "loss_sum": state.sums.loss_sum.cpu(),
                "correct": state.sums.correct.cpu(),
                "seen": state.sums.seen,
            },
            "callbacks": callback_states(self.callbacks),
        }

    def save(self, path: Path, state: TrainState) -> None:
        if not is_main_process():  # data parallel: the replicas are identical; rank 0 saves
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        payload = self.payload(state)
        payload[CHECKSUM] = checksum(payload)
        try:  # our own file object: closed on failure, so removing it frees the space
            with open(tmp, "wb") as f:
                torch.save(payload, f)
        except BaseException as e:  # disk full, ...: no partial file left beside the last one
            tmp.unlink(missing_ok=True)
            raise unwritable(e, path) or e from e
        tmp.replace(path)  # atomic: a crash mid-save keeps the previous checkpoint


def checksum(payload: dict[str, Any]) -> str:
    """A digest of every entry but the checksum: tensors by dtype, shape and bytes, other
    values by their repr, each under its key path (so a value moved to another key counts)."""
    digest = (
        hashlib.sha256()
    )  # costs about what torch.save does (benchmarks/checkpoint_checksum.py)

    def add(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(f"{key}/{k!r}", v)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                add(f"{key}/{i}", v)
        elif isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy())  # no copy
        else:
            digest.update(f"{key}|{value!r}|".encode())

    add("", {k: v for k, v in payload.items() if k != CHECKSUM})
    return f"sha256:{digest.hexdigest()}"  # named, for a later lrlab that may use another


def what_file(path: Path) -> str:
    """What `path` is, for a file torch cannot read as a checkpoint."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "an empty file"
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            return what
    try:
        text = head.decode()
    except UnicodeDecodeError:
        return f"binary data starting {head[:8].hex()}"
    first = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"a text file starting {first!r}"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at `path`, or a one-line ConfigError naming a missing, cut or foreign file."""
    if not path.is_file():
        raise ConfigError(f"trainer.resume: {path} is not a checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip errors, EOF, unpickling: all mean "not a usable checkpoint"
        what = what_file(path)
        why = (str(e).splitlines() or [type(e).__name__])[0]
        if what.startswith("a ZIP"):  # torch's own format: cut short or damaged
            what = f"truncated or corrupt: {why}"
        raise ConfigError(
            f"{path} is not a readable checkpoint ({what}); "
            "resume from another checkpoint or start a new run"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(
            f"{path} was written by another lrlab version (no checkpoint format {FORMAT}); "
            "it cannot be resumed: start a new run"
        )
    if CHECKSUM in state and checksum(state) != state[CHECKSUM]:
        raise ConfigError(
            f"{path} is corrupt: its contents do not match the checksum stored with them "
            "(bytes changed on disk or in transfer); resume from another checkpoint or start a "
            "new run"
        )
    return state


def restore(state: TrainState, ckpt: dict[str, Any], callbacks: Sequence[Callback]) -> None:
    """Put `state` where the checkpoint was taken; the loop replays the epoch's data order
    and applies the saved RNG state before the next step (`loop.epoch_groups`). A callback with
    `on_restore(state, its saved state)` runs first: it may replace the optimizer and schedule
    with the ones the checkpoint holds (the optimizer switch)."""
    for cb in callbacks:
        if hasattr(cb, "on_restore"):
            cb.on_restore(state, ckpt["callbacks"].get(state_key(cb, callbacks)))
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    state.step_fn.scaler.load_state_dict(ckpt["scaler"])
    state.epoch, state.step, state.step_in_epoch = (
        ckpt["epoch"],
        ckpt["step"],
        ckpt["step_in_epoch"],
    )
    if state.loader_generator is not None and ckpt["loader_rng"] is not None:
        state.loader_generator.set_state(ckpt["loader_rng"])
        state.epoch_start_generator_state = ckpt["loader_rng"]
    state.pending_rng = ckpt["rng"]
    device = state.step_fn.device
    sums = ckpt["epoch_sums"]
    state.sums = EpochSums(sums["loss_sum"].to(device), sums["correct"].to(device), sums["seen"])
    load_callback_states(callbacks, ckpt["callbacks"])
    state.last_checkpoint = {"epoch": state.epoch, "step": state.step}
