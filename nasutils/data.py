"""The measured AnalogNAS dataset: locate, download, validate and label it.

The dataset holds 1200 ResNet-like architectures trained on CIFAR-10, each with
its accuracy one day after programming onto simulated phase-change memory
(``1_day_accuracy``, a fraction in [0, 1]), the spread of that accuracy over
noise seeds (``1_day_accuracy_std``) and the accuracy variation measure
(``AVM``, in percentage points). IBM published it under Apache-2.0 in the
``IBM/analog-nas`` repository; :data:`DATASET_URL` pins the commit.

Search order for the CSV file (:func:`locate_dataset`): an explicit path, the
``NASUTILS_DATA`` environment variable, the project's ``data/`` folder, and
finally a download from :data:`DATASET_URL`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from .download import DownloadError, download_verified, sha256_file
from .space import CONVBLOCK_LABELS, RESNET_SPACE, ResNetArchitecture

__all__ = [
    "ARCHITECTURE_COLUMNS",
    "BIN_EDGES",
    "COLUMNS",
    "DATASET_FILENAME",
    "DATASET_SHA256",
    "DATASET_URL",
    "ENV_VAR",
    "TARGET_COLUMNS",
    "ChecksumMismatchError",
    "ChecksumMismatchWarning",
    "Dataset",
    "DatasetDownloadError",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetValidationError",
    "Problem",
    "accuracy_bins",
    "bin_table",
    "download_dataset",
    "load_dataset",
    "locate_dataset",
    "read_dataset",
    "sha256_file",
]

logger = logging.getLogger(__name__)

DATASET_FILENAME = "analognas_resnet_cifar10.csv"
DATASET_SHA256 = "d52b8f846a580c9dc725f21042d8c1ac9a9ab705297b4cc04aead5f7c8c10d77"
DATASET_URL = (
    "https://raw.githubusercontent.com/IBM/analog-nas/"
    "97b41e31173e1db782004bb01be516f91b2055b0/"
    "analogainas/evaluators/dataset/cifar10_dataset.csv"
)
ENV_VAR = "NASUTILS_DATA"

ARCHITECTURE_COLUMNS: tuple[str, ...] = RESNET_SPACE.field_names
TARGET_COLUMNS: tuple[str, ...] = ("1_day_accuracy", "1_day_accuracy_std", "AVM")
COLUMNS: tuple[str, ...] = ARCHITECTURE_COLUMNS + TARGET_COLUMNS

BIN_EDGES: tuple[float, ...] = (
    0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
    0.905, 0.91, 0.915, 0.92, 0.925, 0.93, 0.935, 0.94,
)  # fmt: skip
"""Edges of the report's 14 accuracy bins (1-day accuracy as a fraction).

Bin ``k`` holds accuracies in ``[BIN_EDGES[k], BIN_EDGES[k + 1])``: a value on an
inner edge goes to the upper bin. The last bin also holds its upper edge 0.94.
"""

_MISSING = {"", "na", "nan", "null", "none"}


class DatasetError(Exception):
    """Base class of every dataset error."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """Raised when no dataset file exists where the search looked."""


class DatasetDownloadError(DatasetError):
    """Raised when a download fails or delivers bytes with the wrong checksum."""


class ChecksumMismatchError(DatasetError):
    """Raised in strict mode when a local file differs from the pinned dataset."""


class ChecksumMismatchWarning(UserWarning):
    """Warns that a local file differs from the pinned dataset."""


@dataclass(frozen=True)
class Problem:
    """One defect of a dataset file. ``line`` is the 1-based line in the CSV file."""

    line: int | None
    column: str | None
    value: str
    expected: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "header"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: value {self.value!r}, expected {self.expected}"


class DatasetValidationError(DatasetError, ValueError):
    """Raised with every defect found in a dataset file, one per line of the message."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"Invalid dataset {path} ({len(problems)} problem(s)):\n{shown}")


