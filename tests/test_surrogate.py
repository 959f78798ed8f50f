from __future__ import annotations

import json
import logging
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from nasutils import plots, surrogate
from nasutils.space import RESNET_SPACE
from nasutils.surrogate import (
    FAST_PATH_MAX_ROWS,
    FEATURE_NAMES,
    METRICS,
    SurrogateEnsemble,
    SurrogateFileError,
    SurrogateFileNotFoundError,
    SurrogateRegressor,
    cross_validate_surrogate,
    cross_validate_targets,
    fit_surrogate,
    regression_metrics,
    top_fraction_precision,
)

CONVBLOCK1 = FEATURE_NAMES.index("convblock1")


@pytest.fixture(scope="module")
def model(real_dataset):
    return fit_surrogate(real_dataset, random_state=0)


@pytest.fixture(scope="module")
def ensemble(real_dataset):
    return fit_surrogate(real_dataset, ensemble=True, n_members=4, random_state=0)


@pytest.fixture(scope="module")
def accuracy_cv(real_dataset):
    return cross_validate_surrogate(real_dataset.X, real_dataset.accuracy, seed=0, bins=real_dataset.bins)


def test_predictions_vary_on_real_data(model, real_dataset):
    predictions = model.predict(real_dataset.X)
    assert predictions.shape == (len(real_dataset),)
    assert predictions.std() > 0.01


def test_block_type_changes_prediction(model, real_dataset):
    rows = real_dataset.X[:50].copy()
    by_code = []
    for code in (1, 2, 3, 4):
        rows[:, CONVBLOCK1] = code
        by_code.append(model.predict(rows))
    by_code = np.array(by_code)

    rows_with_differences = (by_code.max(axis=0) > by_code.min(axis=0)).sum()
    assert rows_with_differences > 25

    # One-row calls must see the block type as well.
    single_row = real_dataset.X[:1].copy()
    single_predictions = set()
    for code in (1, 2, 3, 4):
        single_row[0, CONVBLOCK1] = code
        single_predictions.add(float(model.predict(single_row)[0]))
    assert len(single_predictions) > 1


def test_fast_path_matches_xgboost(model, ensemble, real_dataset):
    # fit drops the NumPy forest when it disagrees with XGBoost, and the checks below need it active.
    assert model._forest is not None
    assert ensemble._forest is not None
    features = np.ascontiguousarray(real_dataset.X, dtype=np.float32)
    sampled = np.ascontiguousarray(RESNET_SPACE.sample(500, seed=3), dtype=np.float32)
    for rows in (features, sampled):
        from_xgboost = model.booster_.inplace_predict(rows, validate_features=False).astype(np.float64)
        small_batches = np.concatenate(
            [model.predict(rows[i : i + FAST_PATH_MAX_ROWS]) for i in range(0, len(rows), FAST_PATH_MAX_ROWS)]
        )
        assert np.array_equal(small_batches, from_xgboost)
        assert np.array_equal(model.predict(rows), from_xgboost)

        members_large = ensemble.predict_members(rows)
        members_small = np.concatenate(
            [ensemble.predict_members(rows[i : i + 16]) for i in range(0, len(rows), 16)]
        )
        assert np.array_equal(members_small, members_large)


def test_forest_mismatch_falls_back_to_xgboost(real_dataset, monkeypatch, caplog):
    original = surrogate._CompiledForest.predict
    monkeypatch.setattr(surrogate._CompiledForest, "predict", lambda self, rows: original(self, rows) + 1e-6)
    X, y = real_dataset.X[:200], real_dataset.accuracy[:200]
    with caplog.at_level(logging.WARNING, logger="nasutils.surrogate"):
        fallback = SurrogateRegressor(n_estimators=20).fit(X, y)
    assert fallback._forest is None
    assert "differs from XGBoost" in caplog.text
    expected = fallback.booster_.inplace_predict(np.asarray(X[:3], dtype=np.float32)).astype(np.float64)
    assert np.array_equal(fallback.predict(X[:3]), expected)


