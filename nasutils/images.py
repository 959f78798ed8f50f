"""Image classification data for the analog evaluation: CIFAR-10 and a small stand-in.

:func:`load_cifar10` reads the official CIFAR-10 "python version" archive
(``cifar-10-python.tar.gz``) or its extracted folder ``cifar-10-batches-py``.
Each of the files ``data_batch_1`` to ``data_batch_5`` and ``test_batch`` is a
pickled dict with the keys ``b"data"`` and ``b"labels"``. ``b"data"`` is a
uint8 array of shape (N, 3072): per image, 1024 red, then 1024 green, then 1024
blue values of a 32x32 image, row by row. ``b"labels"`` lists N class indices
in [0, 9]. The reader reads the archive members
in memory, so nothing is extracted to disk. Its unpickler accepts only the few
NumPy globals that such a file needs. That stops a crafted file from running
code, but the checksum check in :func:`download_cifar10` is what verifies that
an archive is the official one.

:func:`download_cifar10` fetches the official archive on a machine with
internet access. This module never downloads by itself.

:func:`load_digits` is the stand-in for machines without CIFAR-10:
scikit-learn's 8x8 handwritten digits (1797 images, 10 classes, shipped inside
scikit-learn, so no download), upsampled to ``image_size`` pixels.

Both loaders return an :class:`ImageData` whose ``name`` records which data set
was used.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from .download import DownloadError, download_verified, sha256_file

__all__ = [
    "CIFAR10_ARCHIVE",
    "CIFAR10_ENV_VAR",
    "CIFAR10_FOLDER",
    "CIFAR10_SHA256",
    "CIFAR10_URL",
    "CIFAR10DownloadError",
    "CIFAR10FormatError",
    "CIFAR10NotFoundError",
    "ImageData",
    "download_cifar10",
    "load_cifar10",
    "load_digits",
]

logger = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
"""The official archive, linked from https://www.cs.toronto.edu/~kriz/cifar.html."""

CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
"""SHA-256 of the official archive (170,498,071 bytes).

Keras' ``cifar10.load_data`` pins the same digest, and torchvision's ``CIFAR10``
checks the archive's MD5, ``c58f30108f718f92721af3b95e74349a``.
"""

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_ENV_VAR = "NASUTILS_CIFAR10"

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_CLASSES = 10
CIFAR10_PIXELS = 3 * 32 * 32

# The globals that a CIFAR-10 batch file needs: NumPy's array reconstruction
# (under its NumPy 1 and NumPy 2 module names) and the codec that protocol 2
# uses for bytes objects written by Python 3.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
}


class CIFAR10NotFoundError(FileNotFoundError):
    """Raised when no CIFAR-10 archive or folder exists where the reader looked."""


class CIFAR10FormatError(ValueError):
    """Raised when a CIFAR-10 archive or batch file is not in the standard format."""


class CIFAR10DownloadError(Exception):
    """Raised when the download fails or delivers bytes with the wrong checksum."""


@dataclass(frozen=True)
class ImageData:
    """Train and test images of one data set, as float32 tensors of shape (N, C, H, W).

    ``name`` identifies the data set in every output (for example ``"cifar10"``
    or ``"digits-16px"``), and ``source`` is where it was read from. Labels
    are int64 class indices in [0, ``n_classes``).
    """

    name: str
    source: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.ndim != 4 or x.dtype != torch.float32:
                raise ValueError(
                    f"x_{split} must be a float32 tensor (N, C, H, W), got {x.dtype} {tuple(x.shape)}."
                )
            if y.shape != (x.shape[0],) or y.dtype != torch.int64:
                raise ValueError(
                    f"y_{split} must be an int64 tensor of shape ({x.shape[0]},), "
                    f"got {y.dtype} {tuple(y.shape)}."
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"Train and test images differ in shape: {tuple(self.x_train.shape[1:])} "
                f"and {tuple(self.x_test.shape[1:])}."
            )

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """Height and width in pixels."""
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    def subset(self, n_train: int | None = None, n_test: int | None = None, *, seed: int = 0) -> ImageData:
        """Return a copy with ``n_train`` and ``n_test`` images drawn without replacement.

        ``None`` keeps a split whole. The draw is seeded, so a seed gives the same
        images every time. The name gets a suffix such as ``"[2000/500]"``.
        """
        generator = torch.Generator().manual_seed(seed)
        x_train, y_train = _draw(self.x_train, self.y_train, n_train, generator, "n_train")
        x_test, y_test = _draw(self.x_test, self.y_test, n_test, generator, "n_test")
        return ImageData(
            name=f"{self.name}[{len(y_train)}/{len(y_test)}]",
            source=self.source,
            x_train=x_train,
            y_train=y_train,
            x_test=x_test,
            y_test=y_test,
            n_classes=self.n_classes,
        )


