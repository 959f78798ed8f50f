"""PPO agents for the latent-edit environment, with Stable-Baselines3.

Two agents as in the report: PPO with ``MlpPolicy`` on the latent state alone,
and PPO with ``MultiInputPolicy`` whose observation also holds the last six
actions. :class:`AgentConfig` carries the PPO settings; the report's are
``n_steps * n_envs = 2048`` transitions per rollout, minibatches of 32, 12
epochs per update and 1.5 M timesteps.

Training logs SB3's metrics (``rollout/ep_rew_mean``, ``rollout/ep_len_mean``,
``train/...``) to CSV and TensorBoard, saves periodic checkpoints and resumes
from the newest one after an interruption. :class:`TrajectoryRecorder`
records the first steps of some sub-environments for the exploration maps.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecMonitor

from .env import ArchitectureScorer, BatchedLatentEditEnv, EnvConfig

__all__ = [
    "AGENT_KINDS",
    "REPORT_TIMESTEPS",
    "AgentConfig",
    "TrainingRun",
    "TrajectoryRecorder",
    "latest_checkpoint",
    "make_env",
    "read_progress",
    "train_agent",
]

logger = logging.getLogger(__name__)

REPORT_TIMESTEPS = 1_500_000
"""Timesteps per agent in the report's training runs."""

AGENT_KINDS = {"mlp": 0, "memory": 6}
"""Agent kinds and the number of past actions each one observes."""

_CHECKPOINT_PREFIX = "ppo"
_CHECKPOINT_PATTERN = re.compile(rf"{_CHECKPOINT_PREFIX}_(\d+)_steps\.zip$")


@dataclass(frozen=True)
class AgentConfig:
    """PPO settings and the training budget.

    ``n_envs * n_steps`` is the number of transitions per rollout (2048 in the
    report, collected there by one environment). ``checkpoint_every`` is in
    timesteps; 0 disables checkpoints. Other fields are PPO's own arguments,
    with Stable-Baselines3's defaults where the report gives no value.
    """

    total_timesteps: int = REPORT_TIMESTEPS
    n_envs: int = 64
    n_steps: int = 32
    batch_size: int = 32
    n_epochs: int = 12
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    checkpoint_every: int = 100_000

    def __post_init__(self) -> None:
        for name in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be at least 0, got {self.checkpoint_every}.")

    @property
    def rollout_size(self) -> int:
        return self.n_envs * self.n_steps


def make_env(
    scorer: ArchitectureScorer,
    kind: str,
    config: AgentConfig,
    *,
    env_config: EnvConfig | None = None,
    start_latents: npt.ArrayLike | None = None,
    seed: int = 0,
) -> VecMonitor:
    """Build the batched environment for an agent kind, seeded, inside SB3's ``VecMonitor``."""
    if kind not in AGENT_KINDS:
        raise ValueError(f"Unknown agent kind {kind!r}; choose one of: {', '.join(AGENT_KINDS)}.")
    base = env_config or EnvConfig()
    rules = EnvConfig(
        max_steps=base.max_steps, history=AGENT_KINDS[kind], accounting=base.accounting, start=base.start
    )
    venv = BatchedLatentEditEnv(scorer, config.n_envs, rules, start_latents=start_latents)
    venv.seed(seed)
    return VecMonitor(venv)


class TrajectoryRecorder(BaseCallback):
    """Record the latent states visited by the first ``n_envs`` sub-environments in the first ``max_steps`` steps.

    ``trajectories`` becomes a list of (length, latent_dim) arrays, one per
    episode, each starting with the episode's start state and ending with its
    last state (the terminal observation when the episode ended).
    """

    def __init__(self, max_steps: int = 256, n_envs: int = 8) -> None:
        super().__init__()
        self.max_steps = max_steps
        self.n_envs = n_envs
        self.trajectories: list[npt.NDArray[np.float32]] = []
        self._open: dict[int, list[npt.NDArray[np.float32]]] = {}
        self._calls = 0

    @staticmethod
    def _latent(observation: Any) -> npt.NDArray[np.float32]:
        if isinstance(observation, dict):
            observation = observation["latent"]
        return np.asarray(observation, dtype=np.float32).copy()

    def _on_training_start(self) -> None:
        starts = self._latent(self.model._last_obs)
        tracked = min(self.n_envs, len(starts))
        self._open = {i: [starts[i]] for i in range(tracked)}

    def _on_step(self) -> bool:
        if self._calls >= self.max_steps:
            return True
        self._calls += 1
        new_obs = self._latent(self.locals["new_obs"])
        dones, infos = self.locals["dones"], self.locals["infos"]
        for i, states in self._open.items():
            if dones[i]:
                states.append(self._latent(infos[i]["terminal_observation"]))
                self.trajectories.append(np.stack(states))
                self._open[i] = [new_obs[i]]
            else:
                states.append(new_obs[i])
        if self._calls == self.max_steps:
            self.trajectories += [np.stack(states) for states in self._open.values() if len(states) > 1]
            self._open = {}
        return True


