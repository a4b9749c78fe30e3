"""Compare runs from their records: tidy DataFrames, group statistics, tables and figures.

    from lrlab.analysis import compare, write_report
    c = compare(["outputs/multiruns/2026-01-01/12-00-00"])
    c.runs, c.groups, c.epochs      # DataFrames: one row per run, per group, per run and epoch
    c.curves_figure()               # a matplotlib Figure
    write_report(c, "outputs/comparison")  # report.md, report.json, curves.png, lr.png

A domain package: it reads run directories (summary.json, metrics.jsonl, .hydra/overrides.yaml)
and needs only pandas, numpy, PyYAML and (lazily, for figures) matplotlib; no training code.
Modules: `runs` (loading), `stats` (grouping, statistics), `comparison` (`compare`),
`reference` (reference tables), `report` (markdown, JSON), `figures`, `cli` (`lrlab-compare`).
"""

from lrlab.analysis.comparison import Comparison, compare
from lrlab.analysis.reference import Reference, read_reference
from lrlab.analysis.report import format_mean_std, group_table, markdown, write_report
from lrlab.analysis.runs import RunFrames, find_run_dirs, load_runs
from lrlab.analysis.stats import (
    COUNTED_STATUSES,
    DEFAULT_IGNORE,
    STATUS_ORDER,
    curve_stats,
    mean_std,
)

__all__ = [
    "COUNTED_STATUSES",
    "DEFAULT_IGNORE",
    "STATUS_ORDER",
    "Comparison",
    "Reference",
    "RunFrames",
    "compare",
    "curve_stats",
    "find_run_dirs",
    "format_mean_std",
    "group_table",
    "load_runs",
    "markdown",
    "mean_std",
    "read_reference",
    "write_report",
]
