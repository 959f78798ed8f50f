"""Tests of nasutils.vqvae: losses, quantization, training, checkpoints, splits and evaluation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from nasutils.space import RESNET_SPACE
from nasutils.vqvae import (
    VQVAE,
    CheckpointMismatchError,
    InvalidCheckpointError,
    Split,
    SplitMismatchError,
    TrainedVQVAE,
    VQVAEConfig,
    evaluate_latent_space,
    make_split,
    train_vqvae,
    vqvae_loss,
)

# Small enough that every training in this module takes a fraction of a second.
TINY = VQVAEConfig(hidden_sizes=(16,), max_epochs=3, patience=2, supervision="bounded")

# Two latents, two codebook vectors and two rows, small enough to work out by hand.
# Row a = (0.5, 0) is nearest to e0 = (0, 0) at squared distance 0.25, and row
# b = (1.5, 1) is nearest to e1 = (2, 0) at squared distance 1.25. Both rows have
# label 1, so row a sits at a wrong vector and row b at its own.
Z_E = [[0.5, 0.0], [1.5, 1.0]]
CODEBOOK = [[0.0, 0.0], [2.0, 0.0]]
LABELS = [1, 1]
X = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
X_HAT = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
HAND = VQVAEConfig(
    latent_dim=2, codebook_size=2, hidden_sizes=(4,), beta=0.25, gamma=2.0, margin=2.0, pull_weight=0.5
)
RECONSTRUCTION = (1.0 + 4.0) / 6  # mean of the squared errors over 2 x 3 fields
CODEBOOK_TERM = (0.25 + 1.25) / 2  # distance of each row to its nearest vector
PLAIN = RECONSTRUCTION + CODEBOOK_TERM + 0.25 * CODEBOOK_TERM


def hand_loss(supervision: str, **changes: float) -> dict[str, float]:
    config = dataclasses.replace(HAND, supervision=supervision, **changes)
    terms = vqvae_loss(
        torch.tensor(X),
        torch.tensor(X_HAT),
        torch.tensor(Z_E),
        torch.tensor(CODEBOOK),
        torch.tensor(LABELS),
        config=config,
    )
    return {name: value.item() for name, value in terms.items()}


@pytest.fixture(scope="module")
def dataset(real_dataset):
    return real_dataset


@pytest.fixture(scope="module")
def split(dataset):
    return make_split(len(dataset), seed=0, labels=dataset.bins)


@pytest.fixture(scope="module")
def trained(dataset, split):
    return train_vqvae(dataset.X, dataset.bins, TINY, split=split, seed=0, data_sha256=dataset.sha256)


# --------------------------------------------------------------------------- losses


def test_plain_loss_hand_example():
    terms = hand_loss("none")

    assert terms["reconstruction"] == pytest.approx(RECONSTRUCTION)
    assert terms["codebook"] == pytest.approx(0.75)
    assert terms["commitment"] == pytest.approx(0.75)
    assert terms["total"] == pytest.approx(5 / 6 + 0.75 + 0.1875)
    assert set(terms) == {"reconstruction", "codebook", "commitment", "total"}


def test_report_loss_hand_example():
    terms = hand_loss("report")

    # Only row a is mismatched: (0.25 + gamma * 0.25) / 2 rows, with gamma = 2.
    assert terms["push"] == pytest.approx((0.25 + 2.0 * 0.25) / 2)
    assert terms["total"] == pytest.approx(PLAIN - 0.375)


def test_bounded_loss_hand_example():
    terms = hand_loss("bounded")

    # Pull toward e_y = e1: squared distances 2.25 (row a) and 1.25 (row b).
    assert terms["pull"] == pytest.approx(1.75 + 0.25 * 1.75)
    # Hinge of row a: max(0, 2 - 0.25). Row b is within the margin of e1 too, but
    # k == y there, so it adds nothing.
    assert terms["push"] == pytest.approx(1.75 / 2)
    assert terms["total"] == pytest.approx(PLAIN + 0.5 * 2.1875 + 2.0 * 0.875)


def test_bounded_hinge_zero_beyond_margin():
    terms = hand_loss("bounded", margin=0.1)

    assert terms["push"] == 0.0


def test_codebook_and_commitment_gradients():
    z_e = torch.tensor(Z_E, requires_grad=True)
    codebook = torch.tensor(CODEBOOK, requires_grad=True)
    config = dataclasses.replace(HAND, supervision="none")
    terms = vqvae_loss(torch.tensor(X), torch.tensor(X_HAT), z_e, codebook, config=config)
    terms["codebook"].backward(retain_graph=True)

    assert z_e.grad is None
    assert codebook.grad is not None
    assert codebook.grad.abs().sum() > 0

    codebook.grad = None
    terms["commitment"].backward()

    assert codebook.grad is None
    assert z_e.grad is not None
    assert z_e.grad.abs().sum() > 0


def test_report_loss_unbounded_below():
    # Moving row a away from e0, in the direction that keeps e0 nearest, lowers the
    # report's loss without limit whenever gamma > beta.
    config = dataclasses.replace(HAND, supervision="report")
    totals = []
    for distance in (1.0, 10.0, 100.0):
        z_e = torch.tensor([[-distance, 0.0], Z_E[1]])
        terms = vqvae_loss(
            torch.tensor(X),
            torch.tensor(X_HAT),
            z_e,
            torch.tensor(CODEBOOK),
            torch.tensor(LABELS),
            config=config,
        )
        totals.append(terms["total"].item())

    assert totals[0] > totals[1] > totals[2]
    assert totals[2] < -1000


def test_supervised_loss_needs_labels():
    config = dataclasses.replace(HAND, supervision="bounded")
    with pytest.raises(ValueError, match="needs labels"):
        vqvae_loss(
            torch.tensor(X), torch.tensor(X_HAT), torch.tensor(Z_E), torch.tensor(CODEBOOK), config=config
        )


# --------------------------------------------------------------------------- model


def test_quantize_returns_nearest_vector():
    torch.manual_seed(0)
    model = VQVAE(input_dim=5, latent_dim=3, codebook_size=7, hidden_sizes=(8,))
    z_e = torch.randn(50, 3) * 2
    z_q, indices = model.quantize(z_e)

    codebook = model.codebook.weight.detach().numpy()
    assert torch.equal(z_q, model.codebook.weight[indices])
    distances = ((z_e.numpy()[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=2)
    assert np.array_equal(indices.numpy(), distances.argmin(axis=1))


def test_straight_through_reaches_encoder():
    torch.manual_seed(0)
    model = VQVAE(input_dim=5, latent_dim=3, codebook_size=7, hidden_sizes=(8,))
    x = torch.randn(16, 5)
    output = model(x)
    (output.x_hat - x).pow(2).mean().backward()
    first_layer = model.encoder[0].weight

    assert first_layer.grad is not None
    assert first_layer.grad.abs().sum() > 0

    # Without the estimator the argmin blocks the gradient, which the check above would catch.
    model.zero_grad(set_to_none=True)
    z_q, _ = model.quantize(model.encode(x))
    (model.decode(z_q) - x).pow(2).mean().backward()
    assert first_layer.grad is None


def test_forward_shapes():
    model = VQVAE()
    output = model(torch.zeros(4, RESNET_SPACE.dim))

    assert output.x_hat.shape == (4, RESNET_SPACE.dim)
    assert output.z_e.shape == (4, 8)
    assert output.z_q.shape == (4, 8)
    assert output.indices.shape == (4,)


# --------------------------------------------------------------------------- training


def test_bounded_training_stays_finite(dataset, split):
    config = dataclasses.replace(TINY, max_epochs=5, patience=5)
    result = train_vqvae(dataset.X, dataset.bins, config, split=split, seed=1)

    assert len(result.history) == 5
    assert not result.diverged
    for record in result.history:
        for name, value in record.items():
            assert math.isfinite(value), f"epoch {record['epoch']}: {name} = {value}"


def test_report_training_flagged_diverged(dataset, split):
    # gamma = 1 > beta = 0.25, so the report's loss runs away within a few epochs.
    config = dataclasses.replace(
        TINY, supervision="report", max_epochs=40, patience=40, divergence_threshold=1e3
    )
    result = train_vqvae(dataset.X, dataset.bins, config, split=split, seed=0)
    last = result.history[-1]

    assert result.diverged
    assert len(result.history) < config.max_epochs
    assert abs(last["train_total"]) > 1e3 or abs(last["validation_total"]) > 1e3
    assert result.best_epoch == len(result.history) - 1


def test_training_repeats_with_seed(dataset, split):
    first = train_vqvae(dataset.X, dataset.bins, TINY, split=split, seed=3)
    torch.rand(10)  # The caller's random state must not matter.
    second = train_vqvae(dataset.X, dataset.bins, TINY, split=split, seed=3)
    other = train_vqvae(dataset.X, dataset.bins, TINY, split=split, seed=4)

    assert first.history == second.history
    assert first.best_epoch == second.best_epoch
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert first.history != other.history


def test_training_keeps_caller_state(dataset, split):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_vqvae(dataset.X, dataset.bins, TINY, split=split, seed=0, num_threads=2)

    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == 1


def test_early_stopping_restores_best_epoch(dataset, split):
    # A high learning rate makes the validation loss rise again within a few epochs.
    config = dataclasses.replace(TINY, learning_rate=0.1, max_epochs=8, patience=3)
    result = train_vqvae(dataset.X, dataset.bins, config, split=split, seed=0)
    losses = [record["validation_total"] for record in result.history]

    assert result.best_epoch < len(losses), "precondition: the loss must rise after the best epoch"
    assert losses[result.best_epoch - 1] == min(losses)
    assert len(losses) == result.best_epoch + config.patience

    validation = torch.as_tensor(result.scaler.transform(dataset.X[split.validation]), dtype=torch.float32)
    labels = torch.as_tensor(dataset.bins[split.validation])
    with torch.no_grad():
        output = result.model(validation)
        terms = vqvae_loss(
            validation, output.x_hat, output.z_e, result.model.codebook.weight, labels, config=config
        )
    assert terms["total"].item() == pytest.approx(min(losses), rel=1e-6)


def test_training_rejects_other_split(dataset):
    other = make_split(len(dataset) - 1, seed=0)
    with pytest.raises(
        SplitMismatchError, match=f"made for {len(dataset) - 1} rows but the data has {len(dataset)}"
    ):
        train_vqvae(dataset.X, dataset.bins, TINY, split=other, seed=0)


def test_supervised_training_needs_bins(dataset, split):
    with pytest.raises(ValueError, match="needs bins"):
        train_vqvae(dataset.X, None, TINY, split=split, seed=0)


def test_supervised_training_rejects_large_bins(dataset, split):
    config = dataclasses.replace(TINY, codebook_size=10)
    with pytest.raises(ValueError, match=r"bins in \[0, 9\]"):
        train_vqvae(dataset.X, dataset.bins, config, split=split, seed=0)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path, dataset, trained):
    path = tmp_path / "model.pt"
    trained.save(path)
    loaded = TrainedVQVAE.load(path, expected_data_sha256=dataset.sha256, expected_config=TINY)
    latents = trained.encode(dataset.X)

    assert np.array_equal(loaded.encode(dataset.X), latents)
    assert np.array_equal(loaded.decode_raw(latents), trained.decode_raw(latents))
    assert np.array_equal(loaded.decode(latents), trained.decode(latents))
    assert np.array_equal(loaded.codebook, trained.codebook)
    assert np.array_equal(loaded.scaler.mean, trained.scaler.mean)
    assert loaded.config == trained.config
    assert loaded.history == trained.history
    assert loaded.best_epoch == trained.best_epoch
    assert loaded.seed == trained.seed
    assert loaded.data_sha256 == dataset.sha256
    assert np.array_equal(loaded.split.test, trained.split.test)


def test_checkpoint_other_data_rejected(tmp_path, dataset, trained):
    path = tmp_path / "model.pt"
    trained.save(path)
    other = "0" * 64
    with pytest.raises(
        CheckpointMismatchError, match=f"SHA-256 {dataset.sha256}.*expected data SHA-256 is {other}"
    ):
        TrainedVQVAE.load(path, expected_data_sha256=other)


def test_checkpoint_other_config_rejected(tmp_path, trained):
    path = tmp_path / "model.pt"
    trained.save(path)
    with pytest.raises(CheckpointMismatchError, match=r"beta=0\.25 \(expected 0\.5\)"):
        TrainedVQVAE.load(path, expected_config=dataclasses.replace(TINY, beta=0.5))


def test_checkpoint_corrupt_file_rejected(tmp_path, trained):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InvalidCheckpointError, match=f"Could not read {garbage}.*corrupt"):
        TrainedVQVAE.load(garbage)

    good = tmp_path / "model.pt"
    trained.save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(InvalidCheckpointError, match=f"Could not read {truncated}"):
        TrainedVQVAE.load(truncated)


def test_checkpoint_foreign_torch_file_rejected(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.ones(3)}, path)
    with pytest.raises(InvalidCheckpointError, match=f"{path} is a torch file but not a VQ-VAE checkpoint"):
        TrainedVQVAE.load(path)


def test_checkpoint_missing_file_rejected(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(InvalidCheckpointError, match=f"{path} does not exist"):
        TrainedVQVAE.load(path)


# --------------------------------------------------------------------------- decoding and evaluation


def test_decode_random_latents_valid(trained):
    latents = np.random.default_rng(0).standard_normal((500, TINY.latent_dim)) * 3
    decoded = trained.decode(latents)

    assert decoded.shape == (500, RESNET_SPACE.dim)
    assert RESNET_SPACE.is_valid(decoded).all()


def test_reconstruct_through_codebook(dataset, trained):
    reconstructed = trained.reconstruct(dataset.X[:200])
    expected = trained.decode(trained.codebook[trained.nearest_code(trained.encode(dataset.X[:200]))])

    assert np.array_equal(reconstructed, expected)
    assert len(np.unique(reconstructed, axis=0)) <= TINY.codebook_size
    assert RESNET_SPACE.is_valid(reconstructed).all()


def test_nearest_code_matches_codebook(trained):
    codebook = trained.codebook

    assert codebook.shape == (TINY.codebook_size, TINY.latent_dim)
    assert np.array_equal(trained.nearest_code(codebook), np.arange(TINY.codebook_size))


def test_evaluate_latent_space_ranges(dataset, split, trained):
    metrics = evaluate_latent_space(trained, dataset.X, dataset.bins, split.test, seed=0)
    codes = trained.nearest_code(trained.encode(dataset.X[split.test]))

    assert metrics.n_rows == len(split.test)
    assert set(metrics.field_match_quantized) == set(RESNET_SPACE.field_names)
    assert metrics.codebook_usage == len(np.unique(codes)) / TINY.codebook_size
    assert metrics.label_purity == np.mean(codes == dataset.bins[split.test])
    assert 1.0 <= metrics.perplexity <= TINY.codebook_size
    for name, value in metrics.summary().items():
        if name != "perplexity" and name != "n_rows":
            assert 0.0 <= value <= 1.0, name


def test_evaluate_repeats_with_seed(dataset, split, trained):
    first = evaluate_latent_space(trained, dataset.X, dataset.bins, split.test, seed=5)
    second = evaluate_latent_space(trained, dataset.X, dataset.bins, split.test, seed=5)

    assert first == second


# --------------------------------------------------------------------------- splits


def test_split_stratified_covers_rows_once():
    labels = np.repeat(np.arange(4), 30)
    result = make_split(120, seed=0, labels=labels)
    combined = np.concatenate([result.train, result.validation, result.test])

    assert np.array_equal(np.sort(combined), np.arange(120))
    for label in range(4):
        assert np.sum(labels[result.validation] == label) == 3
        assert np.sum(labels[result.test] == label) == 3
        assert np.sum(labels[result.train] == label) == 24


def test_split_round_trip(tmp_path):
    original = make_split(50, seed=1)
    path = tmp_path / "split.json"
    original.save(path)
    loaded = Split.load(path, n=50)

    assert loaded.n == 50
    assert loaded.seed == 1
    assert np.array_equal(loaded.train, original.train)
    assert np.array_equal(loaded.validation, original.validation)
    assert np.array_equal(loaded.test, original.test)


def test_split_size_mismatch_rejected(tmp_path):
    path = tmp_path / "split.json"
    make_split(50, seed=1).save(path)
    with pytest.raises(SplitMismatchError, match="made for 50 rows but the data has 60"):
        Split.load(path, n=60)


def test_split_non_split_file_rejected(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a split file"):
        Split.load(path)


@pytest.mark.parametrize(
    ("fractions", "message"),
    [((0.5, 0.5), r"got \(0\.5, 0\.5\)"), ((0.8, 0.1, 0.2), r"got \(0\.8, 0\.1, 0\.2\)")],
)
def test_split_fractions_rejected(fractions, message):
    with pytest.raises(ValueError, match=message):
        make_split(10, seed=0, fractions=fractions)


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0"),
        ({"codebook_size": 2.5}, "codebook_size must be an integer >= 1, got 2.5"),
        ({"hidden_sizes": ()}, r"hidden_sizes must list at least one"),
        ({"hidden_sizes": (16, -4)}, "hidden_sizes entry must be an integer >= 1, got -4"),
        ({"beta": -0.1}, r"beta must be a finite number >= 0, got -0.1"),
        ({"gamma": float("nan")}, "gamma must be a finite number >= 0, got nan"),
        ({"margin": 0.0}, r"margin must be a finite number > 0, got 0.0"),
        ({"learning_rate": 0}, "learning_rate must be a finite number > 0, got 0"),
        ({"batch_size": True}, "batch_size must be an integer >= 1, got True"),
        ({"patience": 0}, "patience must be an integer >= 1, got 0"),
        ({"divergence_threshold": float("inf")}, "divergence_threshold must be a finite number > 0, got inf"),
        ({"supervision": "full"}, r"supervision must be one of 'none', 'report', 'bounded', got 'full'"),
    ],
)
def test_config_rejects_invalid_value(changes, message):
    with pytest.raises(ValueError, match=message):
        VQVAEConfig(**changes)


def test_config_dict_round_trip():
    config = VQVAEConfig(hidden_sizes=(32, 16), supervision="report", gamma=0.5)

    assert VQVAEConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["hidden_sizes"] == [32, 16]


def test_config_unknown_key_rejected():
    with pytest.raises(ValueError, match="Unknown VQVAEConfig field"):
        VQVAEConfig.from_dict({"latent_size": 4})
