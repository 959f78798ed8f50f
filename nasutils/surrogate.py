"""XGBoost surrogates of the measured targets: fit, fast prediction, cross-validation, save and load.

A surrogate maps the 22-vector of an architecture (:mod:`nasutils.space` order,
block types as integer codes A=1 to D=4) to one target of the dataset:
``1_day_accuracy``, ``1_day_accuracy_std`` or ``AVM``. The report fits an
XGBoost regressor with 150 trees; :class:`SurrogateRegressor` does the same and
:class:`SurrogateEnsemble` adds a spread across seeded members as an
uncertainty estimate.

Prediction is tuned for the search agent, which requests 1 to 64 rows per
call. Small batches go through a NumPy copy of the trees
(:class:`_CompiledForest`), which avoids XGBoost's fixed cost per call and adds
the leaf values in XGBoost's order, so both paths return the same float32
values. Larger batches go to ``Booster.inplace_predict``.

Files: :meth:`SurrogateRegressor.save` writes XGBoost's model JSON to a
``.json`` path and a metadata file beside it (``model.json`` gets
``model.meta.json``). :meth:`SurrogateEnsemble.save` writes a folder with
``metadata.json`` and one model JSON per member (``member-00.json``, ...).
The metadata records the target, feature names, parameters, the SHA-256 of the
training data and of each model file, and the library versions.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy
import sklearn
import xgboost as xgb
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import KFold, StratifiedKFold

from . import __version__
from .data import TARGET_COLUMNS, Dataset, sha256_file
from .space import RESNET_SPACE

__all__ = [
    "FAST_PATH_MAX_ROWS",
    "FEATURE_NAMES",
    "METRICS",
    "CrossValidationResult",
    "SurrogateEnsemble",
    "SurrogateFileError",
    "SurrogateFileNotFoundError",
    "SurrogateRegressor",
    "benchmark_predict",
    "cross_validate_surrogate",
    "cross_validate_targets",
    "fit_surrogate",
    "regression_metrics",
    "top_fraction_precision",
]

logger = logging.getLogger(__name__)

FEATURE_NAMES: tuple[str, ...] = RESNET_SPACE.field_names
"""Input columns of every surrogate, in :mod:`nasutils.space` order."""

N_FEATURES = len(FEATURE_NAMES)

FAST_PATH_MAX_ROWS = 48
"""Batches up to this many rows are predicted with NumPy, larger ones with XGBoost.