def latest_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """Return the checkpoint with the most timesteps in ``folder``, or None."""
    found = []
    for path in Path(folder).glob(f"{_CHECKPOINT_PREFIX}_*_steps.zip"):
        match = _CHECKPOINT_PATTERN.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


@dataclass
class TrainingRun:
    """A trained (or resumed) agent with where its logs and checkpoints are."""

    model: PPO
    kind: str
    seed: int
    folder: Path
    trajectories: list[npt.NDArray[np.float32]]
    resumed_from: Path | None

    def progress(self) -> pd.DataFrame:
        return read_progress(self.folder)


def _policy_kwargs() -> dict[str, Any]:
    # The report gives no network sizes; SB3's default for PPO is two layers of 64.
    return {"net_arch": {"pi": [64, 64], "vf": [64, 64]}}


def train_agent(
    kind: str,
    scorer: ArchitectureScorer,
    config: AgentConfig,
    folder: str | os.PathLike[str],
    *,
    seed: int,
    env_config: EnvConfig | None = None,
    start_latents: npt.ArrayLike | None = None,
    resume: bool = True,
    record_steps: int = 256,
    progress_bar: bool = False,
    tensorboard: bool = True,
) -> TrainingRun:
    """Train one PPO agent, or resume it from its newest checkpoint in ``folder``.

    Metrics go to ``folder/logs/segment_<k>/progress.csv`` (one segment per
    call, so a resumed run appends instead of overwriting) and, with
    ``tensorboard``, to TensorBoard files beside them. Checkpoints go to
    ``folder/checkpoints``. The same seed, config and machine repeat the same
    run; call ``torch.set_num_threads(1)`` first, as the book does.
    """
    folder = Path(folder)
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    venv = make_env(scorer, kind, config, env_config=env_config, start_latents=start_latents, seed=seed)
    policy = "MultiInputPolicy" if AGENT_KINDS[kind] else "MlpPolicy"

    previous = latest_checkpoint(checkpoints) if resume else None
    if previous is not None:
        # PPO.load raises when the checkpoint's observation or action space differs from venv's.
        model = PPO.load(previous, env=venv, device="cpu")
        logger.info("Resuming %s agent (seed %d) from %s at %d timesteps", kind, seed, previous, model.num_timesteps)
    else:
        model = PPO(
            policy,
            venv,
            n_steps=config.n_steps,
            batch_size=config.batch_size,
            n_epochs=config.n_epochs,
            learning_rate=config.learning_rate,
            gamma=config.gamma,
            gae_lambda=config.gae_lambda,
            clip_range=config.clip_range,
            ent_coef=config.ent_coef,
            policy_kwargs=_policy_kwargs(),
            seed=seed,
            device="cpu",
            verbose=0,
        )

    segment = len(list((folder / "logs").glob("segment_*"))) if (folder / "logs").is_dir() else 0
    formats = ["csv", "tensorboard"] if tensorboard else ["csv"]
    model.set_logger(configure(str(folder / "logs" / f"segment_{segment}"), formats))

    recorder = TrajectoryRecorder(max_steps=record_steps if previous is None else 0)
    callbacks: list[BaseCallback] = [recorder]
    if config.checkpoint_every:
        save_every = max(config.checkpoint_every // config.n_envs, 1)
        callbacks.append(CheckpointCallback(save_every, str(checkpoints), name_prefix=_CHECKPOINT_PREFIX))

    remaining = config.total_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(
            total_timesteps=remaining,
            callback=CallbackList(callbacks),
            reset_num_timesteps=previous is None,
            progress_bar=progress_bar,
        )
    model.save(checkpoints / f"{_CHECKPOINT_PREFIX}_{model.num_timesteps}_steps.zip")
    (folder / "config.json").write_text(pd.Series({**asdict(config), "kind": kind, "seed": seed}).to_json(indent=2))
    return TrainingRun(model, kind, seed, folder, recorder.trajectories, previous)


def read_progress(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """Read every log segment of a run into one table sorted by ``time/total_timesteps``."""
    frames = [pd.read_csv(path) for path in sorted(Path(folder).glob("logs/segment_*/progress.csv"))]
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        raise FileNotFoundError(f"No training log found under {folder}/logs; has the agent been trained?")
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values("time/total_timesteps").reset_index(drop=True)
