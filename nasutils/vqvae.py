"""VQ-VAE and supervised VQ-VAE over the 22-field ResNet architecture vectors.

Method
------
An encoder MLP maps a standardized architecture vector ``x`` (22 fields) to a
continuous latent ``z_e`` (``latent_dim`` values). Quantization replaces ``z_e``
by its nearest codebook vector ``e_k`` in squared Euclidean distance, and a
decoder MLP maps that vector back to a standardized 22-vector ``x_hat``. The
argmin has no gradient, so the straight-through estimator passes the decoder's
gradient to ``z_e`` unchanged (``z_e + sg[e_k - z_e]``, where ``sg`` stops the
gradient). The report uses ``latent_dim = 8`` and ``codebook_size = 14``, one
codebook vector per accuracy bin.

Losses
------
All distances are squared Euclidean norms summed over the latent dimensions and
averaged over the rows of a batch. The reconstruction term is the mean squared
error over all fields of the standardized vectors.

``supervision="none"``, the report's plain VQ-VAE loss::

    MSE(x_hat, x) + ||sg[z_e] - e_k||^2 + beta * ||z_e - sg[e_k]||^2

The second term (codebook) moves ``e_k`` toward the encodings and the third
(commitment) keeps the encoder close to its codebook vector.

``supervision="report"``, the supervised loss exactly as the report writes it,
with ``y`` the row's accuracy bin and ``k`` its nearest codebook index::

    plain - I(k != y) * (||sg[z_e] - e_k||^2 + gamma * ||z_e - sg[e_k]||^2)

For a row with ``k != y`` the codebook term cancels and the commitment weight
becomes ``beta - gamma``. With ``gamma > beta`` the loss rewards moving ``z_e``
away from ``e_k`` without limit, so it is unbounded below and training can
diverge to ``-inf`` or NaN. Even when it stays finite, nothing in this loss
pulls an encoding toward the codebook vector of its own label.

``supervision="bounded"`` (the default), the variant used for the book's
figures::

    plain + pull_weight * (||sg[z_e] - e_y||^2 + beta * ||z_e - sg[e_y]||^2)
          + gamma * I(k != y) * max(0, margin - ||z_e - e_k||^2)

The pull term moves each encoding and its label's vector ``e_y`` toward each
other. The hinge push separates an encoding from a wrong nearest vector until
their squared distance reaches ``margin``. Every term is non-negative and the
push is at most ``gamma * margin``, so the loss cannot diverge. That is why it
is the default: it keeps the report's intent (encodings of one accuracy bin
gather at that bin's codebook vector) without the report's unbounded term.

Training standardizes every field with the mean and standard deviation of the
training split, stores that scaler with the model, and stops early on the
validation loss. The supervised variants start the codebook at standard normal
draws, and "none" starts it at encodings of random training rows.

During training the decoder's input is always a codebook vector. Decoding other
latents, such as ``z_e`` itself or random draws, therefore asks it for outputs
off its training distribution, and ``TrainedVQVAE.decode`` projects whatever
comes out onto the nearest valid architecture.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch import nn
from tqdm import tqdm

from . import __version__ as nasutils_version
from .space import RESNET_SPACE

__all__ = [
    "SUPERVISION_CHOICES",
    "VQVAE",
    "CheckpointError",
    "CheckpointMismatchError",
    "InvalidCheckpointError",
    "LatentSpaceMetrics",
    "Split",
    "SplitMismatchError",
    "Standardizer",
    "TrainedVQVAE",
    "VQVAEConfig",
    "VQVAEOutput",
    "evaluate_latent_space",
    "make_split",
    "nearest_codes",
    "train_vqvae",
    "vqvae_loss",
]

logger = logging.getLogger(__name__)

SUPERVISION_CHOICES: tuple[str, ...] = ("none", "report", "bounded")
"""Allowed values of :attr:`VQVAEConfig.supervision`."""

CHECKPOINT_FORMAT = "nasutils.vqvae"
CHECKPOINT_VERSION = 1
SPLIT_FORMAT = "nasutils.split"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class VQVAEConfig:
    """Hyperparameters of a VQ-VAE and of its training.

    ``hidden_sizes`` lists the encoder's hidden layer widths. The decoder uses
    them in reverse order. ``gamma`` weights the supervised push term of both
    supervised variants, ``margin`` is the hinge's squared latent distance of
    the "bounded" variant, and ``pull_weight`` weights its pull term.
    ``patience`` is the number of epochs without a lower validation loss after
    which training stops. Training also stops, flagged as diverged, when the
    absolute train or validation total exceeds ``divergence_threshold``. The
    "none" and "bounded" totals stay in the tens on the AnalogNAS data, so the
    default threshold only stops a loss that is running away, such as "report"
    with ``gamma > beta``.
    """

    latent_dim: int = 8
    codebook_size: int = 14
    hidden_sizes: tuple[int, ...] = (128, 64)
    beta: float = 0.25
    supervision: str = "bounded"
    gamma: float = 1.0
    margin: float = 1.0
    pull_weight: float = 1.0
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 1000
    patience: int = 50
    divergence_threshold: float = 1e6

    def __post_init__(self) -> None:
        # Accept any sequence, such as a list from JSON, and store a tuple so the
        # config stays hashable. Every config check raises ValueError, a wrong type too,
        # so callers catch one exception type.
        if isinstance(self.hidden_sizes, str) or not isinstance(self.hidden_sizes, Sequence):
            raise ValueError(  # noqa: TRY004
                f"hidden_sizes must be a sequence of positive integers, got {self.hidden_sizes!r}."
            )
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if not self.hidden_sizes:
            raise ValueError("hidden_sizes must list at least one hidden layer width, got ().")
        for width in self.hidden_sizes:
            _check_int("hidden_sizes entry", width, 1)

        _check_int("latent_dim", self.latent_dim, 1)
        _check_int("codebook_size", self.codebook_size, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("max_epochs", self.max_epochs, 1)
        _check_int("patience", self.patience, 1)
        _check_float("beta", self.beta, 0.0, "a finite number >= 0")
        _check_float("gamma", self.gamma, 0.0, "a finite number >= 0")
        _check_float("pull_weight", self.pull_weight, 0.0, "a finite number >= 0")
        _check_float("margin", self.margin, 0.0, "a finite number > 0", strict=True)
        _check_float("learning_rate", self.learning_rate, 0.0, "a finite number > 0", strict=True)
        _check_float(
            "divergence_threshold", self.divergence_threshold, 0.0, "a finite number > 0", strict=True
        )
        if self.supervision not in SUPERVISION_CHOICES:
            raise ValueError(
                f"supervision must be one of {', '.join(map(repr, SUPERVISION_CHOICES))}, "
                f"got {self.supervision!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict, with ``hidden_sizes`` as a list."""
        values = asdict(self)
        values["hidden_sizes"] = list(self.hidden_sizes)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> VQVAEConfig:
        """Build a config from :meth:`to_dict` output. Raises ``ValueError`` on unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown VQVAEConfig field(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(known))}."
            )
        return cls(**dict(values))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_float(name: str, value: Any, minimum: float, expected: str, *, strict: bool = False) -> None:
    valid = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if valid:
        valid = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not valid:
        raise ValueError(f"{name} must be {expected}, got {value!r}.")


# --------------------------------------------------------------------------- model


class VQVAEOutput(NamedTuple):
    """Result of :meth:`VQVAE.forward`.

    ``z_q`` has the values of the selected codebook vectors but passes its
    gradient to ``z_e`` (straight-through estimator).
    """

    x_hat: torch.Tensor
    z_e: torch.Tensor
    z_q: torch.Tensor
    indices: torch.Tensor


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    """Build Linear layers between consecutive widths, with ReLU after all but the last."""
    layers: list[nn.Module] = []
    for i, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(width_in, width_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Return the index of the nearest codebook vector (squared Euclidean) for each row of ``z``.

    Ties go to the lowest index. No gradient flows through the result.
    """
    with torch.no_grad():
        # (n, 1, d) - (1, K, d) -> (n, K, d), summed to (n, K) squared distances.
        distances = (z.unsqueeze(1) - codebook.unsqueeze(0)).pow(2).sum(dim=-1)
        return distances.argmin(dim=1)


