from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3 import PPO

from nasutils.env import BatchedLatentEditEnv, EnvConfig
from nasutils.search import (
    AgentSearch,
    Budget,
    BudgetExhausted,
    EvolutionarySearch,
    LocalSearch,
    Objective,
    RandomPolicySearch,
    RandomSearch,
    RegularizedEvolution,
    curves_frame,
    mutate,
    mutate_depth,
    mutate_other,
    mutate_width,
    single_mutation_neighbours,
    summarize_curves,
    time_to_target,
    time_to_target_table,
    trust_table,
)
from nasutils.space import RESNET_SPACE, ResNetArchitecture
from nasutils.surrogate import SurrogateEnsemble

from .test_env import make_scorer, random_decoder

NAMES = RESNET_SPACE.field_names
COLUMN = {name: i for i, name in enumerate(NAMES)}

TARGET = ResNetArchitecture(
    out_channel0=64, M=3,
    R1=4, R2=6, R3=2, R4=0, R5=0,
    convblock1=2, widenfact1=3, B1=5,
    convblock2=4, widenfact2=2, B2=7,
    convblock3=1, widenfact3=4, B3=3,
    convblock4=0, widenfact4=0, B4=0,
    convblock5=0, widenfact5=0, B5=0,
).to_vector()
FIELD_SCALE = RESNET_SPACE.upper.astype(np.float64)


def peaked(architectures):
    """A synthetic objective: 1 at TARGET, falling with the mean scaled L1 distance to it."""
    return 1.0 - (np.abs(np.asarray(architectures) - TARGET) / FIELD_SCALE).mean(axis=1)


class CountingPredictor:
    """Wrap a predictor and count the rows it receives."""

    def __init__(self, predict=peaked, delay=0.0):
        self.predict = predict
        self.delay = delay
        self.rows = 0
        self.calls = 0

    def __call__(self, architectures):
        self.rows += len(architectures)
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return self.predict(architectures)


METHODS = ["random", "evolution", "regularized_evolution", "local", "agent", "random_policy"]
CLASSIC = ["random", "evolution", "regularized_evolution", "local"]
INITIAL_QUERIES = {"random": 100, "evolution": 100, "regularized_evolution": 100, "local": 1}


@pytest.fixture(scope="module")
def untrained_model():
    venv = BatchedLatentEditEnv(make_scorer(), 2, EnvConfig())
    return PPO("MlpPolicy", venv, n_steps=8, batch_size=8, device="cpu", seed=0)


@pytest.fixture
def build(request):
    def make(name):
        if name == "random":
            return RandomSearch()
        if name == "evolution":
            return EvolutionarySearch()
        if name == "regularized_evolution":
            return RegularizedEvolution()
        if name == "local":
            return LocalSearch()
        if name == "agent":
            return AgentSearch(request.getfixturevalue("untrained_model"), random_decoder(), n_envs=8)
        if name == "random_policy":
            return RandomPolicySearch(random_decoder(), n_envs=8)
        raise ValueError(name)

    return make


# --- Budget ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_query_budget_is_exact(name, build):
    predictor = CountingPredictor()
    result = build(name).run(predictor, budget=137, seed=0)
    assert result.n_queries == 137
    assert predictor.rows == 137
    assert len(result.queries) == len(result.seconds) == len(result.best_so_far) == 137
    assert result.stop_reason == "max_queries"
    assert result.method == name


@pytest.mark.parametrize("name", METHODS)
def test_time_budget_stops_search(name, build):
    predictor = CountingPredictor(delay=0.01)
    result = build(name).run(predictor, budget=Budget(max_seconds=0.2), seed=0)
    assert result.stop_reason == "max_seconds"
    assert result.n_queries == predictor.rows
    assert predictor.calls < 100
    assert result.wall_seconds < 5.0


