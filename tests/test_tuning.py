from __future__ import annotations

import subprocess
import sys
import textwrap

import optuna
import pytest
from optuna.storages import JournalStorage

from nasutils.tuning import SearchRanges, load_best_config, open_storage, run_study, save_best_config
from nasutils.vqvae import VQVAEConfig, make_split

TINY = SearchRanges(hidden_width=(16,), batch_size=(64,), epochs=(2, 4))
BASE = VQVAEConfig(hidden_sizes=(16, 8), patience=2)
ROWS = 300


@pytest.fixture(scope="module")
def small_data(real_dataset):
    X, bins = real_dataset.X[:ROWS], real_dataset.bins[:ROWS]
    return X, bins, make_split(ROWS, seed=0, labels=bins)


def test_storage_kinds(tmp_path):
    assert open_storage(None) is None
    assert isinstance(open_storage(tmp_path / "study.log"), JournalStorage)
    assert isinstance(open_storage(f"journal:{tmp_path / 'study.txt'}"), JournalStorage)
    assert open_storage("sqlite:///study.db") == "sqlite:///study.db"


def test_unknown_storage_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"Cannot tell the storage kind of '.*study.db'"):
        open_storage(tmp_path / "study.db")


def test_seeded_study_repeats(small_data):
    X, bins, split = small_data
    first = run_study(X, bins, split, n_trials=3, seed=5, base=BASE, ranges=TINY)
    second = run_study(X, bins, split, n_trials=3, seed=5, base=BASE, ranges=TINY)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert [t.value for t in first.trials] == [t.value for t in second.trials]
    assert all("label_purity" in t.user_attrs for t in first.trials)


def test_sqlite_storage_resumes(small_data, tmp_path):
    X, bins, split = small_data
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run_study(X, bins, split, n_trials=1, seed=1, base=BASE, ranges=TINY, storage=url, study_name="s")
    study = run_study(X, bins, split, n_trials=1, seed=2, base=BASE, ranges=TINY, storage=url, study_name="s")
    assert len(study.trials) == 2


WORKER = textwrap.dedent(
    """
    import sys
    from nasutils.data import read_dataset
    from nasutils.tuning import SearchRanges, run_study
    from nasutils.vqvae import VQVAEConfig, make_split

    data_path, journal, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dataset = read_dataset(data_path)
    X, bins = dataset.X[:300], dataset.bins[:300]
    run_study(
        X, bins, make_split(300, seed=0, labels=bins), n_trials=2, seed=seed,
        base=VQVAEConfig(hidden_sizes=(16, 8), patience=2),
        ranges=SearchRanges(hidden_width=(16,), batch_size=(64,), epochs=(2, 4)),
        storage=journal, study_name="shared",
    )
    """
)


@pytest.mark.slow
def test_two_processes_share_a_journal_study(real_csv, tmp_path):
    journal = tmp_path / "study.log"
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(real_csv), str(journal), str(seed)])
        for seed in (11, 12)
    ]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]

    study = optuna.load_study(study_name="shared", storage=open_storage(journal))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 4
    assert len(complete) == 4


def test_best_config_round_trip(small_data, tmp_path, real_dataset):
    X, bins, split = small_data
    study = run_study(
        X, bins, split, n_trials=2, seed=0, base=BASE, ranges=TINY, data_sha256=real_dataset.sha256
    )
    path = tmp_path / "best.json"
    saved = save_best_config(study, path, base=BASE)
    assert saved.learning_rate == study.best_params["learning_rate"]
    assert saved.max_epochs == study.best_params["epochs"]
    assert load_best_config(path, expected_data_sha256=real_dataset.sha256) == saved
    with pytest.raises(ValueError, match="was tuned on data with SHA-256 .* not 0000"):
        load_best_config(path, expected_data_sha256="0000")


def test_load_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="is not a tuned VQ-VAE configuration"):
        load_best_config(path)


def test_resumed_study_draws_new_trials(small_data, tmp_path):
    X, bins, split = small_data
    journal = tmp_path / "study.log"
    run_study(X, bins, split, n_trials=2, seed=0, base=BASE, ranges=TINY, storage=journal, study_name="r")
    study = run_study(X, bins, split, n_trials=2, seed=0, base=BASE, ranges=TINY, storage=journal, study_name="r")
    first, second = [t.params for t in study.trials[:2]], [t.params for t in study.trials[2:]]
    assert len(study.trials) == 4
    assert first != second