def test_cross_validation_metrics_are_sane(accuracy_cv):
    summary = accuracy_cv.summary().set_index(["model", "metric"])["mean"]
    assert 0.03 < summary["surrogate", "rmse"] < 0.08
    assert summary["surrogate", "kendall_tau"] > 0.3
    assert summary["surrogate", "rmse"] < summary["mean_baseline", "rmse"]
    assert summary["surrogate", "mae"] < summary["mean_baseline", "mae"]


def test_cross_validation_result_layout(accuracy_cv, real_dataset):
    assert len(accuracy_cv.folds) == 10
    assert set(accuracy_cv.folds["model"]) == {"surrogate", "mean_baseline"}
    assert accuracy_cv.folds.groupby("model")["n_test"].sum().tolist() == [1200, 1200]
    assert np.isfinite(accuracy_cv.oof_prediction).all()
    assert sorted(np.unique(accuracy_cv.fold)) == [0, 1, 2, 3, 4]
    # Stratified folds hold each bin in near-equal parts.
    for label in np.unique(real_dataset.bins):
        counts = np.bincount(accuracy_cv.fold[real_dataset.bins == label], minlength=5)
        assert counts.max() - counts.min() <= 1
    baseline_precision = accuracy_cv.folds.query("model == 'mean_baseline'")["top10_precision"]
    assert np.allclose(baseline_precision, 0.1)


def test_cross_validation_repeats_with_seed(real_dataset):
    X, y = real_dataset.X[:300], real_dataset.accuracy[:300]
    first = cross_validate_surrogate(X, y, n_splits=3, seed=4, n_estimators=20)
    second = cross_validate_surrogate(X, y, n_splits=3, seed=4, n_estimators=20)
    other = cross_validate_surrogate(X, y, n_splits=3, seed=5, n_estimators=20)
    assert np.array_equal(first.oof_prediction, second.oof_prediction)
    assert not np.array_equal(first.oof_prediction, other.oof_prediction)


def test_cross_validation_of_all_targets(real_dataset):
    table = cross_validate_targets(real_dataset, seed=0, n_splits=3, n_estimators=50)
    assert list(table.columns) == ["target", "model", "metric", "mean", "std"]
    assert len(table) == 3 * 2 * len(METRICS)
    surrogate_rmse = table.query("model == 'surrogate' and metric == 'rmse'").set_index("target")["mean"]
    baseline_rmse = table.query("model == 'mean_baseline' and metric == 'rmse'").set_index("target")["mean"]
    assert (surrogate_rmse < baseline_rmse).all()


def test_top_fraction_precision_cases():
    truth = np.arange(20.0)
    assert top_fraction_precision(truth, truth) == 1.0
    assert top_fraction_precision(truth, -truth) == 0.0
    assert top_fraction_precision(truth, np.zeros(20)) == pytest.approx(0.1)
    # k = 2: one of the two true top rows is predicted in the top 2.
    predicted = truth.copy()
    predicted[18] = -1.0
    assert top_fraction_precision(truth, predicted) == pytest.approx(0.5)


def test_metrics_of_constant_prediction():
    metrics = regression_metrics([0.1, 0.2, 0.3], [0.2, 0.2, 0.2])
    assert metrics["rmse"] == pytest.approx(np.sqrt(2 / 300))
    assert np.isnan(metrics["kendall_tau"])
    assert np.isnan(metrics["spearman_rho"])


def test_save_load_round_trip(model, real_dataset, tmp_path):
    path = model.save(tmp_path / "surrogate.json")
    metadata = json.loads((tmp_path / "surrogate.meta.json").read_text())
    assert metadata["feature_names"] == list(FEATURE_NAMES)
    assert metadata["data_sha256"] == real_dataset.sha256
    assert metadata["target"] == "1_day_accuracy"

    loaded = SurrogateRegressor.load(path, expected_data_sha256=real_dataset.sha256)
    assert np.array_equal(loaded.predict(real_dataset.X), model.predict(real_dataset.X))
    assert np.array_equal(loaded.predict(real_dataset.X[:3]), model.predict(real_dataset.X[:3]))
    assert loaded.get_params() == model.get_params()


def test_load_rejects_other_data_checksum(model, real_dataset, tmp_path):
    path = model.save(tmp_path / "surrogate.json")
    other = "0" * 64
    with pytest.raises(SurrogateFileError) as raised:
        SurrogateRegressor.load(path, expected_data_sha256=other)
    assert real_dataset.sha256 in str(raised.value)
    assert other in str(raised.value)
    assert str(path) in str(raised.value)