def _draw(
    x: torch.Tensor, y: torch.Tensor, n: int | None, generator: torch.Generator, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None:
        return x, y
    if not 0 < n <= len(y):
        raise ValueError(f"{name} must be in [1, {len(y)}], got {n}.")
    rows = torch.randperm(len(y), generator=generator)[:n]
    return x[rows], y[rows]


# ---------------------------------------------------------------------------
# CIFAR-10


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR-10 batch file needs."""

    def __init__(self, file: io.BufferedIOBase, label: str) -> None:
        super().__init__(file, encoding="bytes")
        self._label = label

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise CIFAR10FormatError(
                f"{self._label} is not a CIFAR-10 batch file, because its pickle refers to {module}.{name}, "
                "which a batch file never contains, so it was not loaded."
            )
        return super().find_class(*target)


def _parse_batch(raw: bytes, label: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Unpickle one batch file, check its fields and return images (N, 3, 32, 32) and labels."""
    try:
        content = _BatchUnpickler(io.BytesIO(raw), label).load()
    except CIFAR10FormatError:
        raise
    except Exception as error:  # a corrupt pickle can fail in many ways
        raise CIFAR10FormatError(f"{label} is not a readable pickle file: {error!r}.") from error

    if not isinstance(content, dict):
        raise CIFAR10FormatError(f"{label} contains a {type(content).__name__}, expected a dict.")
    missing = [key for key in (b"data", b"labels") if key not in content]
    if missing:
        found = ", ".join(repr(key) for key in content) or "no keys"
        raise CIFAR10FormatError(f"{label} has no {' or '.join(map(repr, missing))} entry (found {found}).")

    data = content[b"data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != CIFAR10_PIXELS
    ):
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise CIFAR10FormatError(
            f"{label}: b'data' must be a uint8 array of shape (N, {CIFAR10_PIXELS}), got {dtype} {shape}."
        )
    try:
        labels = np.asarray(content[b"labels"], dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise CIFAR10FormatError(f"{label}: b'labels' is not a list of integers ({error}).") from error
    if labels.shape != (len(data),):
        raise CIFAR10FormatError(
            f"{label}: b'labels' has shape {labels.shape}, expected ({len(data)},) to match b'data'."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= CIFAR10_CLASSES):
        raise CIFAR10FormatError(
            f"{label}: labels must be in [0, {CIFAR10_CLASSES - 1}], found {labels.min()} to {labels.max()}."
        )
    return data.reshape(-1, 3, 32, 32), labels


def _folder_reader(folder: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        path = folder / name
        if not path.is_file():
            raise CIFAR10FormatError(f"CIFAR-10 folder {folder} has no {name}.")
        return path.read_bytes()

    return read


def _archive_reader(path: Path) -> Callable[[str], bytes]:
    """Read the batch files of a tar archive into memory, keyed by file name.

    Only regular files inside a ``cifar-10-batches-py`` folder count, so the
    member names never reach the file system.
    """
    try:
        with tarfile.open(path, mode="r:*") as archive:
            members = {}
            for member in archive.getmembers():
                parts = Path(member.name).parts
                if member.isfile() and len(parts) >= 2 and parts[-2] == CIFAR10_FOLDER:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        members[parts[-1]] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise CIFAR10FormatError(f"{path} is not a readable tar archive: {error}.") from error

    def read(name: str) -> bytes:
        if name not in members:
            raise CIFAR10FormatError(f"CIFAR-10 archive {path} has no {CIFAR10_FOLDER}/{name}.")
        return members[name]

    return read


def _resolve_cifar10(path: Path, source: str) -> tuple[Callable[[str], bytes], Path]:
    """Find the batch files at ``path``: an archive, a batches folder, or a folder containing either."""
    if path.is_file():
        return _archive_reader(path), path
    if path.is_dir():
        if (path / CIFAR10_TRAIN_FILES[0]).is_file():
            return _folder_reader(path), path
        if (path / CIFAR10_FOLDER).is_dir():
            return _folder_reader(path / CIFAR10_FOLDER), path / CIFAR10_FOLDER
        if (path / CIFAR10_ARCHIVE).is_file():
            return _archive_reader(path / CIFAR10_ARCHIVE), path / CIFAR10_ARCHIVE
        raise CIFAR10NotFoundError(
            f"Folder {path} from {source} has no CIFAR-10 data: expected {CIFAR10_TRAIN_FILES[0]}, "
            f"a {CIFAR10_FOLDER} folder or {CIFAR10_ARCHIVE} in it."
        )
    raise CIFAR10NotFoundError(
        f"CIFAR-10 path {path} from {source} does not exist. Give the path of {CIFAR10_ARCHIVE} "
        f"or of its extracted {CIFAR10_FOLDER} folder. download_cifar10 fetches the archive."
    )


def load_cifar10(path: str | os.PathLike[str] | None = None, *, normalize: bool = True) -> ImageData:
    """Read CIFAR-10 from the official python archive or its extracted folder.

    ``path`` (or, when it is None, the ``NASUTILS_CIFAR10`` environment variable)
    may name ``cifar-10-python.tar.gz``, the ``cifar-10-batches-py`` folder, or
    a folder that contains either. Batch files may hold any number of images,
    so a small archive in the same format reads as well.

    With ``normalize``, each channel is scaled to zero mean and unit standard
    deviation with the training set's statistics. Without it, pixels are
    scaled to [0, 1].

    Raises :class:`CIFAR10NotFoundError` when nothing is found and
    :class:`CIFAR10FormatError` naming the file and field that is malformed.
    """
    if path is not None:
        location, source = Path(path), "the path argument"
    elif os.environ.get(CIFAR10_ENV_VAR):
        location, source = Path(os.environ[CIFAR10_ENV_VAR]), f"the {CIFAR10_ENV_VAR} environment variable"
    else:
        raise CIFAR10NotFoundError(
            f"No CIFAR-10 location given. Pass a path or set {CIFAR10_ENV_VAR} to {CIFAR10_ARCHIVE} "
            f"or its {CIFAR10_FOLDER} folder. On a machine with internet access, download_cifar10 "
            "fetches the archive."
        )
    read, resolved = _resolve_cifar10(location, source)

    def read_split(names: Iterable[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        parts = [_parse_batch(read(name), f"{resolved}: {name}") for name in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    train_images, train_labels = read_split(CIFAR10_TRAIN_FILES)
    test_images, test_labels = read_split([CIFAR10_TEST_FILE])
    if len(train_labels) == 0 or len(test_labels) == 0:
        raise CIFAR10FormatError(f"{resolved} contains no training or no test images.")

    x_train = torch.from_numpy(train_images).float() / 255.0
    x_test = torch.from_numpy(test_images).float() / 255.0
    if normalize:
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
        std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    logger.info("Read CIFAR-10 from %s: %d training and %d test images", resolved, len(x_train), len(x_test))
    return ImageData(
        name="cifar10",
        source=str(resolved),
        x_train=x_train,
        y_train=torch.from_numpy(train_labels),
        x_test=x_test,
        y_test=torch.from_numpy(test_labels),
        n_classes=CIFAR10_CLASSES,
    )


def download_cifar10(
    directory: str | os.PathLike[str],
    *,
    url: str = CIFAR10_URL,
    sha256: str = CIFAR10_SHA256,
    timeout: float = 60.0,
) -> Path:
    """Download the CIFAR-10 archive into ``directory`` and verify its SHA-256.

    Returns the path of ``cifar-10-python.tar.gz`` in ``directory``. An
    existing file with the right checksum is kept and nothing is downloaded.
    The bytes go to a temporary file in ``directory`` that replaces the archive
    only after its checksum matched, so a failed or corrupt download leaves no
    file behind. ``timeout`` is the socket timeout in seconds.

    Raises :class:`CIFAR10DownloadError` when the request fails or the checksum
    differs.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / CIFAR10_ARCHIVE
    if destination.is_file() and sha256_file(destination) == sha256:
        logger.info(
            "CIFAR-10 archive %s is present and matches its SHA-256, so nothing is downloaded", destination
        )
        return destination

    try:
        return download_verified(
            url,
            destination,
            sha256,
            what="CIFAR-10",
            timeout=timeout,
            offline_hint=f"On an offline machine, copy {CIFAR10_ARCHIVE} into {folder} and pass its path to load_cifar10.",
        )
    except DownloadError as error:
        raise CIFAR10DownloadError(str(error)) from error


# ---------------------------------------------------------------------------
# Stand-in: scikit-learn's digits


def load_digits(*, image_size: int = 16, test_fraction: float = 0.25, seed: int = 0) -> ImageData:
    """Return scikit-learn's 8x8 digits as 1-channel images of ``image_size`` pixels.

    Each 8x8 image is upsampled by nearest-neighbour interpolation, so pixels
    become blocks and no information is added. The default of 16 pixels lets
    a network with all 5 main blocks downsample four times (16, 8, 4, 2, 1)
    without a stride acting on a 1x1 map. ``image_size=8`` keeps the native
    size, which is faster for networks with at most 4 main blocks.

    The split is stratified by class and seeded. Pixels (0 to 16) are scaled to
    zero mean and unit standard deviation with the training set's statistics.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 (the native size), got {image_size}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32)
    labels = bunch.target.astype(np.int64)
    train_rows, test_rows = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed
    )

    x = torch.from_numpy(images).unsqueeze(1)
    if image_size != 8:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="nearest")
    x_train, x_test = x[torch.from_numpy(train_rows)], x[torch.from_numpy(test_rows)]
    mean, std = x_train.mean(), x_train.std().clamp(min=1e-6)
    return ImageData(
        name=f"digits-{image_size}px",
        source=f"sklearn.datasets.load_digits (scikit-learn), split seed {seed}",
        x_train=(x_train - mean) / std,
        y_train=torch.from_numpy(labels[train_rows]),
        x_test=(x_test - mean) / std,
        y_test=torch.from_numpy(labels[test_rows]),
        n_classes=10,
    )
