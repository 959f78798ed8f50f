from __future__ import annotations

import numpy as np
import pytest

from nasutils import summary
from nasutils.cli import footer_html
from nasutils.data import ChecksumMismatchWarning, read_dataset


def test_bin_counts_table(real_dataset):
    table = summary.bin_counts(real_dataset)
    assert table["architectures"].tolist() == [77, 91, 67, 60, 58, 58, 113, 98, 107, 87, 91, 95, 103, 95]
    assert table.loc[0, "accuracy range"] == "[0.6, 0.65)"
    assert table.loc[13, "accuracy range"] == "[0.935, 0.94]"
    assert np.isclose(table["share (%)"].sum(), 100, atol=0.2)


def test_field_ranges_find_the_two_disagreements(real_dataset):
    ranges = summary.field_ranges(real_dataset)
    assert ranges.loc["KS0", "agrees"] == "no: the dataset has no such field"
    assert ranges.loc["WF*", "agrees"] == "no: integers only (report: continuous)"
    for symbol in ("OC0", "M", "R*", "B*", "CT*"):
        assert ranges.loc[symbol, "agrees"] == "yes", symbol
    assert ranges.loc["CT*", "dataset"] == "A, B, C, D"
    assert ranges.loc["R*", "distinct values"] == 16


def test_field_ranges_report_a_narrower_range(csv_variant):
    # Clamp every first-layer width to at most 100: the table must flag it.
    edits = []
    path = csv_variant()
    rows = path.read_text().splitlines()[1:]
    for i, row in enumerate(rows):
        if int(row.split(",")[0]) > 100:
            edits.append((i, "out_channel0", "100"))
    with pytest.warns(ChecksumMismatchWarning):
        dataset = read_dataset(csv_variant(edits, name="narrow.csv"))
    assert summary.field_ranges(dataset).loc["OC0", "agrees"] == "no: observed [8, 100]"


def test_structure_correlations(real_dataset):
    rho = summary.structure_correlations(real_dataset)["Spearman rho"]
    assert rho["main blocks M"] > 0.3
    assert abs(rho["first-layer channels"]) < 0.1


def test_footer_names_profile_and_checksum(real_dataset):
    footer = footer_html("quick", real_dataset.path, real_dataset.sha256, True)
    assert "profile &#x27;quick&#x27;" in footer
    assert real_dataset.sha256 in footer
