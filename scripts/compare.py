"""Compare runs: `python scripts/compare.py outputs/multiruns/<date>/<time>` (or run dirs...).

The same command as `lrlab-compare` (installed with the package; see docs/comparing.md).
"""

import sys

from lrlab.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