def test_first_limit_reached_ends_run():
    predictor = CountingPredictor()
    result = RandomSearch(batch_size=10).run(predictor, budget=Budget(max_queries=55, max_seconds=60), seed=0)
    assert result.stop_reason == "max_queries"
    assert predictor.rows == 55


def test_objective_truncates_last_batch():
    predictor = CountingPredictor()
    objective = Objective(predictor, 7)
    objective(RESNET_SPACE.sample(4, seed=0))
    with pytest.raises(BudgetExhausted, match="only its first 3 rows were evaluated"):
        objective(RESNET_SPACE.sample(10, seed=1))
    assert predictor.rows == 7
    assert objective.n_queries == 7
    assert objective.remaining == 0
    with pytest.raises(BudgetExhausted, match="used up"):
        objective(RESNET_SPACE.sample(1, seed=2))
    assert predictor.rows == 7


def test_objective_counts_repeats_and_distinct():
    objective = Objective(peaked, 100)
    batch = RESNET_SPACE.sample(5, seed=0)
    objective(batch)
    objective(batch[:2])
    assert objective.n_queries == 7
    assert objective.n_distinct == 5


def test_objective_rejects_invalid_architectures():
    objective = Objective(peaked, 10)
    invalid = TARGET.copy()
    invalid[COLUMN["R5"]] = 3
    with pytest.raises(ValueError, match=r"1 invalid architecture.*R5"):
        objective(invalid[None, :])
    assert objective.n_queries == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs max_queries, max_seconds or both"),
        ({"max_queries": 0}, "max_queries must be a positive integer"),
        ({"max_queries": 2.5}, "max_queries must be a positive integer"),
        ({"max_seconds": -1.0}, "max_seconds must be a positive finite number"),
    ],
)
def test_budget_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Budget(**kwargs)


@pytest.mark.parametrize(
    ("method", "message"),
    [
        (RandomSearch(batch_size=0), "batch_size must be a positive integer"),
        (EvolutionarySearch(population_size=10, n_parents=20), r"n_parents \(20\) must not exceed"),
        (EvolutionarySearch(mutation_probabilities=(0.5, 1.5, 0.0)), "mutation_probabilities must be 3"),
        (RegularizedEvolution(population_size=10, sample_size=11), r"sample_size \(11\) must not exceed"),
        (RegularizedEvolution(mutation_weights=(0, 0, 0)), "mutation_weights must be 3"),
        (LocalSearch(n_neighbours=0), "n_neighbours must be a positive integer"),
    ],
)
def test_parameter_validation(method, message):
    with pytest.raises(ValueError, match=message):
        method.run(peaked, budget=10, seed=0)


# --- Curves and results ----------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_curve_never_decreases_and_ends_at_best(name, build):
    result = build(name).run(peaked, budget=300, seed=1)
    assert np.all(np.diff(result.best_so_far) >= 0)
    assert np.all(np.diff(result.seconds) >= 0)
    assert result.best_so_far[-1] == result.best_value
    assert peaked(result.best_architecture[None, :])[0] == pytest.approx(result.best_value, abs=1e-12)
    assert RESNET_SPACE.is_valid(result.best_architecture)[0]
    np.testing.assert_array_equal(result.best_architecture_at(result.n_queries), result.best_architecture)
    assert 1 <= result.n_distinct <= result.n_queries


def test_best_architecture_at_each_query():
    result = RandomSearch(batch_size=7).run(peaked, budget=50, seed=3)
    for query in (1, 8, 25, 50):
        best = result.best_architecture_at(query)
        assert peaked(best[None, :])[0] == pytest.approx(result.best_so_far[query - 1], abs=1e-12)


@pytest.mark.parametrize("name", METHODS)
def test_seeded_runs_repeat(name, build):
    method = build(name)
    first = method.run(peaked, budget=250, seed=4)
    torch.rand(10)  # a run must not depend on torch's global random state
    again = method.run(peaked, budget=250, seed=4)
    other = method.run(peaked, budget=250, seed=5)
    np.testing.assert_array_equal(first.best_so_far, again.best_so_far)
    np.testing.assert_array_equal(first.best_architecture, again.best_architecture)
    assert first.n_distinct == again.n_distinct
    assert not np.array_equal(first.best_so_far, other.best_so_far)