class VQVAE(nn.Module):
    """Encoder MLP, codebook and decoder MLP of a VQ-VAE over standardized vectors."""

    def __init__(
        self,
        input_dim: int = RESNET_SPACE.dim,
        latent_dim: int = 8,
        codebook_size: int = 14,
        hidden_sizes: Sequence[int] = (128, 64),
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.latent_dim = latent_dim
        self.codebook_size = codebook_size
        self.encoder = _mlp([input_dim, *hidden_sizes, latent_dim])
        self.codebook = nn.Embedding(codebook_size, latent_dim)
        self.decoder = _mlp([latent_dim, *reversed(hidden_sizes), input_dim])

    @classmethod
    def from_config(cls, config: VQVAEConfig, input_dim: int = RESNET_SPACE.dim) -> VQVAE:
        return cls(input_dim, config.latent_dim, config.codebook_size, config.hidden_sizes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map standardized vectors (n, input_dim) to continuous latents z_e (n, latent_dim)."""
        return self.encoder(x)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the nearest codebook vectors (n, latent_dim) and their indices (n,).

        The vectors carry the codebook's gradient, not the encoder's. ``forward``
        adds the straight-through estimator.
        """
        indices = nearest_codes(z_e, self.codebook.weight)
        return self.codebook(indices), indices

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (n, latent_dim) to standardized vectors x_hat (n, input_dim)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        z_e = self.encode(x)
        z_q, indices = self.quantize(z_e)
        # Straight-through estimator: z_straight has the value of z_q but passes gradients to z_e.
        z_straight = z_e + (z_q - z_e).detach()
        return VQVAEOutput(self.decode(z_straight), z_e, z_straight, indices)


# --------------------------------------------------------------------------- losses


def _squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row squared Euclidean distance, shape (n,)."""
    return (a - b).pow(2).sum(dim=1)


def vqvae_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    z_e: torch.Tensor,
    codebook: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    config: VQVAEConfig,
) -> dict[str, torch.Tensor]:
    """Compute the loss terms of ``config.supervision`` and their weighted ``total``.

    ``codebook`` is the (K, latent_dim) weight matrix and ``labels`` the rows'
    accuracy bins in [0, K), required for the supervised variants. The nearest
    index ``k`` is found here from ``z_e`` and ``codebook``. Terms are returned
    unweighted, so ``total`` is the only value that includes beta, gamma and
    pull_weight.

    Every variant returns ``reconstruction``, ``codebook`` and ``commitment``.
    "report" adds ``push``, the mean over rows of
    ``I(k != y) * (codebook + gamma * commitment)``, which the total subtracts.
    "bounded" adds ``pull`` (codebook plus beta times commitment, toward ``e_y``)
    and ``push``, the mean hinge ``I(k != y) * max(0, margin - ||z_e - e_k||^2)``.
    """
    nearest = nearest_codes(z_e, codebook)
    e_k = codebook[nearest]

    reconstruction = (x_hat - x).pow(2).mean()
    codebook_rows = _squared_distance(z_e.detach(), e_k)
    commitment_rows = _squared_distance(z_e, e_k.detach())
    plain = reconstruction + codebook_rows.mean() + config.beta * commitment_rows.mean()
    terms = {
        "reconstruction": reconstruction,
        "codebook": codebook_rows.mean(),
        "commitment": commitment_rows.mean(),
    }
    if config.supervision == "none":
        terms["total"] = plain
        return terms

    if labels is None:
        raise ValueError(f"supervision={config.supervision!r} needs labels (accuracy bins), got None.")
    mismatch = (nearest != labels).to(z_e.dtype)

    if config.supervision == "report":
        push = (mismatch * (codebook_rows + config.gamma * commitment_rows)).mean()
        terms["push"] = push
        terms["total"] = plain - push
        return terms

    e_y = codebook[labels]
    pull_codebook = _squared_distance(z_e.detach(), e_y).mean()
    pull_commitment = _squared_distance(z_e, e_y.detach()).mean()
    pull = pull_codebook + config.beta * pull_commitment
    # The hinge lets gradient reach both z_e and e_k, so either may move apart.
    hinge = torch.clamp(config.margin - _squared_distance(z_e, e_k), min=0.0)
    push = (mismatch * hinge).mean()
    terms["pull"] = pull
    terms["push"] = push
    terms["total"] = plain + config.pull_weight * pull + config.gamma * push
    return terms


# --------------------------------------------------------------------------- scaling and splits


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-field mean and standard deviation of a training split, in original units."""

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]

    @classmethod
    def fit(cls, X: npt.ArrayLike) -> Standardizer:
        """Fit on the rows of ``X``. A constant field gets scale 1, so it maps to 0."""
        matrix = np.asarray(X, dtype=np.float64)
        scale = matrix.std(axis=0)
        scale[scale == 0] = 1.0
        return cls(mean=matrix.mean(axis=0), scale=scale)

    def transform(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale

    def inverse_transform(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(X, dtype=np.float64) * self.scale + self.mean


class SplitMismatchError(ValueError):
    """Raised when a split was made for a different number of rows than the data has."""


@dataclass(frozen=True, eq=False)
class Split:
    """Disjoint, sorted row indices of the training, validation and test sets of ``n`` rows."""

    n: int
    train: npt.NDArray[np.int64]
    validation: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_int("n", self.n, 1)
        parts = {}
        for name in ("train", "validation", "test"):
            indices = np.asarray(getattr(self, name))
            if indices.size and (indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer)):
                raise ValueError(
                    f"Split {name} indices must be a 1-D integer array, got shape {indices.shape} "
                    f"and dtype {indices.dtype}."
                )
            indices = np.sort(indices.astype(np.int64).reshape(-1))
            outside = indices[(indices < 0) | (indices >= self.n)]
            if outside.size:
                raise ValueError(
                    f"Split {name} indices must lie in [0, {self.n - 1}], got {outside[:5].tolist()}."
                )
            if np.unique(indices).size != indices.size:
                raise ValueError(f"Split {name} indices contain repeated rows.")
            object.__setattr__(self, name, indices)
            parts[name] = indices
        combined = np.concatenate(list(parts.values()))
        if np.unique(combined).size != combined.size:
            raise ValueError("Split train, validation and test indices must be disjoint.")

    def check_size(self, n: int) -> None:
        """Raise :class:`SplitMismatchError` unless this split was made for ``n`` rows."""
        if self.n != n:
            raise SplitMismatchError(
                f"The split was made for {self.n} rows but the data has {n}. "
                "Make a new split with make_split for this data."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPLIT_FORMAT,
            "n": self.n,
            "seed": self.seed,
            "train": self.train.tolist(),
            "validation": self.validation.tolist(),
            "test": self.test.tolist(),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Split:
        return cls(
            n=values["n"],
            train=np.asarray(values["train"], dtype=np.int64),
            validation=np.asarray(values["validation"], dtype=np.int64),
            test=np.asarray(values["test"], dtype=np.int64),
            seed=values.get("seed"),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the split as a JSON index file."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, n: int | None = None) -> Split:
        """Read a split saved by :meth:`save`. With ``n``, also check that it was made for ``n`` rows."""
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"Split file {path} is not valid JSON: {error}.") from error
        if not isinstance(values, dict) or values.get("format") != SPLIT_FORMAT:
            raise ValueError(f"{path} is not a split file saved by Split.save (format {SPLIT_FORMAT!r}).")
        missing = [key for key in ("n", "train", "validation", "test") if key not in values]
        if missing:
            raise ValueError(f"Split file {path} is missing the key(s) {', '.join(missing)}.")
        split = cls.from_dict(values)
        if n is not None:
            split.check_size(n)
        return split


def make_split(
    n: int,
    seed: int,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    labels: npt.ArrayLike | None = None,
) -> Split:
    """Split ``n`` rows at random into training, validation and test sets.

    ``fractions`` gives the three shares and must sum to 1. With ``labels``, the
    split is stratified. Each label's rows are shuffled and cut by the fractions,
    with validation and test sizes rounded per label, so every set keeps the
    label proportions up to rounding. Every row lands in exactly one set.
    """
    _check_int("n", n, 1)
    shares = [float(share) for share in fractions]
    if len(shares) != 3 or any(not math.isfinite(s) or s < 0 for s in shares) or abs(sum(shares) - 1) > 1e-9:
        raise ValueError(
            f"fractions must be three non-negative shares (train, validation, test) summing to 1, "
            f"got {tuple(fractions)!r}."
        )
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [np.arange(n)]
    else:
        label_array = np.asarray(labels).reshape(-1)
        if label_array.shape != (n,):
            raise ValueError(f"labels must have one entry per row ({n}), got shape {np.shape(labels)}.")
        groups = [np.flatnonzero(label_array == value) for value in np.unique(label_array)]

    train, validation, test = [], [], []
    for group in groups:
        shuffled = rng.permutation(group)
        n_validation = round(len(shuffled) * shares[1])
        n_test = round(len(shuffled) * shares[2])
        n_test = min(n_test, len(shuffled) - n_validation)
        validation.append(shuffled[:n_validation])
        test.append(shuffled[n_validation : n_validation + n_test])
        train.append(shuffled[n_validation + n_test :])
    return Split(
        n=n,
        train=np.concatenate(train),
        validation=np.concatenate(validation),
        test=np.concatenate(test),
        seed=seed,
    )


# --------------------------------------------------------------------------- checkpoints and the trained model


class CheckpointError(Exception):
    """Base class of the checkpoint errors."""


class InvalidCheckpointError(CheckpointError, ValueError):
    """Raised when a file is missing, corrupt or not a VQ-VAE checkpoint."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """Raised when a checkpoint was made for other data or another configuration."""


_CHECKPOINT_KEYS = (
    "format",
    "format_version",
    "input_dim",
    "state_dict",
    "codebook",
    "scaler_mean",
    "scaler_scale",
    "config",
    "seed",
    "data_sha256",
    "history",
    "best_epoch",
    "diverged",
    "split",
    "versions",
)


def _library_versions() -> dict[str, str]:
    # Convert with str() because torch.__version__ is a TorchVersion, which weights_only loading rejects.
    return {"torch": str(torch.__version__), "numpy": str(np.__version__), "nasutils": str(nasutils_version)}


def _check_features(X: npt.ArrayLike, dim: int) -> npt.NDArray[np.float64]:
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"Expected an (n, {dim}) matrix, got shape {matrix.shape}.")
    if not np.isfinite(matrix).all():
        raise ValueError("The architecture matrix contains NaN or infinite values, which cannot be encoded.")
    return matrix


@dataclass(eq=False)
class TrainedVQVAE:
    """A trained VQ-VAE with its scaler, configuration, seed and training record.

    ``history`` has one dict per epoch with ``epoch`` and the loss terms as
    ``train_<term>`` and ``validation_<term>``, so ``pandas.DataFrame(history)``
    tabulates it. ``best_epoch`` is the epoch whose weights the model has
    (0 means the initial weights). ``diverged`` is true when training stopped on
    a non-finite loss or one beyond ``config.divergence_threshold``.
    """

    model: VQVAE
    scaler: Standardizer
    config: VQVAEConfig
    seed: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    diverged: bool = False
    data_sha256: str | None = None
    split: Split | None = None

    def _features(self, X: npt.ArrayLike) -> torch.Tensor:
        matrix = _check_features(X, self.model.input_dim)
        return torch.as_tensor(self.scaler.transform(matrix), dtype=torch.float32)

    def _latents(self, Z: npt.ArrayLike) -> torch.Tensor:
        matrix = np.asarray(Z, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.model.latent_dim:
            raise ValueError(f"Expected latents of shape (n, {self.model.latent_dim}), got {matrix.shape}.")
        if not np.isfinite(matrix).all():
            raise ValueError("The latents contain NaN or infinite values.")
        return torch.as_tensor(matrix)

    @property
    def codebook(self) -> npt.NDArray[np.float32]:
        """Codebook vectors, shape (codebook_size, latent_dim)."""
        return self.model.codebook.weight.detach().numpy().copy()

    def encode(self, X: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Map architecture vectors (n, 22) in original units to continuous latents z_e (n, latent_dim)."""
        self.model.eval()
        with torch.no_grad():
            return self.model.encode(self._features(X)).numpy()

    def nearest_code(self, Z: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Return the index of the nearest codebook vector for each latent row."""
        return nearest_codes(self._latents(Z), self.model.codebook.weight).numpy()

    def quantize(self, Z: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Return the nearest codebook vector of each latent row, shape (n, latent_dim)."""
        return self.codebook[self.nearest_code(Z)]

    def decode_raw(self, Z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Decode latents as given (no quantization) to real 22-vectors in original units."""
        self.model.eval()
        with torch.no_grad():
            standardized = self.model.decode(self._latents(Z)).double().numpy()
        return self.scaler.inverse_transform(standardized)

    def decode(self, Z: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Decode latents to valid integer architectures with ``RESNET_SPACE.project``."""
        return RESNET_SPACE.project(self.decode_raw(Z))

    def reconstruct(self, X: npt.ArrayLike, *, quantized: bool = True) -> npt.NDArray[np.int64]:
        """Encode and decode architectures, through the codebook unless ``quantized=False``."""
        Z = self.encode(X)
        if quantized:
            Z = self.quantize(Z)
        return self.decode(Z)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint: a plain dict of tensors and built-in types, readable with weights_only=True."""
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "input_dim": self.model.input_dim,
            "state_dict": {name: tensor.detach().clone() for name, tensor in self.model.state_dict().items()},
            "codebook": self.model.codebook.weight.detach().clone(),
            "scaler_mean": torch.as_tensor(self.scaler.mean, dtype=torch.float64),
            "scaler_scale": torch.as_tensor(self.scaler.scale, dtype=torch.float64),
            "config": self.config.to_dict(),
            "seed": self.seed,
            "data_sha256": self.data_sha256,
            "history": [dict(record) for record in self.history],
            "best_epoch": self.best_epoch,
            "diverged": self.diverged,
            "split": self.split.to_dict() if self.split is not None else None,
            "versions": _library_versions(),
        }
        torch.save(checkpoint, Path(path))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expected_data_sha256: str | None = None,
        expected_config: VQVAEConfig | Mapping[str, Any] | None = None,
    ) -> TrainedVQVAE:
        """Read a checkpoint written by :meth:`save`.

        Raises :class:`InvalidCheckpointError` when the file is missing, corrupt
        or not such a checkpoint, and :class:`CheckpointMismatchError` when
        ``expected_data_sha256`` or ``expected_config`` differs from what the
        checkpoint was trained with. Different library versions only log a warning.
        """
        path = Path(path)
        checkpoint = _read_checkpoint(path)

        if expected_data_sha256 is not None and checkpoint["data_sha256"] != expected_data_sha256:
            recorded = checkpoint["data_sha256"] or "unknown (not recorded at training)"
            raise CheckpointMismatchError(
                f"Checkpoint {path} was trained on data with SHA-256 {recorded}, "
                f"but the expected data SHA-256 is {expected_data_sha256}. Retrain on this data."
            )
        try:
            config = VQVAEConfig.from_dict(checkpoint["config"])
        except (TypeError, ValueError) as error:
            raise InvalidCheckpointError(f"Checkpoint {path} has an invalid config: {error}") from error
        if expected_config is not None:
            expected = (
                expected_config
                if isinstance(expected_config, VQVAEConfig)
                else VQVAEConfig.from_dict(expected_config)
            )
            _check_config_match(path, config, expected)

        versions = checkpoint["versions"]
        if isinstance(versions, dict) and versions != _library_versions():
            logger.warning(
                "Checkpoint %s was saved with %s, but this process runs %s. Outputs may differ slightly.",
                path,
                versions,
                _library_versions(),
            )

        model = VQVAE.from_config(config, input_dim=int(checkpoint["input_dim"]))
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:
            raise InvalidCheckpointError(
                f"Checkpoint {path} has weights that do not fit its config: {error}"
            ) from error
        model.eval()
        scaler = Standardizer(
            mean=checkpoint["scaler_mean"].numpy().copy(), scale=checkpoint["scaler_scale"].numpy().copy()
        )
        split = Split.from_dict(checkpoint["split"]) if checkpoint["split"] is not None else None
        return cls(
            model=model,
            scaler=scaler,
            config=config,
            seed=int(checkpoint["seed"]),
            history=list(checkpoint["history"]),
            best_epoch=int(checkpoint["best_epoch"]),
            diverged=bool(checkpoint["diverged"]),
            data_sha256=checkpoint["data_sha256"],
            split=split,
        )


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InvalidCheckpointError(f"Checkpoint file {path} does not exist.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as error:
        # Malformed bytes make torch's weights-only unpickler raise many types. With
        # torch 2.13 these included UnpicklingError, RuntimeError, EOFError and IndexError.
        raise InvalidCheckpointError(
            f"Could not read {path} as a VQ-VAE checkpoint ({type(error).__name__}). The file is corrupt, "
            "truncated or not written by TrainedVQVAE.save."
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise InvalidCheckpointError(
            f"{path} is a torch file but not a VQ-VAE checkpoint (format {CHECKPOINT_FORMAT!r}). "
            "Load it with TrainedVQVAE.load only if TrainedVQVAE.save wrote it."
        )
    if checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise InvalidCheckpointError(
            f"Checkpoint {path} has format version {checkpoint.get('format_version')!r}, but "
            f"this nasutils reads only version {CHECKPOINT_VERSION}. Retrain or use the nasutils that wrote it."
        )
    missing = [key for key in _CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise InvalidCheckpointError(f"Checkpoint {path} is missing the key(s) {', '.join(missing)}.")
    return checkpoint


def _check_config_match(path: Path, found: VQVAEConfig, expected: VQVAEConfig) -> None:
    found_values, expected_values = found.to_dict(), expected.to_dict()
    differences = [
        f"{name}={found_values[name]!r} (expected {expected_values[name]!r})"
        for name in found_values
        if found_values[name] != expected_values[name]
    ]
    if differences:
        raise CheckpointMismatchError(
            f"Checkpoint {path} was trained with another configuration: {', '.join(differences)}. "
            "Retrain with the expected configuration or load without expected_config."
        )


# --------------------------------------------------------------------------- training


def _check_labels(bins: npt.ArrayLike | None, n: int, config: VQVAEConfig) -> npt.NDArray[np.int64] | None:
    if bins is None:
        if config.supervision != "none":
            raise ValueError(
                f"supervision={config.supervision!r} needs bins (accuracy bin per row), got None."
            )
        return None
    labels = np.asarray(bins)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"bins must be {n} integer labels, one per row, got shape {labels.shape} ({labels.dtype})."
        )
    if config.supervision != "none":
        outside = labels[(labels < 0) | (labels >= config.codebook_size)]
        if outside.size:
            raise ValueError(
                f"Supervised training needs bins in [0, {config.codebook_size - 1}] (one codebook vector "
                f"per bin), got {np.unique(outside)[:5].tolist()}. Raise codebook_size or relabel."
            )
    return labels.astype(np.int64)


def _init_codebook(
    model: VQVAE,
    data: torch.Tensor,
    config: VQVAEConfig,
    generator: torch.Generator,
) -> None:
    """Set the initial codebook vectors.

    Supervised variants draw every vector from a standard normal. The vectors
    then start far apart (expected squared distance ``2 * latent_dim``, 16 for
    the default, well above the default margin of 1) and the pull term gathers
    each bin's encodings at its own vector. The "none" variant starts each
    vector at the encoding of a distinct random training row under the freshly
    initialized encoder, so every vector is nearest to some rows at epoch 1.
    """
    # NOTE: chosen from one small experiment on the AnalogNAS data (seed 0, up to 300
    # epochs, default config). Vectors started at bin-mean encodings lay almost on top
    # of each other and most went unused. Standard normal vectors for "none" collapsed
    # to a single used vector.
    with torch.no_grad():
        if config.supervision != "none":
            vectors = torch.randn(model.codebook.weight.shape, generator=generator)
        else:
            encodings = model.encode(data)
            if config.codebook_size <= len(data):
                picks = torch.randperm(len(data), generator=generator)[: config.codebook_size]
            else:
                picks = torch.randint(len(data), (config.codebook_size,), generator=generator)
            vectors = encodings[picks]
        model.codebook.weight.copy_(vectors)


def _validation_terms(
    model: VQVAE, data: torch.Tensor, labels: torch.Tensor | None, config: VQVAEConfig
) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        output = model(data)
        terms = vqvae_loss(data, output.x_hat, output.z_e, model.codebook.weight, labels, config=config)
    return {name: value.item() for name, value in terms.items()}


def _run_epoch(
    model: VQVAE,
    optimizer: torch.optim.Optimizer,
    data: torch.Tensor,
    labels: torch.Tensor | None,
    config: VQVAEConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Train one pass over ``data`` in shuffled minibatches and return each term's mean over rows."""
    model.train()
    order = torch.randperm(len(data), generator=generator)
    sums: dict[str, float] = {}
    for start in range(0, len(data), config.batch_size):
        batch = order[start : start + config.batch_size]
        x = data[batch]
        y = labels[batch] if labels is not None else None
        output = model(x)
        terms = vqvae_loss(x, output.x_hat, output.z_e, model.codebook.weight, y, config=config)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item() * len(batch)
    return {name: total / len(data) for name, total in sums.items()}


def train_vqvae(
    X: npt.ArrayLike,
    bins: npt.ArrayLike | None,
    config: VQVAEConfig,
    *,
    split: Split,
    seed: int,
    progress: bool = False,
    data_sha256: str | None = None,
    num_threads: int | None = None,
) -> TrainedVQVAE:
    """Train a VQ-VAE on the training rows of ``split`` and stop early on its validation rows.

    ``X`` is the (n, 22) architecture matrix in original units and ``bins`` the
    accuracy bins, which may be None for ``supervision="none"``. Adam minimizes
    :func:`vqvae_loss` in shuffled minibatches. Training stops after
    ``config.patience`` epochs without a lower validation total, or when the
    loss diverges (see :class:`VQVAEConfig`), and the model keeps the weights of
    the epoch with the lowest validation total.

    The same seed, data, config and torch thread count give identical numbers on
    CPU. Weight initialization and codebook placement draw from torch's global
    generator, seeded with ``seed`` inside ``torch.random.fork_rng``, so the
    caller's random state is unchanged afterwards. ``num_threads``, when given,
    sets ``torch.set_num_threads`` for the run and restores the old value after.
    ``data_sha256`` is stored in the checkpoint to detect mismatched data on load.
    """
    features = _check_features(X, RESNET_SPACE.dim)
    labels = _check_labels(bins, len(features), config)
    split.check_size(len(features))
    if split.train.size == 0 or split.validation.size == 0:
        raise ValueError(
            f"Training needs non-empty training and validation sets, got {split.train.size} and "
            f"{split.validation.size} rows."
        )
    if num_threads is not None:
        _check_int("num_threads", num_threads, 1)

    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            trained = _fit(features, labels, config, split, seed, progress)
    finally:
        if num_threads is not None:
            torch.set_num_threads(previous_threads)
    trained.data_sha256 = data_sha256
    return trained


def _diverged(loss: float, config: VQVAEConfig) -> bool:
    return not math.isfinite(loss) or abs(loss) > config.divergence_threshold


def _fit(
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64] | None,
    config: VQVAEConfig,
    split: Split,
    seed: int,
    progress: bool,
) -> TrainedVQVAE:
    scaler = Standardizer.fit(features[split.train])
    data = torch.as_tensor(scaler.transform(features), dtype=torch.float32)
    label_tensor = torch.as_tensor(labels) if labels is not None else None

    def rows(indices: npt.NDArray[np.int64]) -> tuple[torch.Tensor, torch.Tensor | None]:
        index = torch.as_tensor(indices)
        return data[index], (label_tensor[index] if label_tensor is not None else None)

    train_data, train_labels = rows(split.train)
    validation_data, validation_labels = rows(split.validation)

    generator = torch.Generator().manual_seed(seed)
    model = VQVAE.from_config(config, input_dim=features.shape[1])
    _init_codebook(model, train_data, config, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)

    logger.info(
        "Training VQ-VAE (supervision=%s, seed %d) on %d rows, validating on %d, for up to %d epochs",
        config.supervision,
        seed,
        len(train_data),
        len(validation_data),
        config.max_epochs,
    )
    history: list[dict[str, float]] = []
    best_state = copy.deepcopy(model.state_dict())
    best_loss, best_epoch, epochs_without_improvement = math.inf, 0, 0
    diverged = False
    epochs = tqdm(range(1, config.max_epochs + 1), desc="VQ-VAE", unit="epoch", disable=not progress)
    for epoch in epochs:
        train_terms = _run_epoch(model, optimizer, train_data, train_labels, config, generator)
        validation_terms = _validation_terms(model, validation_data, validation_labels, config)
        record: dict[str, float] = {"epoch": epoch}
        record.update({f"train_{name}": value for name, value in train_terms.items()})
        record.update({f"validation_{name}": value for name, value in validation_terms.items()})
        history.append(record)
        epochs.set_postfix(train=train_terms["total"], validation=validation_terms["total"])

        validation_loss = validation_terms["total"]
        if _diverged(train_terms["total"], config) or _diverged(validation_loss, config):
            diverged = True
            logger.warning(
                "VQ-VAE loss diverged at epoch %d (train %s, validation %s, threshold %g). Stopping and "
                "restoring the weights of epoch %d",
                epoch,
                train_terms["total"],
                validation_loss,
                config.divergence_threshold,
                best_epoch,
            )
            break
        # NOTE: the "report" loss is unbounded below, so for it the lowest validation
        # total marks the most diverged weights, not the best model.
        if validation_loss < best_loss:
            best_loss, best_epoch, epochs_without_improvement = validation_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            epochs_without_improvement += 1
            if epochs_without_improvement >= config.patience:
                logger.info(
                    "Early stopping at epoch %d: no lower validation loss for %d epochs",
                    epoch,
                    config.patience,
                )
                break
    epochs.close()

    model.load_state_dict(best_state)
    model.eval()
    logger.info(
        "VQ-VAE training ran %d epochs; best validation loss %.5g at epoch %d",
        len(history),
        best_loss,
        best_epoch,
    )
    return TrainedVQVAE(
        model=model,
        scaler=scaler,
        config=config,
        seed=seed,
        history=history,
        best_epoch=best_epoch,
        diverged=diverged,
        split=split,
    )


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class LatentSpaceMetrics:
    """Measurements of a trained VQ-VAE on a set of rows (usually held out).

    Reconstruction rates compare whole projected architectures with the inputs.
    The ``quantized`` ones decode the nearest codebook vector, as the model's
    forward pass does, so at most ``codebook_size`` distinct architectures come
    out. The ``continuous`` ones decode ``z_e`` itself. Field match rates are per
    field name, after the same projection.

    ``label_purity`` is the share of rows whose nearest codebook vector is the
    one of their own bin. It is only meaningful for supervised variants, and
    about ``1 / codebook_size`` is chance level. ``label_within_one`` counts a
    code one bin away as a match too, since bins are ordered by accuracy.
    ``cluster_purity`` is the share of rows whose bin is the most common bin
    among rows of the same code, which suits every variant. ``knn_accuracy`` is
    the bin accuracy of a k-nearest neighbour classifier fitted on training
    encodings. ``codebook_usage`` is the
    share of codebook vectors that are nearest to at least one row, and
    ``perplexity`` is ``exp`` of the entropy (nats) of the code assignment
    distribution (1 for a single code, ``codebook_size`` for uniform use).
    ``random_valid_rate`` and ``codebook_valid_rate`` are the shares of decoded
    standard normal latents and decoded codebook vectors that are valid
    architectures after rounding to integers but before projection.
    """

    n_rows: int
    reconstruction_quantized: float
    reconstruction_continuous: float
    field_match_quantized: dict[str, float]
    field_match_continuous: dict[str, float]
    label_purity: float
    label_within_one: float
    cluster_purity: float
    knn_accuracy: float
    codebook_usage: float
    perplexity: float
    random_valid_rate: float
    codebook_valid_rate: float

    def summary(self) -> dict[str, float]:
        """Return the scalar measurements, without the per-field dicts."""
        return {name: value for name, value in asdict(self).items() if not isinstance(value, dict)}


def _field_match(decoded: npt.NDArray[np.int64], target: npt.NDArray[np.int64]) -> dict[str, float]:
    matches = (decoded == target).mean(axis=0)
    return {name: float(rate) for name, rate in zip(RESNET_SPACE.field_names, matches, strict=True)}


def evaluate_latent_space(
    trained: TrainedVQVAE,
    X: npt.ArrayLike,
    bins: npt.ArrayLike,
    indices: npt.ArrayLike,
    *,
    seed: int,
    train_indices: npt.ArrayLike | None = None,
    n_random: int = 1000,
    k: int = 5,
) -> LatentSpaceMetrics:
    """Measure reconstruction, label structure and decoder validity on the rows ``indices``.

    ``X`` and ``bins`` are the full dataset and ``indices`` selects the rows to
    measure, usually ``trained.split.test``. The k-nearest-neighbour classifier
    (``k`` neighbours) is fitted on the rows ``train_indices``, which default to
    ``trained.split.train``. ``seed`` seeds the ``n_random`` standard normal
    latents. See :class:`LatentSpaceMetrics` for each measurement.
    """
    features = _check_features(X, RESNET_SPACE.dim)
    labels = np.asarray(bins).reshape(-1)
    if labels.shape != (len(features),):
        raise ValueError(f"bins must have one entry per row ({len(features)}), got shape {np.shape(bins)}.")
    rows = np.asarray(indices, dtype=np.int64).reshape(-1)
    if rows.size == 0:
        raise ValueError("indices must select at least one row to evaluate.")
    if train_indices is None:
        if trained.split is None:
            raise ValueError("Pass train_indices, because this model has no stored split to take them from.")
        train_indices = trained.split.train
    train_rows = np.asarray(train_indices, dtype=np.int64).reshape(-1)
    _check_int("k", k, 1)
    _check_int("n_random", n_random, 1)
    if train_rows.size < k:
        raise ValueError(f"k={k} neighbours need at least {k} training rows, got {train_rows.size}.")

    target = features[rows].astype(np.int64)
    target_bins = labels[rows]
    latents = trained.encode(features[rows])
    codes = trained.nearest_code(latents)
    codebook = trained.codebook

    decoded_quantized = trained.decode(codebook[codes])
    decoded_continuous = trained.decode(latents)

    # Cluster purity: for each code, count the rows of its most common bin.
    majority_rows = 0
    for code in np.unique(codes):
        majority_rows += np.bincount(target_bins[codes == code]).max()

    classifier = KNeighborsClassifier(n_neighbors=k)
    classifier.fit(trained.encode(features[train_rows]), labels[train_rows])

    usage = np.bincount(codes, minlength=trained.config.codebook_size) / len(codes)
    nonzero = usage[usage > 0]
    random_latents = np.random.default_rng(seed).standard_normal((n_random, trained.config.latent_dim))

    return LatentSpaceMetrics(
        n_rows=int(rows.size),
        reconstruction_quantized=float((decoded_quantized == target).all(axis=1).mean()),
        reconstruction_continuous=float((decoded_continuous == target).all(axis=1).mean()),
        field_match_quantized=_field_match(decoded_quantized, target),
        field_match_continuous=_field_match(decoded_continuous, target),
        label_purity=float((codes == target_bins).mean()),
        label_within_one=float((np.abs(codes - target_bins) <= 1).mean()),
        cluster_purity=float(majority_rows / rows.size),
        knn_accuracy=float(classifier.score(latents, target_bins)),
        codebook_usage=float(nonzero.size / trained.config.codebook_size),
        perplexity=float(np.exp(-(nonzero * np.log(nonzero)).sum())),
        random_valid_rate=float(RESNET_SPACE.is_valid(np.round(trained.decode_raw(random_latents))).mean()),
        codebook_valid_rate=float(RESNET_SPACE.is_valid(np.round(trained.decode_raw(codebook))).mean()),
    )