Measured with :func:`benchmark_predict` on a 2-core AMD EPYC virtual machine
(xgboost 3.2.0, 150 trees of depth 6): NumPy took about 30 microseconds for one
row and XGBoost about 200, and the two were equal near 64 rows. The crossover is
an estimate for that machine. Both paths return the same values.
"""

REGRESSOR_FORMAT = "nasutils.surrogate.regressor"
ENSEMBLE_FORMAT = "nasutils.surrogate.ensemble"
FORMAT_VERSION = 1
ENSEMBLE_METADATA = "metadata.json"

METRICS: tuple[str, ...] = ("rmse", "mae", "kendall_tau", "spearman_rho", "top10_precision")
"""Metric columns of the cross-validation tables, defined in :func:`regression_metrics`."""


class SurrogateFileError(ValueError):
    """Raised when a saved surrogate cannot be loaded or does not match what the caller expects."""


class SurrogateFileNotFoundError(SurrogateFileError, FileNotFoundError):
    """Raised when a model file or its metadata file does not exist."""


# --- Input validation ------------------------------------------------------------


def _as_features(X: Any) -> npt.NDArray[np.float32]:
    """Return ``X`` as a C-contiguous float32 (n, 22) array, or raise ``ValueError``."""
    if isinstance(X, np.ndarray) and X.dtype == np.float32 and X.flags.c_contiguous:
        features = X
    else:
        columns = getattr(X, "columns", None)
        if columns is not None and tuple(str(c) for c in columns) != FEATURE_NAMES:
            raise ValueError(
                f"X has columns {list(columns)}, expected the {N_FEATURES} architecture columns "
                f"in nasutils.space order: {list(FEATURE_NAMES)}. Select them with "
                "frame[list(nasutils.surrogate.FEATURE_NAMES)]."
            )
        features = np.ascontiguousarray(X, dtype=np.float32)

    if features.ndim != 2 or features.shape[1] != N_FEATURES:
        raise ValueError(
            f"X has shape {features.shape}, expected (n, {N_FEATURES}): one row per architecture "
            f"with its {N_FEATURES} fields in nasutils.space order. Reshape a single vector "
            f"with x.reshape(1, -1)."
        )
    if not np.isfinite(features).all():
        bad_rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
        raise ValueError(
            f"X contains NaN or infinite values (or values too large for float32) in row(s) "
            f"{bad_rows[:10].tolist()}. Every field must be a finite number, and "
            "RESNET_SPACE.project maps real vectors to valid architectures."
        )
    return features


def _as_target(y: Any, n_rows: int) -> npt.NDArray[np.float32]:
    target = np.asarray(y, dtype=np.float64)
    if target.ndim != 1 or len(target) != n_rows:
        raise ValueError(f"y has shape {target.shape}, expected ({n_rows},): one target value per row of X.")
    if not np.isfinite(target).all():
        bad_rows = np.flatnonzero(~np.isfinite(target))
        raise ValueError(f"y contains NaN or infinite values at row(s) {bad_rows[:10].tolist()}.")
    return target.astype(np.float32)


# --- Fast tree evaluation --------------------------------------------------------


class _UnsupportedModel(Exception):
    """A booster uses a feature that :class:`_CompiledForest` does not evaluate."""


class _CompiledForest:
    """Flat NumPy arrays of the trees of one or more XGBoost boosters.

    Each booster is one member, and :meth:`predict` returns an (n, members)
    float32 array. Nodes of all trees share one index space. ``_child`` stores
    both children of node ``k`` at ``2k`` (left) and ``2k + 1`` (right), and
    the walk keeps doubled indices so that ``2k + (x >= threshold)`` picks the
    child without branching. A leaf points to itself with an infinite
    threshold, so every walk takes exactly ``depth`` steps.

    XGBoost sends a row left when ``x < threshold`` (float32 compare). It then
    starts from the base score and adds leaf values tree by tree in float32,
    which ``np.cumsum`` reproduces. Callers check the result against
    ``Booster.inplace_predict`` before using it (:meth:`matches`).
    """

    def __init__(self, boosters: Sequence[xgb.Booster]) -> None:
        parsed = [self._parse(booster) for booster in boosters]
        n_trees = max(len(trees) for trees, _ in parsed)

        features: list[npt.NDArray[np.intp]] = []
        thresholds: list[npt.NDArray[np.float32]] = []
        children: list[npt.NDArray[np.intp]] = []
        leaf_values: list[npt.NDArray[np.float32]] = []
        roots: list[int] = []
        depth = 0
        offset = 0
        for trees, _ in parsed:
            # A member with fewer trees gets single-leaf trees of value 0, which leave a float32 sum unchanged.
            padding = [_ZERO_TREE] * (n_trees - len(trees))
            for tree in [*trees, *padding]:
                left, right, split_index, split_condition, tree_depth = tree
                is_leaf = left == -1
                own_index = np.arange(len(left))
                roots.append(offset)
                features.append(np.where(is_leaf, 0, split_index).astype(np.intp))
                thresholds.append(np.where(is_leaf, np.float32(np.inf), split_condition).astype(np.float32))
                left_global = np.where(is_leaf, own_index, left) + offset
                right_global = np.where(is_leaf, own_index, right) + offset
                children.append(np.stack([left_global, right_global], axis=1).ravel().astype(np.intp))
                leaf_values.append(np.where(is_leaf, split_condition, 0.0).astype(np.float32))
                depth = max(depth, tree_depth)
                offset += len(left)

        self.n_members = len(parsed)
        self.n_trees = n_trees
        self.depth = depth
        self._feature = np.repeat(np.concatenate(features), 2)
        self._threshold = np.repeat(np.concatenate(thresholds), 2)
        self._child = 2 * np.concatenate(children)
        self._leaf_value = np.concatenate(leaf_values)
        self._roots = 2 * np.asarray(roots, dtype=np.intp)
        self._base = np.array([base for _, base in parsed], dtype=np.float32)
        self._row_offsets: dict[int, npt.NDArray[np.intp]] = {}

    @staticmethod
    def _parse(booster: xgb.Booster) -> tuple[list[tuple[Any, ...]], np.float32]:
        model = json.loads(bytes(booster.save_raw("json")))
        learner = model["learner"]
        gradient_booster = learner["gradient_booster"]
        if gradient_booster.get("name") != "gbtree":
            raise _UnsupportedModel(f"booster type {gradient_booster.get('name')!r}")
        params = learner["learner_model_param"]
        if int(params.get("num_target", 1)) != 1 or int(params.get("num_class", 0)) != 0:
            raise _UnsupportedModel("more than one output")
        # XGBoost 3 writes the base score as a list ("[8.5E-1]"), earlier versions as a number.
        base_score = json.loads(params["base_score"]) if params["base_score"].startswith("[") else None
        base = np.float32(base_score[0] if base_score is not None else float(params["base_score"]))

        trees = []
        for tree in gradient_booster["model"]["trees"]:
            if any(int(kind) != 0 for kind in tree.get("split_type", [])):
                raise _UnsupportedModel("categorical splits")
            left = np.asarray(tree["left_children"], dtype=np.intp)
            right = np.asarray(tree["right_children"], dtype=np.intp)
            trees.append(
                (
                    left,
                    right,
                    np.asarray(tree["split_indices"], dtype=np.intp),
                    np.asarray(tree["split_conditions"], dtype=np.float32),
                    _tree_depth(left, right),
                )
            )
        return trees, base

    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Return the (n, members) raw predictions for a validated float32 (n, 22) array."""
        n_rows = features.shape[0]
        n_roots = len(self._roots)
        row_offsets = self._row_offsets.get(n_rows)
        if row_offsets is None:
            row_offsets = np.repeat(np.arange(n_rows, dtype=np.intp) * N_FEATURES, n_roots)
            if n_rows <= FAST_PATH_MAX_ROWS:
                self._row_offsets[n_rows] = row_offsets

        flat = features.ravel()
        node = np.tile(self._roots, n_rows)
        for _ in range(self.depth):
            values = flat.take(row_offsets + self._feature.take(node))
            node = self._child.take(node + (values >= self._threshold.take(node)))

        leaves = self._leaf_value.take(node >> 1).reshape(n_rows, self.n_members, self.n_trees)
        terms = np.empty((n_rows, self.n_members, self.n_trees + 1), dtype=np.float32)
        terms[:, :, 0] = self._base
        terms[:, :, 1:] = leaves
        return np.cumsum(terms, axis=2, dtype=np.float32)[:, :, -1]

    def matches(self, boosters: Sequence[xgb.Booster], probe: npt.NDArray[np.float32]) -> bool:
        """Return whether this forest reproduces every booster exactly on the probe rows."""
        expected = np.column_stack([b.inplace_predict(probe, validate_features=False) for b in boosters])
        return bool(np.array_equal(self.predict(probe), expected))


