"""Figures as PNG bytes, drawn with matplotlib's Agg canvas so they render offline (`dvc plots show`
writes HTML that fetches vega from a CDN; these PNGs need nothing).

No pyplot: a Figure per call keeps no global state and opens no window.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from ssgan import metrics as M

LOSSES = (M.LOSS_SUP, M.LOSS_UNL, M.LOSS_GEN, M.LOSS_CONS, M.LOSS_VAT, M.LOSS_ENT)


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # Fixed metadata: the same curves give the same bytes, so DVC sees no change on a rerun.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def curves_png(history: Sequence[dict[str, float]], best_epoch: int, mode: str) -> bytes:
    return _png(curves_figure(history, best_epoch, mode))


def confusion_png(counts: np.ndarray, class_names: Sequence[str]) -> bytes:
    return _png(confusion_figure(counts, class_names))


def note_png(text: str) -> bytes:
    """A small figure holding one message: stands in for a figure that would mislead (a declared
    output must still exist for DVC)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 1))
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return _png(fig)


def curves_figure(history: Sequence[dict[str, float]], best_epoch: int, mode: str):
    """Val error and the losses against epoch, the epoch selected on val marked on both panels."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_val, ax_loss = fig.subplots(1, 2)
    ax_val.plot(epochs, [row[M.VAL_ERROR] for row in history], marker=".", color="tab:blue")
    best = next(row for row in history if row["epoch"] == best_epoch)
    ax_val.plot([best_epoch], [best[M.VAL_ERROR]], marker="*", markersize=14, color="tab:red", linestyle="none",
                label=f"selected: epoch {best_epoch}, {M.VAL_ERROR} {best[M.VAL_ERROR]:.4f}")
    ax_val.set(xlabel="epoch", ylabel=M.VAL_ERROR, title=f"{M.VAL_ERROR} ({mode})")
    ax_val.legend(loc="upper right")
    for name in LOSSES:
        if name in history[0]:
            ax_loss.plot(epochs, [row[name] for row in history], label=name)
    ax_loss.set(xlabel="epoch", ylabel="loss (epoch mean)", title="losses")
    ax_loss.legend(loc="upper right")
    for ax in (ax_val, ax_loss):
        ax.axvline(best_epoch, color="tab:red", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    return fig


def confusion_figure(counts: np.ndarray, class_names: Sequence[str]):
    """counts[true, predicted] as a heat map shaded by the share of the true class, counts in each cell."""
    from matplotlib.figure import Figure

    k = len(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * k + 2)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for t in range(k):
        for p in range(k):
            ax.text(p, t, str(int(counts[t, p])), ha="center", va="center", fontsize=8,
                    color="white" if shares[t, p] > 0.5 else "black")
    ax.set_xticks(range(k), labels=list(class_names), rotation=45 if max(map(len, class_names)) > 2 else 0)
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"test confusion matrix ({int(np.trace(counts))}/{int(counts.sum())} correct)")
    return fig


def sweep_png(rows: Sequence[dict], space: Sequence, column: str) -> bytes:
    return _png(sweep_figure(rows, space, column))


def sweep_figure(rows: Sequence[dict], space: Sequence, column: str):
    """One panel per searched key: each trial's `column` (its best val score) against the key's value.
    Log x for loguniform keys; choices and grid values as categories."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(space), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(space), squeeze=False)[0])
    colours = {"finished": "tab:blue", "stopped": "tab:orange", "failed": "tab:red"}
    for ax, param in zip(axes, space):
        scored = [r for r in rows if r.get(column) is not None]
        if param.kind in ("choice", "grid"):
            labels = [str(v) for v in param.values]
            xs = [labels.index(str(r[param.key])) if str(r[param.key]) in labels else -1 for r in scored]
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        else:
            xs = [float(r[param.key]) for r in scored]
            if param.kind == "loguniform":
                from matplotlib.ticker import NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on a short range
        for status, colour in colours.items():
            pts = [(x, r[column]) for x, r in zip(xs, scored) if r["status"].startswith(status)]
            if pts:
                ax.scatter(*zip(*pts), color=colour, label=status, s=30)
        ax.set(xlabel=param.key, ylabel=column)
    axes[0].legend(loc="best", fontsize="small")
    return fig


def label_curve_png(stats: Sequence[dict]) -> bytes:
    return _png(label_curve_figure(stats))


def label_curve_figure(stats: Sequence[dict]):
    """Test error (mean ± std over seeds) against labels per class, log x, one line per mode; `stats` as
    ssgan.sweep.curve.summary gives them."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for mode, colour in (("ssgan", "tab:blue"), ("supervised", "tab:orange")):
        points = [s for s in stats if s["mode"] == mode]
        if points:
            x = [s["labels_per_class"] for s in points]
            mean, std = np.array([s["mean"] for s in points]), np.array([s["std"] for s in points])
            ax.plot(x, mean, marker="o", color=colour, label=f"{mode} (n={points[0]['n']} seeds)")
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2)
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ticks = sorted({s["labels_per_class"] for s in stats})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="labels per class", ylabel=M.TEST_ERROR, title="test error against labels (mean ± std over seeds)")
    ax.legend(loc="upper right")
    return fig
