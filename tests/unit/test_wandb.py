"""W&B tracker: offline runs read back from their `.wandb` file; failures never reach training."""

from __future__ import annotations

import json
import struct
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lrlab import tracking
from lrlab.tracking import naming, wandb_tracker
from tests.helpers import logger_config

wandb = pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, no user credentials, nothing written outside tmp_path."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)


def read_wandb_records(path: Path) -> list[Any]:
    """Records of a `run-*.wandb` file (W&B's LevelDB-log format: 32 KiB blocks of
    CRC-checked chunks after a 7-byte `:W&B` header), parsed as `wandb.proto` Records."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block tail too short for a header: zero padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if len(chunk) < length:
            break  # still being written
        if kind == 0 and length == 0:
            continue
        assert crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
        pending += chunk
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def offline_run(run_dir: Path, timeout: float = 20.0) -> dict[str, Any]:
    """What an offline run holds: run fields, config, history rows, summary, exit code.

    `run.finish()` returns before wandb-core has flushed the file: wait for the exit record.
    """
    deadline = time.monotonic() + timeout
    while True:
        paths = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
        records = read_wandb_records(paths[0]) if len(paths) == 1 else []
        if (
            any(r.WhichOneof("record_type") == "exit" for r in records)
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.1)
    assert len(paths) == 1, paths
    out: dict[str, Any] = {"history": [], "summary": {}, "config": {}, "exit_code": None}
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = r.run
            out["config"].update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "history":
            out["history"].append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            )
        elif kind == "summary":
            out["summary"].update(
                {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in r.summary.update
                }
            )
        elif kind == "exit":
            out["exit_code"] = r.exit.exit_code
    return out


def build(cfg) -> list:
    """The trackers training builds for a whole config `cfg`."""
    logger = logger_config(**OmegaConf.to_container(cfg.logger))
    return tracking.build_trackers(logger, Path(cfg.paths.output_dir), cfg)


def typed_wandb(cfg):
    return logger_config(wandb=OmegaConf.to_container(cfg.logger.wandb)).wandb


def wandb_cfg(run_dir: Path, **wandb_cfg: Any):
    return OmegaConf.create(
        {
            "seed": 1,
            "tags": ["study"],
            "paths": {"output_dir": str(run_dir)},
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
            "trainer": {"epochs": 2, "lr": "${optimizer.lr}"},
            "logger": {"wandb": {"project": "lrlab-test", "mode": "offline", **wandb_cfg}},
        }
    )


MULTIRUN = {
    "job_name": "train",
    "overrides": ["experiment=cmp", "recipe=adam", "seed=1"],
    "sweep_dir": Path("outputs/multiruns/2026-01-01/12-00-00"),
}

STEP_ROWS = [
    {"type": "step", "step": s, "epoch": s / 4, "train_loss": 1.0 / s, "lr": 0.1 * s,
     "lr_groups": [0.1 * s, 0.01 * s], "momentum": 0.9 - 0.01 * s}
    for s in range(1, 5)
]  # fmt: skip
EPOCH_ROW = {"type": "epoch", "epoch": 1, "step": 4, "train_loss": 0.5, "train_acc": 0.6,
             "val_loss": 0.7, "val_acc": 0.55, "epoch_time_s": 1.5, "lr": 0.4}  # fmt: skip


def test_wandb_row_keys() -> None:
    assert naming.wandb_row(STEP_ROWS[0]) == {
        "trainer/step": 1, "trainer/epoch": 0.25, "train/loss": 1.0, "lr": 0.1,
        "lr/group_0": 0.1, "lr/group_1": 0.01, "momentum": 0.89,
    }  # fmt: skip
    assert naming.wandb_row(EPOCH_ROW) == {
        "trainer/step": 4, "trainer/epoch": 1, "train/loss_epoch": 0.5, "train/acc": 0.6,
        "val/loss": 0.7, "val/acc": 0.55, "epoch_time_s": 1.5,
    }  # fmt: skip
    assert "momentum" not in naming.wandb_row({**STEP_ROWS[0], "momentum": None})


def test_names_from_hydra() -> None:
    assert naming.run_name(["experiment=cmp", "recipe=adam", "seed=1"]) == "recipe=adam,seed=1"
    assert naming.run_name(["experiment=cmp"]) == "experiment=cmp"
    assert naming.run_name([]) is None
    overrides = ["experiment=cmp", "debug=fast", "recipe=adam", "seed=1"]
    assert naming.run_name(overrides, swept={"recipe", "seed"}) == "recipe=adam,seed=1"
    assert naming.run_name(overrides, swept=set()) == "debug=fast,recipe=adam,seed=1"
    assert (
        naming.sweep_group(Path("outputs/multiruns/2026-01-01/12-00-00")) == "2026-01-01/12-00-00"
    )
    cfg = wandb_cfg(Path("/r"))
    kw = wandb_tracker.wandb_init_kwargs(typed_wandb(cfg), cfg, Path("/r"), hydra={})
    assert kw["group"] is None and kw["name"] is None and kw["job_type"] == "train"
    cfg = wandb_cfg(Path("/r"), group="mine", job_type="find_lr")
    kw = wandb_tracker.wandb_init_kwargs(typed_wandb(cfg), cfg, Path("/r"), MULTIRUN)
    assert kw["group"] == "mine" and kw["job_type"] == "find_lr"


def test_mode_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wandb_tracker.resolve_wandb_mode("offline") == "offline"
    assert wandb_tracker.resolve_wandb_mode("auto") == "offline"  # WANDB_MODE from the fixture
    monkeypatch.delenv("WANDB_MODE")
    assert not wandb_tracker.has_wandb_credentials()
    assert wandb_tracker.resolve_wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_tracker.resolve_wandb_mode("auto") == "online"


def test_bad_mode_is_a_config_error(tmp_path: Path) -> None:
    from lrlab.errors import ConfigError
    from lrlab.tasks.config import check_config
    from tests.helpers import compose_cfg

    def check(*overrides: str) -> None:
        check_config(compose_cfg(["logger=wandb", *overrides], tmp_path))

    with pytest.raises(ConfigError, match=r"logger.wandb.mode .*'onlne'"):
        check("logger.wandb.mode=onlne")
    with pytest.raises(ConfigError, match=r"logger.wandb.init_timeout .*-1"):
        check("logger.wandb.init_timeout=-1")
    assert not (tmp_path / "wandb").exists()  # checked before anything starts


def test_offline_run_records_config_group_name_and_lr_per_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(naming, "hydra_context", lambda: MULTIRUN)
    run_dir = tmp_path / "run"
    (tracker,) = build(wandb_cfg(run_dir, mode="auto"))
    assert "wandb sync" in capsys.readouterr().out  # the offline hint
    for row in STEP_ROWS:
        tracker.log_metrics(row)
    tracker.log_metrics(EPOCH_ROW)
    plot = tmp_path / "lr_find.png"
    pytest.importorskip("matplotlib.pyplot").imsave(plot, [[0.0, 1.0], [1.0, 0.0]])
    tracker.log_image("lr_find", plot)
    tracker.log_summary(
        {"status": "completed", "best_val_acc": 0.55, "final_val_acc": float("nan")}
    )
    tracker.finish("completed")

    rec = offline_run(run_dir)  # dir= the run dir: nothing lands in the repo root
    run = rec["run"]
    assert (run.project, run.run_group, run.display_name, run.job_type) == (
        "lrlab-test", "2026-01-01/12-00-00", "recipe=adam,seed=1", "train",
    )  # fmt: skip
    assert list(run.tags) == ["study"]
    cfg = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in rec["config"].items()}
    assert cfg["optimizer"]["lr"] == 1e-3 and cfg["trainer"]["lr"] == 1e-3  # resolved
    assert cfg["paths"]["output_dir"] == str(run_dir)
    steps = [h for h in rec["history"] if "lr" in h]
    assert [h["trainer/step"] for h in steps] == [1, 2, 3, 4]
    assert [h["lr"] for h in steps] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert [h["lr/group_1"] for h in steps] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert [h["momentum"] for h in steps] == pytest.approx([0.89, 0.88, 0.87, 0.86])
    (epoch,) = [h for h in rec["history"] if "val/acc" in h]
    assert epoch["val/acc"] == 0.55 and epoch["trainer/epoch"] == 1
    assert any(h.get("plots/lr_find/_type") == "image-file" for h in rec["history"])
    assert (
        len(list(run_dir.glob("wandb/offline-run-*/files/media/images/plots/lr_find_*.png"))) == 1
    )
    assert rec["summary"]["status"] == "completed" and rec["summary"]["best_val_acc"] == 0.55
    assert rec["summary"]["final_val_acc"] is None  # NaN as null, as in summary.json
    assert rec["exit_code"] == 0


def test_sequential_jobs_are_separate_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = []
    for job in range(2):
        monkeypatch.setattr(
            naming, "hydra_context", lambda job=job: {**MULTIRUN, "overrides": [f"seed={job}"]}
        )
        (tracker,) = build(wandb_cfg(tmp_path / str(job)))
        ids.append(tracker.run.id)
        tracker.log_metrics(STEP_ROWS[0])
        if job == 0:
            continue  # left unfinished, as a crashed job would: the next init must not reuse it
        tracker.finish("completed")
    assert ids[0] != ids[1]
    assert offline_run(tmp_path / "1")["run"].display_name == "seed=1"
    assert offline_run(tmp_path / "0")["run"].display_name == "seed=0"


def test_init_failure_warns_once_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_init(*args: Any, **kwargs: Any) -> None:
        raise wandb.errors.CommError("service unreachable")

    monkeypatch.setattr(wandb, "init", broken_init)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        (tracker,) = build(wandb_cfg(tmp_path, mode="online"))
        for row in [*STEP_ROWS, EPOCH_ROW]:
            tracker.log_metrics(row)
        tracker.log_summary({"status": "completed"})
        tracker.finish("completed")
    # online failed, then the offline fallback failed too: one warning for each, no more
    assert [str(w.message).split(" (")[0] for w in record] == [
        "W&B online init failed", "W&B logging disabled for this run: could not start",
    ]  # fmt: skip
    assert "service unreachable" in str(record[1].message) and tracker.run is None


def test_failure_mid_run_disables_wandb(tmp_path: Path) -> None:
    (tracker,) = build(wandb_cfg(tmp_path))
    run = tracker.run

    def broken_log(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    run.log = broken_log
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for row in STEP_ROWS:
            tracker.log_metrics(row)
        tracker.finish("completed")
    assert len(caught) == 1 and "disk full" in str(caught[0].message)
    assert tracker.run is None


def test_csv_logger(tmp_path: Path) -> None:
    cfg = OmegaConf.create(
        {"paths": {"output_dir": str(tmp_path)}, "logger": {"csv": {"filename": "m.csv"}}}
    )
    (tracker,) = build(cfg)
    for row in [*STEP_ROWS, EPOCH_ROW, {**EPOCH_ROW, "epoch": 2, "val_acc": 0.6}]:
        tracker.log_metrics(row)
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "epoch,step,train_loss,train_acc,val_loss,val_acc,epoch_time_s,lr"
    assert [line.split(",")[5] for line in lines[1:]] == ["0.55", "0.6"]
    assert build(OmegaConf.create({"paths": {"output_dir": "x"}, "logger": {}})) == []


def test_swept_keys_from_multirun_yaml_and_config(tmp_path: Path) -> None:
    task = ["experiment=cmp", "debug=fast", "optimizer=sgd,adam", "+lr=range(1,3)", "seed=0"]
    OmegaConf.save({"hydra": {"overrides": {"task": task}}}, tmp_path / "multirun.yaml")
    assert naming.swept_keys(tmp_path, {"recipe": "a,b"}) == {"optimizer", "lr", "recipe"}
    assert naming.swept_keys(tmp_path / "none", None) == set()


def test_checkpoint_artifact(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (tracker,) = build(wandb_cfg(run_dir, log_checkpoint=True))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    tracker.finish("completed")
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    offline_run(run_dir)  # waits for the exit record
    artifacts = [
        r.artifact for r in read_wandb_records(path) if r.WhichOneof("record_type") == "artifact"
    ]
    assert [(a.name, a.type) for a in artifacts] == [(f"checkpoint-{path.stem[4:]}", "model")]
    assert [e.path for e in artifacts[0].manifest.contents] == ["checkpoints/last.ckpt"]
