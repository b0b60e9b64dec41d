"""PNG figures of a run: training curves, per-layer firing rates, a spike raster.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly,
never through ``pyplot``: no global figure state, no display needed, safe in worker
processes and on headless machines.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_training_curves", "plot_firing_rates", "plot_raster"]

PathLike = str | os.PathLike[str]


def _save(fig: Figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path


def _series(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([float(row.get(key, math.nan)) for row in history], dtype=float)


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: PathLike, *, title: str = "") -> Path:
    """Loss, accuracy and learning rate per epoch.

    Parameters
    ----------
    history:
        Per-epoch rows with ``epoch``, ``train_loss``, ``test_loss``, ``train_acc``,
        ``test_acc`` (percent) and ``lr``; missing values are drawn as gaps.
    path:
        PNG to write.
    title:
        Figure title (e.g. ``"hw-tiny on digits"``).
    """
    if not history:
        raise ValueError("plot_training_curves needs at least one epoch of history")
    epochs = _series(history, "epoch")
    fig = Figure(figsize=(11, 3.4), layout="tight")
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    for split, style in (("train", "-o"), ("test", "-s")):
        ax_loss.plot(epochs, _series(history, f"{split}_loss"), style, ms=3, label=split)
        ax_acc.plot(epochs, _series(history, f"{split}_acc"), style, ms=3, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 [%]", title="accuracy")
    best = (
        np.nanmax(_series(history, "test_acc")) if np.isfinite(_series(history, "test_acc")).any() else None
    )
    if best is not None:
        ax_acc.axhline(best, color="gray", lw=0.8, ls="--", label=f"best test {best:.2f}%")
    ax_lr.plot(epochs, _series(history, "lr"), "-", color="tab:green")
    ax_lr.set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="schedule")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax_lr.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_firing_rates(rates: Mapping[str, float], path: PathLike, *, title: str = "") -> Path:
    """Horizontal bar chart: firing rate (spikes per neuron per time step) of every LIF layer."""
    if not rates:
        raise ValueError("plot_firing_rates needs at least one layer")
    names = list(rates)
    values = np.array([rates[n] for n in names], dtype=float)
    fig = Figure(figsize=(7.5, max(2.5, 0.22 * len(names) + 1.2)), layout="tight")
    ax = fig.subplots()
    y = np.arange(len(names))
    ax.barh(y, np.nan_to_num(values), color="tab:blue")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("firing rate (spikes / neuron / time step)")
    ax.set_xlim(0, max(0.05, float(np.nanmax(values)) * 1.15) if np.isfinite(values).any() else 1)
    for yi, v in zip(y, values, strict=True):
        if np.isfinite(v):
            ax.text(v, yi, f" {v:.3f}", va="center", fontsize=6)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "per-layer firing rate")
    return _save(fig, path)


def plot_raster(rasters: Mapping[str, torch.Tensor], path: PathLike, *, title: str = "") -> Path:
    """Spike raster per layer: one panel per layer, neurons on y, time steps on x.

    Parameters
    ----------
    rasters:
        ``{layer: [T, neurons]}`` 0/1 tensors (see :class:`golden.firing.FiringRecorder`).
    """
    if not rasters:
        raise ValueError("plot_raster needs at least one layer")
    names = list(rasters)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.0 * cols, 3.2 * rows), layout="tight")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, name in zip(axes, names, strict=False):
        train = rasters[name].to(torch.float32).numpy()
        steps, neurons = train.shape
        # One cell per (neuron, step): readable for a handful of steps as for hundreds.
        ax.imshow(
            train.T, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest", origin="lower"
        )
        ax.set_xticks(range(steps) if steps <= 16 else np.linspace(0, steps - 1, 9).round().astype(int))
        rate = float(train.mean()) if train.size else math.nan
        ax.set_title(f"{name}\nrate {rate:.3f}", fontsize=8)
        ax.set_xlabel("time step")
        ax.set_ylabel("neuron")
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return _save(fig, path)
