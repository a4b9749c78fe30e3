"""The confusion matrix of an evaluation as a figure (eval.py's `confusion_<key>.png`)."""

from __future__ import annotations

from matplotlib.figure import Figure


def confusion_figure(matrix: list[list[int]], class_names: list[str], title: str) -> Figure:
    """Rows: true class, columns: predicted; each cell shaded by its share of the row."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    n = len(class_names)
    size = min(3 + 0.45 * n, 20)
    fig = Figure(figsize=(size + 1, size), layout="tight")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class")
    if n <= 30:  # beyond that the labels and counts overlap
        ax.set_xticks(range(n), class_names, rotation=45, ha="right")
        ax.set_yticks(range(n), class_names)
        for i in range(n):
            for j in range(n):
                color = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return fig