def test_agent_episodes_are_counted(build):
    result = build("agent").run(peaked, budget=3000, seed=0)
    assert result.n_episodes > 0
    assert build("random").run(peaked, budget=10, seed=0).n_episodes is None


def test_agent_rejects_mismatched_history(untrained_model):
    search = AgentSearch(untrained_model, random_decoder(), env_config=EnvConfig(history=6), n_envs=2)
    with pytest.raises(ValueError, match="Set env_config.history"):
        search.run(peaked, budget=10, seed=0)


def test_env_config_type_is_checked():
    search = RandomPolicySearch(random_decoder(), env_config={"history": 6}, n_envs=2)
    with pytest.raises(TypeError, match="env_config must be an EnvConfig or None, got dict"):
        search.run(peaked, budget=10, seed=0)


def test_agent_search_leaves_torch_random_state():
    model = PPO("MlpPolicy", BatchedLatentEditEnv(make_scorer(), 2, EnvConfig()), n_steps=8, batch_size=8, device="cpu")
    state = torch.random.get_rng_state()
    AgentSearch(model, random_decoder(), n_envs=4).run(peaked, budget=100, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)


# --- Search quality on a known optimum -----------------------------------------------------


@pytest.mark.parametrize("name", CLASSIC)
def test_search_improves_on_its_start(name, build):
    result = build(name).run(peaked, budget=3000, seed=0)
    start = result.best_so_far[INITIAL_QUERIES[name] - 1]
    assert result.best_value > start


def test_local_search_finds_optimum():
    result = LocalSearch().run(peaked, budget=3000, seed=0)
    np.testing.assert_array_equal(result.best_architecture, TARGET)
    assert result.best_value == 1.0


def test_local_search_restarts_when_stuck():
    sizes = []

    def flat(architectures):
        sizes.append(len(architectures))
        return np.zeros(len(architectures))

    LocalSearch().run(flat, budget=2000, seed=0)
    # On a flat objective no neighbour improves, so each neighbourhood is followed by a one-row restart.
    assert sizes[0::2] == [1] * len(sizes[0::2])
    assert all(size > 100 for size in sizes[1:-1:2])


def test_local_search_subset_size():
    sizes = []

    def flat(architectures):
        sizes.append(len(architectures))
        return np.zeros(len(architectures))

    LocalSearch(n_neighbours=5).run(flat, budget=60, seed=0)
    assert sizes[:4] == [1, 5, 1, 5]


@pytest.mark.parametrize("method", [EvolutionarySearch(), RegularizedEvolution()], ids=["evolution", "aging"])
def test_evolution_gets_near_optimum(method):
    result = method.run(peaked, budget=3000, seed=0)
    assert result.best_value >= 0.99


# --- Mutations -----------------------------------------------------------------------------


def changed_columns(parent, child):
    return {NAMES[i] for i in np.flatnonzero(parent != child)}


def block_fields(block):
    return {f"R{block}", f"convblock{block}", f"widenfact{block}", f"B{block}"}


PARENTS = RESNET_SPACE.sample(400, seed=11)


def test_width_mutation_changes_only_width():
    rng = np.random.default_rng(0)
    for parent in PARENTS:
        child = mutate_width(parent, rng)
        changed = changed_columns(parent, child)
        widths = {name for name in changed if name.startswith("widenfact")}
        assert changed
        assert changed - widths <= {"out_channel0"}
        assert len(widths) <= 1
        assert all(int(name[-1]) <= parent[COLUMN["M"]] for name in widths)
        assert RESNET_SPACE.is_valid(child)[0]


