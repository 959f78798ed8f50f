"""Search spaces: typed architectures, their vector encoding, validity, projection and sampling.

The ResNet-like space of AnalogNAS is declared once, as the fields of
:class:`ResNetArchitecture`. Bounds, validation, projection and sampling all read
that declaration, so no other list of ranges exists in the package.

The 22-vector order is ``out_channel0, M, R1..R5`` followed by
``(convblock, widenfact, B)`` for main blocks 1 to 5. Fields of a main block above
``M`` are all zero. The convolution block type is stored as an integer code
(A=1, B=2, C=3, D=4), as in the report's vector representation.

Where the report and the measured dataset differ, this module follows the data:
the widening factor is an integer in [1, 4] (the report says uniform on [1, 4]),
and there is no first-layer kernel-size field (the report lists KS0 in [3, 7]).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "CONVBLOCK_LABELS",
    "RESNET_SPACE",
    "FieldSpec",
    "InvalidArchitectureError",
    "MainBlock",
    "ResNetArchitecture",
    "ResNetSpace",
    "SearchSpace",
    "Violation",
]

CONVBLOCK_LABELS: tuple[str, ...] = ("A", "B", "C", "D")
"""Convolution block letters; the letter at index ``i`` has code ``i + 1``."""

MAX_MAIN_BLOCKS = 5


class InvalidArchitectureError(ValueError):
    """Raised when a vector or an architecture breaks the rules of its search space."""


@dataclass(frozen=True)
class FieldSpec:
    """One integer field of an architecture vector.

    ``low`` and ``high`` are inclusive bounds for a field in use. A field that
    belongs to a main block (``block`` is 1 to 5) must be 0 when that block is
    not used, that is when ``block > M``. ``labels`` names the codes of a
    categorical field, code ``i + 1`` for ``labels[i]``.
    """

    name: str
    low: int
    high: int
    description: str
    block: int | None = None
    labels: tuple[str, ...] | None = None

    def expected(self, used: bool = True) -> str:
        """Describe the allowed values, for error messages."""
        if not used:
            return f"0 because main block {self.block} is above M"
        if self.labels is not None:
            letters = ", ".join(f"{label}={i + 1}" for i, label in enumerate(self.labels))
            return f"a block type code in [{self.low}, {self.high}] ({letters})"
        return f"an integer in [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Violation:
    """A field of one row that breaks the space's rules."""

    row: int
    field: str
    value: float
    expected: str

    def __str__(self) -> str:
        shown = int(self.value) if float(self.value).is_integer() else self.value
        return f"row {self.row}, field {self.field!r}: value {shown}, expected {self.expected}"


def _spec(
    low: int,
    high: int,
    description: str,
    block: int | None = None,
    labels: tuple[str, ...] | None = None,
) -> Any:
    return dataclasses.field(
        metadata={"spec": (low, high, description, block, labels)},
    )


@dataclass(frozen=True)
class MainBlock:
    """One main block of a ResNet-like architecture, in readable form."""

    residual_blocks: int
    convblock: str
    widen_factor: int
    branches: int


