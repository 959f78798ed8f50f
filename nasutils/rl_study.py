"""Train both PPO agents over several seeds in parallel processes and gather their curves.

Each run is one process with one torch thread: PPO with minibatches of 32 is
bound by per-minibatch overhead, so a second core serves a second run better
than a second thread. A worker rebuilds the environment from files (the VQ-VAE
checkpoint and the surrogate's XGBoost JSON), so nothing large is pickled.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from .agents import AgentConfig, read_progress, train_agent
from .env import ArchitectureScorer, EnvConfig, LatentDecoder

FINAL_ROLLOUTS = 5
"""Number of last rollouts that :func:`final_values` averages per run."""

__all__ = ["FINAL_ROLLOUTS", "RunSpec", "describe", "final_values", "learning_curves", "load_scorer", "load_trajectories", "train_runs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker process needs to train one agent, as plain values and paths."""

    kind: str
    seed: int
    folder: str
    vqvae_path: str
    surrogate_path: str
    data_sha256: str
    agent: AgentConfig
    env: EnvConfig


def load_scorer(vqvae_path: str | os.PathLike[str], surrogate_path: str | os.PathLike[str], data_sha256: str) -> ArchitectureScorer:
    """Build the environment's scorer from a saved VQ-VAE and a saved surrogate, both checked against the data."""
    from .surrogate import SurrogateRegressor
    from .vqvae import TrainedVQVAE

    trained = TrainedVQVAE.load(vqvae_path, expected_data_sha256=data_sha256)
    surrogate = SurrogateRegressor.load(surrogate_path, expected_data_sha256=data_sha256)
    return ArchitectureScorer(LatentDecoder.from_trained(trained), surrogate.predict)


def _train_one(spec: RunSpec) -> str:
    import torch

    torch.set_num_threads(1)
    scorer = load_scorer(spec.vqvae_path, spec.surrogate_path, spec.data_sha256)
    run = train_agent(spec.kind, scorer, spec.agent, spec.folder, seed=spec.seed, env_config=spec.env)
    if run.trajectories:
        np.savez(Path(spec.folder) / "trajectories.npz", *run.trajectories)
    (Path(spec.folder) / "cache.json").write_text(json.dumps({"hits": scorer.hits, "misses": scorer.misses}))
    return spec.folder


def train_runs(specs: list[RunSpec], *, workers: int | None = None) -> list[str]:
    """Train every run, ``workers`` at a time (default: one per CPU core, at most one per run).

    Runs whose folder already contains a finished checkpoint resume, so rerunning
    after an interruption finishes only what is missing.
    """
    if not specs:
        return []
    workers = min(len(specs), workers or os.cpu_count() or 1)
    if workers == 1:
        return [_train_one(spec) for spec in specs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_train_one, specs))


def learning_curves(specs: list[RunSpec]) -> pd.DataFrame:
    """Return a tidy table of ``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` per run and rollout."""
    frames = []
    for spec in specs:
        progress = read_progress(spec.folder)
        frame = pd.DataFrame(
            {
                "agent": spec.kind,
                "seed": spec.seed,
                "timesteps": progress["time/total_timesteps"],
                "episode return": progress.get("rollout/ep_rew_mean"),
                "episode length": progress.get("rollout/ep_len_mean"),
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def final_values(curves: pd.DataFrame, *, last: int = FINAL_ROLLOUTS) -> pd.DataFrame:
    """Average the last ``last`` rollouts of each run, then give mean and std over seeds per agent."""
    tail = curves.sort_values("timesteps").groupby(["agent", "seed"]).tail(last)
    per_run = tail.groupby(["agent", "seed"])[["episode return", "episode length"]].mean()
    return per_run.groupby("agent").agg(["mean", "std"])


def load_trajectories(folder: str | os.PathLike[str]) -> list[npt.NDArray[np.float32]]:
    """Read the trajectories a run recorded, in episode order."""
    path = Path(folder) / "trajectories.npz"
    if not path.is_file():
        return []
    with np.load(path) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def describe(spec: RunSpec) -> dict[str, object]:
    """Return the run's settings as a flat dict for tables."""
    return {"agent": spec.kind, "seed": spec.seed, **asdict(spec.agent), **asdict(spec.env)}
