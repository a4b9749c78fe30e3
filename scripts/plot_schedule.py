"""See a schedule before you run it: `python scripts/plot_schedule.py scheduler=onecycle`.
The same as the `lrlab-schedule` console script (lrlab.cli.preview)."""

import sys

from lrlab.cli.preview import main

if __name__ == "__main__":
    sys.exit(main())
