"""The built-in small residual network (`model=resnet9`, lrlab.models.resnet.ResNet9)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from lrlab.errors import ConfigError
from lrlab.models import build_model
from lrlab.models.groups import layer_groups
from lrlab.models.resnet import Residual, ResNet9
from lrlab.tasks.config import check_config
from tests.helpers import CONF, compose_cfg


def test_the_yaml_shows_the_values_the_model_is_built_with(tmp_path) -> None:
    cfg = compose_cfg(["model=resnet9"], tmp_path)
    check_config(cfg)
    shown = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "resnet9.yaml"))
    shown.pop("defaults")  # the training keys every model includes (conf/model/training/)
    training = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "training" / "default.yaml"))
    assert OmegaConf.to_container(cfg.model) == {**training, **shown}  # every value is shown
    model = build_model(cfg.model, num_classes=5, in_channels=3, image_size=64)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 64, 64, 128, 256, 256, 256]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4  # stem pooled
    assert isinstance(model.classifier[0], nn.AdaptiveMaxPool2d)


def test_residual_blocks_add_their_input() -> None:
    block = Residual(4)
    for p in block.body.parameters():
        nn.init.zeros_(p)  # f(x) = relu(bn(0)) with a zero BN shift: 0
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(block(x), x)


def test_page_defaults_and_any_input_size() -> None:
    model = ResNet9(num_classes=10, in_channels=3)  # Page's widths, stem not pooled
    assert model.classifier[-1].in_features == 512
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert sum(isinstance(m, Residual) for m in model.modules()) == 2
    small = ResNet9(num_classes=3, in_channels=1, channels=[4, 8], res_blocks=[1, 0], pool="avg")
    for size in (8, 13, 32):
        assert small(torch.randn(2, 1, size, size)).shape == (2, 3)


def test_logits_are_scaled() -> None:
    torch.manual_seed(0)
    model = ResNet9(3, 1, channels=[4, 8], res_blocks=[0, 1], logit_scale=1.0).eval()
    x = torch.randn(2, 1, 16, 16)
    unscaled = model(x)
    model.logit_scale = 0.125
    assert torch.allclose(model(x), unscaled * 0.125)


def test_channels_last_gives_the_same_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    model = ResNet9(5, 3, channels=[8, 16, 32], res_blocks=[0, 1, 1], stem_pool=True)
    nhwc = ResNet9(5, 3, channels=[8, 16, 32], res_blocks=[0, 1, 1], stem_pool=True)
    nhwc.load_state_dict(model.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32)
    a, b = model(x), nhwc(x.to(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-5)
    a.sum().backward()
    b.sum().backward()
    w, w_nhwc = model.stages[1][0].weight, nhwc.stages[1][0].weight
    assert w_nhwc.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(w.grad, w_nhwc.grad, atol=1e-4)


def test_layer_groups_are_stem_stages_and_head() -> None:
    model = ResNet9(5, 3, channels=[4, 8, 16], res_blocks=[0, 1, 0])
    groups = layer_groups(model)
    assert len(groups) == 4  # stem, stage 1, stage 2, head
    assert all(n.startswith("stages.0.") for n in groups[0])
    assert all(n.startswith("stages.1.") for n in groups[1])
    assert set(groups[-1]) == {"classifier.3.weight", "classifier.3.bias"}


def test_it_learns_a_separable_toy_problem() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    model = ResNet9(2, 1, channels=[8, 16], res_blocks=[1, 0], logit_scale=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert (model.eval()(x).argmax(1) == y).float().mean() > 0.95


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": []}, "model.channels=[] must list stage widths >= 1"),
        ({"channels": [8, 0], "res_blocks": [0, 0]}, "model.channels=[8, 0] must list"),
        (
            {"res_blocks": [0, 1]},
            "model.res_blocks=[0, 1] must give a count >= 0 for each of the 4",
        ),
        ({"pool": "sum"}, "model.pool='sum' is not one of ['avg', 'max']"),
        ({"dropout": 1.0}, "model.dropout must be in [0, 1), got 1.0"),
        ({"logit_scale": 0}, "model.logit_scale must be > 0, got 0"),
    ],
)
def test_bad_values_are_one_line_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        ResNet9(5, 3, **kwargs)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_misspelt_key_is_refused_with_a_hint(tmp_path) -> None:
    cfg = compose_cfg(["model=resnet9", "+model.res_block=[1,1,1,1]"], tmp_path)
    with pytest.raises(ConfigError, match="did you mean model.res_blocks"):
        check_config(cfg)
