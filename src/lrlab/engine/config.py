"""The `trainer:` config: how the loop runs (schema, defaults and range checks)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from lrlab.engine.step import PRECISIONS
from lrlab.errors import ConfigError

MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    device: str = MISSING  # auto (cuda, else mps, else cpu) | cpu | cuda | cuda:1 | mps
    precision: str = MISSING  # auto | 32 | 16-mixed | bf16-mixed (autocast; grad scaling for fp16)
    grad_clip: float | None = MISSING  # max global grad norm, or null for none
    accumulate_grad_batches: int = MISSING  # optimizer step every N batches (schedules count steps)
    label_smoothing: float = MISSING  # of the training loss (validation loss is plain)
    deterministic: bool = MISSING  # torch.use_deterministic_algorithms
    num_workers: int | None = MISSING  # DataLoader workers; null: from the cores and the device
    prefetch_factor: int = MISSING  # batches each worker loads ahead
    cudnn_benchmark: bool = MISSING  # CUDA: cuDNN autotunes its kernels (off when deterministic)
    matmul_precision: str = MISSING  # CUDA float32 matmuls: highest | high (TF32) | medium
    num_threads: int | None = MISSING  # torch CPU threads; null: lrlab's default (see README)
    channels_last: bool = MISSING  # NHWC memory format for conv models
    compile: bool = MISSING  # torch.compile the model for training (checkpoints load without it)
    compile_backend: str = MISSING  # torch.compile's backend: inductor | aot_eager | eager | ...
    compile_mode: str | None = MISSING  # null (torch's default) | reduce-overhead | max-autotune
    log_every_n_steps: int = MISSING  # step rows in metrics.jsonl every N optimizer steps
    progress_bar: bool = MISSING  # tqdm bar per epoch (off when stderr is not a terminal)
    limit_train_batches: int | None = MISSING  # use only the first N batches of each epoch
    limit_val_batches: int | None = MISSING
    overfit_batches: int = MISSING  # >0: train (and validate) on the same N batches every epoch
    divergence_threshold: float = MISSING  # stop as `diverged` when the loss is NaN/inf or above
    checkpoint: bool = MISSING  # checkpoints/last.ckpt after every epoch (and on SIGTERM/SIGINT)
    checkpoint_every_n_steps: int | None = MISSING  # also every N optimizer steps (long epochs)
    resume: str | None = MISSING  # auto | a run dir | a checkpoint file (README: Resuming)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"trainer.epochs must be an integer >= 1, got {self.epochs!r}"),
            (
                self.accumulate_grad_batches >= 1,
                f"trainer.accumulate_grad_batches must be >= 1, got {self.accumulate_grad_batches}",
            ),
            (
                self.log_every_n_steps >= 1,
                f"trainer.log_every_n_steps must be >= 1, got {self.log_every_n_steps}",
            ),
            (
                self.precision == "auto" or self.precision in PRECISIONS,
                f"trainer.precision={self.precision!r} is not one of "
                f"{['auto', *sorted(PRECISIONS)]}",
            ),
            (
                self.matmul_precision in MATMUL_PRECISIONS,
                f"trainer.matmul_precision={self.matmul_precision!r} is not one of "
                f"{list(MATMUL_PRECISIONS)}",
            ),
            (
                self.compile_mode is None or self.compile_mode in COMPILE_MODES,
                f"trainer.compile_mode={self.compile_mode!r} is not null or one of "
                f"{list(COMPILE_MODES)}",
            ),
            (
                self.prefetch_factor >= 1,
                f"trainer.prefetch_factor must be an integer >= 1, got {self.prefetch_factor!r}",
            ),
            (
                self.grad_clip is None or self.grad_clip > 0,
                f"trainer.grad_clip must be > 0 or null, got {self.grad_clip}",
            ),
            (
                0 <= self.label_smoothing < 1,
                f"trainer.label_smoothing must be in [0, 1), got {self.label_smoothing}",
            ),
            (
                self.num_workers is None or self.num_workers >= 0,
                f"trainer.num_workers must be null or an integer >= 0, got {self.num_workers!r}",
            ),
            (
                self.num_threads is None or self.num_threads >= 1,
                f"trainer.num_threads must be null or an integer >= 1, got {self.num_threads!r}",
            ),
            (
                self.limit_train_batches is None or self.limit_train_batches >= 1,
                "trainer.limit_train_batches must be null or an integer >= 1, "
                f"got {self.limit_train_batches!r}",
            ),
            (
                self.limit_val_batches is None or self.limit_val_batches >= 1,
                "trainer.limit_val_batches must be null or an integer >= 1, "
                f"got {self.limit_val_batches!r}",
            ),
            (
                self.overfit_batches >= 0,
                f"trainer.overfit_batches must be an integer >= 0, got {self.overfit_batches!r}",
            ),
            (
                self.divergence_threshold > 0,
                f"trainer.divergence_threshold must be > 0, got {self.divergence_threshold!r}",
            ),
            (
                self.checkpoint_every_n_steps is None or self.checkpoint_every_n_steps >= 1,
                "trainer.checkpoint_every_n_steps must be null or an integer >= 1, "
                f"got {self.checkpoint_every_n_steps!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def check_compile_backend(backend: str) -> None:
    """`trainer.compile_backend` is one of torch.compile's (only checked with compile=true:
    listing them imports `torch._dynamo`, which the first optimizer step imports anyway)."""
    import difflib

    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        close = difflib.get_close_matches(backend, known, 1)
        hint = f"did you mean {close[0]!r}?" if close else "e.g. inductor, aot_eager, eager"
        raise ConfigError(
            f"trainer.compile_backend={backend!r} is not a torch.compile backend ({hint})"
        )
