"""Hyperparameter search for the supervised VQ-VAE with Optuna.

The report tunes its supervised VQ-VAE with a Bayesian search that minimizes the
validation loss. :func:`run_study` does the same with Optuna's seeded TPE
sampler over the learning rate, beta, the supervision weight ``gamma``, the
hidden width, the batch size and the number of epochs. Every trial also records
the label purity and the k-nearest-neighbour bin accuracy on the validation
rows, because validation losses of trials with different weights (beta, gamma)
sum differently weighted terms and so rank the latent spaces only loosely.

The study's storage is a parameter (:func:`open_storage`): in memory for one
process, a journal file for several processes on one machine, or any database
URL that Optuna accepts (SQLite, PostgreSQL, MySQL) for several machines.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from . import __version__
from .vqvae import Split, VQVAEConfig, evaluate_latent_space, train_vqvae

__all__ = [
    "OBJECTIVES",
    "SearchRanges",
    "best_config",
    "load_best_config",
    "make_objective",
    "open_storage",
    "run_study",
    "save_best_config",
]

logger = logging.getLogger(__name__)

OBJECTIVES = ("validation_loss", "validation_reconstruction")
"""Values a trial can minimize: the total validation loss (the report's choice) or its MSE term."""

BEST_CONFIG_FORMAT = "nasutils.tuning.best"


@dataclass(frozen=True)
class SearchRanges:
    """Ranges of the searched hyperparameters; every bound is inclusive."""

    learning_rate: tuple[float, float] = (1e-4, 1e-2)
    beta: tuple[float, float] = (0.1, 1.0)
    gamma: tuple[float, float] = (0.1, 2.0)
    hidden_width: tuple[int, ...] = (64, 128, 256)
    batch_size: tuple[int, ...] = (32, 64, 128)
    epochs: tuple[int, int] = (20, 200)


def open_storage(storage: str | os.PathLike[str] | None) -> optuna.storages.BaseStorage | str | None:
    """Return the storage for ``optuna.create_study``.

    ``None`` keeps the study in memory. A path ending in ``.log`` or
    ``.journal``, or a string starting with ``journal:``, opens a journal file,
    which several processes on one machine may share. Any other string is passed
    to Optuna as a database URL, for example ``sqlite:///study.db``.
    """
    if storage is None:
        return None
    text = os.fspath(storage)
    if text.startswith("journal:"):
        text = text.removeprefix("journal:")
    elif "://" in text:
        return text
    elif not text.endswith((".log", ".journal")):
        raise ValueError(
            f"Cannot tell the storage kind of {text!r}: give a journal file ending in .log or "
            "'journal:PATH', or a database URL such as sqlite:///study.db."
        )
    Path(text).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(text))


