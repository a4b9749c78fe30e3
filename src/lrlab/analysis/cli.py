"""`lrlab-compare` (also `python scripts/compare.py`, `python -m lrlab.analysis`): compare runs.

    lrlab-compare outputs/multiruns/<date>/<time> [--by KEY] [--reference CSV] [--plot-vs KEY]
                  [--pairwise welch|bootstrap|none] [--confidence 0.95]

Groups the runs by every override but the seed (or by `--by` keys only) and writes report.md
(table per group, mean ± std over seeds; per pair of groups the interval of the difference),
report.json, curves.png and lr.png; prints the tables.
See docs/comparing.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrlab.analysis.comparison import compare
from lrlab.analysis.reference import beside, beside_epochs, read_reference
from lrlab.analysis.report import (
    epochs_table,
    group_table,
    pairwise_table,
    reference_table,
    write_report,
)
from lrlab.analysis.stats import DEFAULT_IGNORE
from lrlab.errors import ConfigError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lrlab-compare", description="Compare runs: mean ± std per group of seeds."
    )
    p.add_argument("paths", nargs="+", help="multirun dirs and/or run dirs")
    p.add_argument("--metric", default="val_acc", help="epoch-row metric (default: val_acc)")
    p.add_argument(
        "--by",
        action="append",
        metavar="KEY",
        help="group by these override keys only (repeatable; default: all but the ignored); "
        "other varying keys are shown as searched parameters",
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="KEY",
        help=f"override keys not to group by, besides {', '.join(DEFAULT_IGNORE)} (repeatable)",
    )
    p.add_argument(
        "--target",
        type=float,
        help="report epochs to reach this metric value (default: 90%% of the best group's mean)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        metavar="CSV",
        help="reference results to set beside the groups, e.g. benchmarks/reference/seed_study.csv",
    )
    p.add_argument(
        "--plot-vs",
        action="append",
        default=[],
        metavar="KEY",
        help="plot each run's metric against this numeric override, e.g. optimizer.lr (repeatable)",
    )
    p.add_argument(
        "--plot-value",
        choices=("best", "final"),
        default="best",
        help="the per-run value --plot-vs plots (default: best)",
    )
    p.add_argument(
        "--pairwise",
        choices=("welch", "bootstrap", "none"),
        default="welch",
        help="interval of each pair of groups' difference of final means: Welch's t "
        "(default), a percentile bootstrap, or none",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="confidence level of the pairwise intervals (default: 0.95)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="output dir (default: the single input dir, else ./outputs/comparison)",
    )
    p.add_argument(
        "--no-figures", action="store_true", help="no curves.png/lr.png (--plot-vs still plots)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pairwise = None if args.pairwise == "none" else args.pairwise
    try:
        if not 0 < args.confidence < 1:
            raise ConfigError(f"--confidence must be in (0, 1), got {args.confidence}")
        reference = read_reference(args.reference, args.metric) if args.reference else None
        comparison = compare(
            args.paths,
            metric=args.metric,
            by=args.by,
            ignore=[*DEFAULT_IGNORE, *args.ignore],
            target=args.target,
        )
        out = args.out or (
            Path(args.paths[0]) if len(args.paths) == 1 else Path("outputs/comparison")
        )
        written = write_report(
            comparison,
            out,
            figures=not args.no_figures,
            plot_vs=args.plot_vs,
            plot_value=args.plot_value,
            reference=reference,
            pairwise=pairwise,
            confidence=args.confidence,
        )
    except (FileNotFoundError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(group_table(comparison))
    print()
    if pairwise and len(comparison.groups) > 1:
        table = comparison.pairwise(None, args.confidence, pairwise)
        print(f"Pairwise differences of the final {comparison.metric}:")
        print(pairwise_table(table, args.confidence, pairwise))
        print()
    if reference is not None:
        print(f"Against {reference.path}:")
        print(reference_table(beside(comparison, reference), reference.digits))
        at_epochs = beside_epochs(comparison, reference)
        if len(at_epochs):
            print("\nAt the reference's epochs:")
            print(epochs_table(at_epochs, reference.digits))
        print()
    for path in written.values():
        print(f"wrote {path}")
    return 0
