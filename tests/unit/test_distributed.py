"""Data parallel pieces that need no process group: the shards, and the single-process hooks."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from lrlab.data import DataBundle
from lrlab.engine.distributed import shard_loaders
from lrlab.engine.step import TrainStep, evaluate


def bundle(n_train: int, n_val: int) -> DataBundle:
    from torch.utils.data import DataLoader

    train = TensorDataset(torch.arange(n_train).float()[:, None], torch.zeros(n_train).long())
    val = TensorDataset(torch.arange(n_val).float()[:, None], torch.zeros(n_val).long())
    gen = torch.Generator().manual_seed(0)
    return DataBundle(
        DataLoader(train, batch_size=4, shuffle=True, generator=gen),
        DataLoader(val, batch_size=4),
        num_classes=2,
        in_channels=1,
        image_size=1,
        class_names=["a", "b"],
    )


def shards(monkeypatch, world: int, n_train: int, n_val: int, epoch: int = 0):
    out = []
    for rank in range(world):
        monkeypatch.setenv("WORLD_SIZE", str(world))
        monkeypatch.setenv("RANK", str(rank))
        data = shard_loaders(bundle(n_train, n_val), seed=3)
        data.train_loader.sampler.epoch_of = lambda: epoch
        train = [int(v) for x, _ in data.train_loader for v in x[:, 0]]
        val = [int(v) for x, _ in data.val_loader for v in x[:, 0]]
        out.append((train, val))
    return out


def test_every_sample_is_in_one_shard_and_every_epoch_is_reshuffled(monkeypatch):
    (train0, val0), (train1, val1) = shards(monkeypatch, 2, n_train=10, n_val=7)
    assert len(train0) == len(train1) == 5 and sorted(train0 + train1) == list(range(10))
    assert sorted(val0 + val1) == list(range(7))  # no repeats: exact validation sums
    (again0, _), _ = shards(monkeypatch, 2, n_train=10, n_val=7)
    assert again0 == train0  # a function of (seed, epoch): a resume replays it
    (next0, _), _ = shards(monkeypatch, 2, n_train=10, n_val=7, epoch=1)
    assert next0 != train0


def test_uneven_shards_are_evened_out(monkeypatch):
    (train0, _), (train1, _) = shards(monkeypatch, 2, n_train=9, n_val=3)
    assert len(train0) == len(train1) == 5  # one sample repeated: the steps line up
    assert set(train0 + train1) == set(range(9))


def test_single_process_validation_is_unchanged():
    model = torch.nn.Linear(1, 2)
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"))
    data = bundle(8, 6)
    loss, acc = evaluate(model, data.val_loader, step)
    x, y = data.val_loader.dataset.tensors
    with torch.no_grad():
        logits = model(x)
    expected = torch.nn.functional.cross_entropy(logits, y).item()
    assert abs(loss - expected) < 1e-6
    # correct / total exactly (a float32 mean of 4 in 6 would differ in the 8th digit)
    assert acc == (logits.argmax(1) == y).sum().item() / len(y)