_ZERO_TREE = (np.array([-1]), np.array([-1]), np.array([0]), np.array([0.0], dtype=np.float32), 0)


def _tree_depth(left: npt.NDArray[np.intp], right: npt.NDArray[np.intp]) -> int:
    depth = np.zeros(len(left), dtype=np.int64)
    stack = [0]
    while stack:
        node = stack.pop()
        if left[node] != -1:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
            stack += [int(left[node]), int(right[node])]
    return int(depth.max())


def _probe_rows() -> npt.NDArray[np.float32]:
    """Valid architectures for checking the NumPy forest, the same on every call."""
    return np.ascontiguousarray(RESNET_SPACE.sample(256, seed=20240501), dtype=np.float32)


def _compile(
    boosters: Sequence[xgb.Booster], extra_probe: npt.NDArray[np.float32] | None
) -> _CompiledForest | None:
    """Build the NumPy forest, or return None (XGBoost predicts every batch) if it differs from XGBoost."""
    try:
        forest = _CompiledForest(boosters)
    except (_UnsupportedModel, KeyError, ValueError) as error:
        logger.warning("Fast NumPy prediction is off, XGBoost predicts every batch: %s", error)
        return None

    probe = _probe_rows() if extra_probe is None else np.concatenate([_probe_rows(), extra_probe[:256]])
    if not forest.matches(boosters, probe):
        logger.warning(
            "The NumPy forest differs from XGBoost %s on probe rows, so XGBoost predicts every batch.",
            xgb.__version__,
        )
        return None
    return forest


# --- Estimators ------------------------------------------------------------------


