"""Tests of the model builder, the image data readers, digital training and the aihwkit evaluation.

Everything runs on scikit-learn's digits or on tiny CIFAR-10 archives written
here, and the download goes to a server on 127.0.0.1, so nothing leaves the
machine. Tests that need aihwkit are skipped when it is not installed.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import pickle
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasutils.analog import (
    AVM_END_S,
    AVM_START_S,
    AnalogEvaluation,
    ResNetModel,
    build_model,
    count_parameters,
    digital_accuracy,
    evaluate_analog,
    expected_parameter_count,
    main_block_widths,
    train_digital,
)
from nasutils.images import (
    CIFAR10_ARCHIVE,
    CIFAR10_ENV_VAR,
    CIFAR10_FOLDER,
    CIFAR10DownloadError,
    CIFAR10FormatError,
    CIFAR10NotFoundError,
    ImageData,
    download_cifar10,
    load_cifar10,
    load_digits,
)
from nasutils.space import RESNET_SPACE, InvalidArchitectureError, ResNetArchitecture

try:
    import aihwkit  # noqa: F401
except ImportError:
    HAS_AIHWKIT = False
else:
    HAS_AIHWKIT = True
needs_aihwkit = pytest.mark.skipif(
    not HAS_AIHWKIT,
    reason="aihwkit is not installed or fails to import (optional extra: pip install 'nasutils[analog]')",
)

FIELDS = RESNET_SPACE.field_names


def architecture(out_channel0: int, *blocks: tuple[int, str, int, int]) -> ResNetArchitecture:
    """Build an architecture from one (residual blocks, letter, widening factor, branches) per main block."""
    vector = np.zeros(len(FIELDS), dtype=np.int64)
    vector[FIELDS.index("out_channel0")] = out_channel0
    vector[FIELDS.index("M")] = len(blocks)
    for i, (residual_blocks, letter, widen_factor, branches) in enumerate(blocks, start=1):
        vector[FIELDS.index(f"R{i}")] = residual_blocks
        vector[FIELDS.index(f"convblock{i}")] = "ABCD".index(letter) + 1
        vector[FIELDS.index(f"widenfact{i}")] = widen_factor
        vector[FIELDS.index(f"B{i}")] = branches
    return RESNET_SPACE.decode(vector)


def small_architectures(n: int, seed: int) -> list[ResNetArchitecture]:
    """Draw ``n`` small valid architectures.

    They have 1-3 main blocks, 1-2 residual blocks, 1-3 branches and 8-16 stem channels.

    Block types and widening factors cover their whole range.
    """
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(n):
        depth = int(rng.integers(1, 4))
        blocks = [
            (
                int(rng.integers(1, 3)),
                "ABCD"[rng.integers(0, 4)],
                int(rng.integers(1, 5)),
                int(rng.integers(1, 4)),
            )
            for _ in range(depth)
        ]
        drawn.append(architecture(int(rng.integers(8, 17)), *blocks))
    return drawn


SMALL_ARCHITECTURES = small_architectures(20, seed=11)


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_digits(image_size=8)


# ---------------------------------------------------------------------------
# Model builder


def test_small_sample_covers_every_block_type():
    letters = {block.convblock for arch in SMALL_ARCHITECTURES for block in arch.blocks}
    assert letters == {"A", "B", "C", "D"}


@pytest.mark.parametrize("arch", SMALL_ARCHITECTURES, ids=str)
def test_model_output_shape(arch):
    model = build_model(arch, in_channels=1, n_classes=10).eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 1, 8, 8))
    assert logits.shape == (3, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", SMALL_ARCHITECTURES, ids=str)
def test_parameter_count_matches_formula(arch):
    model = build_model(arch, in_channels=1, n_classes=10)
    assert count_parameters(model) == expected_parameter_count(arch, 1, 10)


@pytest.mark.parametrize("width_growth", [1, 2, 3])
def test_parameter_count_width_growth(width_growth):
    arch = architecture(16, (2, "A", 2, 3), (1, "D", 1, 2), (2, "B", 3, 1))
    model = build_model(arch, in_channels=3, n_classes=100, width_growth=width_growth)
    assert count_parameters(model) == expected_parameter_count(arch, 3, 100, width_growth)
    assert model.classifier.in_features == 16 * width_growth**2 * 3


def test_invalid_width_growth_rejected():
    with pytest.raises(ValueError, match="width_growth must be a positive integer, got 0"):
        build_model(SMALL_ARCHITECTURES[0], width_growth=0)


def test_parameter_count_of_known_network():
    # One basic block, 8 channels, no projection: stem 9*1*8 + 16, branch
    # 2 * (9*8*8 + 16), classifier 8*10 + 10.
    arch = architecture(8, (1, "B", 1, 1))
    assert expected_parameter_count(arch, 1, 10) == 72 + 16 + 2 * (576 + 16) + 90
    assert count_parameters(build_model(arch, in_channels=1, n_classes=10)) == 1362


def test_five_main_blocks_reach_one_pixel():
    arch = architecture(8, *[(1, "B", 1, 1)] * 5)
    model = build_model(arch, in_channels=1, n_classes=10).eval()
    with torch.no_grad():
        features = model.main_blocks(model.stem(torch.randn(2, 1, 16, 16)))
    assert features.shape == (2, 8 * 16, 1, 1)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_widths_and_downsampling():
    arch = architecture(8, (1, "B", 2, 1), (2, "A", 1, 2), (1, "D", 3, 1))
    assert main_block_widths(arch) == (16, 16, 96)
    model = build_model(arch, in_channels=3, n_classes=10).eval()
    with torch.no_grad():
        features = model.main_blocks(model.stem(torch.randn(2, 3, 32, 32)))
    assert features.shape == (2, 96, 8, 8)

    first_blocks = [stage[0] for stage in model.main_blocks]
    assert [block.branches[0][0].in_channels for block in first_blocks] == [8, 16, 16]
    assert isinstance(first_blocks[0].shortcut, nn.Sequential)
    assert isinstance(first_blocks[1].shortcut, nn.Sequential)
    assert isinstance(model.main_blocks[1][1].shortcut, nn.Identity)


def _branch_layout(letter: str) -> tuple[list[str], list[int]]:
    model = build_model(architecture(8, (1, letter, 1, 1)), in_channels=1, n_classes=10)
    branch = model.main_blocks[0][0].branches[0]
    kinds = [type(layer).__name__ for layer in branch]
    kernels = [layer.kernel_size[0] for layer in branch if isinstance(layer, nn.Conv2d)]
    return kinds, kernels


def test_block_type_layer_order():
    conv_bn_relu = ["Conv2d", "BatchNorm2d", "ReLU"]
    conv_relu_bn = ["Conv2d", "ReLU", "BatchNorm2d"]
    last = ["Conv2d", "BatchNorm2d"]
    expected = {
        "A": (conv_bn_relu * 2 + last, [1, 3, 1]),
        "B": (conv_bn_relu + last, [3, 3]),
        "C": (conv_relu_bn * 2 + last, [1, 3, 1]),
        "D": (conv_relu_bn + last, [3, 3]),
    }
    for letter, (kinds, kernels) in expected.items():
        assert _branch_layout(letter) == (kinds, kernels), letter


def test_swapped_types_differ_only_in_order():
    for plain, swapped in (("A", "C"), ("B", "D")):
        plain_kinds, plain_kernels = _branch_layout(plain)
        swapped_kinds, swapped_kernels = _branch_layout(swapped)
        assert plain_kinds != swapped_kinds
        assert sorted(plain_kinds) == sorted(swapped_kinds)
        assert plain_kernels == swapped_kernels


def test_branches_are_parallel_and_summed():
    model = build_model(architecture(8, (1, "B", 1, 3)), in_channels=1, n_classes=10).eval()
    block = model.main_blocks[0][0]
    assert len(block.branches) == 3
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        expected = torch.relu(x + sum(branch(x) for branch in block.branches))
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_invalid_vector_rejected():
    vector = RESNET_SPACE.sample(1, seed=0)[0].copy()
    vector[FIELDS.index("out_channel0")] = 4
    with pytest.raises(InvalidArchitectureError, match="Invalid ResNet architecture.*out_channel0=4"):
        build_model(vector)


def test_unused_block_field_rejected():
    vector = architecture(8, (1, "B", 1, 1)).to_vector()
    vector[FIELDS.index("R3")] = 2
    with pytest.raises(InvalidArchitectureError, match="R3=2 .*above M"):
        build_model(vector)


def test_wrong_vector_length_rejected():
    with pytest.raises(ValueError, match="length 22"):
        build_model([8, 1, 1])


def test_vector_and_architecture_build_same_model():
    arch = SMALL_ARCHITECTURES[0]
    from_vector = build_model(arch.to_vector(), in_channels=1, seed=5)
    from_arch = build_model(arch, in_channels=1, seed=5)
    for (name, a), (_, b) in zip(
        from_vector.state_dict().items(), from_arch.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_build_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    build_model(SMALL_ARCHITECTURES[1], in_channels=1, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)


# ---------------------------------------------------------------------------
# Image data


def test_digits_standin(digits):
    assert digits.name == "digits-8px"
    assert digits.x_train.shape[1:] == (1, 8, 8)
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert abs(float(digits.x_train.mean())) < 1e-4
    assert set(digits.y_test.tolist()) == set(range(10))


def test_digits_upsampled():
    data = load_digits(image_size=16)
    assert data.name == "digits-16px"
    assert data.image_size == (16, 16)
    assert torch.equal(data.x_train[:, :, ::2, ::2], data.x_train[:, :, 1::2, 1::2])


def test_subset_is_seeded(digits):
    first = digits.subset(100, 50, seed=1)
    again = digits.subset(100, 50, seed=1)
    assert first.name == "digits-8px[100/50]"
    assert torch.equal(first.x_train, again.x_train)
    assert not torch.equal(first.y_train, digits.subset(100, 50, seed=2).y_train)
    with pytest.raises(ValueError, match="n_train"):
        digits.subset(10_000)


def _batch(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, size=n)]


def _pickled(content: object, numpy1_names: bool = True) -> bytes:
    """Pickle like the official files: protocol 2, and NumPy 1's module name for array reconstruction."""
    raw = pickle.dumps(content, protocol=2)
    if numpy1_names:
        raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    return raw


