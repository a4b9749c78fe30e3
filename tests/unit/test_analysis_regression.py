"""The same numbers as the report before lrlab.analysis, on a stored real sweep.

Why the reference files exist: `tests/fixtures/compare_sweep_reference/` holds the report.json
and report.md that the pre-pandas implementation (`src/lrlab/report.py`, main at 3c51b4b)
wrote for `tests/fixtures/compare_sweep/` (a small real sweep plus hand-made failed, missing and
interrupted runs; see tests/fixtures/README.md). They are a regression reference: the pandas
rewrite must give the same statistics and tables. Regenerate them only for an intended change
of the numbers, and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrlab.analysis import DEFAULT_IGNORE, compare, write_report
from lrlab.analysis.runs import override_key
from lrlab.analysis.stats import is_ignored

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SWEEP = FIXTURES / "compare_sweep"
REFERENCE = FIXTURES / "compare_sweep_reference"
CASES = [  # (reference file stem, compare() arguments)
    ("report", {}),
    ("report_val_loss", {"metric": "val_loss", "target": 2.25}),
]


def flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def table_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


@pytest.mark.parametrize(("stem", "kwargs"), CASES)
def test_same_numbers_as_the_pre_pandas_report(
    stem: str, kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)  # the reference was written from here: `Sources: compare_sweep`
    # pairwise=None: the pairwise section came after the reference (tests/unit/test_pairwise.py)
    written = write_report(compare([SWEEP.name], **kwargs), tmp_path, figures=False, pairwise=None)
    expected = json.loads((REFERENCE / f"{stem}.json").read_text())
    got = json.loads(written["json"].read_text())

    assert (got["metric"], got["target"]) == (expected["metric"], expected["target"])
    assert len(got["groups"]) == len(expected["groups"])
    for new, old in zip(got["groups"], expected["groups"], strict=True):
        # The one intended change: run-mechanics keys (trainer.num_threads) left the group key.
        old_key = [
            o for o in old.pop("overrides") if not is_ignored(override_key(o), DEFAULT_IGNORE)
        ]
        assert new.pop("overrides") == old_key
        assert list(new["status"].items()) == list(old["status"].items())  # same order
        # pandas sums in another order than numpy: floats equal up to the last bits
        new, old = flatten(new), flatten(old)
        assert new.keys() == old.keys()
        for key, value in old.items():
            if isinstance(value, float):
                assert new[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
            else:
                assert new[key] == value, key

    # every table cell as before (the header line naming the ignored keys is not a table)
    markdown = written["report"].read_text()
    assert table_lines(markdown) == table_lines((REFERENCE / f"{stem}.md").read_text())
