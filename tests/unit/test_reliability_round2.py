"""Issue 16, in-process: a resume without a checkpoint compares the config, a refused sweep job
is reported, checkpoints carry a checksum, a run dir has one trainer at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from lrlab.engine.checkpoint import CHECKSUM, load_checkpoint
from lrlab.errors import ConfigError
from lrlab.tasks.train import prepare, train
from tests.helpers import logger_config

TINY = [
    "trainer.epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.num_threads=1",
]


def started(cfg) -> None:
    """What train_job writes before training: the composed config in `.hydra/config.yaml`."""
    hydra_dir = Path(cfg.paths.output_dir) / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    (hydra_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))


def auto(cfg, **trainer):
    cfg = cfg.copy()
    cfg.trainer.resume = "auto"
    for key, value in trainer.items():
        cfg.trainer[key] = value
    return cfg


# --- 1. trainer.resume=auto without a checkpoint


def test_resume_without_a_checkpoint_refuses_a_changed_config_of_a_diverged_run(make_cfg):
    cfg = make_cfg(*TINY, "optimizer.lr=1e6", "trainer.checkpoint=false")
    started(cfg)
    assert train(cfg)["status"] == "diverged"
    fixed = auto(cfg)
    fixed.optimizer.lr = 1e-3
    summary_before = (Path(cfg.paths.output_dir) / "summary.json").read_bytes()
    with pytest.raises(ConfigError) as err:
        prepare(fixed)
    message = str(err.value)
    assert "optimizer.lr (1000000.0 -> 0.001)" in message
    assert ".hydra/config.yaml" in message and "\n" not in message
    assert (Path(cfg.paths.output_dir) / "summary.json").read_bytes() == summary_before
    # The same config (resumable keys changed) is still reported as finished.
    assert prepare(auto(cfg, num_threads=2)).finished["status"] == "diverged"


def test_resume_without_a_checkpoint_of_an_unfinished_run_with_the_same_config_starts_over(
    make_cfg,
):
    cfg = make_cfg(*TINY, "trainer.checkpoint=false")
    started(cfg)
    out = Path(cfg.paths.output_dir)
    (out / "summary.json").write_text(json.dumps({"status": "running", "epochs_completed": 0}))
    start = prepare(auto(cfg, epochs=2))
    assert start.in_place and start.checkpoint is None and start.finished is None
    changed = auto(cfg)
    changed.seed = 7
    with pytest.raises(ConfigError, match=r"seed \(42 -> 7\)"):
        prepare(changed)


# --- 3. a sweep re-run whose jobs are refused


def test_sweep_report_names_refused_jobs_and_exits_2(tmp_path, capsys, monkeypatch):
    from lrlab.cli import sweeps

    sweep = tmp_path / "sweep"
    job = sweep / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (job / "summary.json").write_text(json.dumps({"status": "completed", "best_val_acc": 0.5}))

    runtime = SimpleNamespace(  # HydraConfig's shape, for this job of the re-run
        sweep=SimpleNamespace(dir=str(sweep)), overrides=SimpleNamespace(task=["seed=0"])
    )
    monkeypatch.setattr(sweeps, "hydra_runtime", lambda: runtime)
    sweeps.record_refused_job(job, "trainer.resume: this config differs ... in seed (1 -> 0)")
    sweeps.record_refused_job(sweep / "1", "a refusal of a job whose dir is new")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with pytest.raises(SystemExit) as stop:
        sweeps.SweepReport().on_multirun_end(config)
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert "[0] seed=0: refused: trainer.resume: this config differs" in out
    assert "(the dir still holds: completed, best_val_acc 0.5000)" in out
    assert "[1] seed=0: refused: a refusal of a job whose dir is new" in out
    assert "2 job(s) refused: 0, 1" in err
    sweeps.clear_refused_jobs(sweep)  # a new invocation of the sweep forgets them
    assert sweeps.refused_jobs(sweep) == {}


# --- 7. checkpoint checksum


@pytest.fixture
def checkpoint(make_cfg) -> Path:
    cfg = make_cfg(*TINY)
    assert train(cfg)["status"] == "completed"
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def flip_tensor_bytes(path: Path) -> None:
    """Flip bytes inside the model's first weight tensor's storage of a real checkpoint."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size >= 64)
    raw = bytearray(path.read_bytes())
    header = info.header_offset  # the local header: 30 bytes, then the name and extra field
    name_len, extra_len = (
        int.from_bytes(raw[header + k : header + k + 2], "little") for k in (26, 28)
    )
    start = header + 30 + name_len + extra_len  # the stored (uncompressed) tensor bytes
    for i in range(start + 8, start + 24):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_checkpoint_with_flipped_tensor_bytes_is_refused_naming_the_file(checkpoint):
    assert CHECKSUM in torch.load(checkpoint, weights_only=True)
    load_checkpoint(checkpoint)  # intact: verified
    flip_tensor_bytes(checkpoint)
    torch.load(checkpoint, weights_only=True)  # torch itself reads it without a word
    with pytest.raises(ConfigError) as err:
        load_checkpoint(checkpoint)
    assert str(err.value).startswith(f"{checkpoint} is corrupt: its contents do not match")