def test_load_rejects_corrupt_model(model, tmp_path):
    path = model.save(tmp_path / "surrogate.json")
    path.write_text(path.read_text()[:500])
    with pytest.raises(SurrogateFileError, match=r"corrupted after saving"):
        SurrogateRegressor.load(path)


def test_load_rejects_unreadable_model(model, tmp_path):
    path = model.save(tmp_path / "surrogate.json")
    path.write_text("{not json")
    metadata_path = tmp_path / "surrogate.meta.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["model_sha256"]
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(SurrogateFileError, match=r"XGBoost cannot read"):
        SurrogateRegressor.load(path)


def test_load_rejects_corrupt_metadata(model, tmp_path):
    path = model.save(tmp_path / "surrogate.json")
    (tmp_path / "surrogate.meta.json").write_text("{")
    with pytest.raises(SurrogateFileError, match=r"Cannot read the surrogate metadata"):
        SurrogateRegressor.load(path)


def test_load_rejects_missing_metadata(model, tmp_path):
    path = model.save(tmp_path / "surrogate.json")
    (tmp_path / "surrogate.meta.json").unlink()
    with pytest.raises(SurrogateFileNotFoundError, match=r"surrogate\.meta\.json"):
        SurrogateRegressor.load(path)


def test_load_rejects_other_feature_names(model, tmp_path):
    path = model.save(tmp_path / "surrogate.json")
    metadata_path = tmp_path / "surrogate.meta.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["feature_names"][7] = "block_type1"
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(SurrogateFileError, match=r"position 7: 'block_type1' instead of 'convblock1'"):
        SurrogateRegressor.load(path)


