"""Compare runs: `python scripts/compare.py outputs/multiruns/<date>/<time>` (or run dirs...).

Groups the runs by every override but the seed and writes report.md (table per group, mean ±
std over seeds), report.json, curves.png and lr.png; prints the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a clone

from lrlab.report import DEFAULT_IGNORE, compare


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="multirun dirs and/or run dirs")
    p.add_argument("--metric", default="val_acc", help="epoch-row metric (default: val_acc)")
    p.add_argument(
        "--by",
        action="append",
        metavar="KEY",
        help="group by these override keys only (repeatable; default: all but the ignored)",
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
        "--out",
        type=Path,
        help="output dir (default: the single input dir, else ./outputs/comparison)",
    )
    p.add_argument("--no-figures", action="store_true", help="write only report.md/report.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        comparison = compare(
            args.paths,
            metric=args.metric,
            by=args.by,
            ignore=[*DEFAULT_IGNORE, *args.ignore],
            target=args.target,
        )
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or (Path(args.paths[0]) if len(args.paths) == 1 else Path("outputs/comparison"))
    written = comparison.write(out, figures=not args.no_figures)
    print(comparison.table())
    print()
    for path in written.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