def test_a_checkpoint_of_older_lrlab_without_checksum_still_loads(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    del state[CHECKSUM]
    torch.save(state, checkpoint)
    assert load_checkpoint(checkpoint)["epoch"] == 1


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"hello world\nsecond line\n", "a text file starting 'hello world'"),
        (b"", "an empty file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(20), "a PNG image"),
        (b"\x00\x01\x02\xfe" * 4, "binary data starting 000102fe000102fe"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_says_what_it_is(tmp_path, content, said):
    path = tmp_path / "last.ckpt"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_checkpoint(path)
    assert f"is not a readable checkpoint ({said})" in str(err.value)
    assert "544502645" not in str(err.value)


def test_a_cut_checkpoint_is_still_called_truncated(checkpoint):
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    with pytest.raises(ConfigError, match="truncated or corrupt"):
        load_checkpoint(checkpoint)


# --- 2. the run dir lock (real processes: a lock only means something between two)

HOLD = """
import sys, time
from pathlib import Path
from lrlab.cli.run_lock import run_dir_lock
with run_dir_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_in_subprocess(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow  # a second process
def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_lock(
    tmp_path,
):
    import socket

    from lrlab.cli.run_lock import LOCK_INFO, run_dir_lock

    run_dir = tmp_path / "run"
    proc = hold_in_subprocess(run_dir)
    try:
        with pytest.raises(ConfigError) as err, run_dir_lock(run_dir):
            pass
        message = str(err.value)
        assert f"process {proc.pid} on {socket.gethostname()}" in message
        assert "\n" not in message
    finally:
        proc.kill()  # SIGKILL: no clean-up in the holder
        proc.wait()
    assert (run_dir / LOCK_INFO).is_file()  # its note stays, the lock does not
    with run_dir_lock(run_dir):
        assert json.loads((run_dir / LOCK_INFO).read_text())["pid"] == os.getpid()
    assert not (run_dir / LOCK_INFO).exists()  # released: the note goes with it


def test_the_lock_is_released_when_its_block_raises(tmp_path):
    from lrlab.cli.run_lock import run_dir_lock

    with pytest.raises(RuntimeError), run_dir_lock(tmp_path):
        raise RuntimeError("training failed")
    with run_dir_lock(tmp_path):
        pass


# --- 4. a stop signal during set-up or the LR finder


class SignallingStep:
    """The run's TrainStep, sending SIGTERM to this process at its `at`-th call."""

    def __init__(self, step, at: int) -> None:
        self.step, self.at, self.calls = step, at, 0

    def __getattr__(self, name):
        return getattr(self.step, name)

    def __call__(self, batches):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.step(batches)


def test_sigterm_in_the_lr_finder_stops_it_at_once_and_the_run_cleanly(make_cfg, monkeypatch):
    from lrlab.tasks import train as train_module

    steps: list[SignallingStep] = []
    real_build = train_module.build_components

    def build(cfg):
        c = real_build(cfg)
        c.step_fn = SignallingStep(c.step_fn, at=3)
        steps.append(c.step_fn)
        return c

    monkeypatch.setattr(train_module, "build_components", build)
    cfg = make_cfg(*TINY, "optimizer.lr=auto", "lr_find.num_it=50")
    summary = train(cfg)
    assert summary["status"] == "preempted" and summary["error"] == "stopped by SIGTERM"
    assert steps[0].calls == 3  # the finder's next step did not run
    out = Path(cfg.paths.output_dir)
    assert not (out / "checkpoints").exists()  # nothing trained: nothing to checkpoint
    assert json.loads((out / "summary.json").read_text())["status"] == "preempted"
    assert prepare(auto(cfg)).in_place  # trainer.resume=auto starts it afresh


def test_sigterm_during_set_up_stops_before_the_lr_finder(make_cfg, monkeypatch):
    from lrlab.tasks import train as train_module

    real_build = train_module.build_components
    built = []

    def build(cfg):
        built.append(real_build(cfg))
        os.kill(os.getpid(), signal.SIGTERM)  # while the data and model are built
        return built[-1]

    monkeypatch.setattr(train_module, "build_components", build)
    cfg = make_cfg(*TINY, "optimizer.lr=auto")
    assert train(cfg)["status"] == "preempted"
    assert not (Path(cfg.paths.output_dir) / "lr_find.json").exists()


# --- 5. symbolic links in an image folder


def flowers_cfg(make_cfg, root: Path, *overrides: str):
    return make_cfg(
        "data=flowers", f"data.root={root}", "data.image_size=16", "data.batch_size=4", *overrides
    )


@pytest.mark.parametrize(
    ("link", "target", "said"),
    [
        ("cat/loop", "..", "a folder above it: a loop"),  # 30 images would be thousands
        ("sixth", ".", "a folder above it: a loop"),  # a class folder linked to the root
        ("cat/dogs", "../dog", "which is read already"),  # dog images as cats too
    ],
)
def test_a_link_that_reads_images_twice_is_refused_in_one_line(
    make_cfg, image_folder, link, target, said
):
    from tests.helpers import build_data_from

    (image_folder / link).symlink_to(target)
    with pytest.raises(ConfigError) as err:
        build_data_from(flowers_cfg(make_cfg, image_folder))
    message = str(err.value)
    assert message.startswith(f"data.root: {link} is a link to ") and said in message
    assert "\n" not in message


def test_a_link_out_of_the_root_is_read_only_when_asked_and_each_file_once(
    make_cfg, image_folder, tmp_path
):
    from tests.helpers import build_data_from, make_image_folder

    elsewhere = make_image_folder(tmp_path / "elsewhere", {"owl": 4})
    (image_folder / "owl").symlink_to(elsewhere / "owl")
    with pytest.raises(ConfigError, match=r"data.root: owl is a link out of .*follow_links=true"):
        build_data_from(flowers_cfg(make_cfg, image_folder))
    data = build_data_from(flowers_cfg(make_cfg, image_folder, "data.follow_links=true"))
    assert data.class_names == ["cat", "dog", "fox", "owl"]
    assert len(data.train_loader.dataset) + len(data.val_loader.dataset) == 34
    (image_folder / "cat" / "owls").symlink_to(elsewhere / "owl")  # the same files again
    with pytest.raises(ConfigError, match="cat/owls is a link to .*read already"):
        build_data_from(flowers_cfg(make_cfg, image_folder, "data.follow_links=true"))


# --- 9. names that are not UTF-8, values that surfaced raw errors


def test_file_and_class_names_that_are_not_utf8_are_accepted(make_cfg, image_folder):
    cat = os.fsencode(image_folder / "cat")
    os.rename(cat + b"/img_000.png", cat + b"/\xff\xfe.png")
    os.rename(os.fsencode(image_folder / "dog"), os.fsencode(image_folder) + b"/d\xe9og")
    cfg = flowers_cfg(make_cfg, image_folder, *TINY)
    assert train(cfg)["status"] == "completed"


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("data.split_seed=-1", "data.split_seed must be in [0, 2**32), got -1"),
        ("data.image_size=100000", "data.image_size must be from 1 to 8192 px, got 100000"),
        ("data.val_fraction=0.999", "data.val_fraction=0.999 splits 1797 images into 1 train"),
        ("trainer.accumulate_grad_batches=1000", "is more than the 3 training batches"),
    ],
)
def test_values_that_surfaced_raw_errors_get_one_line(make_cfg, override, said):
    from lrlab.tasks.config import check_config

    with pytest.raises(ConfigError) as err:
        cfg = make_cfg(*TINY, override)
        check_config(cfg)
        train(cfg)
    assert said in str(err.value) and "\n" not in str(err.value)