@dataclass(frozen=True)
class Dataset:
    """A validated dataset.

    ``frame`` has the 22 architecture columns as ``int64`` (block types coded
    A=1 to D=4, 0 for an unused block), the three target columns as ``float64``
    and ``bin``, the accuracy bin from 0 to 13.
    """

    frame: pd.DataFrame
    path: Path
    sha256: str

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def matches_pinned(self) -> bool:
        """True when the file is byte for byte the pinned AnalogNAS dataset."""
        return self.sha256 == DATASET_SHA256

    @property
    def X(self) -> npt.NDArray[np.int64]:
        """The (n, 22) architecture matrix in :mod:`nasutils.space` order."""
        return self.frame[list(ARCHITECTURE_COLUMNS)].to_numpy(dtype=np.int64)

    @property
    def accuracy(self) -> npt.NDArray[np.float64]:
        """Measured 1-day accuracy, a fraction in [0, 1]."""
        return self.frame["1_day_accuracy"].to_numpy(dtype=np.float64)

    @property
    def bins(self) -> npt.NDArray[np.int64]:
        return self.frame["bin"].to_numpy(dtype=np.int64)

    def architectures(self) -> list[ResNetArchitecture]:
        """Every row as a typed architecture."""
        return [RESNET_SPACE.decode(row) for row in self.X]


def project_dir() -> Path:
    """Return the source checkout that contains this package, or the working directory outside one."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd()


def default_data_dir() -> Path:
    """Return the project's ``data/`` folder."""
    return project_dir() / "data"


def _file_in(path: Path, source: str) -> Path:
    if path.is_dir():
        candidate = path / DATASET_FILENAME
        if not candidate.is_file():
            raise DatasetNotFoundError(
                f"Folder {str(path)!r} from {source} has no {DATASET_FILENAME}. Copy the file there "
                "or give the path of the CSV file itself."
            )
        return candidate
    candidate = path
    if not candidate.is_file():
        raise DatasetNotFoundError(
            f"Dataset path {str(path)!r} from {source} does not exist. Give the path of "
            f"{DATASET_FILENAME} or of the folder that contains it."
        )
    return candidate


def locate_dataset(
    path: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str = DATASET_URL,
    timeout: float = 60.0,
) -> Path:
    """Find the dataset file, downloading it into ``data_dir`` as a last resort.

    ``path`` and ``NASUTILS_DATA`` may name the CSV file or the folder that
    contains it; either one, when given, must exist. ``data_dir`` defaults to
    the project's ``data/`` folder.
    """
    if path is not None:
        return _file_in(Path(path), "the path argument")
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _file_in(Path(from_env), f"the {ENV_VAR} environment variable")

    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    local = folder / DATASET_FILENAME
    if local.is_file():
        return local
    if not download:
        raise DatasetNotFoundError(
            f"No dataset found: no path given, {ENV_VAR} is not set and {local} does not exist. "
            f"Pass a path, set {ENV_VAR}, or allow the download."
        )
    return download_dataset(local, url=url, timeout=timeout)


def download_dataset(
    destination: str | os.PathLike[str],
    *,
    url: str = DATASET_URL,
    sha256: str = DATASET_SHA256,
    timeout: float = 60.0,
) -> Path:
    """Download the dataset to ``destination`` and verify its SHA-256.

    The bytes go to a temporary file beside ``destination``, which replaces
    ``destination`` only after the checksum matched, so an interrupted or
    corrupt download never leaves a partial file behind.
    """
    hint = f"If this machine is offline, copy {DATASET_FILENAME} into {Path(destination).parent} or set {ENV_VAR} to its path."
    try:
        return download_verified(
            url, Path(destination), sha256, what="the dataset", timeout=timeout, offline_hint=hint
        )
    except DownloadError as error:
        raise DatasetDownloadError(str(error)) from error


