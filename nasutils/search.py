"""Search methods under a budget of surrogate queries or seconds, with anytime curves.

Every method follows one contract, in the style of scikit-learn: the
constructor only stores parameters, and ``run(predict, budget=..., seed=...)``
returns a :class:`SearchResult`. ``predict`` maps an (n, 22) integer matrix of
architectures (:mod:`nasutils.space` order) to n predicted accuracies, for
example ``SurrogateRegressor.predict``.

Query accounting. A query is one architecture row passed to ``predict``.
Repeated architectures count again, because no method keeps a cache of
predictions. A method does not query an architecture whose value it already
has in hand (an evolutionary parent keeps its value). :class:`Objective` sits
between a method and ``predict``. When a batch would overrun ``max_queries``,
it evaluates only the first rows that fit, records them and raises
:class:`BudgetExhausted`, which ``run`` catches. So a run with ``max_queries=n`` passes exactly ``n``
rows to ``predict`` unless its time limit ends it first.

Time accounting. The clock starts when ``run`` begins, so it includes the
method's own work (mutations, policy inference), not only predictions. The
time limit is checked before each call to ``predict`` once a first batch has
been evaluated. A run can therefore overrun ``max_seconds`` by one batch and
the method's work before it, and every result has at least one query.

Methods: :class:`RandomSearch`, :class:`EvolutionarySearch` (AnalogNAS),
:class:`RegularizedEvolution` (aging evolution), :class:`LocalSearch`,
:class:`AgentSearch` (a trained Stable-Baselines3 policy in the latent-edit
environment) and :class:`RandomPolicySearch` (the same environment with
uniformly random actions). :func:`curves_frame`, :func:`summarize_curves` and
:func:`time_to_target` turn results into tables. :func:`trust_table` puts a
found architecture's prediction beside the surrogate ensemble's spread and its
distance to the measured architectures.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator
from tqdm.auto import tqdm

from .env import ArchitectureScorer, BatchedLatentEditEnv, EnvConfig, LatentDecoder
from .space import MAX_MAIN_BLOCKS, RESNET_SPACE

__all__ = [
    "MUTATION_KINDS",
    "AgentSearch",
    "Budget",
    "BudgetExhausted",
    "EvolutionarySearch",
    "LocalSearch",
    "Objective",
    "RandomPolicySearch",
    "RandomSearch",
    "RegularizedEvolution",
    "SearchMethod",
    "SearchResult",
    "TargetHit",
    "curves_frame",
    "mutate",
    "mutate_depth",
    "mutate_other",
    "mutate_width",
    "single_mutation_neighbours",
    "summarize_curves",
    "time_to_target",
    "time_to_target_table",
    "trust_table",
]

logger = logging.getLogger(__name__)

Predictor = Callable[[npt.NDArray[np.int64]], npt.ArrayLike]

MUTATION_KINDS: tuple[str, ...] = ("width", "depth", "other")
"""Mutation kinds, in the order of every weight or probability triple in this module."""

_DIM = RESNET_SPACE.dim
_COLUMN = {name: i for i, name in enumerate(RESNET_SPACE.field_names)}
_LOW = RESNET_SPACE.lower
_HIGH = RESNET_SPACE.upper
_CHANNEL = _COLUMN["out_channel0"]
_DEPTH = _COLUMN["M"]


def _residual_column(block: int) -> int:
    return _COLUMN[f"R{block}"]


def _block_columns(block: int) -> tuple[int, int, int, int]:
    """Columns of main block ``block`` (1 to 5): R, convblock, widenfact and B."""
    return (
        _COLUMN[f"R{block}"],
        _COLUMN[f"convblock{block}"],
        _COLUMN[f"widenfact{block}"],
        _COLUMN[f"B{block}"],
    )


# --- Budget and objective -----------------------------------------------------------


class BudgetExhausted(Exception):
    """Raised by :class:`Objective` when the query or time budget of a run has run out."""


@dataclass(frozen=True)
class Budget:
    """Limits of one search run: a number of queries, a number of seconds, or both.

    A query is one architecture row passed to the predictor (see the module
    docstring). ``None`` means no limit of that kind, but at least one limit
    must be set.
    """

    max_queries: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_queries is None and self.max_seconds is None:
            raise ValueError("A budget needs max_queries, max_seconds or both, but got neither.")
        if self.max_queries is not None and (
            isinstance(self.max_queries, bool)
            or not isinstance(self.max_queries, (int, np.integer))
            or self.max_queries < 1
        ):
            raise ValueError(f"max_queries must be a positive integer or None, got {self.max_queries!r}.")
        if self.max_seconds is not None and not (
            isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0 and math.isfinite(self.max_seconds)
        ):
            raise ValueError(f"max_seconds must be a positive finite number or None, got {self.max_seconds!r}.")

    @classmethod
    def of(cls, budget: Budget | int) -> Budget:
        """Return ``budget`` itself, or a query budget for an integer."""
        if isinstance(budget, Budget):
            return budget
        return cls(max_queries=budget)


class Objective:
    """A predictor that counts queries, enforces a :class:`Budget` and records the anytime curve.

    Calling it with an (n, 22) matrix of valid architectures returns their n
    predictions as float64. It raises :class:`BudgetExhausted` when no query
    is left, when the time limit has passed, or after evaluating the part of a
    batch that fits the remaining queries (the module docstring gives the
    rules). Every evaluated row is recorded with its elapsed time, so the
    best-so-far curve has one point per query. The clock starts when the
    objective is created. With ``validate``, a batch that contains an invalid
    architecture raises ValueError before anything is counted.

    ``episodes`` counts the episodes that :class:`AgentSearch` and
    :class:`RandomPolicySearch` completed, and stays None for other methods.
    """

    def __init__(
        self,
        predict: Predictor,
        budget: Budget | int,
        *,
        validate: bool = True,
        progress: bool = False,
    ) -> None:
        self.predict = predict
        self.budget = Budget.of(budget)
        self.validate = validate
        self.episodes: int | None = None
        self.stop_reason: str | None = None
        self._started = time.perf_counter()
        self._n_queries = 0
        self._distinct: set[bytes] = set()
        self._values: list[npt.NDArray[np.float64]] = []
        self._seconds: list[npt.NDArray[np.float64]] = []
        self._best_value = -math.inf
        self._best_architecture: npt.NDArray[np.int64] | None = None
        self._improvement_queries: list[int] = []
        self._improvement_architectures: list[npt.NDArray[np.int64]] = []
        self._progress = tqdm(
            total=self.budget.max_queries, unit="query", disable=not progress, desc="search", leave=False
        )

    @property
    def n_queries(self) -> int:
        return self._n_queries

    @property
    def n_distinct(self) -> int:
        """Number of distinct architectures evaluated so far."""
        return len(self._distinct)

    @property
    def elapsed(self) -> float:
        """Seconds since the objective was created."""
        return time.perf_counter() - self._started

    @property
    def remaining(self) -> int | float:
        """Queries left, or ``math.inf`` without a query limit."""
        if self.budget.max_queries is None:
            return math.inf
        return self.budget.max_queries - self._n_queries

    @property
    def best_value(self) -> float:
        """Highest prediction so far, ``-inf`` before the first query."""
        return self._best_value

    @property
    def best_architecture(self) -> npt.NDArray[np.int64] | None:
        """Architecture of :attr:`best_value` (the first one found on ties), None before the first query."""
        return None if self._best_architecture is None else self._best_architecture.copy()

    def _as_batch(self, architectures: npt.ArrayLike) -> npt.NDArray[np.int64]:
        batch = np.asarray(architectures)
        if batch.ndim == 1:
            batch = batch[None, :]
        if batch.ndim != 2 or batch.shape[1] != _DIM:
            raise ValueError(f"Expected an (n, {_DIM}) matrix of architectures, got shape {np.shape(architectures)}.")
        if self.validate:
            invalid = np.flatnonzero(~RESNET_SPACE.is_valid(batch))
            if invalid.size:
                details = "; ".join(str(v) for v in RESNET_SPACE.violations(batch[invalid[:3]]))
                raise ValueError(
                    f"The search passed {invalid.size} invalid architecture(s) to the objective, "
                    f"rows {invalid[:10].tolist()}: {details}."
                )
        return np.ascontiguousarray(batch, dtype=np.int64)

    def _check_time(self) -> None:
        limit = self.budget.max_seconds
        if limit is not None and self._n_queries > 0 and self.elapsed >= limit:
            self.stop_reason = "max_seconds"
            raise BudgetExhausted(f"time limit of {limit} s reached after {self._n_queries} queries")

    def __call__(self, architectures: npt.ArrayLike) -> npt.NDArray[np.float64]:
        batch = self._as_batch(architectures)
        self._check_time()
        remaining = self.remaining
        if remaining <= 0:
            self.stop_reason = "max_queries"
            raise BudgetExhausted(f"query budget of {self.budget.max_queries} used up")

        evaluated = batch if len(batch) <= remaining else batch[: int(remaining)]
        values = np.asarray(self.predict(evaluated), dtype=np.float64).reshape(-1)
        if len(values) != len(evaluated):
            raise ValueError(f"The predictor returned {len(values)} values for {len(evaluated)} architectures.")
        if not np.isfinite(values).all():
            raise ValueError(
                f"The predictor returned non-finite values for rows {np.flatnonzero(~np.isfinite(values)).tolist()}."
            )
        self._record(evaluated, values)

        if len(evaluated) < len(batch):
            self.stop_reason = "max_queries"
            raise BudgetExhausted(
                f"query budget of {self.budget.max_queries} used up during a batch of {len(batch)}, "
                f"so only its first {len(evaluated)} rows were evaluated"
            )
        return values

    def _record(self, batch: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> None:
        first_query = self._n_queries + 1
        self._n_queries += len(batch)
        self._values.append(values.copy())
        self._seconds.append(np.full(len(values), self.elapsed))
        self._distinct.update(row.tobytes() for row in batch)

        # Each row that beats everything before it, in this batch or earlier ones, is an improvement.
        running = np.maximum.accumulate(np.concatenate([[self._best_value], values]))
        improved = np.flatnonzero(running[1:] > running[:-1])
        for row in improved:
            self._improvement_queries.append(first_query + int(row))
            self._improvement_architectures.append(batch[row].copy())
        if improved.size:
            self._best_value = float(values[improved[-1]])
            self._best_architecture = batch[improved[-1]].copy()
        self._progress.update(len(batch))

    def close(self) -> None:
        """Close the progress bar."""
        self._progress.close()

    def result(self, method: str, seed: int | None, params: Mapping[str, Any] | None = None) -> SearchResult:
        """Build the :class:`SearchResult` of the queries recorded so far."""
        if self._best_architecture is None:
            raise RuntimeError("The objective has not evaluated any architecture, so there is no result.")
        values = np.concatenate(self._values)
        return SearchResult(
            method=method,
            seed=seed,
            best_architecture=self._best_architecture.copy(),
            best_value=self._best_value,
            n_queries=self._n_queries,
            n_distinct=self.n_distinct,
            n_episodes=self.episodes,
            wall_seconds=self.elapsed,
            stop_reason=self.stop_reason or "finished",
            budget=self.budget,
            queries=np.arange(1, self._n_queries + 1, dtype=np.int64),
            seconds=np.concatenate(self._seconds),
            best_so_far=np.maximum.accumulate(values),
            improvement_queries=np.asarray(self._improvement_queries, dtype=np.int64),
            improvement_architectures=np.stack(self._improvement_architectures),
            params=dict(params or {}),
        )


@dataclass
class SearchResult:
    """One search run: the best architecture found and the anytime curve.

    ``queries``, ``seconds`` and ``best_so_far`` have one entry per query:
    the query number (from 1), the seconds since the run began when that
    query's batch returned, and the highest prediction up to that query.
    ``improvement_queries`` lists the queries that raised the best value, and
    ``improvement_architectures`` (k, 22) the architectures they found.
    ``stop_reason`` is "max_queries", "max_seconds" or "finished" (the
    method ended by itself, which none of this module's methods does).
    ``n_episodes`` is the number of completed episodes of an environment-based
    search, None for other methods. ``params`` are the method's constructor
    parameters, with the repr of any value that is not a number, string or
    boolean (or a list of them).
    """

    method: str
    seed: int | None
    best_architecture: npt.NDArray[np.int64]
    best_value: float
    n_queries: int
    n_distinct: int
    n_episodes: int | None
    wall_seconds: float
    stop_reason: str
    budget: Budget
    queries: npt.NDArray[np.int64]
    seconds: npt.NDArray[np.float64]
    best_so_far: npt.NDArray[np.float64]
    improvement_queries: npt.NDArray[np.int64]
    improvement_architectures: npt.NDArray[np.int64]
    params: dict[str, Any] = field(default_factory=dict)

    def best_architecture_at(self, query: int) -> npt.NDArray[np.int64]:
        """Return the best architecture after ``query`` queries (1 to ``n_queries``)."""
        if not 1 <= query <= self.n_queries:
            raise ValueError(f"query must be in [1, {self.n_queries}], got {query}.")
        index = np.searchsorted(self.improvement_queries, query, side="right") - 1
        return self.improvement_architectures[index].copy()

    def summary(self) -> dict[str, Any]:
        """Return the scalar fields as a flat dictionary, one row of a results table."""
        return {
            "method": self.method,
            "seed": self.seed,
            "best_value": self.best_value,
            "n_queries": self.n_queries,
            "n_distinct": self.n_distinct,
            "n_episodes": self.n_episodes,
            "wall_seconds": self.wall_seconds,
            "stop_reason": self.stop_reason,
            "best_architecture": str(RESNET_SPACE.decode(self.best_architecture)),
        }


# --- Mutations ------------------------------------------------------------------------


def _as_parent(architecture: npt.ArrayLike) -> npt.NDArray[np.int64]:
    parent = np.asarray(architecture)
    if parent.shape != (_DIM,):
        raise ValueError(f"Expected one architecture of shape ({_DIM},), got shape {parent.shape}.")
    if not RESNET_SPACE.is_valid(parent)[0]:
        details = "; ".join(str(v) for v in RESNET_SPACE.violations(parent))
        raise ValueError(f"Cannot mutate an invalid architecture: {details}.")
    return parent.astype(np.int64)


def _other_value(rng: np.random.Generator, column: int, current: int) -> int:
    """Draw uniformly from the allowed values of ``column`` other than ``current``."""
    value = int(rng.integers(_LOW[column], _HIGH[column]))
    return value + 1 if value >= current else value


def mutate_width(architecture: npt.ArrayLike, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Return a copy with a new ``out_channel0``, a new widening factor of one used main block, or both.

    The three cases are equally likely. Each changed field gets a value drawn
    uniformly from its other allowed values, so the child always differs from
    the parent and stays valid.
    """
    child = _as_parent(architecture).copy()
    case = int(rng.integers(3))
    if case in (0, 2):
        child[_CHANNEL] = _other_value(rng, _CHANNEL, child[_CHANNEL])
    if case in (1, 2):
        block = int(rng.integers(1, child[_DEPTH] + 1))
        column = _COLUMN[f"widenfact{block}"]
        child[column] = _other_value(rng, column, child[column])
    return child


def mutate_depth(architecture: npt.ArrayLike, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Return a copy with one more main block, one fewer, or a new residual-block count in one used block.

    The possible cases are equally likely: adding a block needs ``M < 5`` and
    removing one needs ``M > 1``. An added block becomes block ``M + 1`` with
    its four fields drawn uniformly from their ranges. A removed block is
    always the last one, block ``M``, and its fields become 0, so no other
    block's fields move. A new ``R_i`` is drawn from the other allowed values.
    """
    child = _as_parent(architecture).copy()
    depth = int(child[_DEPTH])
    cases = ["residual"]
    if depth < MAX_MAIN_BLOCKS:
        cases.append("add")
    if depth > 1:
        cases.append("remove")
    case = cases[int(rng.integers(len(cases)))]

    if case == "add":
        child[_DEPTH] = depth + 1
        for column in _block_columns(depth + 1):
            child[column] = int(rng.integers(_LOW[column], _HIGH[column] + 1))
    elif case == "remove":
        child[_DEPTH] = depth - 1
        child[list(_block_columns(depth))] = 0
    else:
        column = _residual_column(int(rng.integers(1, depth + 1)))
        child[column] = _other_value(rng, column, child[column])
    return child


def mutate_other(architecture: npt.ArrayLike, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Return a copy with a new block type or a new branch count in one used main block.

    The block and which of its two fields changes are drawn uniformly. The new
    value is drawn from the field's other allowed values.
    """
    child = _as_parent(architecture).copy()
    block = int(rng.integers(1, child[_DEPTH] + 1))
    name = ("convblock", "B")[int(rng.integers(2))]
    column = _COLUMN[f"{name}{block}"]
    child[column] = _other_value(rng, column, child[column])
    return child


_MUTATIONS: dict[str, Callable[[npt.ArrayLike, np.random.Generator], npt.NDArray[np.int64]]] = {
    "width": mutate_width,
    "depth": mutate_depth,
    "other": mutate_other,
}


def _normalized(weights: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (len(MUTATION_KINDS),) or (array < 0).any() or not np.isfinite(array).all() or array.sum() <= 0:
        raise ValueError(
            f"{name} must be {len(MUTATION_KINDS)} non-negative numbers for {', '.join(MUTATION_KINDS)} "
            f"with a positive sum, got {weights!r}."
        )
    return array / array.sum()


def mutate(
    architecture: npt.ArrayLike,
    rng: np.random.Generator,
    weights: npt.ArrayLike = (1.0, 1.0, 1.0),
) -> npt.NDArray[np.int64]:
    """Apply one mutation, its kind drawn with ``weights`` for (width, depth, other)."""
    kind = MUTATION_KINDS[int(rng.choice(len(MUTATION_KINDS), p=_normalized(weights, "weights")))]
    return _MUTATIONS[kind](architecture, rng)


def _mutate_independently(
    architecture: npt.NDArray[np.int64], rng: np.random.Generator, probabilities: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Apply each mutation kind with its own probability, in the order width, depth, other.

    When none fires, one kind drawn in proportion to the probabilities is
    applied, so a child never repeats its parent.
    """
    child = architecture
    applied = False
    for kind, probability in zip(MUTATION_KINDS, probabilities, strict=True):
        if rng.random() < probability:
            child = _MUTATIONS[kind](child, rng)
            applied = True
    if not applied:
        kind = MUTATION_KINDS[int(rng.choice(len(MUTATION_KINDS), p=probabilities / probabilities.sum()))]
        child = _MUTATIONS[kind](child, rng)
    return child


def single_mutation_neighbours(architecture: npt.ArrayLike, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Return every architecture that one single-field change of a mutation reaches, as a (k, 22) matrix.

    The neighbours are every other value of ``out_channel0`` and every other
    value of R, convblock, widenfact and B of each used main block. When
    ``M > 1``, the architecture without its last block is one more. When
    ``M < 5``, so is one architecture with an added block whose fields are
    drawn from ``rng``. Width mutations that change ``out_channel0`` and a widening factor at once
    are two changes, so they are not neighbours. For ``M = 5`` there are 281.
    """
    parent = _as_parent(architecture)
    depth = int(parent[_DEPTH])
    columns = [_CHANNEL] + [column for block in range(1, depth + 1) for column in _block_columns(block)]

    rows = []
    for column in columns:
        values = np.arange(_LOW[column], _HIGH[column] + 1)
        values = values[values != parent[column]]
        changed = np.repeat(parent[None, :], len(values), axis=0)
        changed[:, column] = values
        rows.append(changed)
    if depth > 1:
        removed = parent.copy()
        removed[_DEPTH] = depth - 1
        removed[list(_block_columns(depth))] = 0
        rows.append(removed[None, :])
    if depth < MAX_MAIN_BLOCKS:
        added = parent.copy()
        added[_DEPTH] = depth + 1
        for column in _block_columns(depth + 1):
            added[column] = int(rng.integers(_LOW[column], _HIGH[column] + 1))
        rows.append(added[None, :])
    return np.concatenate(rows)


# --- Search methods -------------------------------------------------------------------


def _plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Keep numbers, strings, booleans and None as they are, and the repr of anything else."""
    plain: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or isinstance(value, (bool, int, float, str)):
            plain[key] = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            plain[key] = list(value)
        else:
            plain[key] = repr(value)
    return plain


class SearchMethod(BaseEstimator):
    """Base class of the search methods: parameters in the constructor, one :meth:`run` per search."""

    default_name: ClassVar[str] = "search"

    @property
    def name(self) -> str:
        """Method name written into results."""
        return self.default_name

    def _validate_params(self) -> None:
        """Raise ValueError for an invalid constructor parameter."""

    def _search(self, objective: Objective, rng: np.random.Generator) -> None:
        """Query ``objective`` until it raises :class:`BudgetExhausted`."""
        raise NotImplementedError

    def run(
        self,
        predict: Predictor,
        *,
        budget: Budget | int,
        seed: int,
        progress: bool = False,
    ) -> SearchResult:
        """Search until the budget ends and return the result.

        ``predict`` maps an (n, 22) integer matrix to n predicted accuracies.
        ``budget`` is a :class:`Budget` or a number of queries. All randomness
        comes from ``np.random.default_rng(seed)`` (and, for
        :class:`AgentSearch`, a torch seed drawn from it), so the same seed
        repeats the same queries. ``progress`` shows a tqdm bar.
        """
        self._validate_params()
        objective = Objective(predict, budget, progress=progress)
        rng = np.random.default_rng(seed)
        logger.info("Starting %s search (seed %s, %s)", self.name, seed, objective.budget)
        try:
            self._search(objective, rng)
        except BudgetExhausted as stop:
            logger.debug("%s search stopped: %s", self.name, stop)
        finally:
            objective.close()
        result = objective.result(self.name, seed, _plain_params(self.get_params(deep=False)))
        logger.info(
            "Finished %s search (seed %s): best %.4f after %d queries (%d distinct) in %.2f s, stopped by %s",
            self.name,
            seed,
            result.best_value,
            result.n_queries,
            result.n_distinct,
            result.wall_seconds,
            result.stop_reason,
        )
        return result


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _top(values: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.intp]:
    """Return the indices of the ``k`` highest values, highest first, with ties in their original order."""
    return np.argsort(-values, kind="stable")[:k]


class RandomSearch(SearchMethod):
    """Draw architectures with :meth:`ResNetSpace.sample` in batches of ``batch_size`` until the budget ends."""

    default_name = "random"

    def __init__(self, batch_size: int = 100) -> None:
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        _check_positive_int("batch_size", self.batch_size)

    def _search(self, objective: Objective, rng: np.random.Generator) -> None:
        while True:
            objective(RESNET_SPACE.sample(self.batch_size, seed=rng))


class EvolutionarySearch(SearchMethod):
    """The evolutionary search of AnalogNAS (Benmeziane et al., 2023, arXiv:2305.10459), on predicted accuracy only.

    A population of ``population_size`` sampled architectures is evaluated.
    Each generation selects the ``n_parents`` best of the population and
    creates ``n_children`` children (``population_size`` when None), each from
    a parent drawn uniformly from the selected ones. A child undergoes each of
    the width, depth and other mutations with its probability in
    ``mutation_probabilities``, at least one of them. The next population is
    the best ``population_size`` of the distinct architectures among parents
    and children. Generations continue until the budget ends.

    AnalogNAS also constrains model size and the predicted accuracy drop
    under drift (AVM). This class maximizes predicted accuracy alone, as the
    report's comparison does. The default probabilities (0.8, 0.8, 0.6) are
    the defaults of ``EAOptimizer`` in IBM's analog-nas repository. The
    population sizes are this module's choice.

    NOTE: the steps follow a summary of the paper's search (top-k selection,
    width, depth and other mutations, the best of parents and children), not a
    check against the paper's text. IBM's ``EAOptimizer``
    (analogainas/search_algorithms/ea_optimized.py) differs: its width, depth
    and other mutations each draw a whole new random architecture.
    """

    default_name = "evolution"

    def __init__(
        self,
        population_size: int = 100,
        n_parents: int = 20,
        n_children: int | None = None,
        mutation_probabilities: tuple[float, float, float] = (0.8, 0.8, 0.6),
    ) -> None:
        self.population_size = population_size
        self.n_parents = n_parents
        self.n_children = n_children
        self.mutation_probabilities = mutation_probabilities

    def _validate_params(self) -> None:
        _check_positive_int("population_size", self.population_size)
        _check_positive_int("n_parents", self.n_parents)
        if self.n_children is not None:
            _check_positive_int("n_children", self.n_children)
        if self.n_parents > self.population_size:
            raise ValueError(
                f"n_parents ({self.n_parents}) must not exceed population_size ({self.population_size})."
            )
        probabilities = np.asarray(self.mutation_probabilities, dtype=np.float64)
        if probabilities.shape != (3,) or (probabilities < 0).any() or (probabilities > 1).any() or probabilities.sum() == 0:
            raise ValueError(
                "mutation_probabilities must be 3 probabilities in [0, 1] for width, depth and other, "
                f"not all 0; got {self.mutation_probabilities!r}."
            )

    def _search(self, objective: Objective, rng: np.random.Generator) -> None:
        probabilities = np.asarray(self.mutation_probabilities, dtype=np.float64)
        n_children = self.n_children or self.population_size
        population = RESNET_SPACE.sample(self.population_size, seed=rng)
        values = objective(population)

        while True:
            chosen = _top(values, self.n_parents)
            parents, parent_values = population[chosen], values[chosen]
            picks = rng.integers(len(parents), size=n_children)
            children = np.stack([_mutate_independently(parents[i], rng, probabilities) for i in picks])
            child_values = objective(children)

            pool = np.concatenate([parents, children])
            pool_values = np.concatenate([parent_values, child_values])
            _, first = np.unique(pool, axis=0, return_index=True)
            distinct = np.sort(first)
            keep = distinct[_top(pool_values[distinct], self.population_size)]
            population, values = pool[keep], pool_values[keep]


class RegularizedEvolution(SearchMethod):
    """Aging evolution (Real et al., 2019, "Regularized Evolution for Image Classifier Architecture Search").

    The population starts with ``population_size`` sampled architectures.
    Each cycle draws ``sample_size`` members without replacement, mutates the
    best of them once (one kind drawn with ``mutation_weights`` for width,
    depth and other), adds the child and removes the oldest member.
    ``batch_size`` children are made from the same population and evaluated
    in one call, so a value above 1 trades fidelity for fewer calls.
    """

    default_name = "regularized_evolution"

    def __init__(
        self,
        population_size: int = 100,
        sample_size: int = 25,
        mutation_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        batch_size: int = 1,
    ) -> None:
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_weights = mutation_weights
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        _check_positive_int("population_size", self.population_size)
        _check_positive_int("sample_size", self.sample_size)
        _check_positive_int("batch_size", self.batch_size)
        if self.sample_size > self.population_size:
            raise ValueError(
                f"sample_size ({self.sample_size}) must not exceed population_size ({self.population_size})."
            )
        _normalized(self.mutation_weights, "mutation_weights")

    def _search(self, objective: Objective, rng: np.random.Generator) -> None:
        weights = _normalized(self.mutation_weights, "mutation_weights")
        start = RESNET_SPACE.sample(self.population_size, seed=rng)
        # The deque contains (architecture, value) pairs, oldest on the left.
        population = deque(zip(start, objective(start), strict=True))

        while True:
            children = []
            for _ in range(self.batch_size):
                sample = rng.choice(len(population), size=self.sample_size, replace=False)
                winner = max(sample, key=lambda i: (population[i][1], -i))
                children.append(mutate(population[winner][0], rng, weights))
            batch = np.stack(children)
            for child, value in zip(batch, objective(batch), strict=True):
                population.append((child, value))
                population.popleft()


class LocalSearch(SearchMethod):
    """Best-improvement hill climbing over single-mutation neighbours, restarted at random when stuck.

    The climb starts from a sampled architecture. Each step evaluates its
    neighbours (:func:`single_mutation_neighbours`), all of them when
    ``n_neighbours`` is None or a random subset of that size, and moves to the
    best one if it beats the current value. When none does, the climb restarts
    from a new sampled architecture. With a subset, being stuck means that no
    evaluated neighbour improved, not that the architecture is a local optimum.
    A full step costs 153 to 281 queries (for ``M`` from 1 to 5).
    """

    default_name = "local"

    def __init__(self, n_neighbours: int | None = None) -> None:
        self.n_neighbours = n_neighbours

    def _validate_params(self) -> None:
        if self.n_neighbours is not None:
            _check_positive_int("n_neighbours", self.n_neighbours)

    def _search(self, objective: Objective, rng: np.random.Generator) -> None:
        current = RESNET_SPACE.sample(1, seed=rng)
        current_value = float(objective(current)[0])
        current = current[0]
        while True:
            neighbours = single_mutation_neighbours(current, rng)
            if self.n_neighbours is not None and self.n_neighbours < len(neighbours):
                neighbours = neighbours[rng.choice(len(neighbours), size=self.n_neighbours, replace=False)]
            values = objective(neighbours)
            best = int(np.argmax(values))
            if values[best] > current_value:
                current, current_value = neighbours[best], float(values[best])
            else:
                restart = RESNET_SPACE.sample(1, seed=rng)
                current_value = float(objective(restart)[0])
                current = restart[0]


class _LatentEnvSearch(SearchMethod):
    """Shared loop of the searches that step a :class:`BatchedLatentEditEnv`.

    ``env_config=None`` means ``EnvConfig()``. Every architecture that the
    environment scores, at a reset or at a step,
    goes through the objective: the scorer is built with ``cache_size=0``, so
    each scored row is one query. A step whose rows overrun the query budget
    is cut short by the objective, which ends the search.
    """

    def __init__(
        self,
        decoder: LatentDecoder,
        *,
        env_config: EnvConfig | None = None,
        n_envs: int = 64,
        start_latents: npt.ArrayLike | None = None,
    ) -> None:
        self.decoder = decoder
        self.env_config = env_config
        self.n_envs = n_envs
        self.start_latents = start_latents

    def _validate_params(self) -> None:
        _check_positive_int("n_envs", self.n_envs)
        if self.env_config is not None and not isinstance(self.env_config, EnvConfig):
            raise TypeError(f"env_config must be an EnvConfig or None, got {type(self.env_config).__name__}.")

    def _make_env(self, objective: Objective, rng: np.random.Generator) -> BatchedLatentEditEnv:
        scorer = ArchitectureScorer(self.decoder, objective, cache_size=0)
        config = self.env_config or EnvConfig()
        venv = BatchedLatentEditEnv(scorer, self.n_envs, config, start_latents=self.start_latents)
        # Sub-environment i is seeded with env_seed + i, which must stay below 2**32.
        venv.seed(int(rng.integers(2**31)))
        return venv

    def _policy_random_state(self, rng: np.random.Generator) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def _actions(self, observation: Any, venv: BatchedLatentEditEnv, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        raise NotImplementedError

    def _search(self, objective: Objective, rng: np.random.Generator) -> None:
        venv = self._make_env(objective, rng)
        self._check_env(venv)
        objective.episodes = 0
        with self._policy_random_state(rng):
            observation = venv.reset()
            while True:
                actions = self._actions(observation, venv, rng)
                observation, _, dones, _ = venv.step(actions)
                objective.episodes += int(np.count_nonzero(dones))

    def _check_env(self, venv: BatchedLatentEditEnv) -> None:
        """Raise ValueError when the policy cannot act in ``venv``."""


class AgentSearch(_LatentEnvSearch):
    """Run a trained Stable-Baselines3 policy in :class:`BatchedLatentEditEnv` until the budget ends.

    ``model`` is anything with SB3's ``predict(observation, deterministic=...)``
    and ``observation_space``/``action_space`` (a ``PPO`` model), and
    ``env_config.history`` must match the observation it was trained on (6 for
    the memory agent, 0 for the MLP agent and for ``env_config=None``).
    ``n_envs`` episodes run side by side from start states drawn as
    ``env_config.start`` sets. Each finished episode restarts at
    once, so the search covers many initial states. ``n_episodes`` in the
    result counts completed episodes. With ``deterministic=False`` the
    actions are sampled from the policy with a torch seed drawn from the run's
    generator, inside ``torch.random.fork_rng``, so seeded runs repeat and
    torch's global random state is left as it was.
    """

    default_name = "agent"

    def __init__(
        self,
        model: Any,
        decoder: LatentDecoder,
        *,
        env_config: EnvConfig | None = None,
        n_envs: int = 64,
        deterministic: bool = False,
        start_latents: npt.ArrayLike | None = None,
        label: str = "agent",
    ) -> None:
        super().__init__(decoder, env_config=env_config, n_envs=n_envs, start_latents=start_latents)
        self.model = model
        self.deterministic = deterministic
        self.label = label

    @property
    def name(self) -> str:
        return self.label

    def _check_env(self, venv: BatchedLatentEditEnv) -> None:
        from stable_baselines3.common.utils import check_for_correct_spaces

        # check_for_correct_spaces raises a ValueError that names both spaces. Add what to change.
        try:
            check_for_correct_spaces(venv, self.model.observation_space, self.model.action_space)
        except ValueError as error:
            raise ValueError(
                f"The model cannot act in this environment: {error}. Set env_config.history to the number "
                "of past actions that the agent was trained to observe."
            ) from error

    def _policy_random_state(self, rng: np.random.Generator) -> contextlib.AbstractContextManager[Any]:
        return _seeded_torch(int(rng.integers(2**63)), getattr(self.model, "device", None))

    def _actions(self, observation: Any, venv: BatchedLatentEditEnv, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        actions, _ = self.model.predict(observation, deterministic=self.deterministic)
        return np.asarray(actions, dtype=np.int64)


@contextlib.contextmanager
def _seeded_torch(seed: int, device: Any) -> Iterator[None]:
    """Seed torch inside a block and restore its previous random state afterwards."""
    import torch

    devices = [device] if getattr(device, "type", None) == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class RandomPolicySearch(_LatentEnvSearch):
    """The latent-edit environment of :class:`AgentSearch` with uniformly random actions.

    Every action, the terminal one included, has probability ``1 / (K * D + 1)``.
    This is the baseline that a trained agent must beat in the same
    environment and under the same budget.
    """

    default_name = "random_policy"

    def _actions(self, observation: Any, venv: BatchedLatentEditEnv, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        return rng.integers(venv.core.n_actions, size=venv.num_envs)


# --- Results as tables ------------------------------------------------------------------


class TargetHit(NamedTuple):
    """Queries and seconds that a run took to first reach a target value, NaN if it never did."""

    queries: float
    seconds: float


def time_to_target(result: SearchResult, target: float) -> TargetHit:
    """Return the first query (and its time) at which the best-so-far value reached ``target`` or more."""
    reached = np.flatnonzero(result.best_so_far >= target)
    if reached.size == 0:
        return TargetHit(math.nan, math.nan)
    first = int(reached[0])
    return TargetHit(float(result.queries[first]), float(result.seconds[first]))


def time_to_target_table(results: Sequence[SearchResult], targets: Mapping[str, float]) -> pd.DataFrame:
    """Tabulate :func:`time_to_target` for each result and named target.

    Columns: method, seed, target (the name), target_value, queries, seconds
    and reached (False where the run never got there, with NaN queries and seconds).
    """
    rows = []
    for result in results:
        for name, value in targets.items():
            hit = time_to_target(result, value)
            rows.append(
                {
                    "method": result.method,
                    "seed": result.seed,
                    "target": name,
                    "target_value": value,
                    "queries": hit.queries,
                    "seconds": hit.seconds,
                    "reached": not math.isnan(hit.queries),
                }
            )
    return pd.DataFrame(rows)


def _default_grid(results: Sequence[SearchResult], axis: str, n_points: int) -> npt.NDArray[np.float64]:
    if axis == "queries":
        most_queries = max(result.n_queries for result in results)
        return np.unique(np.linspace(1, most_queries, n_points).round()).astype(np.float64)
    longest = max(result.wall_seconds for result in results)
    return np.linspace(longest / n_points, longest, n_points)


def curves_frame(
    results: Sequence[SearchResult],
    *,
    axis: str = "queries",
    grid: npt.ArrayLike | None = None,
    n_points: int = 200,
    carry_forward: bool = False,
) -> pd.DataFrame:
    """Sample every run's best-so-far curve on a common grid, as a tidy table.

    ``axis`` is "queries" or "seconds". The default grid has ``n_points``
    points evenly spaced up to the longest run. Columns: method, seed, the
    axis name and best_so_far. A grid point before a run's first query is
    NaN. A point after the run ended (more queries than it made, or more
    seconds than its wall time) is NaN too, unless ``carry_forward`` repeats
    the run's final value there.
    """
    if axis not in ("queries", "seconds"):
        raise ValueError(f'axis must be "queries" or "seconds", got {axis!r}.')
    if not results:
        raise ValueError("curves_frame needs at least one result.")
    points = _default_grid(results, axis, n_points) if grid is None else np.asarray(grid, dtype=np.float64)

    frames = []
    for result in results:
        end: float
        if axis == "queries":
            index = np.floor(points).astype(np.int64) - 1
            end = result.n_queries
        else:
            index = np.searchsorted(result.seconds, points, side="right") - 1
            end = result.wall_seconds
        index = np.minimum(index, result.n_queries - 1)
        values = np.where(index >= 0, result.best_so_far[np.maximum(index, 0)], np.nan)
        if not carry_forward:
            values = np.where(points > end, np.nan, values)
        frames.append(pd.DataFrame({"method": result.method, "seed": result.seed, axis: points, "best_so_far": values}))
    return pd.concat(frames, ignore_index=True)


def summarize_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the median, quartiles and run count of best_so_far per method and grid point.

    ``frame`` comes from :func:`curves_frame`. Columns: method, the axis
    name, median, q25, q75 and n_runs (runs with a value at that point).
    """
    axis = "queries" if "queries" in frame.columns else "seconds"
    grouped = frame.groupby(["method", axis], sort=True)["best_so_far"]
    summary = pd.DataFrame(
        {
            "median": grouped.median(),
            "q25": grouped.quantile(0.25),
            "q75": grouped.quantile(0.75),
            "n_runs": grouped.count(),
        }
    )
    return summary.reset_index()


# --- Surrogate trust ----------------------------------------------------------------------


def trust_table(
    architectures: npt.ArrayLike,
    values: npt.ArrayLike | None = None,
    *,
    ensemble: Any,
    dataset_X: npt.ArrayLike,
    dataset_accuracy: npt.ArrayLike,
) -> pd.DataFrame:
    """Put each found architecture's prediction beside signs of how far the surrogate is from its data.

    ``architectures`` is an (n, 22) matrix and ``values`` the predictions the
    search used (the ensemble mean when None). ``ensemble`` needs
    ``predict(X, return_std=True)``, like :class:`SurrogateEnsemble`.
    ``dataset_X`` (m, 22) and ``dataset_accuracy`` (m,) are the measured
    architectures and their accuracies.

    Columns: architecture (readable form), predicted, ensemble_mean and
    ensemble_std. ``distance`` is the Euclidean distance to the nearest
    measured architecture, on fields standardized with the dataset's mean and
    standard deviation, and ``nearest_index`` and ``nearest_accuracy`` are
    that architecture's row and measured accuracy. ``hamming`` is the fewest
    fields in which any measured architecture differs. ``extrapolation`` is
    True where predicted is above the highest measured accuracy.
    """
    found = np.asarray(architectures, dtype=np.int64)
    if found.ndim == 1:
        found = found[None, :]
    data = np.asarray(dataset_X, dtype=np.float64)
    measured = np.asarray(dataset_accuracy, dtype=np.float64).reshape(-1)
    if found.ndim != 2 or found.shape[1] != _DIM:
        raise ValueError(f"architectures must be an (n, {_DIM}) matrix, got shape {found.shape}.")
    if data.ndim != 2 or data.shape[1] != _DIM or len(data) == 0:
        raise ValueError(f"dataset_X must be a non-empty (m, {_DIM}) matrix, got shape {data.shape}.")
    if len(measured) != len(data):
        raise ValueError(f"dataset_accuracy has {len(measured)} values for {len(data)} architectures.")

    mean, std = ensemble.predict(found, return_std=True)
    predicted = np.asarray(mean if values is None else values, dtype=np.float64).reshape(-1)
    if len(predicted) != len(found):
        raise ValueError(f"values has {len(predicted)} entries for {len(found)} architectures.")

    center = data.mean(axis=0)
    scale = data.std(axis=0)
    scale[scale == 0] = 1.0
    euclidean = cdist((found - center) / scale, (data - center) / scale)
    nearest = euclidean.argmin(axis=1)
    # cdist's Hamming distance is the fraction of differing fields.
    hamming = np.rint(cdist(found.astype(np.float64), data, metric="hamming") * _DIM).astype(np.int64)

    return pd.DataFrame(
        {
            "architecture": [str(RESNET_SPACE.decode(row)) for row in found],
            "predicted": predicted,
            "ensemble_mean": np.asarray(mean, dtype=np.float64),
            "ensemble_std": np.asarray(std, dtype=np.float64),
            "distance": euclidean[np.arange(len(found)), nearest],
            "nearest_index": nearest,
            "nearest_accuracy": measured[nearest],
            "hamming": hamming.min(axis=1),
            "extrapolation": predicted > measured.max(),
        }
    )