# --- 8. a full disk (a small tmpfs; mounting needs root)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs: one digits checkpoint (1.4 MB) fits, a second one beside it does not."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(make_cfg, small_disk):
    from lrlab.errors import RunDirError

    cfg = make_cfg("trainer.epochs=3", "trainer.num_threads=1")
    cfg.paths.output_dir = str(small_disk / "run")
    with pytest.raises(RunDirError) as err:
        train(cfg)
    last = small_disk / "run" / "checkpoints" / "last.ckpt"
    assert str(err.value) == f"cannot write {last}: No space left on device"
    summary = json.loads((small_disk / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert summary["checkpoint"] == {"epoch": 1, "step": 23}  # never more than it holds
    assert load_checkpoint(last)["epoch"] == 1  # the previous checkpoint is intact
    assert not list((small_disk / "run").rglob("*.tmp"))  # no partial file left behind
    assert prepare(auto(cfg)).checkpoint["epoch"] == 1  # and a resume continues from it


# --- 10. W&B without network: found out at once, once per sweep


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_endpoint_that_does_not_resolve_or_refuses_is_found_out_at_once(monkeypatch):
    import socket
    import time

    from lrlab.tracking.wandb_reach import endpoint_problem

    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    started = time.monotonic()
    port = closed_port()
    assert endpoint_problem(f"http://127.0.0.1:{port}") == (
        f"W&B's endpoint 127.0.0.1:{port} cannot be reached (Connection refused)"
    )

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    problem = endpoint_problem("https://api.wandb.ai")
    assert problem.startswith("W&B's endpoint api.wandb.ai cannot be resolved (")
    assert time.monotonic() - started < 5  # not wandb's 60 s init_timeout
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert endpoint_problem("https://api.wandb.ai") is None  # only the proxy knows


def test_the_jobs_of_a_sweep_check_the_endpoint_once_and_share_the_verdict(tmp_path, monkeypatch):
    import threading
    import time

    from lrlab.tracking import wandb_reach
    from lrlab.tracking.wandb_tracker import OFFLINE_MARKER

    checks = []

    def slow_failing_check(base_url, timeout=wandb_reach.PROBE_TIMEOUT_S):
        checks.append(base_url)
        time.sleep(0.3)  # the others start meanwhile
        return "W&B's endpoint api.wandb.ai cannot be resolved (no network)"

    monkeypatch.setattr(wandb_reach, "endpoint_problem", slow_failing_check)
    marker = tmp_path / OFFLINE_MARKER
    verdicts: list[str | None] = []
    jobs = [
        threading.Thread(
            target=lambda: verdicts.append(wandb_reach.shared_endpoint_check(marker, "u"))
        )
        for _ in range(4)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert len(checks) == 1  # one job checked; the others waited for its verdict
    assert sorted(verdicts, key=str) == [None, None, None, slow_failing_check("u")]
    assert "cannot be resolved" in marker.read_text()


@pytest.mark.slow  # starts wandb-core (offline)
def test_a_tracker_without_network_goes_offline_without_waiting_init_timeout(tmp_path, monkeypatch):
    import time
    import warnings

    wandb = pytest.importorskip("wandb")
    from lrlab import tracking
    from lrlab.tracking import naming

    env = {
        "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
        "WANDB_API_KEY": "0123456789" * 4,
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
        "NETRC": str(tmp_path / "no_netrc"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    wandb.teardown()
    modes: list[str] = []
    real_init = wandb.init
    monkeypatch.setattr(wandb, "init", lambda **kw: modes.append(kw["mode"]) or real_init(**kw))
    sweep, run_dir = tmp_path / "sweep", tmp_path / "sweep" / "0"
    context = {"job_name": "train", "overrides": ["seed=0"], "sweep_dir": sweep}
    monkeypatch.setattr(naming, "hydra_context", lambda: context)
    cfg = OmegaConf.create(
        {
            "paths": {"output_dir": str(run_dir)},
            "logger": {"wandb": {"project": "lrlab-test", "init_timeout": 60}},
        }
    )
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (tracker,) = tracking.build_trackers(logger_config(**cfg.logger), run_dir, cfg)
    try:
        assert time.monotonic() - started < 30  # not the 60 s init_timeout
        assert modes == ["offline"] and tracker.mode == "offline"  # online was not tried
        (message,) = [str(w.message) for w in caught if "W&B" in str(w.message)]
        assert "W&B online init failed (ConnectionError: W&B's endpoint 127.0.0.1:" in message
        assert (sweep / ".wandb_offline").is_file()
    finally:
        tracker.finish("completed")
        wandb.teardown()