def accuracy_bins(accuracy: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Label accuracies (fractions) with the report's 14 bins; see :data:`BIN_EDGES`.

    Raises ``ValueError`` naming the values outside [0.6, 0.94], which no bin covers.
    """
    values = np.asarray(accuracy, dtype=np.float64)
    low, high = BIN_EDGES[0], BIN_EDGES[-1]
    outside = ~((values >= low) & (values <= high))
    if outside.any():
        shown = ", ".join(f"{v:.4f}" for v in values[outside][:10])
        raise ValueError(f"Accuracies outside the binned range [{low}, {high}]: {shown}.")
    labels = np.searchsorted(np.asarray(BIN_EDGES), values, side="right") - 1
    return np.minimum(labels, len(BIN_EDGES) - 2).astype(np.int64)


def bin_table() -> pd.DataFrame:
    """Return the report's Table 1: one row per bin with its accuracy interval."""
    edges = np.asarray(BIN_EDGES)
    return pd.DataFrame({"bin": np.arange(len(edges) - 1), "low": edges[:-1], "high": edges[1:]}).set_index(
        "bin"
    )


def _parse_rows(path: Path, text: str) -> tuple[list[list[str]], list[int], list[Problem]]:
    """Split CSV text into rows of the expected width, with header checks."""
    reader = csv.reader(io.StringIO(text))
    records = [(reader.line_num, row) for row in reader if row]
    if not records:
        raise DatasetValidationError(
            path, [Problem(None, None, "", "a header line and 1200-odd data rows; the file is empty")]
        )

    _, header = records[0]
    header = [name.strip() for name in header]
    if len(header) == 1 and ";" in header[0]:
        raise DatasetValidationError(
            path, [Problem(1, None, header[0][:60], "comma-separated columns; this header uses semicolons")]
        )
    missing = [name for name in COLUMNS if name not in header]
    extra = [name for name in header if name not in COLUMNS]
    problems = [Problem(None, name, "", "this column, which is missing") for name in missing]
    problems += [
        Problem(None, name, name, f"no such column; allowed: {', '.join(COLUMNS)}") for name in extra
    ]
    if problems:
        raise DatasetValidationError(path, problems)
    if len(records) == 1:
        raise DatasetValidationError(path, [Problem(None, None, "", "data rows after the header")])

    order = [header.index(name) for name in COLUMNS]
    rows: list[list[str]] = []
    lines: list[int] = []
    for line, row in records[1:]:
        if len(row) != len(header):
            problems.append(Problem(line, None, ",".join(row), f"{len(header)} fields, found {len(row)}"))
            continue
        rows.append([row[i].strip() for i in order])
        lines.append(line)
    return rows, lines, problems


def _parse_cells(rows: list[list[str]], lines: list[int]) -> tuple[npt.NDArray[np.float64], list[Problem]]:
    """Convert cells to numbers; block letters become codes 1-4."""
    codes = {label: float(i + 1) for i, label in enumerate(CONVBLOCK_LABELS)}
    values = np.full((len(rows), len(COLUMNS)), np.nan)
    problems: list[Problem] = []
    for r, row in enumerate(rows):
        for c, (name, cell) in enumerate(zip(COLUMNS, row, strict=True)):
            if cell.lower() in _MISSING:
                problems.append(Problem(lines[r], name, cell, "a value, found a missing value"))
                continue
            if name.startswith("convblock"):
                if cell in codes:
                    values[r, c] = codes[cell]
                elif cell == "0":
                    values[r, c] = 0.0
                else:
                    problems.append(
                        Problem(lines[r], name, cell, "a block type A, B, C or D, or 0 for an unused block")
                    )
                continue
            try:
                number = float(cell)
            except ValueError:
                problems.append(Problem(lines[r], name, cell, "a number"))
                continue
            if not math.isfinite(number):
                problems.append(Problem(lines[r], name, cell, "a finite number"))
                continue
            values[r, c] = number
    return values, problems


def _range_problems(values: npt.NDArray[np.float64], lines: list[int]) -> list[Problem]:
    """Check the space's rules on parsed rows and the ranges of the targets."""
    problems: list[Problem] = []
    n_arch = len(ARCHITECTURE_COLUMNS)
    complete = ~np.isnan(values[:, :n_arch]).any(axis=1)
    rows = np.flatnonzero(complete)
    for violation in RESNET_SPACE.violations(values[rows, :n_arch]):
        value = violation.value
        shown = str(int(value)) if value.is_integer() else repr(value)
        if violation.field.startswith("convblock") and value.is_integer() and 1 <= value <= 4:
            shown = CONVBLOCK_LABELS[int(value) - 1]
        problems.append(Problem(lines[rows[violation.row]], violation.field, shown, violation.expected))

    target_rules = {
        "1_day_accuracy": (0.0, 1.0, "an accuracy fraction in [0, 1]"),
        "1_day_accuracy_std": (0.0, 1.0, "a standard deviation of accuracy in [0, 1]"),
        "AVM": (0.0, 100.0, "an accuracy variation in [0, 100] percentage points"),
    }
    for name, (low, high, expected) in target_rules.items():
        column = values[:, COLUMNS.index(name)]
        for r in np.flatnonzero(~np.isnan(column) & ((column < low) | (column > high))):
            problems.append(Problem(lines[r], name, repr(float(column[r])), expected))

    accuracy = values[:, COLUMNS.index("1_day_accuracy")]
    low, high = BIN_EDGES[0], BIN_EDGES[-1]
    for r in np.flatnonzero((accuracy >= 0) & (accuracy <= 1) & ((accuracy < low) | (accuracy > high))):
        problems.append(
            Problem(
                lines[r],
                "1_day_accuracy",
                repr(float(accuracy[r])),
                f"a value in [{low}, {high}], the range of the 14 accuracy bins",
            )
        )
    return problems


def read_dataset(path: str | os.PathLike[str], *, strict: bool = False) -> Dataset:
    """Read, validate and label one dataset file.

    Every defect is collected before raising, so a single
    :class:`DatasetValidationError` lists all bad rows with line, column, value
    and the allowed values. A file that is valid but differs from the pinned
    dataset emits a :class:`ChecksumMismatchWarning` naming both hashes, or,
    with ``strict=True``, raises :class:`ChecksumMismatchError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"Dataset file {str(path)!r} does not exist.")

    digest = sha256_file(path)
    if digest != DATASET_SHA256:
        message = (
            f"Dataset {path} has SHA-256 {digest}, but the pinned AnalogNAS dataset has "
            f"{DATASET_SHA256}. Results will not match the book's."
        )
        if strict:
            raise ChecksumMismatchError(
                message + " Use the pinned file, or turn strict checking off (strict=False in Python, "
                "no --strict on the command line)."
            )
        warnings.warn(message, ChecksumMismatchWarning, stacklevel=2)

    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetValidationError(
            path,
            [Problem(None, None, repr(error.object[error.start : error.end]), f"UTF-8 text: {error.reason}")],
        ) from None
    rows, lines, problems = _parse_rows(path, text)
    values, cell_problems = _parse_cells(rows, lines)
    problems += cell_problems
    problems += _range_problems(values, lines)
    if problems:
        problems.sort(key=lambda p: (p.line or 0, COLUMNS.index(p.column) if p.column in COLUMNS else -1))
        raise DatasetValidationError(path, problems)

    frame = pd.DataFrame(values, columns=list(COLUMNS))
    frame = frame.astype({name: np.int64 for name in ARCHITECTURE_COLUMNS})
    frame["bin"] = accuracy_bins(frame["1_day_accuracy"])

    duplicated = int(frame.duplicated(subset=list(ARCHITECTURE_COLUMNS)).sum())
    if duplicated:
        logger.warning("%s contains %d repeated architecture(s)", path, duplicated)
    logger.info("Loaded %d architectures from %s (SHA-256 %s)", len(frame), path, digest)
    return Dataset(frame=frame, path=path, sha256=digest)


def load_dataset(
    path: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    download: bool = True,
) -> Dataset:
    """Locate (see :func:`locate_dataset`), read and validate the dataset."""
    return read_dataset(locate_dataset(path, download=download), strict=strict)