def _config_from_params(base: VQVAEConfig, params: dict[str, Any]) -> VQVAEConfig:
    """Apply a trial's parameters to ``base``; the decoder mirrors the encoder's widths."""
    width = int(params["hidden_width"])
    return replace(
        base,
        learning_rate=float(params["learning_rate"]),
        beta=float(params["beta"]),
        gamma=float(params["gamma"]),
        hidden_sizes=(width, width // 2),
        batch_size=int(params["batch_size"]),
        max_epochs=int(params["epochs"]),
    )


def _suggest(trial: optuna.Trial, base: VQVAEConfig, ranges: SearchRanges) -> VQVAEConfig:
    params = {
        "hidden_width": trial.suggest_categorical("hidden_width", list(ranges.hidden_width)),
        "learning_rate": trial.suggest_float("learning_rate", *ranges.learning_rate, log=True),
        "beta": trial.suggest_float("beta", *ranges.beta),
        "gamma": trial.suggest_float("gamma", *ranges.gamma),
        "batch_size": trial.suggest_categorical("batch_size", list(ranges.batch_size)),
        "epochs": trial.suggest_int("epochs", *ranges.epochs),
    }
    return _config_from_params(base, params)


def make_objective(
    X: npt.ArrayLike,
    bins: npt.ArrayLike,
    split: Split,
    *,
    base: VQVAEConfig,
    seed: int,
    ranges: SearchRanges = SearchRanges(),
    objective: str = "validation_loss",
    data_sha256: str | None = None,
):
    """Return an Optuna objective that trains one VQ-VAE per trial and returns its validation score.

    Each trial trains with ``seed`` on ``split``'s training rows and scores the
    epoch with the lowest validation loss. The trial's user attributes record the
    validation purity, k-nearest-neighbour accuracy, best epoch and divergence.
    A diverged trial is pruned.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"Unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}.")
    features = np.asarray(X)
    labels = np.asarray(bins)

    def score(trial: optuna.Trial) -> float:
        config = _suggest(trial, base, ranges)
        trained = train_vqvae(features, labels, config, split=split, seed=seed, data_sha256=data_sha256)
        trial.set_user_attr("best_epoch", trained.best_epoch)
        trial.set_user_attr("diverged", trained.diverged)
        if trained.diverged:
            raise optuna.TrialPruned("training stopped on a non-finite loss")

        best = trained.history[trained.best_epoch - 1] if trained.best_epoch > 0 else None
        if best is None:
            raise optuna.TrialPruned("no epoch improved on the initial weights")
        metrics = evaluate_latent_space(
            trained, features, labels, split.validation, seed=seed, n_random=200
        )
        trial.set_user_attr("label_purity", metrics.label_purity)
        trial.set_user_attr("knn_accuracy", metrics.knn_accuracy)
        trial.set_user_attr("reconstruction", best["validation_reconstruction"])
        value = best["validation_total"] if objective == "validation_loss" else best["validation_reconstruction"]
        if not math.isfinite(value):
            raise optuna.TrialPruned("non-finite validation score")
        return float(value)

    return score


def run_study(
    X: npt.ArrayLike,
    bins: npt.ArrayLike,
    split: Split,
    *,
    n_trials: int,
    seed: int,
    base: VQVAEConfig = VQVAEConfig(),
    ranges: SearchRanges = SearchRanges(),
    storage: str | os.PathLike[str] | None = None,
    study_name: str = "supervised-vqvae",
    objective: str = "validation_loss",
    data_sha256: str | None = None,
    show_progress_bar: bool = False,
) -> optuna.Study:
    """Add ``n_trials`` trials to a TPE study (created or resumed) and return it.

    The TPE sampler is seeded with ``seed`` plus the number of trials the study
    already has, so a new in-memory study repeats its trials exactly and a
    resumed one draws new ones. Several processes sharing a journal file or
    database each add their own trials to the same study; give them different
    seeds, because the order of their trials depends on timing.
    """
    opened = open_storage(storage)
    # A resumed study seeds its sampler with seed plus its trial count, so the
    # new trials continue the search instead of repeating the first ones.
    try:
        existing = len(optuna.load_study(study_name=study_name, storage=opened).trials) if opened else 0
    except KeyError:
        existing = 0
    sampler = optuna.samplers.TPESampler(seed=seed + existing)
    study = optuna.create_study(
        study_name=study_name,
        storage=opened,
        sampler=sampler,
        direction="minimize",
        load_if_exists=True,
    )
    study.set_user_attr("objective", objective)
    study.set_user_attr("data_sha256", data_sha256)
    score = make_objective(
        X, bins, split, base=base, seed=seed, ranges=ranges, objective=objective, data_sha256=data_sha256
    )
    study.optimize(score, n_trials=n_trials, show_progress_bar=show_progress_bar)
    logger.info("Study %s has %d trials; best value %.5f", study_name, len(study.trials), study.best_value)
    return study


def best_config(study: optuna.Study, base: VQVAEConfig = VQVAEConfig()) -> VQVAEConfig:
    """Return ``base`` with the best trial's hyperparameters."""
    return _config_from_params(base, study.best_params)


def save_best_config(
    study: optuna.Study,
    path: str | os.PathLike[str],
    *,
    base: VQVAEConfig = VQVAEConfig(),
    extra: dict[str, Any] | None = None,
) -> VQVAEConfig:
    """Write the best configuration as JSON with its study's provenance, and return it."""
    config = best_config(study, base)
    record = {
        "format": BEST_CONFIG_FORMAT,
        "config": config.to_dict(),
        "best_value": study.best_value,
        "best_trial": study.best_trial.number,
        "objective": study.user_attrs.get("objective"),
        "data_sha256": study.user_attrs.get("data_sha256"),
        "n_trials": len(study.trials),
        "nasutils": __version__,
        "optuna": optuna.__version__,
        **(extra or {}),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n")
    return config


def load_best_config(path: str | os.PathLike[str], *, expected_data_sha256: str | None = None) -> VQVAEConfig:
    """Read a configuration written by :func:`save_best_config`.

    Raises ``ValueError`` when the file is not such a record or, with
    ``expected_data_sha256``, when the study ran on other data.
    """
    target = Path(path)
    try:
        record = json.loads(target.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read the tuned configuration {target}: {error}.") from error
    if not isinstance(record, dict) or record.get("format") != BEST_CONFIG_FORMAT:
        raise ValueError(f"{target} is not a tuned VQ-VAE configuration written by nasutils.tuning.")
    found = record.get("data_sha256")
    if expected_data_sha256 is not None and found != expected_data_sha256:
        raise ValueError(
            f"{target} was tuned on data with SHA-256 {found}, not {expected_data_sha256}. "
            "Rerun the hyperparameter search on this data."
        )
    return VQVAEConfig.from_dict(record["config"])
