"""End to end: W&B tracker: offline runs read back from their `.wandb` file; failures never reach training."""

from __future__ import annotations

import json
import struct
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest

from lrlab.tracking import naming

wandb = pytest.importorskip("wandb")

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


@pytest.mark.slow  # imports torch and trains (digits, 3 batches)
def test_training_run_logs_the_lr_of_every_step_to_wandb(
    make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real training loop: W&B's history equals metrics.jsonl, value for value."""
    from lrlab.tasks.train import train
    from lrlab.tracking import read_jsonl

    monkeypatch.setattr(naming, "hydra_context", lambda: MULTIRUN)
    cfg = make_cfg("debug=fast", "optimizer=sgd", "scheduler=clr", "logger=[csv,wandb]")
    summary = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    rows = read_jsonl(run_dir / "metrics.jsonl")
    rec = offline_run(run_dir)
    assert (
        rec["run"].run_group == "2026-01-01/12-00-00"
        and rec["run"].display_name == "recipe=adam,seed=1"
    )
    local_steps = [r for r in rows if r["type"] == "step"]
    wandb_steps = [h for h in rec["history"] if "lr" in h]
    assert len(local_steps) == 3  # debug=fast: 3 batches, a row per step
    assert [h["lr"] for h in wandb_steps] == [r["lr"] for r in local_steps]
    assert [h["momentum"] for h in wandb_steps] == [r["momentum"] for r in local_steps]
    assert [h["trainer/step"] for h in wandb_steps] == [r["step"] for r in local_steps]
    (epoch,) = [h for h in rec["history"] if "val/acc" in h]
    assert epoch["val/acc"] == summary["best_val_acc"]
    assert rec["summary"]["status"] == "completed" and rec["exit_code"] == 0
    assert rec["config"]["optimizer"]["_target_"] == "torch.optim.SGD"
    assert (run_dir / "metrics.csv").is_file()


@pytest.mark.slow  # imports torch and trains (digits, 3 batches)
def test_forced_wandb_failure_leaves_a_completed_run_with_local_records(
    make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrlab.tasks.train import train
    from lrlab.tracking import read_jsonl

    calls = {"log": 0}
    real_init = wandb.init

    def flaky_init(*args: Any, **kwargs: Any) -> Any:
        run = real_init(*args, **kwargs)

        def broken_log(*a: Any, **k: Any) -> None:  # e.g. the service process died
            calls["log"] += 1
            raise ConnectionResetError("wandb service gone")

        run.log = broken_log
        return run

    monkeypatch.setattr(wandb, "init", flaky_init)
    cfg = make_cfg("debug=fast", "logger=wandb")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert summary["status"] == "completed"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["type"] for r in rows] == ["step", "step", "step", "epoch"]
    assert calls["log"] == 1  # disabled after the first failure
    assert [str(w.message) for w in caught if "W&B" in str(w.message)] == [
        f"W&B logging disabled for this run: log failed (ConnectionResetError: wandb service gone); "
        f"local records in {run_dir} continue"
    ]


@pytest.mark.slow
def test_multirun_jobs_are_separate_wandb_runs_in_one_group(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    sweep = tmp_path / "multiruns" / "2026-01-01" / "12-00-00"
    proc = run_cli(
        "train.py", "-m", "debug=fast", "data.image_size=8", "optimizer=sgd,adam", "seed=0",
        "logger=wandb", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = [offline_run(sweep / str(job)) for job in range(2)]
    # named by what the sweep varies (seed=0 is fixed here)
    assert [r["run"].display_name for r in runs] == ["optimizer=sgd", "optimizer=adam"]
    assert {r["run"].run_group for r in runs} == {"2026-01-01/12-00-00"}
    assert runs[0]["run"].run_id != runs[1]["run"].run_id
    assert {r["run"].job_type for r in runs} == {"train"}
    assert [r["exit_code"] for r in runs] == [0, 0]
    assert not (tmp_path / "wandb").exists()  # everything inside the run dirs


def test_find_lr_logs_its_plot_and_suggestions_as_a_find_lr_run(tmp_path: Path) -> None:
    from lrlab.tasks.find_lr import find_lr
    from tests.helpers import compose_cfg

    cfg = compose_cfg(["logger=wandb", "lr_find.num_it=30"], tmp_path / "run", "find_lr")
    result = find_lr(cfg)
    rec = offline_run(tmp_path / "run")
    assert rec["run"].job_type == "find_lr" and rec["exit_code"] == 0
    assert any(h.get("plots/lr_find/_type") == "image-file" for h in rec["history"])
    assert rec["summary"]["suggestions"]["valley"] == result["suggestions"]["valley"]