@dataclass(frozen=True)
class ResNetArchitecture:
    """A ResNet-like architecture of the AnalogNAS search space.

    Construction validates every field, so an instance is always valid. Use
    :meth:`ResNetSpace.project` to turn an arbitrary real vector into one.
    """

    out_channel0: int = _spec(8, 128, "output channels of the first convolution")
    M: int = _spec(1, MAX_MAIN_BLOCKS, "number of main blocks")
    R1: int = _spec(1, 16, "residual blocks in main block 1", block=1)
    R2: int = _spec(1, 16, "residual blocks in main block 2", block=2)
    R3: int = _spec(1, 16, "residual blocks in main block 3", block=3)
    R4: int = _spec(1, 16, "residual blocks in main block 4", block=4)
    R5: int = _spec(1, 16, "residual blocks in main block 5", block=5)
    convblock1: int = _spec(1, 4, "block type of main block 1", block=1, labels=CONVBLOCK_LABELS)
    widenfact1: int = _spec(1, 4, "widening factor of main block 1", block=1)
    B1: int = _spec(1, 12, "parallel branches per residual block in main block 1", block=1)
    convblock2: int = _spec(1, 4, "block type of main block 2", block=2, labels=CONVBLOCK_LABELS)
    widenfact2: int = _spec(1, 4, "widening factor of main block 2", block=2)
    B2: int = _spec(1, 12, "parallel branches per residual block in main block 2", block=2)
    convblock3: int = _spec(1, 4, "block type of main block 3", block=3, labels=CONVBLOCK_LABELS)
    widenfact3: int = _spec(1, 4, "widening factor of main block 3", block=3)
    B3: int = _spec(1, 12, "parallel branches per residual block in main block 3", block=3)
    convblock4: int = _spec(1, 4, "block type of main block 4", block=4, labels=CONVBLOCK_LABELS)
    widenfact4: int = _spec(1, 4, "widening factor of main block 4", block=4)
    B4: int = _spec(1, 12, "parallel branches per residual block in main block 4", block=4)
    convblock5: int = _spec(1, 4, "block type of main block 5", block=5, labels=CONVBLOCK_LABELS)
    widenfact5: int = _spec(1, 4, "widening factor of main block 5", block=5)
    B5: int = _spec(1, 12, "parallel branches per residual block in main block 5", block=5)

    FIELDS: ClassVar[tuple[FieldSpec, ...]]

    def __post_init__(self) -> None:
        vector = np.array([getattr(self, spec.name) for spec in self.FIELDS], dtype=float)
        violations = list(_violations(vector[None, :], self.FIELDS))
        if violations:
            raise _invalid_architecture(violations)

    @property
    def blocks(self) -> tuple[MainBlock, ...]:
        """The ``M`` main blocks in use, in order."""
        return tuple(
            MainBlock(
                residual_blocks=getattr(self, f"R{i}"),
                convblock=CONVBLOCK_LABELS[getattr(self, f"convblock{i}") - 1],
                widen_factor=getattr(self, f"widenfact{i}"),
                branches=getattr(self, f"B{i}"),
            )
            for i in range(1, self.M + 1)
        )

    def to_vector(self) -> npt.NDArray[np.int64]:
        """Return the 22-vector of this architecture."""
        return np.array([getattr(self, spec.name) for spec in self.FIELDS], dtype=np.int64)

    def __str__(self) -> str:
        parts = [
            f"{b.residual_blocks}x{b.convblock} w{b.widen_factor} b{b.branches}" for b in self.blocks
        ]
        return f"ResNet(c0={self.out_channel0}, M={self.M}: " + ", ".join(parts) + ")"


ResNetArchitecture.FIELDS = tuple(
    FieldSpec(f.name, *f.metadata["spec"]) for f in dataclasses.fields(ResNetArchitecture)
)


def _invalid_architecture(violations: Sequence[Violation]) -> InvalidArchitectureError:
    details = "; ".join(f"{v.field}={v.value:g} (expected {v.expected})" for v in violations)
    return InvalidArchitectureError(
        f"Invalid ResNet architecture: {details}. "
        "ResNetSpace.project maps a real vector to the nearest valid one."
    )


def _violations(matrix: npt.NDArray[np.floating[Any]], fields: Sequence[FieldSpec]) -> Iterator[Violation]:
    """Yield every rule a row of ``matrix`` breaks, row by row in field order.

    ``M`` decides which block fields are in use. A row whose ``M`` is itself out
    of range still has its block fields checked against that ``M``, so one pass
    reports everything.
    """
    names = [spec.name for spec in fields]
    depth = matrix[:, names.index("M")]
    found: list[Violation] = []
    for column, spec in enumerate(fields):
        values = matrix[:, column]
        not_integer = ~np.isfinite(values) | (values != np.round(values))
        in_range = (values >= spec.low) & (values <= spec.high)
        if spec.block is None:
            used = np.ones(len(values), dtype=bool)
            bad = not_integer | ~in_range
        else:
            used = depth >= spec.block
            bad = not_integer | np.where(used, ~in_range, values != 0)
        for row in np.flatnonzero(bad):
            found.append(Violation(int(row), spec.name, float(values[row]), spec.expected(bool(used[row]))))
    found.sort(key=lambda v: v.row)
    yield from found


A = TypeVar("A")


class SearchSpace(Protocol, Generic[A]):
    """What every search space offers: vectors, validity, projection and sampling.

    A space maps typed architectures of type ``A`` to fixed-length integer
    vectors and back. ``project`` must return, for any real matrix, vectors that
    ``is_valid`` accepts.
    """

    name: str

    @property
    def fields(self) -> tuple[FieldSpec, ...]: ...

    @property
    def dim(self) -> int: ...

    def violations(self, vectors: npt.ArrayLike) -> list[Violation]: ...

    def is_valid(self, vectors: npt.ArrayLike) -> npt.NDArray[np.bool_]: ...

    def project(self, vectors: npt.ArrayLike) -> npt.NDArray[np.int64]: ...

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> npt.NDArray[np.int64]: ...

    def decode(self, vector: npt.ArrayLike) -> A: ...

    def encode(self, architecture: A) -> npt.NDArray[np.int64]: ...


