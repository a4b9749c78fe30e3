"""Where a run trains and how: `trainer.device=auto` (CUDA, then MPS, then the CPU),
`trainer.precision=auto`, the CUDA settings, and the per-sample loaders' workers."""

from __future__ import annotations

import pytest
import torch

from lrlab.data.loaders import SeededLoader, default_workers
from lrlab.errors import ConfigError
from lrlab.utils import apply_device_settings, select_device, select_precision


@pytest.fixture
def machine(monkeypatch):
    """Pretend CUDA / MPS / bf16 are (not) there."""

    def set_(cuda=False, mps=False, bf16=True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return set_


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_device_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert select_device("auto").type == expected


def test_an_unavailable_device_is_one_line(machine):
    machine()
    with pytest.raises(ConfigError, match=r"^trainer.device='mps' but MPS is not available"):
        select_device("mps")
    with pytest.raises(ConfigError, match=r"^trainer.device='cuda:1' but CUDA"):
        select_device("cuda:1")
    with pytest.raises(ConfigError, match="is not a device"):
        select_device("gpu")


@pytest.mark.parametrize(
    ("device", "bf16", "expected"),
    [
        ("cuda", True, "bf16-mixed"),
        ("cuda", False, "16-mixed"),
        ("cpu", True, "32"),
        ("mps", True, "32"),
    ],
)
def test_auto_precision(machine, device, bf16, expected):
    machine(cuda=True, bf16=bf16)
    assert select_precision("auto", torch.device(device)) == expected
    assert select_precision("16-mixed", torch.device(device)) == "16-mixed"  # as set


@pytest.fixture
def cuda_globals():
    saved = torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()
    yield
    torch.backends.cudnn.benchmark = saved[0]
    torch.set_float32_matmul_precision(saved[1])


def test_cuda_settings_apply_on_cuda_only(cuda_globals):
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")
    apply_device_settings(torch.device("cpu"), True, "high", deterministic=False)
    assert not torch.backends.cudnn.benchmark  # the CPU's float32 stays exact
    assert torch.get_float32_matmul_precision() == "highest"
    apply_device_settings(torch.device("cuda"), True, "high", deterministic=False)
    assert torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "high"
    apply_device_settings(torch.device("cuda"), True, "medium", deterministic=True)
    assert not torch.backends.cudnn.benchmark  # autotuning is not deterministic
    assert torch.get_float32_matmul_precision() == "medium"


def test_the_trainer_keys_default_to_auto_and_check_their_values(make_cfg):
    t = make_cfg().trainer
    assert (t.device, t.precision, t.num_workers, t.cudnn_benchmark, t.matmul_precision) == (
        "auto",
        "auto",
        None,
        True,
        "high",
    )
    with pytest.raises(ConfigError, match=r"trainer.matmul_precision='fast' is not one of"):
        check(make_cfg("trainer.matmul_precision=fast", out="m"))
    with pytest.raises(ConfigError, match=r"trainer.precision='64' is not one of \['auto'"):
        check(make_cfg("trainer.precision=64", out="p"))
    with pytest.raises(ConfigError, match="trainer.prefetch_factor must be an integer >= 1"):
        check(make_cfg("trainer.prefetch_factor=0", out="f"))


def test_a_bad_compile_backend_or_mode_is_one_line_at_the_config_check(make_cfg):
    """check_config runs before any data or records are touched (train, find_lr, the preview)."""
    with pytest.raises(ConfigError, match=r"trainer.compile_mode='fastest' is not null or one of"):
        check(make_cfg("trainer.compile_mode=fastest", out="m"))
    cfg = make_cfg("trainer.compile=true", "trainer.compile_backend=indcutor", out="b")
    with pytest.raises(ConfigError, match=r"^trainer.compile_backend='indcutor' is not a torch."
                       r"compile backend \(did you mean 'inductor'\?\)$"):  # fmt: skip
        check(cfg)
    check(make_cfg("trainer.compile=true", "trainer.compile_backend=aot_eager", out="ok"))
    check(make_cfg("trainer.compile_backend=anything", out="off"))  # compile=false: unused


def check(cfg):
    from lrlab.tasks.config import check_config

    check_config(cfg)


def test_default_workers_follow_the_cores_with_a_gpu_and_are_none_on_the_cpu():
    assert default_workers(torch.device("cpu"), 16) == 0
    assert default_workers(torch.device("cuda"), 16) == 8
    assert default_workers(torch.device("cuda"), 4) == 3
    assert default_workers(torch.device("mps"), 1) == 0


def epoch(loader):
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_persistent_workers_augment_as_a_fresh_loader_at_the_same_generator_state(
    make_cfg, image_folder
):
    """What exact resume needs: epoch 2 of persistent workers equals a new loader (a resumed
    run's) started from the generator state of epoch 2's start, with any number of workers."""
    data = ("data=imagefolder", f"data.root={image_folder}", "data.image_size=12")
    data += ("data.on_device=false", "data.batch_size=4")

    def loader(workers: int, out: str):
        cfg = make_cfg(*data, out=out)
        from lrlab.data import build_data

        return build_data(cfg.data, seed=0, num_workers=workers).train_loader

    running = loader(2, "a")
    assert isinstance(running, SeededLoader) and running.persistent_workers
    first = epoch(running)
    start = running.generator.get_state()
    second = epoch(running)
    assert not torch.equal(first[0], second[0])
    for workers, out in ((2, "b"), (1, "c")):
        resumed = loader(workers, out)
        resumed.generator.set_state(start)
        assert all(map(torch.equal, second, epoch(resumed)))