class SurrogateRegressor(RegressorMixin, BaseEstimator):
    """XGBoost regressor of one target from the 22-vector of an architecture.

    The block type stays one integer feature with its code (A=1, B=2, C=3,
    D=4, and 0 for an unused block), for any batch size. The report authors'
    code, run on one row at a time, coded every block type alike (measured
    while planning this project, moving predictions by up to 0.06); this model keeps it,
    because it has no encoding step, and a test checks that changing only a
    block type changes its predictions.

    Parameters other than ``target``, ``random_state`` and ``n_jobs`` go to
    ``xgboost.XGBRegressor`` (``tree_method="hist"``, CPU). The defaults are
    XGBoost's own, except ``n_estimators=150`` as in the report. ``target``
    only names the predicted column in saved metadata. ``n_jobs`` sets the
    threads for fitting and for XGBoost's prediction of large batches.

    Attributes after :meth:`fit`: ``booster_`` (the ``xgboost.Booster``, with
    :data:`FEATURE_NAMES`), ``n_features_in_``, ``n_train_rows_`` and
    ``data_sha256_`` (the SHA-256 of the training data file, or None).
    """

    def __init__(
        self,
        *,
        target: str = "1_day_accuracy",
        n_estimators: int = 150,
        max_depth: int = 6,
        learning_rate: float = 0.3,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.target = target
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _xgb_params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "reg_lambda": self.reg_lambda,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
            "tree_method": "hist",
            "device": "cpu",
            "objective": "reg:squarederror",
        }

    def fit(self, X: Any, y: Any, *, data_sha256: str | None = None) -> SurrogateRegressor:
        """Fit the trees on ``X`` (n, 22) and ``y`` (n,) and store ``data_sha256`` for :meth:`save`."""
        features = _as_features(X)
        target = _as_target(y, len(features))
        if len(features) < 2:
            raise ValueError(f"fit needs at least 2 rows, got {len(features)}.")

        started = time.perf_counter()
        model = xgb.XGBRegressor(**self._xgb_params())
        model.fit(features, target)
        booster = model.get_booster()
        booster.feature_names = list(FEATURE_NAMES)
        self._set_fitted(booster, n_train_rows=len(features), data_sha256=data_sha256, probe=features)
        logger.info(
            "Fitted a surrogate of %s on %d rows in %.2f s (random_state=%d)",
            self.target,
            len(features),
            time.perf_counter() - started,
            self.random_state,
        )
        return self

    def _set_fitted(
        self,
        booster: xgb.Booster,
        *,
        n_train_rows: int,
        data_sha256: str | None,
        probe: npt.NDArray[np.float32] | None,
    ) -> None:
        booster.set_param({"nthread": self.n_jobs})
        self.booster_ = booster
        self.n_features_in_ = N_FEATURES
        self.n_train_rows_ = n_train_rows
        self.data_sha256_ = data_sha256
        self._forest = _compile([booster], probe)

    def predict(self, X: Any) -> npt.NDArray[np.float64]:
        """Predict the target for each row of ``X`` (n, 22).

        Values are XGBoost's float32 predictions widened to float64. Batches of
        at most :data:`FAST_PATH_MAX_ROWS` rows skip XGBoost's fixed cost per
        call, as the module docstring explains.
        """
        booster = getattr(self, "booster_", None)
        if booster is None:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call fit or load before predict."
            )
        features = _as_features(X)
        forest = getattr(self, "_forest", None)
        if forest is not None and len(features) <= FAST_PATH_MAX_ROWS:
            return forest.predict(features)[:, 0].astype(np.float64)
        return booster.inplace_predict(features, validate_features=False).astype(np.float64)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model JSON to ``path`` (a ``.json`` file) and its metadata beside it, and return ``path``.

        The metadata file is ``path`` with ``.meta.json`` in place of
        ``.json``. Existing files are replaced.
        """
        booster = self._fitted_booster()
        model_path = _model_path(path)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        booster.save_model(os.fspath(model_path))
        metadata = {
            **_common_metadata(REGRESSOR_FORMAT, self, self.data_sha256_),
            "n_train_rows": self.n_train_rows_,
            "model_file": model_path.name,
            "model_sha256": sha256_file(model_path),
        }
        _write_json(_metadata_path(model_path), metadata)
        logger.info("Saved the %s surrogate to %s", self.target, model_path)
        return model_path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expected_data_sha256: str | None = None,
    ) -> SurrogateRegressor:
        """Read a surrogate written by :meth:`save`, which predicts exactly as the saved one did.

        Raises :class:`SurrogateFileNotFoundError` when the model file or its
        metadata file is missing, and :class:`SurrogateFileError` when a file
        is corrupt or changed since saving, when its feature names differ from
        :data:`FEATURE_NAMES`, or when ``expected_data_sha256`` is given and
        differs from the training data's SHA-256.
        """
        model_path = _model_path(path)
        metadata = _read_metadata(_metadata_path(model_path), REGRESSOR_FORMAT, model_path)
        _check_metadata(metadata, model_path, expected_data_sha256)
        booster = _read_booster(model_path, metadata.get("model_sha256"))

        estimator = _estimator_from_params(cls, metadata, model_path)
        estimator._set_fitted(
            booster,
            n_train_rows=int(metadata.get("n_train_rows", 0)),
            data_sha256=metadata.get("data_sha256"),
            probe=None,
        )
        logger.info("Loaded the %s surrogate from %s", estimator.target, model_path)
        return estimator

    def _fitted_booster(self) -> xgb.Booster:
        booster = getattr(self, "booster_", None)
        if booster is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet. Call fit before save.")
        return booster


class SurrogateEnsemble(RegressorMixin, BaseEstimator):
    """Seeded :class:`SurrogateRegressor` members whose spread estimates the uncertainty.

    Member ``i`` gets XGBoost seed ``random_state + i``. With
    ``bootstrap=True`` (the default) it is fitted on a bootstrap sample of the
    rows: ``n`` draws with replacement from
    ``np.random.default_rng((random_state, i))``. With ``bootstrap=False``
    the members differ only through XGBoost's own row or column sampling, so
    ``subsample`` or ``colsample_bytree`` must then be below 1.

    The other parameters are those of :class:`SurrogateRegressor` and apply to
    every member. Attributes after :meth:`fit`: ``members_`` (the fitted
    regressors), ``n_features_in_`` and ``data_sha256_``.
    """

    def __init__(
        self,
        *,
        target: str = "1_day_accuracy",
        n_members: int = 5,
        bootstrap: bool = True,
        n_estimators: int = 150,
        max_depth: int = 6,
        learning_rate: float = 0.3,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.target = target
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _member(self, index: int) -> SurrogateRegressor:
        params = self.get_params()
        del params["n_members"], params["bootstrap"]
        params["random_state"] = self.random_state + index
        return SurrogateRegressor(**params)

    def fit(self, X: Any, y: Any, *, data_sha256: str | None = None) -> SurrogateEnsemble:
        """Fit every member. The class docstring describes how the members differ."""
        if self.n_members < 2:
            raise ValueError(f"n_members must be at least 2 for a spread, got {self.n_members}.")
        if not self.bootstrap and self.subsample >= 1.0 and self.colsample_bytree >= 1.0:
            raise ValueError(
                "With bootstrap=False, subsample=1 and colsample_bytree=1 every member would be "
                "the same model. Set bootstrap=True or subsample or colsample_bytree below 1."
            )
        features = _as_features(X)
        target = _as_target(y, len(features))

        members = []
        for index in range(self.n_members):
            rows = np.arange(len(features))
            if self.bootstrap:
                rng = np.random.default_rng((self.random_state, index))
                rows = rng.integers(0, len(features), size=len(features))
            member = self._member(index)
            member.fit(features[rows], target[rows], data_sha256=data_sha256)
            members.append(member)
        self._set_fitted(members, data_sha256=data_sha256, probe=features)
        return self

    def _set_fitted(
        self,
        members: list[SurrogateRegressor],
        *,
        data_sha256: str | None,
        probe: npt.NDArray[np.float32] | None,
    ) -> None:
        self.members_ = members
        self.n_features_in_ = N_FEATURES
        self.data_sha256_ = data_sha256
        self._boosters = [member.booster_ for member in members]
        self._forest = _compile(self._boosters, probe)

    def predict_members(self, X: Any) -> npt.NDArray[np.float64]:
        """Return every member's prediction, an (n, n_members) array."""
        members = getattr(self, "members_", None)
        if members is None:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call fit or load before predict."
            )
        features = _as_features(X)
        forest = getattr(self, "_forest", None)
        if forest is not None and len(features) <= FAST_PATH_MAX_ROWS:
            return forest.predict(features).astype(np.float64)
        columns = [b.inplace_predict(features, validate_features=False) for b in self._boosters]
        return np.column_stack(columns).astype(np.float64)

    def predict(
        self, X: Any, return_std: bool = False
    ) -> npt.NDArray[np.float64] | tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return the members' mean prediction and, with ``return_std``, their standard deviation (ddof=0)."""
        predictions = self.predict_members(X)
        mean = predictions.mean(axis=1)
        if return_std:
            return mean, predictions.std(axis=1)
        return mean

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ensemble into the folder ``path`` and return it.

        The folder gets ``metadata.json`` and one XGBoost model JSON per
        member (``member-00.json``, ``member-01.json``, ...). Files of the
        same names are replaced, and other files are left alone.
        """
        members = getattr(self, "members_", None)
        if members is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet. Call fit before save.")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)

        records = []
        for index, member in enumerate(members):
            model_path = folder / f"member-{index:02d}.json"
            member.booster_.save_model(os.fspath(model_path))
            records.append(
                {
                    "model_file": model_path.name,
                    "model_sha256": sha256_file(model_path),
                    "random_state": member.random_state,
                    "n_train_rows": member.n_train_rows_,
                }
            )
        metadata = {**_common_metadata(ENSEMBLE_FORMAT, self, self.data_sha256_), "members": records}
        _write_json(folder / ENSEMBLE_METADATA, metadata)
        logger.info("Saved the %s ensemble of %d members to %s", self.target, len(members), folder)
        return folder

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expected_data_sha256: str | None = None,
    ) -> SurrogateEnsemble:
        """Read an ensemble folder written by :meth:`save`, raising as :meth:`SurrogateRegressor.load` does."""
        folder = Path(path)
        metadata_path = folder / ENSEMBLE_METADATA
        metadata = _read_metadata(metadata_path, ENSEMBLE_FORMAT, folder)
        _check_metadata(metadata, folder, expected_data_sha256)
        estimator = _estimator_from_params(cls, metadata, folder)

        records = metadata.get("members")
        if not isinstance(records, list) or len(records) != estimator.n_members:
            raise SurrogateFileError(
                f"{metadata_path} lists {len(records) if isinstance(records, list) else 'no'} member "
                f"files, expected n_members={estimator.n_members}. Save the ensemble again."
            )
        members = []
        for index, record in enumerate(records):
            member = estimator._member(index)
            booster = _read_booster(folder / record["model_file"], record.get("model_sha256"))
            member._set_fitted(
                booster,
                n_train_rows=int(record.get("n_train_rows", 0)),
                data_sha256=metadata.get("data_sha256"),
                probe=None,
            )
            members.append(member)
        estimator._set_fitted(members, data_sha256=metadata.get("data_sha256"), probe=None)
        logger.info("Loaded the %s ensemble of %d members from %s", estimator.target, len(members), folder)
        return estimator


def fit_surrogate(
    dataset: Dataset,
    target: str = "1_day_accuracy",
    *,
    ensemble: bool = False,
    **params: Any,
) -> SurrogateRegressor | SurrogateEnsemble:
    """Fit a surrogate (or, with ``ensemble=True``, an ensemble) of ``target`` on a whole dataset.

    The dataset's SHA-256 is recorded, so :meth:`~SurrogateRegressor.load`
    can check it. ``params`` go to the estimator's constructor.
    """
    if target not in TARGET_COLUMNS:
        raise ValueError(f"Unknown target {target!r}, expected one of {list(TARGET_COLUMNS)}.")
    estimator_class = SurrogateEnsemble if ensemble else SurrogateRegressor
    estimator = estimator_class(target=target, **params)
    return estimator.fit(dataset.X, dataset.frame[target].to_numpy(), data_sha256=dataset.sha256)


# --- Files -----------------------------------------------------------------------


def _model_path(path: str | os.PathLike[str]) -> Path:
    model_path = Path(path)
    if model_path.suffix != ".json":
        raise ValueError(
            f"Surrogate model path {str(model_path)!r} must end in .json, because XGBoost picks "
            "its file format from the suffix."
        )
    return model_path


def _metadata_path(model_path: Path) -> Path:
    return model_path.with_suffix(".meta.json")


def _library_versions() -> dict[str, str]:
    return {
        "nasutils": __version__,
        "xgboost": xgb.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def _common_metadata(kind: str, estimator: BaseEstimator, data_sha256: str | None) -> dict[str, Any]:
    params = estimator.get_params()
    return {
        "format": kind,
        "format_version": FORMAT_VERSION,
        "target": params["target"],
        "feature_names": list(FEATURE_NAMES),
        "params": params,
        "random_state": params["random_state"],
        "data_sha256": data_sha256,
        "versions": _library_versions(),
    }


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(record, indent=2) + "\n")


def _read_metadata(metadata_path: Path, expected_format: str, model_path: Path) -> dict[str, Any]:
    if not metadata_path.is_file():
        raise SurrogateFileNotFoundError(
            f"Metadata file {metadata_path} of the surrogate {model_path} does not exist. "
            "save() writes the model and its metadata together; copy both."
        )
    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SurrogateFileError(f"Cannot read the surrogate metadata {metadata_path}: {error}.") from error
    if not isinstance(metadata, dict) or metadata.get("format") != expected_format:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise SurrogateFileError(
            f"{metadata_path} has format {found!r}, expected {expected_format!r}. "
            "It was not written by this kind of surrogate's save()."
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise SurrogateFileError(
            f"{metadata_path} has format version {metadata.get('format_version')!r}, but this nasutils "
            f"reads version {FORMAT_VERSION}. Save the surrogate again with this nasutils."
        )
    return metadata


def _check_metadata(metadata: dict[str, Any], path: Path, expected_data_sha256: str | None) -> None:
    """Raise when feature names or the data checksum differ, and log a warning when library versions differ."""
    names = metadata.get("feature_names")
    if names != list(FEATURE_NAMES):
        differences = _list_differences(names if isinstance(names, list) else [], FEATURE_NAMES)
        raise SurrogateFileError(
            f"Surrogate {path} was fitted on other features than {N_FEATURES} nasutils.space fields: "
            f"{differences}. Fit it again on the current feature order."
        )

    found = metadata.get("data_sha256")
    if expected_data_sha256 is not None and found != expected_data_sha256:
        raise SurrogateFileError(
            f"Surrogate {path} was fitted on data with SHA-256 {found}, not the expected "
            f"{expected_data_sha256}. Fit it again on this data or drop expected_data_sha256."
        )

    saved_versions = metadata.get("versions", {})
    for library, version in _library_versions().items():
        if library != "python" and saved_versions.get(library) != version:
            logger.warning(
                "Surrogate %s was saved with %s %s, but this process runs %s, so predictions may differ.",
                path,
                library,
                saved_versions.get(library),
                version,
            )


def _list_differences(found: Sequence[Any], expected: Sequence[str]) -> str:
    differences = []
    for position in range(max(len(found), len(expected))):
        have = found[position] if position < len(found) else None
        want = expected[position] if position < len(expected) else None
        if have != want:
            differences.append(f"position {position}: {have!r} instead of {want!r}")
    return "; ".join(differences[:5]) + ("; ..." if len(differences) > 5 else "")


def _read_booster(model_path: Path, expected_sha256: str | None) -> xgb.Booster:
    if not model_path.is_file():
        raise SurrogateFileNotFoundError(f"Surrogate model file {model_path} does not exist.")
    digest = sha256_file(model_path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise SurrogateFileError(
            f"Surrogate model file {model_path} has SHA-256 {digest}, but its metadata records "
            f"{expected_sha256}. The file was changed or corrupted after saving; save it again."
        )
    try:
        booster = xgb.Booster(model_file=os.fspath(model_path))
    except xgb.core.XGBoostError as error:
        raise SurrogateFileError(f"XGBoost cannot read the surrogate model {model_path}: {error}") from error

    if booster.num_features() != N_FEATURES or list(booster.feature_names or []) != list(FEATURE_NAMES):
        raise SurrogateFileError(
            f"Surrogate model {model_path} has features {booster.feature_names} "
            f"({booster.num_features()}), expected {list(FEATURE_NAMES)}."
        )
    return booster


def _estimator_from_params(cls: type, metadata: dict[str, Any], path: Path) -> Any:
    params = metadata.get("params")
    if not isinstance(params, dict):
        raise SurrogateFileError(f"Metadata of surrogate {path} has no 'params' mapping.")
    try:
        return cls(**params)
    except TypeError as error:
        raise SurrogateFileError(f"Metadata of surrogate {path} has invalid params: {error}.") from error


# --- Metrics and cross-validation -------------------------------------------------


def top_fraction_precision(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, fraction: float = 0.1) -> float:
    """Return the share of the truly top ``fraction`` of rows that are also in the predicted top ``fraction``.

    The top set has ``k = ceil(fraction * n)`` rows. Rows tied at the
    boundary get fractional membership (the remaining places divided among
    them), so the value is the expectation over random tie breaks. A constant
    prediction therefore scores ``k / n``, the chance level.
    """
    truth = np.asarray(y_true, dtype=np.float64)
    predicted = np.asarray(y_pred, dtype=np.float64)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    k = max(1, math.ceil(fraction * len(truth)))
    overlap = float(np.dot(_top_membership(truth, k), _top_membership(predicted, k)))
    return overlap / k


def _top_membership(values: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:
    """Return each row's weight in the top ``k``: 1 above the boundary value, a share of the rest at it."""
    boundary = np.sort(values)[::-1][k - 1]
    above = values > boundary
    tied = values == boundary
    membership = above.astype(np.float64)
    membership[tied] = (k - above.sum()) / tied.sum()
    return membership


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """Return RMSE, MAE, Kendall tau-b, Spearman rho and top-10 % precision of a prediction.

    The rank correlations are NaN when either array is constant (for example
    a mean predictor), because they are undefined there.
    """
    truth = np.asarray(y_true, dtype=np.float64)
    predicted = np.asarray(y_pred, dtype=np.float64)
    if truth.shape != predicted.shape or truth.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D of one length, got {truth.shape} and {predicted.shape}."
        )
    error = predicted - truth
    constant = np.ptp(truth) == 0 or np.ptp(predicted) == 0
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "kendall_tau": math.nan if constant else float(stats.kendalltau(truth, predicted).statistic),
        "spearman_rho": math.nan if constant else float(stats.spearmanr(truth, predicted).statistic),
        "top10_precision": top_fraction_precision(truth, predicted, 0.1),
    }


