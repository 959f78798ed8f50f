"""Shared fixtures: the real dataset's location and CSV variants with planted defects."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from nasutils.data import DATASET_FILENAME, Dataset, read_dataset

ROOT = Path(__file__).resolve().parents[1]


def _real_dataset_path() -> Path | None:
    """The real dataset: $NASUTILS_DATA (file or folder), the project's data/, or ../shared/data (CI)."""
    candidates = []
    if os.environ.get("NASUTILS_DATA"):
        candidates.append(Path(os.environ["NASUTILS_DATA"]))
    candidates += [ROOT / "data", ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        path = candidate / DATASET_FILENAME if candidate.is_dir() else candidate
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Run every test with one torch thread, as the book does: the small networks are faster so."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def real_csv() -> Path:
    path = _real_dataset_path()
    if path is None:
        pytest.skip(f"real dataset not found: put {DATASET_FILENAME} in data/ or set NASUTILS_DATA to it")
    return path


@pytest.fixture(scope="session")
def real_dataset(real_csv: Path) -> Dataset:
    return read_dataset(real_csv, strict=True)


Edit = tuple[int, str, str]
"""(data row index from 0, column name, new cell text)."""


@pytest.fixture
def csv_variant(real_csv: Path, tmp_path: Path) -> Callable[..., Path]:
    """Write a copy of the real CSV with edited cells, dropped or added columns, or extra rows."""

    def write(
        edits: Sequence[Edit] = (),
        *,
        drop_columns: Sequence[str] = (),
        add_columns: Sequence[str] = (),
        rows: int | None = None,
        name: str = "variant.csv",
    ) -> Path:
        with open(real_csv, newline="") as handle:
            table = list(csv.reader(handle))
        header, body = table[0], table[1:]
        if rows is not None:
            body = body[:rows]
        for row, column, value in edits:
            body[row][header.index(column)] = value
        keep = [i for i, column in enumerate(header) if column not in drop_columns]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([header[i] for i in keep] + list(add_columns))
        for line in body:
            writer.writerow([line[i] for i in keep] + ["0"] * len(add_columns))
        path = tmp_path / name
        path.write_text(out.getvalue())
        return path

    return write
