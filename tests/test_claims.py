from __future__ import annotations

import math

import pytest

from nasutils.claims import (
    REPORT_CLAIMS,
    Measurement,
    MissingMeasurementError,
    claim,
    judge,
    ledger,
    read_measurements,
    record_measurement,
)


def measured(key, value, **context):
    return Measurement(key=key, value=value, shown=f"{value}", source="test", context=context)


def test_ledger_fails_without_a_measurement():
    measurements = {c.key: measured(c.key, 1.0) for c in REPORT_CLAIMS if c.key != "search_speedup"}
    with pytest.raises(MissingMeasurementError, match="No measured value for claim.*search_speedup"):
        ledger(measurements)


def test_record_and_read_round_trip(tmp_path):
    record_measurement(tmp_path, measured("surrogate_rmse", 0.057))
    record_measurement(tmp_path, measured("surrogate_rmse", 0.052))
    record_measurement(tmp_path, measured("return_mlp", 0.9, budget_fraction=1.0))
    read = read_measurements(tmp_path)
    assert read["surrogate_rmse"].value == 0.052
    assert read["return_mlp"].context == {"budget_fraction": 1.0}


def test_unknown_claim_is_rejected(tmp_path):
    with pytest.raises(KeyError, match="No claim 'accuracy'"):
        record_measurement(tmp_path, measured("accuracy", 1.0))


@pytest.mark.parametrize(
    ("key", "value", "context", "verdict"),
    [
        ("surrogate_rmse", 0.057, {}, "reproduced"),
        ("surrogate_rmse", 0.08, {}, "not reproduced"),
        ("latent_clusters", 0.2, {"chance": 0.07, "train_purity": 0.4}, "reproduced"),
        ("latent_clusters", 0.09, {"chance": 0.07, "train_purity": 0.45}, "partly reproduced"),
        ("latent_clusters", 0.08, {"chance": 0.07, "train_purity": 0.1}, "not reproduced"),
        ("return_mlp", 0.87, {"budget_fraction": 0.01}, "cannot be checked here"),
        ("return_mlp", 0.87, {"budget_fraction": 1.0}, "reproduced"),
        ("return_mlp", 0.87, {"budget_fraction": 1.0, "start_accuracy": 0.86}, "partly reproduced"),
        ("return_mlp", 0.84, {"budget_fraction": 0.01}, "cannot be checked here"),
        ("return_mlp", 0.84, {"budget_fraction": 1.0}, "not reproduced"),
        ("return_memory", 0.91, {"budget_fraction": 1.0}, "reproduced"),
        ("length_mlp", 50, {"budget_fraction": 1.0}, "not reproduced"),
        ("length_mlp", 120, {"budget_fraction": 1.0}, "reproduced"),
        ("length_memory", 5.5, {"budget_fraction": 1.0}, "reproduced"),
        ("search_accuracy", 0.95, {"seconds": 60}, "reproduced"),
        ("search_accuracy", 0.97, {"seconds": 60, "random_median": 0.96}, "partly reproduced"),
        ("search_accuracy", 0.93, {"seconds": 60}, "cannot be checked here"),
        ("search_accuracy", 0.93, {"seconds": 600}, "not reproduced"),
        ("search_speedup", 4.0, {}, "reproduced"),
        ("search_speedup", 0.5, {}, "not reproduced"),
        ("search_speedup", 0.26, {"budget_fraction": 0.1}, "not reproduced"),
        ("search_speedup", math.nan, {}, "not reproduced"),
    ],
)
def test_verdicts(key, value, context, verdict):
    got, reason = judge(claim(key), measured(key, value, **context))
    assert got == verdict
    assert reason


def test_full_ledger_has_one_row_per_claim():
    measurements = {c.key: measured(c.key, 0.9, chance=0.07, train_purity=0.5) for c in REPORT_CLAIMS}
    table = ledger(measurements)
    assert len(table) == len(REPORT_CLAIMS)
    assert set(table["verdict"]) <= {"reproduced", "partly reproduced", "not reproduced", "cannot be checked here"}