@dataclass(frozen=True)
class CrossValidationResult:
    """Out-of-fold predictions and per-fold metrics of a surrogate and of the mean baseline.

    ``folds`` has one row per fold and model (``"surrogate"`` or
    ``"mean_baseline"``, which predicts the mean of the training rows) with
    ``n_test`` and the :data:`METRICS`. ``oof_prediction`` and
    ``oof_baseline`` hold each row's prediction from the fold in which it was
    a test row (``fold``).
    """

    target: str | None
    folds: pd.DataFrame
    y_true: npt.NDArray[np.float64]
    oof_prediction: npt.NDArray[np.float64]
    oof_baseline: npt.NDArray[np.float64]
    fold: npt.NDArray[np.int64]

    def summary(self) -> pd.DataFrame:
        """Return the mean and standard deviation (ddof=1) over folds: columns model, metric, mean, std."""
        long = self.folds.melt(id_vars=["fold", "model"], value_vars=list(METRICS), var_name="metric")
        table = long.groupby(["model", "metric"], sort=False)["value"].agg(["mean", "std"]).reset_index()
        return table


def cross_validate_surrogate(
    X: Any,
    y: Any,
    *,
    n_splits: int = 5,
    seed: int,
    bins: npt.ArrayLike | None = None,
    target: str | None = None,
    **params: Any,
) -> CrossValidationResult:
    """Run a seeded k-fold cross-validation of :class:`SurrogateRegressor` and of the mean baseline.

    With ``bins`` the folds are stratified by bin (``StratifiedKFold``),
    otherwise they are plain shuffled ``KFold`` splits, both seeded with
    ``seed``. ``params`` go to :class:`SurrogateRegressor`, whose
    ``random_state`` defaults to ``seed``. ``target`` only labels the result.
    """
    features = _as_features(X)
    values = _as_target(y, len(features)).astype(np.float64)
    params.setdefault("random_state", seed)
    if target is not None:
        params.setdefault("target", target)

    if bins is None:
        splits = KFold(n_splits, shuffle=True, random_state=seed).split(features)
    else:
        labels = np.asarray(bins)
        if labels.shape != (len(features),):
            raise ValueError(f"bins has shape {labels.shape}, expected ({len(features)},): one bin per row.")
        splits = StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(features, labels)

    oof_prediction = np.full(len(features), np.nan)
    oof_baseline = np.full(len(features), np.nan)
    fold_of_row = np.full(len(features), -1, dtype=np.int64)
    rows = []
    for fold, (train, test) in enumerate(splits):
        model = SurrogateRegressor(**params).fit(features[train], values[train])
        oof_prediction[test] = model.predict(features[test])
        oof_baseline[test] = values[train].mean()
        fold_of_row[test] = fold
        for name, prediction in (("surrogate", oof_prediction), ("mean_baseline", oof_baseline)):
            metrics = regression_metrics(values[test], prediction[test])
            rows.append({"fold": fold, "model": name, "n_test": len(test), **metrics})
        logger.info("Fold %d of %d: %s", fold + 1, n_splits, rows[-2])

    return CrossValidationResult(
        target=target,
        folds=pd.DataFrame(rows),
        y_true=values,
        oof_prediction=oof_prediction,
        oof_baseline=oof_baseline,
        fold=fold_of_row,
    )


