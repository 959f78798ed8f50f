"""Figures of the book. Each function draws from package data and returns its matplotlib figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from scipy import stats

from .data import BIN_EDGES, Dataset
from .summary import structure_table
from .surrogate import regression_metrics

__all__ = [
    "accuracy_distribution",
    "accuracy_vs_structure",
    "drift_curves",
    "exploration_map",
    "latent_spaces",
    "learning_curves",
    "parity_plot",
    "residuals_by_bin",
    "search_curves",
    "training_curves",
    "uncertainty_vs_error",
    "use_book_style",
]


def use_book_style() -> None:
    """Set one seaborn style for every figure of the book."""
    sns.set_theme(context="notebook", style="whitegrid", palette="deep")
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight"})


def accuracy_distribution(dataset: Dataset) -> Figure:
    """Histogram of 1-day accuracy with the 14 bin edges and the bin counts."""
    fig, (ax_hist, ax_bins) = plt.subplots(1, 2, figsize=(11, 3.8), width_ratios=(3, 2))

    sns.histplot(dataset.accuracy, bins=60, ax=ax_hist, color="C0")
    for edge in BIN_EDGES:
        ax_hist.axvline(edge, color="C3", linewidth=0.8, alpha=0.7)
    ax_hist.axvline(float(np.median(dataset.accuracy)), color="k", linestyle="--", label="median")
    ax_hist.set_xlabel("measured 1-day accuracy")
    ax_hist.set_ylabel("architectures")
    ax_hist.legend(loc="upper left")
    ax_hist.set_title("Accuracy with bin edges (red)")

    counts = np.bincount(dataset.bins, minlength=len(BIN_EDGES) - 1)
    sns.barplot(x=np.arange(len(counts)), y=counts, ax=ax_bins, color="C0")
    ax_bins.set_xlabel("accuracy bin")
    ax_bins.set_ylabel("architectures")
    ax_bins.set_title("Architectures per bin")
    fig.tight_layout()
    return fig


def accuracy_vs_structure(dataset: Dataset) -> Figure:
    """Accuracy against depth (main and residual blocks) and width (channels, widening)."""
    data = structure_table(dataset)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), sharey=True)
    sns.boxplot(data=data, x="main blocks M", y="1-day accuracy", ax=axes[0], color="C0")
    sns.scatterplot(data=data, x="residual blocks (sum of R)", y="1-day accuracy", ax=axes[1], s=10, alpha=0.5)
    sns.scatterplot(data=data, x="first-layer channels", y="1-day accuracy", ax=axes[2], s=10, alpha=0.5)
    sns.scatterplot(data=data, x="mean widening factor", y="1-day accuracy", ax=axes[3], s=10, alpha=0.5)
    fig.tight_layout()
    return fig


def latent_spaces(
    panels: dict[str, tuple[np.ndarray, np.ndarray]],
    bins: np.ndarray,
    *,
    title: str,
) -> Figure:
    """Draw 2-D latent embeddings side by side, points coloured by accuracy bin, codebook vectors as crosses.

    ``panels`` maps a panel title to (embedded encodings, embedded codebook
    vectors). Codebook vector ``k`` is drawn in bin ``k``'s colour and labelled.
    """
    palette = sns.color_palette("viridis", n_colors=len(BIN_EDGES) - 1)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.8), squeeze=False)
    for ax, (name, (points, codes)) in zip(axes[0], panels.items(), strict=True):
        ax.scatter(points[:, 0], points[:, 1], c=[palette[b] for b in bins], s=8, alpha=0.6, linewidths=0)
        for k, (x, y) in enumerate(codes):
            ax.scatter(x, y, marker="X", s=120, color=palette[k], edgecolors="k", linewidths=1.0)
            ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, len(BIN_EDGES) - 2))
    fig.colorbar(mappable, ax=axes[0].tolist(), label="accuracy bin", fraction=0.03)
    fig.suptitle(title)
    return fig


def training_curves(histories: dict[str, list[dict[str, float]]], *, term: str = "total") -> Figure:
    """Plot train and validation loss per epoch, one panel per model."""
    fig, axes = plt.subplots(1, len(histories), figsize=(4.5 * len(histories), 3.4), squeeze=False)
    for ax, (name, history) in zip(axes[0], histories.items(), strict=True):
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h[f"train_{term}"] for h in history], label="train")
        ax.plot(epochs, [h[f"validation_{term}"] for h in history], label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{term} loss")
        if min(h[f"train_{term}"] for h in history) < 0:
            ax.set_yscale("symlog")
        ax.legend()
    fig.tight_layout()
    return fig


def _same_length(**arrays: np.ndarray) -> list[np.ndarray]:
    """Return the arrays as 1-D float arrays, or raise ValueError naming their lengths."""
    flat = [np.asarray(values, dtype=float).ravel() for values in arrays.values()]
    lengths = {name: len(values) for name, values in zip(arrays, flat, strict=True)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"The arrays must have one length, got {lengths}.")
    return flat


def parity_plot(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    bins: np.ndarray | None = None,
    quantity: str = "1-day accuracy",
) -> Figure:
    """Scatter predicted against measured values with the identity line, and RMSE and Kendall tau in the title.

    Pass out-of-fold predictions, so the errors are those on unseen
    architectures. With ``bins``, points are coloured by accuracy bin.
    """
    truth, predicted = _same_length(y_true=y_true, y_pred=y_pred)
    metrics = regression_metrics(truth, predicted)

    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    if bins is None:
        ax.scatter(truth, predicted, s=10, alpha=0.5, color="C0", linewidths=0)
    else:
        palette = sns.color_palette("viridis", n_colors=len(BIN_EDGES) - 1)
        labels = np.asarray(bins, dtype=int).ravel()
        ax.scatter(truth, predicted, s=10, alpha=0.6, c=[palette[b] for b in labels], linewidths=0)
        mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, len(BIN_EDGES) - 2))
        fig.colorbar(mappable, ax=ax, label="accuracy bin")

    low = float(min(truth.min(), predicted.min()))
    high = float(max(truth.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="k", linestyle="--", linewidth=1, label="identity")
    ax.set_xlabel(f"measured {quantity}")
    ax.set_ylabel(f"predicted {quantity}")
    ax.set_title(f"RMSE {metrics['rmse']:.4f}, Kendall tau {metrics['kendall_tau']:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def residuals_by_bin(y_true: np.ndarray, y_pred: np.ndarray, bins: np.ndarray) -> Figure:
    """Box plot of the residuals (predicted minus measured) per accuracy bin."""
    truth, predicted, labels = _same_length(y_true=y_true, y_pred=y_pred, bins=bins)
    residual = predicted - truth

    fig, ax = plt.subplots(figsize=(8, 3.8))
    sns.boxplot(x=labels.astype(int), y=residual, ax=ax, color="C0", fliersize=2)
    ax.axhline(0.0, color="k", linewidth=0.8)
    ax.set_xlabel("accuracy bin")
    ax.set_ylabel("residual (predicted - measured)")
    ax.set_title("Surrogate residuals per accuracy bin")
    fig.tight_layout()
    return fig


def uncertainty_vs_error(std: np.ndarray, abs_error: np.ndarray) -> Figure:
    """Scatter the ensemble spread against the absolute error, with their Spearman rho in the title.

    A useful uncertainty estimate ranks rows by error, so rho should be clearly positive.
    """
    spread, error = _same_length(std=std, abs_error=abs_error)
    rho = float(stats.spearmanr(spread, error).statistic)

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    sns.scatterplot(x=spread, y=error, ax=ax, s=10, alpha=0.5, linewidth=0)
    ax.set_xlabel("ensemble standard deviation")
    ax.set_ylabel("absolute error")
    ax.set_title(f"Spread against error (Spearman rho {rho:.3f})")
    fig.tight_layout()
    return fig


def learning_curves(curves: pd.DataFrame, *, metric: str, reference: dict[str, float] | None = None) -> Figure:
    """Mean over seeds of a rollout metric against timesteps, one line per agent, with a ±1 std band.

    ``reference`` maps a label to a horizontal line, for the values the report states.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4))
    sns.lineplot(data=curves, x="timesteps", y=metric, hue="agent", errorbar="sd", ax=ax)
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color=f"C{i + 2}", linestyle=":", label=label)
    ax.set_xlabel("timesteps")
    ax.legend()
    fig.tight_layout()
    return fig


