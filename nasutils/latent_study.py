"""Train the VQ-VAE variants side by side and tabulate what their latent spaces achieve.

The book compares the plain VQ-VAE, the report's supervised loss as written and
the bounded supervised variant, each trained with the same configuration
(except the loss), split and seed. :func:`measurement_table` measures them on
the held-out test rows.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from .data import Dataset
from .vqvae import Split, TrainedVQVAE, VQVAEConfig, evaluate_latent_space, train_vqvae

__all__ = [
    "VARIANT_LABELS",
    "embed_2d",
    "measurement_table",
    "raw_knn_accuracy",
    "train_variants",
    "training_summary",
]

logger = logging.getLogger(__name__)

VARIANT_LABELS = {
    "none": "VQ-VAE",
    "bounded": "supervised VQ-VAE (bounded)",
    "report": "supervised VQ-VAE (report's loss)",
}
"""Display names of the loss variants, keyed by ``VQVAEConfig.supervision``."""

_METRIC_LABELS = {
    "label_purity": "nearest codebook vector is own bin's",
    "label_within_one": "nearest codebook vector within one bin",
    "cluster_purity": "cluster purity (majority bin per code)",
    "knn_accuracy": "5-NN bin accuracy in latent space",
    "codebook_usage": "share of codebook vectors in use",
    "perplexity": "code perplexity (max 14)",
    "reconstruction_quantized": "exact reconstruction via codebook",
    "reconstruction_continuous": "exact reconstruction from encoding",
    "mean_field_match": "mean per-field match via codebook",
    "codebook_valid_rate": "decoded codebook vectors already valid",
    "random_valid_rate": "decoded random latents already valid",
}


def train_variants(
    dataset: Dataset,
    split: Split,
    config: VQVAEConfig,
    *,
    seed: int,
    variants: tuple[str, ...] = ("none", "bounded", "report"),
    save_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, TrainedVQVAE]:
    """Train one model per loss variant with otherwise identical settings.

    With ``save_dir``, each model is saved there as ``vqvae_<variant>.pt``.
    """
    models = {}
    for variant in variants:
        variant_config = replace(config, supervision=variant)
        trained = train_vqvae(
            dataset.X,
            dataset.bins,
            variant_config,
            split=split,
            seed=seed,
            progress=progress,
            data_sha256=dataset.sha256,
        )
        logger.info(
            "Trained %s: best epoch %d of %d, diverged %s",
            variant, trained.best_epoch, len(trained.history), trained.diverged,
        )  # fmt: skip
        if save_dir is not None:
            trained.save(save_dir / f"vqvae_{variant}.pt")
        models[variant] = trained
    return models


def measurement_table(
    models: dict[str, TrainedVQVAE], dataset: Dataset, split: Split, *, seed: int
) -> pd.DataFrame:
    """Measure every model on its training rows and on the held-out test rows.

    Columns are (model, rows) pairs; rows are measurements. Training rows show
    what the loss optimized, test rows what carries over to unseen architectures.
    """
    columns = {}
    for variant, trained in models.items():
        for rows_name, rows in (("train", split.train), ("test", split.test)):
            metrics = evaluate_latent_space(trained, dataset.X, dataset.bins, rows, seed=seed)
            values = metrics.summary()
            values["mean_field_match"] = float(np.mean(list(metrics.field_match_quantized.values())))
            columns[(VARIANT_LABELS.get(variant, variant), rows_name)] = values
    table = pd.DataFrame(columns)
    order = [name for name in _METRIC_LABELS if name in table.index]
    return table.loc[order].rename(index=_METRIC_LABELS)


def training_summary(models: dict[str, TrainedVQVAE]) -> pd.DataFrame:
    """Return epochs trained, best epoch, best validation loss and divergence per model."""
    rows = {}
    for variant, trained in models.items():
        best = trained.history[trained.best_epoch - 1] if trained.best_epoch > 0 else {}
        rows[VARIANT_LABELS.get(variant, variant)] = {
            "epochs trained": len(trained.history),
            "best epoch": trained.best_epoch,
            "best validation loss": best.get("validation_total", float("nan")),
            "diverged": trained.diverged,
        }
    return pd.DataFrame(rows).T


def raw_knn_accuracy(dataset: Dataset, split: Split, *, k: int = 5) -> float:
    """Return the test bin accuracy of k-NN on standardized 22-vectors, a baseline for the latent k-NN."""
    X = dataset.X.astype(np.float64)
    scaler = StandardScaler().fit(X[split.train])
    classifier = KNeighborsClassifier(n_neighbors=k).fit(scaler.transform(X[split.train]), dataset.bins[split.train])
    return float(classifier.score(scaler.transform(X[split.test]), dataset.bins[split.test]))


def embed_2d(
    latents: npt.ArrayLike,
    codebook: npt.ArrayLike,
    *,
    method: str,
    seed: int,
    perplexity: float = 30.0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Embed encodings and codebook vectors in two dimensions with t-SNE or PCA.

    t-SNE has no transform for new points, so it embeds the encodings and the
    codebook vectors together. PCA is fitted on the encodings alone and is
    deterministic.
    """
    points = np.asarray(latents, dtype=np.float64)
    codes = np.asarray(codebook, dtype=np.float64)
    if method == "pca":
        pca = PCA(n_components=2).fit(points)
        return pca.transform(points), pca.transform(codes)
    if method == "tsne":
        joint = np.vstack([points, codes])
        embedded = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(joint)
        return embedded[: len(points)], embedded[len(points) :]
    raise ValueError(f"Unknown embedding method {method!r}; choose 'tsne' or 'pca'.")