def cross_validate_targets(
    dataset: Dataset,
    *,
    seed: int,
    targets: Iterable[str] = TARGET_COLUMNS,
    n_splits: int = 5,
    stratify: bool = True,
    **params: Any,
) -> pd.DataFrame:
    """Cross-validate a surrogate of each target and return a table with columns target, model, metric, mean, std.

    Every target uses the same folds, stratified by the accuracy bin when
    ``stratify`` is true. ``params`` go to :func:`cross_validate_surrogate`.
    """
    tables = []
    for target in targets:
        if target not in dataset.frame.columns:
            raise ValueError(f"Unknown target {target!r}, expected one of {list(TARGET_COLUMNS)}.")
        result = cross_validate_surrogate(
            dataset.X,
            dataset.frame[target].to_numpy(),
            n_splits=n_splits,
            seed=seed,
            bins=dataset.bins if stratify else None,
            target=target,
            **params,
        )
        tables.append(result.summary().assign(target=target))
    table = pd.concat(tables, ignore_index=True)
    return table[["target", "model", "metric", "mean", "std"]]


# --- Timing ----------------------------------------------------------------------


def benchmark_predict(
    model: SurrogateRegressor | SurrogateEnsemble,
    X: Any,
    batch_sizes: Sequence[int] = (1, 16, 64, 1024),
    *,
    min_seconds: float = 0.2,
) -> pd.DataFrame:
    """Time ``model.predict`` on the first rows of ``X`` and return microseconds per call and per row.

    Each batch size runs for at least ``min_seconds`` of wall-clock time
    (``time.perf_counter``) after one warm-up call. Input rows are repeated
    when ``X`` has fewer rows than a batch needs.
    """
    features = _as_features(X)
    rows = []
    for batch_size in batch_sizes:
        batch = np.ascontiguousarray(np.resize(features, (batch_size, N_FEATURES)))
        model.predict(batch)
        calls = 0
        started = time.perf_counter()
        elapsed = 0.0
        while elapsed < min_seconds:
            for _ in range(10):
                model.predict(batch)
            calls += 10
            elapsed = time.perf_counter() - started
        per_call = elapsed / calls * 1e6
        rows.append(
            {
                "batch_size": batch_size,
                "calls": calls,
                "microseconds_per_call": per_call,
                "microseconds_per_row": per_call / batch_size,
            }
        )
    return pd.DataFrame(rows)