def test_save_needs_json_suffix(model, tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.json"):
        model.save(tmp_path / "surrogate.ubj")


def test_ensemble_spread_and_mean(ensemble, model, real_dataset):
    mean, std = ensemble.predict(real_dataset.X, return_std=True)
    assert (std > 0).mean() > 0.99
    assert std.mean() > 0.001
    single = model.predict(real_dataset.X)
    assert not np.array_equal(mean, single)
    assert np.abs(mean - single).mean() < 0.03
    assert np.array_equal(ensemble.predict(real_dataset.X), mean)


def test_ensemble_save_load_round_trip(ensemble, real_dataset, tmp_path):
    folder = ensemble.save(tmp_path / "ensemble")
    assert sorted(p.name for p in folder.iterdir()) == [
        "member-00.json",
        "member-01.json",
        "member-02.json",
        "member-03.json",
        "metadata.json",
    ]
    loaded = SurrogateEnsemble.load(folder, expected_data_sha256=real_dataset.sha256)
    mean, std = loaded.predict(real_dataset.X, return_std=True)
    expected_mean, expected_std = ensemble.predict(real_dataset.X, return_std=True)
    assert np.array_equal(mean, expected_mean)
    assert np.array_equal(std, expected_std)

    (folder / "member-02.json").write_text("{}")
    with pytest.raises(SurrogateFileError, match=r"member-02\.json has SHA-256"):
        SurrogateEnsemble.load(folder)


def test_ensemble_rejects_identical_members(real_dataset):
    with pytest.raises(ValueError, match=r"every member would be the same model"):
        SurrogateEnsemble(bootstrap=False).fit(real_dataset.X[:100], real_dataset.accuracy[:100])


def test_ensemble_without_bootstrap_uses_subsampling(real_dataset):
    X, y = real_dataset.X[:300], real_dataset.accuracy[:300]
    ensemble = SurrogateEnsemble(bootstrap=False, subsample=0.7, n_members=3, n_estimators=30).fit(X, y)
    _, std = ensemble.predict(X, return_std=True)
    assert std.mean() > 0


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        SurrogateRegressor().predict(np.ones((1, 22)))
    with pytest.raises(NotFittedError):
        SurrogateEnsemble().predict(np.ones((1, 22)))


@pytest.mark.parametrize("shape", [(22,), (3, 21), (2, 3, 22)])
def test_wrong_shape_raises(model, shape):
    with pytest.raises(ValueError, match=re.escape(f"X has shape {shape}, expected (n, 22)")):
        model.predict(np.ones(shape))


def test_non_finite_input_raises(model, real_dataset):
    rows = real_dataset.X[:4].astype(float)
    rows[2, 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values .* row\(s\) \[2\]"):
        model.predict(rows)


def test_fit_validates_target(real_dataset):
    with pytest.raises(ValueError, match=r"y has shape \(9,\), expected \(10,\)"):
        SurrogateRegressor().fit(real_dataset.X[:10], real_dataset.accuracy[:9])


def test_dataframe_columns_are_checked(model, real_dataset):
    frame = real_dataset.frame
    by_name = model.predict(frame[list(FEATURE_NAMES)])
    assert np.array_equal(by_name, model.predict(real_dataset.X))
    with pytest.raises(ValueError, match=r"expected the 22 architecture columns"):
        model.predict(frame)


def test_seeded_fit_repeats(real_dataset):
    X, y = real_dataset.X, real_dataset.accuracy
    params = {"random_state": 7, "subsample": 0.8, "n_estimators": 60}
    first = SurrogateRegressor(**params).fit(X, y).predict(X)
    second = SurrogateRegressor(**params).fit(X, y).predict(X)
    other = SurrogateRegressor(**{**params, "random_state": 8}).fit(X, y).predict(X)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_seeded_ensemble_repeats(real_dataset):
    X, y = real_dataset.X[:300], real_dataset.accuracy[:300]
    first = SurrogateEnsemble(n_members=3, n_estimators=30, random_state=2).fit(X, y).predict(X)
    second = SurrogateEnsemble(n_members=3, n_estimators=30, random_state=2).fit(X, y).predict(X)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("estimator_class", [SurrogateRegressor, SurrogateEnsemble])
def test_clone_and_params_round_trip(estimator_class, model):
    estimator = estimator_class(n_estimators=40, max_depth=3, random_state=11)
    params = estimator.get_params()
    assert params["n_estimators"] == 40
    assert params["random_state"] == 11

    copy = clone(estimator)
    assert copy is not estimator
    assert copy.get_params() == params

    copy.set_params(learning_rate=0.05, target="AVM")
    assert copy.get_params()["learning_rate"] == 0.05
    assert copy.get_params()["target"] == "AVM"
    assert estimator.get_params()["learning_rate"] == 0.3

    fitted_copy = clone(model)
    assert not hasattr(fitted_copy, "booster_")


def test_score_is_r2(model, real_dataset):
    assert 0.3 < model.score(real_dataset.X, real_dataset.accuracy) <= 1.0


def test_surrogate_plots(accuracy_cv, ensemble, real_dataset):
    figures = [
        plots.parity_plot(accuracy_cv.y_true, accuracy_cv.oof_prediction, bins=real_dataset.bins),
        plots.parity_plot(accuracy_cv.y_true, accuracy_cv.oof_prediction),
        plots.residuals_by_bin(accuracy_cv.y_true, accuracy_cv.oof_prediction, real_dataset.bins),
    ]
    mean, std = ensemble.predict(real_dataset.X, return_std=True)
    figures.append(plots.uncertainty_vs_error(std, np.abs(mean - real_dataset.accuracy)))

    rmse = regression_metrics(accuracy_cv.y_true, accuracy_cv.oof_prediction)["rmse"]
    assert f"RMSE {rmse:.4f}" in figures[0].axes[0].get_title()
    assert "Spearman rho" in figures[3].axes[0].get_title()
    for figure in figures:
        plt.close(figure)

    with pytest.raises(ValueError, match=r"one length"):
        plots.parity_plot(np.zeros(3), np.zeros(4))


def test_version_difference_is_logged(model, tmp_path, caplog):
    path = model.save(tmp_path / "surrogate.json")
    metadata_path = tmp_path / "surrogate.meta.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["versions"]["xgboost"] = "0.0.1"
    metadata_path.write_text(json.dumps(metadata))
    with caplog.at_level(logging.WARNING, logger="nasutils.surrogate"):
        SurrogateRegressor.load(path)
    assert "saved with xgboost 0.0.1" in caplog.text
