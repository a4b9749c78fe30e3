"""benchmarks/peers compares lrlab with hand-written loops: they must train the same network."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import lrlab
from lrlab.models.simple_cnn import SimpleCNN

ROOT = Path(lrlab.__file__).resolve().parents[2]  # the repository, wherever this test lives


def test_peers_simple_cnn_is_lrlabs():
    sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
    try:
        from common import SimpleCNN as PeersCNN
    finally:
        sys.path.remove(str(ROOT / "benchmarks" / "peers"))
    torch.manual_seed(0)
    ours = SimpleCNN(5, 3, channels=(32, 64, 128), hidden=128, dropout=0.25, init="kaiming")
    torch.manual_seed(0)
    theirs = PeersCNN(num_classes=5)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same layers, same init, same draws
    x = torch.randn(2, 3, 64, 64)
    ours.eval(), theirs.eval()
    assert torch.equal(ours(x), theirs(x))