def test_depth_mutation_changes_only_depth():
    rng = np.random.default_rng(0)
    for parent in PARENTS:
        child = mutate_depth(parent, rng)
        changed = changed_columns(parent, child)
        old, new = int(parent[COLUMN["M"]]), int(child[COLUMN["M"]])
        assert RESNET_SPACE.is_valid(child)[0]
        if old == new:
            assert len(changed) == 1
            (name,) = changed
            assert name.startswith("R")
            assert int(name[1:]) <= old
        else:
            assert abs(old - new) == 1
            assert "M" in changed
            assert changed - {"M"} <= block_fields(max(old, new))


def test_other_mutation_changes_one_block_type_or_branches():
    rng = np.random.default_rng(0)
    for parent in PARENTS:
        child = mutate_other(parent, rng)
        changed = changed_columns(parent, child)
        assert len(changed) == 1
        (name,) = changed
        block = int(name[-1])
        assert name in {f"convblock{block}", f"B{block}"}
        assert block <= parent[COLUMN["M"]]
        assert RESNET_SPACE.is_valid(child)[0]


def test_depth_mutation_adds_and_removes_blocks():
    rng = np.random.default_rng(1)
    depths = {(int(parent[COLUMN["M"]]), int(mutate_depth(parent, rng)[COLUMN["M"]])) for parent in PARENTS}
    assert (1, 2) in depths
    assert (5, 4) in depths
    assert all(new <= 5 and new >= 1 for _, new in depths)


def test_mutation_weights_select_the_kind():
    rng = np.random.default_rng(0)
    for parent in PARENTS[:100]:
        child = mutate(parent, rng, weights=(0.0, 0.0, 1.0))
        changed = changed_columns(parent, child)
        assert all(name.startswith(("convblock", "B")) for name in changed)


def test_mutation_rejects_invalid_parent():
    invalid = TARGET.copy()
    invalid[COLUMN["M"]] = 7
    with pytest.raises(ValueError, match="Cannot mutate an invalid architecture"):
        mutate_width(invalid, np.random.default_rng(0))


def test_neighbours_are_single_changes():
    rng = np.random.default_rng(0)
    for parent in PARENTS[:60]:
        neighbours = single_mutation_neighbours(parent, rng)
        depth = int(parent[COLUMN["M"]])
        assert RESNET_SPACE.is_valid(neighbours).all()
        assert len(np.unique(neighbours, axis=0)) == len(neighbours)
        same_depth = neighbours[:, COLUMN["M"]] == depth
        assert (np.count_nonzero(neighbours[same_depth] != parent, axis=1) == 1).all()
        assert np.count_nonzero(~same_depth) == (depth > 1) + (depth < 5)
        expected = 120 + 32 * depth + (depth > 1) + (depth < 5)
        assert len(neighbours) == expected


# --- Tables -------------------------------------------------------------------------------


def test_time_to_target_finds_first_query():
    result = RandomSearch(batch_size=10).run(peaked, budget=200, seed=0)
    target = result.best_so_far[57]
    first = int(np.flatnonzero(result.best_so_far >= target)[0])
    hit = time_to_target(result, target)
    assert hit.queries == first + 1
    assert hit.seconds == result.seconds[first]
    never = time_to_target(result, 2.0)
    assert np.isnan(never.queries)
    assert np.isnan(never.seconds)


def test_time_to_target_table_marks_unreached():
    result = RandomSearch().run(peaked, budget=100, seed=0)
    table = time_to_target_table([result], {"easy": 0.0, "impossible": 2.0})
    assert table["reached"].tolist() == [True, False]
    assert table.loc[0, "queries"] == 1


def test_curves_frame_on_query_grid():
    short = RandomSearch(batch_size=10).run(peaked, budget=50, seed=0)
    long = RandomSearch(batch_size=10).run(peaked, budget=100, seed=1)
    frame = curves_frame([short, long], axis="queries", grid=[1, 50, 100])
    values = frame.set_index(["seed", "queries"])["best_so_far"]
    assert values[(0, 1)] == short.best_so_far[0]
    assert values[(0, 50)] == short.best_so_far[49]
    assert np.isnan(values[(0, 100)])
    assert values[(1, 100)] == long.best_value
    carried = curves_frame([short], axis="queries", grid=[100], carry_forward=True)
    assert carried["best_so_far"].iloc[0] == short.best_value


