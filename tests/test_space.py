from __future__ import annotations

import numpy as np
import pytest

from nasutils.space import RESNET_SPACE, InvalidArchitectureError, ResNetArchitecture

SPACE = RESNET_SPACE


def test_schema_has_22_fields_in_report_order():
    names = SPACE.field_names
    assert SPACE.dim == 22
    assert names[:7] == ("out_channel0", "M", "R1", "R2", "R3", "R4", "R5")
    assert names[7:10] == ("convblock1", "widenfact1", "B1")
    assert names[-3:] == ("convblock5", "widenfact5", "B5")


def test_bounds_come_from_the_declaration():
    spec = {f.name: f for f in SPACE.fields}
    assert (spec["out_channel0"].low, spec["out_channel0"].high) == (8, 128)
    assert (spec["R3"].low, spec["R3"].high, spec["R3"].block) == (1, 16, 3)
    assert (spec["B5"].low, spec["B5"].high) == (1, 12)
    assert spec["convblock2"].labels == ("A", "B", "C", "D")
    assert spec["M"].block is None


def test_vector_round_trip(real_dataset):
    for vector in real_dataset.X[:50]:
        architecture = SPACE.decode(vector)
        np.testing.assert_array_equal(SPACE.encode(architecture), vector)


def test_architecture_blocks_read_the_fields():
    vector = np.zeros(22, dtype=int)
    vector[:3] = (16, 2, 3)
    vector[3] = 5
    vector[7:10] = (4, 2, 6)  # block 1: D, widen 2, 6 branches
    vector[10:13] = (1, 1, 1)  # block 2: A
    architecture = SPACE.decode(vector)
    assert len(architecture.blocks) == 2
    assert architecture.blocks[0].convblock == "D"
    assert architecture.blocks[0].residual_blocks == 3
    assert architecture.blocks[0].branches == 6
    assert architecture.blocks[1].convblock == "A"
    assert architecture.blocks[1].residual_blocks == 5


def test_all_measured_architectures_are_valid(real_dataset):
    assert SPACE.is_valid(real_dataset.X).all()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("M", 6, r"M=6 \(expected an integer in \[1, 5\]\)"),
        ("R1", 17, r"R1=17 \(expected an integer in \[1, 16\]\)"),
        ("R1", 0, r"R1=0"),
        ("convblock1", 5, r"convblock1=5 \(expected a block type code"),
        ("B5", 3, r"B5=3 \(expected 0 because main block 5 is above M\)"),
        ("out_channel0", 7.5, r"out_channel0=7.5"),
    ],
)
def test_invalid_vectors_are_rejected_with_field_and_range(real_dataset, field, value, message):
    vector = real_dataset.X[0].astype(float).copy()  # M = 1
    vector[SPACE.field_names.index(field)] = value
    assert not SPACE.is_valid(vector)[0]
    with pytest.raises(InvalidArchitectureError, match=message):
        SPACE.decode(vector)


def test_architecture_constructor_validates():
    with pytest.raises(InvalidArchitectureError, match="M=0"):
        ResNetArchitecture(**{name: 0 for name in SPACE.field_names})


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"length 22.*got shape \(3, 21\)"):
        SPACE.is_valid(np.zeros((3, 21)))


def _brute_force_nearest(vector):
    """Nearest valid vector by trying every M and every value of each field independently."""
    best, best_cost = None, np.inf
    for depth in range(1, 6):
        candidate = np.zeros(22)
        candidate[1] = depth
        for i, spec in enumerate(SPACE.fields):
            if i == 1:
                continue
            if spec.block is not None and spec.block > depth:
                continue
            choices = np.arange(spec.low, spec.high + 1)
            candidate[i] = choices[np.argmin((choices - vector[i]) ** 2)]
        cost = ((candidate - vector) ** 2).sum()
        if cost < best_cost:
            best, best_cost = candidate, cost
    return best


def test_projection_is_the_exact_nearest_valid_vector():
    rng = np.random.default_rng(1)
    vectors = rng.normal(loc=4, scale=6, size=(200, 22))
    projected = SPACE.project(vectors)
    assert SPACE.is_valid(projected).all()
    for vector, result in zip(vectors, projected, strict=True):
        np.testing.assert_array_equal(result, _brute_force_nearest(vector))


def test_projection_keeps_valid_vectors_and_moves_m_when_nearer():
    valid = SPACE.sample(100, seed=3)
    np.testing.assert_array_equal(SPACE.project(valid), valid)

    # M rounds to 1, but block 2 holds large values: M = 2 is nearer overall.
    vector = np.zeros(22)
    vector[:3] = (64, 1.4, 8)
    vector[7:10] = (2, 2, 6)
    vector[3] = 14
    vector[10:13] = (3, 4, 12)
    assert SPACE.project(vector)[1] == 2


def test_projection_keeps_the_input_rank():
    assert SPACE.project(np.full(22, 3.2)).shape == (22,)
    assert SPACE.project(np.full((4, 22), 3.2)).shape == (4, 22)


def test_sampler_rejects_a_non_integer_count():
    with pytest.raises(ValueError, match="n must be a non-negative integer, got 2.5"):
        SPACE.sample(2.5)


def test_projection_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        SPACE.project(np.full(22, np.nan))


def test_sampler_is_seeded_valid_and_covers_ranges():
    first = SPACE.sample(2000, seed=7)
    second = SPACE.sample(2000, seed=7)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, SPACE.sample(2000, seed=8))
    assert SPACE.is_valid(first).all()

    depth = first[:, 1]
    assert set(np.unique(depth)) == {1, 2, 3, 4, 5}
    used_r1 = first[:, 2]
    assert used_r1.min() == 1
    assert used_r1.max() == 16
    convblocks = first[depth >= 3, SPACE.field_names.index("convblock3")]
    assert set(np.unique(convblocks)) == {1, 2, 3, 4}


@pytest.mark.parametrize(("depth", "expected_used"), [(1, 6), (3, 14), (5, 22)])
def test_used_mask_counts_fields_in_use(depth, expected_used):
    assert SPACE.used_mask([depth]).sum() == expected_used
