"""Figures of the book. Each function draws from package data and returns its matplotlib figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from .data import BIN_EDGES, Dataset
from .summary import structure_table

__all__ = ["accuracy_distribution", "accuracy_vs_structure", "latent_spaces", "training_curves", "use_book_style"]


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