class ResNetSpace:
    """The 22-field ResNet-like space of AnalogNAS (see the module docstring)."""

    name = "resnet22"

    def __init__(self) -> None:
        self._fields = ResNetArchitecture.FIELDS
        self._names = tuple(spec.name for spec in self._fields)
        self._depth_column = self._names.index("M")
        self._low = np.array([spec.low for spec in self._fields], dtype=np.int64)
        self._high = np.array([spec.high for spec in self._fields], dtype=np.int64)
        self._block = np.array([spec.block or 0 for spec in self._fields], dtype=np.int64)

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """Field specifications in vector order."""
        return self._fields

    @property
    def field_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def dim(self) -> int:
        return len(self._fields)

    @property
    def lower(self) -> npt.NDArray[np.int64]:
        """Lower bound of each field when in use (unused block fields are 0)."""
        return self._low.copy()

    @property
    def upper(self) -> npt.NDArray[np.int64]:
        return self._high.copy()

    def _as_matrix(self, vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
        matrix = np.asarray(vectors, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(
                f"Expected vectors of length {self.dim} for the {self.name} space "
                f"(a ({self.dim},) or (n, {self.dim}) array), got shape {np.shape(vectors)}."
            )
        return matrix

    def violations(self, vectors: npt.ArrayLike) -> list[Violation]:
        """List every broken rule, with the row index, field, value and allowed values."""
        return list(_violations(self._as_matrix(vectors), self._fields))

    def used_mask(self, depth: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Return, per row, which fields are in use for main-block counts ``depth``."""
        depth = np.asarray(depth).reshape(-1, 1)
        return (self._block[None, :] == 0) | (self._block[None, :] <= depth)

    def is_valid(self, vectors: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Return a boolean per row: does it satisfy every rule of the space?"""
        matrix = self._as_matrix(vectors)
        integral = np.isfinite(matrix).all(axis=1) & (matrix == np.round(matrix)).all(axis=1)
        used = self.used_mask(matrix[:, self._depth_column])
        in_range = (matrix >= self._low) & (matrix <= self._high)
        ok = np.where(used, in_range, matrix == 0).all(axis=1)
        return integral & ok

    def project(self, vectors: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Map real vectors to their nearest valid architectures, in Euclidean distance.

        For a fixed ``M`` every field is independent, so its nearest allowed value
        is the rounded value clipped to its range (fields of blocks above ``M``
        become 0). The projection tries each ``M`` from 1 to 5 and keeps the one
        with the smallest total squared distance, so the result is the exact
        nearest valid integer vector. Ties go to the smaller ``M``. Non-finite
        inputs are rejected. A single vector gives a single vector back, an
        (n, 22) matrix an (n, 22) matrix.
        """
        single = np.ndim(vectors) == 1
        matrix = self._as_matrix(vectors)
        if not np.isfinite(matrix).all():
            raise ValueError("Cannot project vectors that contain NaN or infinite values.")

        clipped = np.clip(np.round(matrix), self._low, self._high)
        best = np.zeros(matrix.shape, dtype=np.float64)
        best_cost = np.full(len(matrix), np.inf)
        for depth in range(1, MAX_MAIN_BLOCKS + 1):
            candidate = np.where(self.used_mask(np.full(len(matrix), depth)), clipped, 0.0)
            candidate[:, self._depth_column] = depth
            cost = ((candidate - matrix) ** 2).sum(axis=1)
            better = cost < best_cost
            best[better] = candidate[better]
            best_cost[better] = cost[better]
        projected = best.astype(np.int64)
        return projected[0] if single else projected

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> npt.NDArray[np.int64]:
        """Draw ``n`` valid vectors: M uniform on 1-5, then every used field uniform on its range.

        This is the report's sampling scheme, with every field an integer.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}.")
        rng = np.random.default_rng(seed)
        draws = rng.integers(self._low, self._high + 1, size=(n, self.dim))
        used = self.used_mask(draws[:, self._depth_column])
        return np.where(used, draws, 0).astype(np.int64)

    def decode(self, vector: npt.ArrayLike) -> ResNetArchitecture:
        """Build the architecture of a valid vector; raise if the vector is invalid."""
        matrix = self._as_matrix(vector)
        if len(matrix) != 1:
            raise ValueError(f"decode takes one vector, got {len(matrix)}.")
        violations = self.violations(matrix)
        if violations:
            raise _invalid_architecture(violations)
        values = {name: int(x) for name, x in zip(self._names, matrix[0], strict=True)}
        return ResNetArchitecture(**values)

    def encode(self, architecture: ResNetArchitecture) -> npt.NDArray[np.int64]:
        """Return the 22-vector of an architecture."""
        return architecture.to_vector()


RESNET_SPACE = ResNetSpace()
"""The shared instance of the ResNet-like space."""
