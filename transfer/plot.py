"""The transfer tables as a picture: one panel per detector block and metric, one bar per pre-train row (its
mean over seeds), each seed's value as a dot and the sample s.d. as an error bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixbench.base.io import atomic_write
from mixbench.transfer.stats import mean_sd

__all__ = ["figure", "write_plot"]


def _panels(blocks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[tuple[str, str]]]]:
    """(block, its metric columns with a measured value) for every block with measured rows."""
    out = []
    for b in blocks:
        cols = [(c, k) for c, k in b.get("columns", []) if any(r.values(k) for r in b["measured"])]
        if cols:
            out.append((b, cols))
    return out


def _panel(ax: Any, block: dict[str, Any], column: str, key: str) -> None:
    rows = [r for r in block["measured"] if r.values(key)]
    stats = [mean_sd(list(r.values(key).values())) for r in rows]
    xs = range(len(rows))
    ax.bar(xs, [m for m, _ in stats], yerr=[sd or 0.0 for _, sd in stats], capsize=4, color="#9ecae1",
           edgecolor="#3182bd", error_kw={"elinewidth": 1})
    for x, row in zip(xs, rows):
        values = list(row.values(key).values())
        ax.scatter([x] * len(values), values, s=14, color="black", zorder=3)
    ax.set_xticks(list(xs), [f"{r.name} (n={len(r.values(key))})" for r in rows], rotation=30, ha="right",
                  fontsize=8)
    ax.set_title(f"{block['detector']}, BN {block['bn_mode']}: {column}", fontsize=9)
    ax.set_ylabel("%", fontsize=8)


def figure(blocks: list[dict[str, Any]]) -> Any:
    """A matplotlib Figure (Agg canvas, no pyplot state) with one panel per block and metric."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = _panels(blocks)
    if not panels:
        raise ValueError("no measured row to plot")
    ncols = max(len(cols) for _, cols in panels)
    fig = Figure(figsize=(2.8 * ncols, 3.2 * len(panels)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), ncols, squeeze=False)
    for i, (block, cols) in enumerate(panels):
        for j in range(ncols):
            if j < len(cols):
                _panel(axes[i][j], block, *cols[j])
            else:
                fig.delaxes(axes[i][j])
    fig.suptitle("Transfer: mean over seeds (bars), s.d. (error bars), each seed (dots)", fontsize=10)
    return fig


def write_plot(blocks: list[dict[str, Any]], path: str | Path) -> Path:
    """Write :func:`figure` as a PNG, atomically (a failed write leaves no partial file)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the plot is written as PNG; give a file name ending in .png")
    fig = figure(blocks)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
