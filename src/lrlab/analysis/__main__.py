"""`python -m lrlab.analysis ...`: the `lrlab-compare` command."""

import sys

from lrlab.analysis.cli import main

sys.exit(main())
