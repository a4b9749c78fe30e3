"""The LR range test and fastai's suggestions: pure algorithm (torch, numpy).

- `range_test`: the test itself, leaving model, optimizer, RNGs and shuffling untouched;
- `suggestions`: valley, slide, minimum, steep;
- `outputs`: the printed table, lr_find.json and lr_find.png;
- `LrFindConfig`: the `lr_find:` config.
"""

from lrlab.lr_finder.outputs import format_table, plot_result, save_result
from lrlab.lr_finder.range_test import LRFindResult, lr_schedule, range_test
from lrlab.lr_finder.settings import LrFindConfig
from lrlab.lr_finder.suggestions import SUGGESTIONS, suggest, suggestion_window

__all__ = [
    "SUGGESTIONS",
    "LRFindResult",
    "LrFindConfig",
    "format_table",
    "lr_schedule",
    "plot_result",
    "range_test",
    "save_result",
    "suggest",
    "suggestion_window",
]
