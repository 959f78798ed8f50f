"""Tables that describe the dataset beside what the report states about it.

The report's statements are kept here as data (:data:`REPORT_RANGES`,
:data:`REPORT_DATASET_SIZE`), each compared with what the measured file holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .data import Dataset, bin_table
from .space import CONVBLOCK_LABELS, RESNET_SPACE

__all__ = [
    "REPORT_DATASET_SIZE",
    "REPORT_RANGES",
    "ReportRange",
    "bin_counts",
    "field_ranges",
    "structure_correlations",
    "structure_table",
]

REPORT_DATASET_SIZE = 1000
"""Number of architectures the report says its dataset holds (section 4.1.1)."""


@dataclass(frozen=True)
class ReportRange:
    """One row of the report's table of searchable hyperparameters (its Figure 2)."""

    symbol: str
    definition: str
    stated: str
    columns: tuple[str, ...]
    low: float
    high: float
    continuous: bool = False


def _block_columns(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, 6))


REPORT_RANGES: tuple[ReportRange, ...] = (
    ReportRange("OC0", "first layer's output channels", "discrete uniform [8, 128]", ("out_channel0",), 8, 128),
    ReportRange("KS0", "first layer's kernel size", "discrete uniform [3, 7]", (), 3, 7),
    ReportRange("M", "number of main blocks", "discrete uniform [1, 5]", ("M",), 1, 5),
    ReportRange("R*", "residual blocks per main block", "discrete uniform [1, 16]", _block_columns("R"), 1, 16),
    ReportRange("B*", "branches per main block", "discrete uniform [1, 12]", _block_columns("B"), 1, 12),
    ReportRange(
        "CT*", "convolution block type per main block", "uniform choice [A; B; C; D]",
        _block_columns("convblock"), 1, 4,
    ),
    ReportRange(
        "WF*", "widening factor per main block", "uniform [1, 4]",
        _block_columns("widenfact"), 1, 4, continuous=True,
    ),
)  # fmt: skip


def bin_counts(dataset: Dataset) -> pd.DataFrame:
    """Return the report's Table 1 with the number and share of architectures per bin."""
    table = bin_table()
    counts = np.bincount(dataset.bins, minlength=len(table))
    table["accuracy range"] = [f"[{low:g}, {high:g})" for low, high in zip(table["low"], table["high"])]
    table.loc[table.index[-1], "accuracy range"] = f"[{table['low'].iloc[-1]:g}, {table['high'].iloc[-1]:g}]"
    table["architectures"] = counts
    table["share (%)"] = np.round(100 * counts / counts.sum(), 1)
    return table[["accuracy range", "architectures", "share (%)"]]


def _used_values(dataset: Dataset, columns: tuple[str, ...]) -> np.ndarray:
    """Values of ``columns`` in rows where the field is in use (its main block is at most M)."""
    names = RESNET_SPACE.field_names
    X = dataset.X
    used = RESNET_SPACE.used_mask(X[:, names.index("M")])
    values = [X[used[:, names.index(c)], names.index(c)] for c in columns]
    return np.concatenate(values) if values else np.array([])


def field_ranges(dataset: Dataset) -> pd.DataFrame:
    """Compare each hyperparameter range the report states with the values in the dataset.

    Only fields in use count: a block field of a row with fewer main blocks is
    0 by construction and is left out.
    """
    rows = []
    for spec in REPORT_RANGES:
        values = _used_values(dataset, spec.columns)
        if values.size == 0:
            rows.append(
                {
                    "symbol": spec.symbol,
                    "definition": spec.definition,
                    "report": spec.stated,
                    "dataset": "no such column",
                    "distinct values": 0,
                    "agrees": "no: the dataset has no such field",
                }
            )
            continue

        low, high = int(values.min()), int(values.max())
        distinct = int(np.unique(values).size)
        if spec.symbol == "CT*":
            shown = ", ".join(CONVBLOCK_LABELS[int(v) - 1] for v in np.unique(values))
        else:
            shown = f"integers {low} to {high}"
        if spec.continuous and np.all(values == np.round(values)):
            verdict = "no: integers only (report: continuous)"
        elif low == spec.low and high == spec.high:
            verdict = "yes"
        else:
            verdict = f"no: observed [{low}, {high}]"
        rows.append(
            {
                "symbol": spec.symbol,
                "definition": spec.definition,
                "report": spec.stated,
                "dataset": shown,
                "distinct values": distinct,
                "agrees": verdict,
            }
        )
    return pd.DataFrame(rows).set_index("symbol")


def structure_table(dataset: Dataset) -> pd.DataFrame:
    """Return depth and width measures of every architecture beside its 1-day accuracy.

    The mean widening factor averages over the main blocks in use only.
    """
    frame = dataset.frame
    widen_columns = list(_block_columns("widenfact"))
    widen = frame[widen_columns].where(frame[widen_columns] > 0).mean(axis=1)
    return pd.DataFrame(
        {
            "main blocks M": frame["M"],
            "residual blocks (sum of R)": frame[list(_block_columns("R"))].sum(axis=1),
            "first-layer channels": frame["out_channel0"],
            "mean widening factor": widen,
            "1-day accuracy": frame["1_day_accuracy"],
        }
    )


def structure_correlations(dataset: Dataset) -> pd.DataFrame:
    """Return Spearman's rank correlation of each depth and width measure with 1-day accuracy."""
    table = structure_table(dataset)
    rows = []
    for column in table.columns.drop("1-day accuracy"):
        result = stats.spearmanr(table[column], table["1-day accuracy"])
        rows.append({"measure": column, "Spearman rho": float(result.statistic), "p-value": float(result.pvalue)})
    return pd.DataFrame(rows).set_index("measure")
