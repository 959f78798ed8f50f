from __future__ import annotations

import numpy as np
import pytest
import torch

from nasutils import rl_study
from nasutils.agents import AgentConfig
from nasutils.env import EnvConfig
from nasutils.notebook import require_artifact, start
from nasutils.surrogate import fit_surrogate
from nasutils.vqvae import VQVAEConfig, make_split, train_vqvae

TINY = AgentConfig(total_timesteps=128, n_envs=4, n_steps=32, batch_size=32, n_epochs=1, checkpoint_every=0)


@pytest.fixture(scope="module")
def saved_models(real_dataset, tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("artifacts")
    split = make_split(len(real_dataset), seed=0, labels=real_dataset.bins)
    trained = train_vqvae(
        real_dataset.X, real_dataset.bins, VQVAEConfig(hidden_sizes=(16, 8), max_epochs=2), split=split, seed=0,
        data_sha256=real_dataset.sha256,
    )
    trained.save(folder / "vqvae.pt")
    fit_surrogate(real_dataset, n_estimators=20).save(folder / "surrogate.json")
    return folder


def make_specs(folder, sha, kinds=("mlp", "memory")):
    return [
        rl_study.RunSpec(
            kind=kind, seed=0, folder=str(folder / "runs" / kind), vqvae_path=str(folder / "vqvae.pt"),
            surrogate_path=str(folder / "surrogate.json"), data_sha256=sha, agent=TINY, env=EnvConfig(max_steps=20),
        )
        for kind in kinds
    ]


def test_runs_produce_curves_and_final_values(saved_models, real_dataset):
    specs = make_specs(saved_models, real_dataset.sha256)
    rl_study.train_runs(specs, workers=1)
    curves = rl_study.learning_curves(specs)
    assert set(curves["agent"]) == {"mlp", "memory"}
    assert curves.groupby("agent")["timesteps"].max().tolist() == [128, 128]
    final = rl_study.final_values(curves)
    assert final.loc["mlp", ("episode return", "mean")] > 0.5
    assert rl_study.load_trajectories(specs[0].folder)


def test_scorer_rejects_other_data(saved_models):
    with pytest.raises(Exception, match="0000"):
        rl_study.load_scorer(saved_models / "vqvae.pt", saved_models / "surrogate.json", "0000")


def test_scorer_predicts_valid_architectures(saved_models, real_dataset):
    scorer = rl_study.load_scorer(saved_models / "vqvae.pt", saved_models / "surrogate.json", real_dataset.sha256)
    architectures, accuracy = scorer(np.random.default_rng(0).normal(size=(50, 8)))
    assert architectures.shape == (50, 22)
    assert np.all((accuracy > 0.5) & (accuracy < 1.0))


def test_missing_artifact_names_the_chapter(real_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("NASUTILS_ARTIFACTS", str(tmp_path))
    run = start({"profile": "quick", "data_path": str(real_csv), "seed": None}, "01_dataset_and_bins")
    with pytest.raises(FileNotFoundError, match="run notebook 04_surrogate with profile 'quick' first"):
        require_artifact(run, "surrogate.json", "04_surrogate")
