"""Bad input on the command line or in a config file, as a user types it: one line on stderr
naming the problem (with a did-you-mean for a misspelt key), exit status 2, no traceback.
Hydra's command line runs in this process (`cli_in_process`); one case runs as a real process."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli
from tests.helpers.cli import cli_in_process

TYPO_EXPERIMENT = "# @package _global_\ntrainer:\n  grad_clp: 1.0\n"
TYPO_TARGET_NODE = (
    "# @package _global_\ndefaults:\n  - override /optimizer: sgd\noptimizer:\n  momentun: 0.9\n"
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["+trainer.epoch=3"], "trainer.epoch is not a key of trainer; did you mean trainer.epochs?"),
        (["trainer.epoch=3"], "trainer.epoch is not a key of trainer; did you mean trainer.epochs?"),
        (["--config-dir", "{conf}", "experiment=typo"],
         "trainer.grad_clp is not a key of trainer; did you mean trainer.grad_clip? "
         "(in experiment/typo.yaml)"),
        # a `_target_` node has no schema: checked against the target's signature
        (["optimizer=sgd", "optimizer.momentun=0.9"],  # without +: Hydra's error, same hint
         "optimizer.momentun is not a key of optimizer; did you mean optimizer.momentum?"),
        (["optimizer=sgd", "+optimizer.momentun=0.9"],
         "optimizer.momentun is not a key of optimizer; did you mean optimizer.momentum?"),
        (["--config-dir", "{conf}", "experiment=typo_target"],
         "optimizer.momentun is not a key of optimizer; did you mean optimizer.momentum?"),
        (["+foo=1"], "foo is not a key of the config"),
        (["trainer.epochs=abc"],
         "trainer.epochs: Value 'abc' of type 'str' could not be converted to Integer"),
        (["data.batch_size=1.5"],
         "data.batch_size: Value '1.5' of type 'float' could not be converted to Integer"),
        (["model.frozen_bn_eval=maybe"], "model.frozen_bn_eval: Value 'maybe' is not a valid bool"),
        (["optimizer=adamm"],
         "In 'train': Could not find 'optimizer/adamm'; Available options in 'optimizer': "
         "adadelta, adagrad, adam, adamax, adamw, lamb, lion, nadam, radam, rmsprop, sgd"),
        (["optimizer=sgd", "optimizer.nesterov=flase"], "optimizer.nesterov='flase' must be true or false"),
        (["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas=[0.9] must list 2 numbers"),
        (["seed=-1"], "seed=-1 must be an integer in [0, 2**32)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_with_exit_status_2(tmp_path, args, expected):
    conf = tmp_path / "my_conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "typo.yaml").write_text(TYPO_EXPERIMENT)
    (conf / "experiment" / "typo_target.yaml").write_text(TYPO_TARGET_NODE)
    args = [a.format(conf=conf) for a in args]
    result = cli_in_process("train.py", *args, "trainer.epochs=1", "trainer.limit_train_batches=1",
                            cwd=tmp_path)  # fmt: skip
    assert_one_line_exit_2(result, expected)


@pytest.mark.slow
def test_a_real_process_prints_one_line_and_exits_2(tmp_path):
    """The same through the interpreter: train.py's own wiring, no traceback, status 2."""
    result = run_cli("train.py", "optimizer=sgd", "+optimizer.momentun=0.9", cwd=tmp_path)
    assert_one_line_exit_2(
        result, "optimizer.momentun is not a key of optimizer; did you mean optimizer.momentum?"
    )


def assert_one_line_exit_2(result, expected: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {expected}"), lines[0]
    assert "Config search path" not in lines[0]