def _standard_batches() -> dict[str, bytes]:
    files = {}
    for i in range(1, 6):
        data, labels = _batch(3, seed=i)
        files[f"data_batch_{i}"] = _pickled({b"batch_label": b"training", b"data": data, b"labels": labels})
    data, labels = _batch(4, seed=99)
    files["test_batch"] = _pickled({b"data": data, b"labels": labels})
    return files


def _write_folder(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    return folder


def _write_archive(root: Path, files: dict[str, bytes]) -> Path:
    source = _write_folder(root / "staging", files)
    archive = root / CIFAR10_ARCHIVE
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(source, arcname=CIFAR10_FOLDER)
    return archive


def _check_standard(data: ImageData) -> None:
    assert data.name == "cifar10"
    assert data.x_train.shape == (15, 3, 32, 32)
    assert data.x_test.shape == (4, 3, 32, 32)
    expected_labels = [label for i in range(1, 6) for label in _batch(3, seed=i)[1]]
    assert data.y_train.tolist() == expected_labels
    assert data.y_test.tolist() == _batch(4, seed=99)[1]


def test_cifar10_folder(tmp_path):
    folder = _write_folder(tmp_path, _standard_batches())
    _check_standard(load_cifar10(folder))
    _check_standard(load_cifar10(tmp_path))


def test_cifar10_archive(tmp_path):
    archive = _write_archive(tmp_path, _standard_batches())
    _check_standard(load_cifar10(archive))


def test_cifar10_pixel_values(tmp_path):
    folder = _write_folder(tmp_path, _standard_batches())
    data = load_cifar10(folder, normalize=False)
    raw, _ = _batch(3, seed=1)
    expected = torch.from_numpy(raw[0].reshape(3, 32, 32)).float() / 255.0
    assert torch.allclose(data.x_train[0], expected)


def test_cifar10_normalized_per_channel(tmp_path):
    data = load_cifar10(_write_folder(tmp_path, _standard_batches()))
    means = data.x_train.mean(dim=(0, 2, 3))
    stds = data.x_train.std(dim=(0, 2, 3))
    assert torch.allclose(means, torch.zeros(3), atol=1e-5)
    assert torch.allclose(stds, torch.ones(3), atol=1e-4)


def test_cifar10_env_var(tmp_path, monkeypatch):
    archive = _write_archive(tmp_path, _standard_batches())
    monkeypatch.setenv(CIFAR10_ENV_VAR, str(archive))
    assert load_cifar10().source == str(archive)


def test_cifar10_missing_location(tmp_path, monkeypatch):
    monkeypatch.delenv(CIFAR10_ENV_VAR, raising=False)
    with pytest.raises(CIFAR10NotFoundError, match=CIFAR10_ENV_VAR):
        load_cifar10()
    with pytest.raises(CIFAR10NotFoundError, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(CIFAR10NotFoundError, match="has no CIFAR-10 data"):
        load_cifar10(tmp_path)


class _Mkdir:
    """Pickles to a call of os.mkdir, which the reader must never run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def _malformed_cases(marker: Path) -> dict[str, tuple[dict[str, bytes | None], str]]:
    good_data, good_labels = _batch(3, seed=1)
    return {
        "missing file": ({"test_batch": None}, "has no (cifar-10-batches-py/)?test_batch"),
        "missing labels": ({"data_batch_2": _pickled({b"data": good_data})}, "no b'labels' entry"),
        "wrong width": (
            {"data_batch_3": _pickled({b"data": good_data[:, :100], b"labels": good_labels})},
            r"shape \(N, 3072\)",
        ),
        "label out of range": (
            {"data_batch_4": _pickled({b"data": good_data, b"labels": [0, 10, 1]})},
            r"labels must be in \[0, 9\]",
        ),
        "label count": (
            {"data_batch_5": _pickled({b"data": good_data, b"labels": [0, 1]})},
            "to match b'data'",
        ),
        "not a dict": ({"data_batch_1": _pickled([1, 2, 3])}, "contains a list, expected a dict"),
        "not a pickle": ({"test_batch": b"this is not a pickle"}, "not a readable pickle"),
        "foreign global": ({"data_batch_1": pickle.dumps(_Mkdir(marker), protocol=2)}, "refers to .*mkdir"),
    }


@pytest.mark.parametrize("case", list(_malformed_cases(Path("unused"))))
@pytest.mark.parametrize("layout", ["folder", "archive"])
def test_cifar10_malformed_rejected(tmp_path, case, layout):
    marker = tmp_path / "created-by-unpickling"
    changes, message = _malformed_cases(marker)[case]
    files = _standard_batches()
    for name, raw in changes.items():
        if raw is None:
            del files[name]
        else:
            files[name] = raw
    path = _write_folder(tmp_path, files) if layout == "folder" else _write_archive(tmp_path, files)

    with pytest.raises(CIFAR10FormatError, match=message):
        load_cifar10(path)
    assert not marker.exists()


def test_cifar10_corrupt_archive(tmp_path):
    archive = tmp_path / CIFAR10_ARCHIVE
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(CIFAR10FormatError, match="not a readable tar archive"):
        load_cifar10(archive)


@pytest.fixture
def archive_server(tmp_path) -> Iterator[tuple[str, bytes, list[str]]]:
    """Serve a tiny CIFAR-10 archive at /cifar.tar.gz on 127.0.0.1.

    Yields the base URL, the archive's bytes and the list of request paths.
    """
    payload = _write_archive(tmp_path / "served", _standard_batches()).read_bytes()
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path == "/cifar.tar.gz":
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", payload, requests
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_download_verified(archive_server, tmp_path):
    base, payload, requests = archive_server
    digest = hashlib.sha256(payload).hexdigest()
    target = tmp_path / "downloads"

    path = download_cifar10(target, url=f"{base}/cifar.tar.gz", sha256=digest, timeout=10)
    assert path == target / CIFAR10_ARCHIVE
    assert path.read_bytes() == payload
    assert sorted(p.name for p in target.iterdir()) == [CIFAR10_ARCHIVE]
    _check_standard(load_cifar10(path))

    again = download_cifar10(target, url=f"{base}/cifar.tar.gz", sha256=digest, timeout=10)
    assert again == path
    assert requests == ["/cifar.tar.gz"]


def test_download_checksum_mismatch(archive_server, tmp_path):
    base, _, _ = archive_server
    target = tmp_path / "downloads"
    with pytest.raises(CIFAR10DownloadError, match="expected 0000"):
        download_cifar10(target, url=f"{base}/cifar.tar.gz", sha256="0" * 64, timeout=10)
    assert list(target.iterdir()) == []


def test_download_http_error(archive_server, tmp_path):
    base, _, _ = archive_server
    target = tmp_path / "downloads"
    with pytest.raises(CIFAR10DownloadError, match="Could not download CIFAR-10 from .*: Not Found"):
        download_cifar10(target, url=f"{base}/missing.tar.gz", timeout=10)
    assert list(target.iterdir()) == []


# ---------------------------------------------------------------------------
# Digital training


TINY = architecture(16, (1, "B", 1, 1), (1, "B", 1, 1))


def _train(digits: ImageData, model_seed: int, train_seed: int, **options) -> tuple[ResNetModel, object]:
    model = build_model(TINY, in_channels=1, n_classes=10, seed=model_seed)
    log = train_digital(model, digits.subset(300, 100, seed=0), epochs=2, seed=train_seed, **options)
    return model, log


def test_training_repeats_with_seed(digits):
    first, first_log = _train(digits, 0, 3, noise_std=0.02)
    second, second_log = _train(digits, 0, 3, noise_std=0.02)
    assert first_log.losses == second_log.losses
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_training_seed_matters(digits):
    _, first_log = _train(digits, 0, 3)
    _, other_log = _train(digits, 0, 4)
    assert first_log.losses != other_log.losses


def test_training_lowers_loss(digits):
    model = build_model(TINY, in_channels=1, n_classes=10)
    log = train_digital(model, digits, epochs=3, seed=0)
    assert log.data_name == "digits-8px"
    assert len(log.losses) == len(log.seconds) == 3
    assert log.losses[-1] < log.losses[0]
    assert digital_accuracy(model, digits) > 0.8


def test_weight_noise_is_removed_after_step(digits):
    model = build_model(TINY, in_channels=1, n_classes=10)
    before = [m.weight.detach().clone() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    train_digital(model, digits.subset(128, 10), epochs=1, seed=0, lr=1e-12, weight_decay=0.0, noise_std=0.5)
    after = [m.weight.detach() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for a, b in zip(before, after, strict=True):
        assert torch.allclose(a, b, atol=1e-9)


def test_weight_noise_changes_training(digits):
    _, clean_log = _train(digits, 0, 3)
    _, noisy_log = _train(digits, 0, 3, noise_std=0.1)
    assert clean_log.losses != noisy_log.losses


def test_augmentation_is_seeded(digits):
    _, first_log = _train(digits, 0, 3, augment=True)
    _, again_log = _train(digits, 0, 3, augment=True)
    _, plain_log = _train(digits, 0, 3)
    assert first_log.losses == again_log.losses
    assert first_log.losses != plain_log.losses


def test_training_rejects_mismatched_data(digits):
    model = build_model(TINY, in_channels=3, n_classes=10)
    with pytest.raises(ValueError, match="in_channels=1"):
        train_digital(model, digits, epochs=1, seed=0)


def test_digital_accuracy_restores_mode(digits):
    model = build_model(TINY, in_channels=1, n_classes=10).train()
    accuracy = digital_accuracy(model, digits)
    assert 0.0 <= accuracy <= 1.0
    assert model.training


# ---------------------------------------------------------------------------
# Analog evaluation


def test_module_imports_without_torchvision():
    code = (
        "import sys, nasutils.analog, nasutils.images\n"
        "print(sorted(m for m in ('torchvision', 'aihwkit') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_missing_aihwkit_names_extra(monkeypatch, digits):
    for name in ("aihwkit", "aihwkit.inference", "aihwkit.nn", "aihwkit.nn.conversion", "aihwkit.simulator"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "aihwkit.simulator.configs", None)
    model = build_model(TINY, in_channels=1, n_classes=10)
    with pytest.raises(ImportError, match=r"nasutils\[analog\]"):
        evaluate_analog(model, digits)


def test_avm_from_evaluation():
    evaluation = AnalogEvaluation(
        data_name="test",
        times_s=(AVM_START_S, 3600.0, AVM_END_S),
        seeds=(0, 1),
        accuracy=np.array([[0.90, 0.88, 0.80], [0.92, 0.90, 0.84]]),
        digital_accuracy=0.93,
        seconds=0.0,
    )
    assert evaluation.avm == pytest.approx(9.0)
    assert evaluation.accuracy_at(3600.0) == pytest.approx((0.89, np.std([0.88, 0.90], ddof=1)))
    without_month = AnalogEvaluation("test", (1.0,), (0,), np.array([[0.9]]), 0.9, 0.0)
    with pytest.raises(ValueError, match="No accuracy at 2.592e"):
        _ = without_month.avm


@pytest.fixture(scope="module")
def trained_tiny(digits) -> ResNetModel:
    model = build_model(architecture(32, (1, "B", 1, 1), (1, "B", 1, 1)), in_channels=1, n_classes=10)
    train_digital(model, digits, epochs=5, seed=0)
    return model


@pytest.fixture(scope="module")
def evaluation(trained_tiny, digits) -> AnalogEvaluation:
    return evaluate_analog(trained_tiny, digits, times_s=(AVM_START_S, AVM_END_S), n_seeds=5, seed=0)


@needs_aihwkit
def test_analog_matches_digital_at_one_second(evaluation):
    mean, std = evaluation.accuracy_at(AVM_START_S)
    assert evaluation.digital_accuracy > 0.9
    assert abs(mean - evaluation.digital_accuracy) <= 0.03, (mean, std, evaluation.digital_accuracy)


@needs_aihwkit
def test_drift_does_not_raise_accuracy(evaluation):
    one_second, _ = evaluation.accuracy_at(AVM_START_S)
    one_month, _ = evaluation.accuracy_at(AVM_END_S)
    assert one_month <= one_second
    assert evaluation.avm >= 0.0


@needs_aihwkit
def test_analog_evaluation_is_seeded(trained_tiny, digits):
    small = digits.subset(None, 120, seed=0)
    state = {name: value.clone() for name, value in trained_tiny.state_dict().items()}
    rng_state = torch.random.get_rng_state()

    first = evaluate_analog(trained_tiny, small, times_s=(1.0, 86400.0), n_seeds=2, seed=7)
    again = evaluate_analog(trained_tiny, small, times_s=(1.0, 86400.0), n_seeds=2, seed=7)
    assert np.array_equal(first.accuracy, again.accuracy)
    assert first.seeds == (7, 8)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    for name, value in trained_tiny.state_dict().items():
        assert torch.equal(value, state[name]), name


@needs_aihwkit
def test_analog_conversion_without_torchvision():
    code = (
        "import sys, torch\n"
        "from nasutils.analog import build_model, pcm_rpu_config\n"
        "from aihwkit.nn.conversion import convert_to_analog\n"
        "model = build_model([8, 1, 1, 0, 0, 0, 0, 2, 1, 1] + [0] * 12, in_channels=1).eval()\n"
        "convert_to_analog(model, pcm_rpu_config())\n"
        "print('torchvision' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