def test_curves_frame_on_time_grid():
    result = RandomSearch(batch_size=10).run(peaked, budget=100, seed=0)
    before = result.seconds[0] / 2
    frame = curves_frame([result], axis="seconds", grid=[before, result.wall_seconds])
    assert np.isnan(frame["best_so_far"].iloc[0])
    assert frame["best_so_far"].iloc[1] == result.best_value


def test_summarize_curves_gives_quartiles():
    results = [RandomSearch().run(peaked, budget=100, seed=seed) for seed in range(5)]
    summary = summarize_curves(curves_frame(results, axis="queries", grid=[100]))
    finals = np.array([result.best_value for result in results])
    assert summary["median"].iloc[0] == pytest.approx(np.median(finals))
    assert summary["q25"].iloc[0] == pytest.approx(np.quantile(finals, 0.25))
    assert summary["n_runs"].iloc[0] == 5


def test_result_summary_is_readable():
    summary = RandomSearch().run(peaked, budget=20, seed=0).summary()
    assert summary["method"] == "random"
    assert summary["best_architecture"].startswith("ResNet(")
    assert pd.Series(summary).notna().sum() >= 8


# --- Surrogate trust ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_ensemble():
    X = RESNET_SPACE.sample(200, seed=0)
    accuracy = 0.5 + 0.4 * peaked(X)
    ensemble = SurrogateEnsemble(n_members=2, n_estimators=10).fit(X, accuracy)
    return ensemble, X, accuracy


def test_trust_table_flags_extrapolation(small_ensemble):
    ensemble, X, accuracy = small_ensemble
    top = accuracy.max()
    values = [top + 0.01, top, top - 0.01]
    table = trust_table(X[:3], values, ensemble=ensemble, dataset_X=X, dataset_accuracy=accuracy)
    assert table["extrapolation"].tolist() == [True, False, False]
    assert table["predicted"].tolist() == values


def test_trust_table_uses_ensemble_mean_without_values(small_ensemble):
    ensemble, X, accuracy = small_ensemble
    table = trust_table(X[:5], ensemble=ensemble, dataset_X=X, dataset_accuracy=accuracy)
    mean, std = ensemble.predict(X[:5], return_std=True)
    np.testing.assert_allclose(table["predicted"], mean)
    np.testing.assert_allclose(table["ensemble_std"], std)
    assert (table["extrapolation"] == (mean > accuracy.max())).all()


def test_trust_table_distances(small_ensemble):
    ensemble, X, accuracy = small_ensemble
    unseen = TARGET if not (X == TARGET).all(axis=1).any() else RESNET_SPACE.sample(1, seed=99)[0]
    table = trust_table(np.stack([X[7], unseen]), [0.9, 0.9], ensemble=ensemble, dataset_X=X, dataset_accuracy=accuracy)
    assert table.loc[0, "distance"] == 0.0
    assert table.loc[0, "hamming"] == 0
    assert table.loc[0, "nearest_index"] == 7
    assert table.loc[0, "nearest_accuracy"] == accuracy[7]
    assert table.loc[1, "distance"] > 0
    assert table.loc[1, "hamming"] >= 1
    hamming = (X != unseen).sum(axis=1).min()
    assert table.loc[1, "hamming"] == hamming


def test_trust_table_rejects_mismatched_inputs(small_ensemble):
    ensemble, X, accuracy = small_ensemble
    with pytest.raises(ValueError, match="dataset_accuracy has 199 values for 200 architectures"):
        trust_table(X[:2], ensemble=ensemble, dataset_X=X, dataset_accuracy=accuracy[:-1])

