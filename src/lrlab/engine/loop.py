"""The training loop. Everything else (records, checkpoints, freezing, progress, early
stopping, EMA, ...) is a callback (`lrlab.engine.callbacks`, `lrlab.callbacks`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from lrlab.engine.callbacks import Callback, CallbackList, StopTraining
from lrlab.engine.state import EpochSums, TrainState
from lrlab.engine.step import Batch, evaluate, grouped
from lrlab.utils import set_rng_state


def fit(state: TrainState, callbacks: Sequence[Callback]) -> None:
    """Train `state` to `state.epochs`; `state.status` says how it ended."""
    cbs = CallbackList(callbacks)
    try:
        cbs.on_fit_start(state)
        stop_on(publish_stop(state))  # one that came while the run was being set up
        while state.epoch < state.epochs and state.stop.after_epoch is None:
            cbs.on_epoch_start(state)
            state.train_mode()
            for group in epoch_groups(state):
                cbs.on_step_start(state)
                result = state.step_fn(group)
                state.scheduler.step()
                state.step += 1
                state.step_in_epoch += 1
                state.sums.add(result)
                publish_stop(state)  # before the callbacks: they checkpoint on it
                cbs.on_step_end(state, result)
                stop_on(state.stop.now)
            sums = state.sums
            state.metrics = {  # one host sync per epoch
                "train_loss": sums.loss_sum.item() / sums.seen,
                "train_acc": sums.correct.item() / sums.seen,
            }
            cbs.on_train_epoch_end(state)
            val_loss, val_acc = evaluate(state.eval_model, state.val_batches, state.step_fn)
            state.scheduler.epoch_end(val_loss)
            state.metrics.update(val_loss=val_loss, val_acc=val_acc)
            state.epoch += 1
            state.step_in_epoch, state.sums = 0, EpochSums.zeros(state.step_fn.device)
            publish_stop(state)
            cbs.on_validation_end(state)
            cbs.on_epoch_end(state)
            if (
                state.epoch < state.epochs and state.stop.after_epoch is None
            ):  # else: nothing left to do
                stop_on(state.stop.now)
        state.status = "completed"
    except StopTraining as stop:
        state.status, state.error = stop.status, stop.message
    except BaseException as e:
        state.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        state.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise
    finally:
        cbs.on_fit_end(state)


def epoch_groups(state: TrainState) -> Iterator[list[Batch]]:
    """This epoch's groups of `state.accumulate` batches, from where the epoch stands: a run
    resumed mid-epoch replays the data order from the epoch's start (loading, not training, the
    batches it already trained on), then takes the checkpoint's RNG state."""
    if state.loader_generator is not None:
        if state.step_in_epoch == 0:
            state.epoch_start_generator_state = state.loader_generator.get_state()
        else:
            state.loader_generator.set_state(state.epoch_start_generator_state)
    batches = iter(state.train_batches)
    for _ in range(state.step_in_epoch * state.accumulate):
        next(batches)
    if state.pending_rng is not None:
        set_rng_state(state.pending_rng)
        state.pending_rng = None
    return grouped(batches, state.accumulate)


def publish_stop(state: TrainState) -> tuple[str, str] | None:
    """`state.stop.now` for this step's (or epoch's) end: a stop signalled by now. A signal
    that arrives while the callbacks run waits for the next one, so that every callback (the
    checkpoint included) sees the same decision as the loop."""
    state.stop.now = state.stop.signal
    return state.stop.now


def stop_on(signal: tuple[str, str] | None) -> None:
    """End the run if a stop signal (SIGTERM, SIGUSR1, SIGINT) had arrived before the callbacks
    ran: the step (or epoch) is complete, and they have recorded and checkpointed it."""
    if signal is not None:
        raise StopTraining(*signal)
