from __future__ import annotations

import numpy as np
import pytest
import torch

from nasutils import latent_study
from nasutils.notebook import compare_words
from nasutils.vqvae import TrainedVQVAE, VQVAEConfig, make_split

CONFIG = VQVAEConfig(hidden_sizes=(16, 8), max_epochs=3, patience=2)


@pytest.fixture(scope="module")
def trained(real_dataset, tmp_path_factory):
    torch.set_num_threads(1)
    split = make_split(len(real_dataset), seed=0, labels=real_dataset.bins)
    folder = tmp_path_factory.mktemp("models")
    models = latent_study.train_variants(
        real_dataset, split, CONFIG, seed=0, variants=("none", "bounded"), save_dir=folder
    )
    return models, split, folder


def test_variants_share_everything_but_the_loss(trained):
    models, _, _ = trained
    assert models["none"].config.supervision == "none"
    assert models["bounded"].config.supervision == "bounded"
    assert models["none"].config.max_epochs == models["bounded"].config.max_epochs == 3


def test_saved_models_reload(trained, real_dataset):
    models, _, folder = trained
    reloaded = TrainedVQVAE.load(folder / "vqvae_bounded.pt", expected_data_sha256=real_dataset.sha256)
    np.testing.assert_array_equal(reloaded.encode(real_dataset.X[:5]), models["bounded"].encode(real_dataset.X[:5]))


def test_measurement_table_has_train_and_test(trained, real_dataset):
    models, split, _ = trained
    table = latent_study.measurement_table(models, real_dataset, split, seed=0)
    assert list(table.columns) == [
        ("VQ-VAE", "train"),
        ("VQ-VAE", "test"),
        ("supervised VQ-VAE (bounded)", "train"),
        ("supervised VQ-VAE (bounded)", "test"),
    ]
    purity = table.loc["nearest codebook vector is own bin's"]
    assert ((purity >= 0) & (purity <= 1)).all()


def test_training_summary(trained):
    models, _, _ = trained
    summary = latent_study.training_summary(models)
    assert summary.loc["VQ-VAE", "epochs trained"] <= 3
    assert not summary.loc["supervised VQ-VAE (bounded)", "diverged"]


def test_raw_knn_beats_chance(real_dataset):
    split = make_split(len(real_dataset), seed=0, labels=real_dataset.bins)
    accuracy = latent_study.raw_knn_accuracy(real_dataset, split)
    assert accuracy > 1 / 14
    assert accuracy < 1


def test_embedding_shapes_and_method_check():
    latents = np.random.default_rng(0).normal(size=(60, 8))
    codebook = np.random.default_rng(1).normal(size=(14, 8))
    points, codes = latent_study.embed_2d(latents, codebook, method="pca", seed=0)
    assert points.shape == (60, 2)
    assert codes.shape == (14, 2)
    points, codes = latent_study.embed_2d(latents, codebook, method="tsne", seed=0, perplexity=5)
    assert points.shape == (60, 2)
    with pytest.raises(ValueError, match="Unknown embedding method 'umap'"):
        latent_study.embed_2d(latents, codebook, method="umap", seed=0)


@pytest.mark.parametrize(
    ("value", "reference", "tolerance", "words"),
    [(0.5, 0.3, 0.0, "higher than"), (0.3, 0.5, 0.0, "lower than"), (0.31, 0.3, 0.02, "about equal to")],
)
def test_compare_words(value, reference, tolerance, words):
    assert compare_words(value, reference, tolerance=tolerance) == words