def exploration_map(
    background: np.ndarray,
    bins: np.ndarray,
    codebook: np.ndarray,
    trajectories: list[np.ndarray],
    *,
    title: str,
    max_trajectories: int = 12,
) -> Figure:
    """Draw trajectories over an embedded latent space: green start, red cross at the end.

    All arrays are already in the 2-D embedding. ``background`` are the dataset
    encodings coloured by bin; codebook vectors are black crosses.
    """
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.scatter(background[:, 0], background[:, 1], c=bins, cmap="viridis", s=6, alpha=0.35, linewidths=0)
    ax.scatter(codebook[:, 0], codebook[:, 1], marker="X", s=70, color="k", label="codebook vectors")
    for i, path in enumerate(trajectories[:max_trajectories]):
        ax.plot(path[:, 0], path[:, 1], color=f"C{i % 10}", linewidth=1.2, alpha=0.9)
        ax.scatter(*path[0], color="tab:green", s=40, zorder=3)
        ax.scatter(*path[-1], color="tab:red", marker="x", s=60, zorder=3)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def search_curves(summary: pd.DataFrame, *, axis: str, title: str, reference: dict[str, float] | None = None) -> Figure:
    """Median best-so-far value per method against queries or seconds, with the interquartile band.

    ``summary`` comes from :func:`nasutils.search.summarize_curves`.
    """
    fig, ax = plt.subplots(figsize=(8, 4.4))
    for i, (method, rows) in enumerate(summary.groupby("method", sort=False)):
        color = f"C{i % 10}"
        ax.plot(rows[axis], rows["median"], color=color, label=method)
        ax.fill_between(rows[axis], rows["q25"], rows["q75"], color=color, alpha=0.2, linewidth=0)
    for j, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color="k", linestyle=(0, (1, 1 + j)), linewidth=1, label=label)
    if axis == "seconds":
        ax.set_xscale("log")
    ax.set_xlabel("surrogate queries" if axis == "queries" else "wall time (s)")
    ax.set_ylabel("best predicted 1-day accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def drift_curves(table: pd.DataFrame) -> Figure:
    """Analog test accuracy against time after programming, one line per architecture, ±1 std over seeds.

    ``table`` has columns architecture, time_s, accuracy_mean and accuracy_std.
    """
    fig, ax = plt.subplots(figsize=(8, 4.4))
    for i, (name, rows) in enumerate(table.groupby("architecture", sort=False)):
        ax.errorbar(
            rows["time_s"], rows["accuracy_mean"], yerr=rows["accuracy_std"],
            marker="o", capsize=3, color=f"C{i % 10}", label=name,
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("test accuracy (analog)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
