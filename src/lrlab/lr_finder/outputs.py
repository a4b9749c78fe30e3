"""What a range test leaves behind: a printed table, lr_find.json and lr_find.png."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lrlab.lr_finder.range_test import LRFindResult
from lrlab.lr_finder.suggestions import suggestion_window


def format_table(result: LRFindResult, chosen: str | None = None) -> str:
    s = result.settings
    head = f"LR range test: {len(result.lrs)}/{result.num_it} steps"
    if s:
        head += f", lr {s['start_lr']:g} -> {s['end_lr']:g} ({s['mode']})"
    if result.stopped_early:
        head += f", stopped early ({result.stop_reason})"
    lines = [head, f"{'suggestion':<12}{'lr':>12}"]
    for name, lr in result.suggestions.items():
        value = f"{lr:.3e}" if lr is not None else "n/a"
        lines.append(f"{name:<12}{value:>12}" + ("  <- chosen" if name == chosen else ""))
    return "\n".join(lines)


def plot_result(result: LRFindResult, path: str | Path, chosen: str | None = None) -> None:
    """Loss vs lr on a log axis (smoothed, raw faintly), each suggestion marked and labelled."""
    from matplotlib.figure import Figure  # lazily; Figure needs no pyplot or global backend

    lrs = np.asarray(result.lrs, dtype=float)
    raw = np.asarray(result.raw_losses, dtype=float)
    smooth = np.asarray(result.smoothed_losses, dtype=float)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(lrs, raw, color="0.75", linewidth=0.8, label="loss")
    ax.plot(lrs, smooth, color="C0", linewidth=2, label="smoothed loss")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    title = "LR range test" + (
        f" (stopped early: {result.stop_reason})" if result.stopped_early else ""
    )
    ax.set_title(title)
    # The suggestion window sets the y range, so a diverged tail does not flatten the curve.
    win_lrs, win_losses = suggestion_window(result.lrs, result.smoothed_losses, result.num_it)
    if len(win_losses):
        lo, hi = float(win_losses.min()), float(win_losses.max())
        pad = 0.1 * (hi - lo) or 0.1 * abs(hi) or 0.1
        ax.set_ylim(lo - pad, hi + pad)
    markers = {"valley": "o", "slide": "s", "minimum": "v", "steep": "^"}
    for i, (name, lr) in enumerate(result.suggestions.items()):
        if lr is None or not len(win_lrs):
            continue
        y = float(np.interp(np.log10(lr), np.log10(win_lrs), win_losses))
        label = f"{name}: {lr:.2e}" + (" (lr at the lowest loss / 10)" if name == "minimum" else "")
        label += " (chosen)" if name == chosen else ""
        ax.plot([lr], [y], markers[name], color=f"C{i + 1}", markersize=9, label=label, zorder=3)
        ax.annotate(name, (lr, y), textcoords="offset points", xytext=(6, 6), color=f"C{i + 1}")
    ax.legend(loc="best")
    fig.savefig(path, dpi=120)


def save_result(result: LRFindResult, out_dir: str | Path, chosen: str | None = None) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_find.json").write_text(json.dumps(result.to_json(chosen), indent=2) + "\n")
    plot_result(result, out / "lr_find.png", chosen)
