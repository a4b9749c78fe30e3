"""The `trainer:` config: how the loop runs (schema, defaults and range checks)."""

from __future__ import annotations

from dataclasses import dataclass

from lrlab.engine.step import PRECISIONS
from lrlab.errors import ConfigError

MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision


@dataclass
class TrainerConfig:
    epochs: int = 5
    device: str = "auto"  # auto (cuda, else mps, else cpu) | cpu | cuda | cuda:1 | mps
    # auto (bf16-mixed on GPUs with bf16, 16-mixed on older ones, 32 on CPU and MPS) | 32 |
    # 16-mixed | bf16-mixed (autocast; grad scaling for fp16)
    precision: str = "auto"
    grad_clip: float | None = None  # max global grad norm, or null for none
    accumulate_grad_batches: int = 1  # optimizer step every N batches (schedules count steps)
    label_smoothing: float = 0.0  # of the training loss (validation loss is plain)
    deterministic: bool = False  # torch.use_deterministic_algorithms
    # DataLoader workers (the per-sample path); 0 loads in the main process; null: 0 on the
    # CPU, one per core but one (at most 8) with a GPU. Persistent between epochs.
    num_workers: int | None = None
    prefetch_factor: int = 2  # batches each worker loads ahead
    cudnn_benchmark: bool = True  # CUDA: cuDNN autotunes its kernels (off when deterministic)
    matmul_precision: str = "high"  # CUDA float32 matmuls: highest | high (TF32) | medium
    num_threads: int | None = None  # torch CPU threads; null: lrlab's default (see README)
    channels_last: bool = True  # NHWC memory format for conv models
    compile: bool = False  # torch.compile the model for training (checkpoints load without it)
    log_every_n_steps: int = 10  # step rows in metrics.jsonl every N optimizer steps
    progress_bar: bool = True  # tqdm bar per epoch (off when stderr is not a terminal)
    limit_train_batches: int | None = None  # use only the first N batches of each epoch
    limit_val_batches: int | None = None
    overfit_batches: int = 0  # >0: train (and validate) on the same N batches every epoch
    divergence_threshold: float = 1e4  # stop as `diverged` when the loss is NaN/inf or above
    checkpoint: bool = True  # checkpoints/last.ckpt after every epoch (and on SIGTERM/SIGINT)
    checkpoint_every_n_steps: int | None = None  # also every N optimizer steps (long epochs)
    resume: str | None = None  # auto | a run dir | a checkpoint file (README: Resuming)

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
