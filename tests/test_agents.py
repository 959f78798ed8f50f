from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from nasutils.agents import AgentConfig, TrajectoryRecorder, latest_checkpoint, make_env, read_progress, train_agent

from .test_env import make_scorer

TINY = AgentConfig(total_timesteps=256, n_envs=4, n_steps=32, batch_size=32, n_epochs=2, checkpoint_every=128)


@pytest.mark.parametrize(("kind", "policy"), [("mlp", "ActorCriticPolicy"), ("memory", "MultiInputActorCriticPolicy")])
def test_tiny_training_run(kind, policy, tmp_path):
    run = train_agent(kind, make_scorer(), TINY, tmp_path, seed=0, tensorboard=False)
    assert type(run.model.policy).__name__ == policy
    assert run.model.num_timesteps == 256
    progress = read_progress(tmp_path)
    assert progress["time/total_timesteps"].tolist() == [128, 256]
    assert "rollout/ep_rew_mean" in progress.columns or "train/loss" in progress.columns


def test_resumption_continues_the_timestep_count(tmp_path):
    first = train_agent("mlp", make_scorer(), TINY, tmp_path, seed=0, tensorboard=False)
    assert first.resumed_from is None
    longer = AgentConfig(**{**TINY.__dict__, "total_timesteps": 512})
    second = train_agent("mlp", make_scorer(), longer, tmp_path, seed=0, tensorboard=False)
    assert second.resumed_from.name == "ppo_256_steps.zip"
    assert second.model.num_timesteps == 512
    assert read_progress(tmp_path)["time/total_timesteps"].tolist() == [128, 256, 384, 512]


def test_resuming_with_another_kind_fails(tmp_path):
    train_agent("mlp", make_scorer(), TINY, tmp_path, seed=0, tensorboard=False)
    with pytest.raises(ValueError, match="[Oo]bservation spaces do not match"):
        train_agent("memory", make_scorer(), TINY, tmp_path, seed=0, tensorboard=False)


def test_saved_agent_predicts_identically(tmp_path):
    run = train_agent("memory", make_scorer(), TINY, tmp_path, seed=0, tensorboard=False)
    reloaded = PPO.load(latest_checkpoint(tmp_path / "checkpoints"), device="cpu")
    venv = make_env(make_scorer(), "memory", TINY, seed=5)
    observation = venv.reset()
    for _ in range(10):
        actions, _ = run.model.predict(observation, deterministic=True)
        again, _ = reloaded.predict(observation, deterministic=True)
        np.testing.assert_array_equal(actions, again)
        observation, *_ = venv.step(actions)


def test_seeded_runs_repeat(tmp_path):
    first = train_agent("mlp", make_scorer(), TINY, tmp_path / "a", seed=3, tensorboard=False)
    second = train_agent("mlp", make_scorer(), TINY, tmp_path / "b", seed=3, tensorboard=False)
    for a, b in zip(first.model.policy.parameters(), second.model.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_trajectories_start_at_reset_states(tmp_path):
    run = train_agent("mlp", make_scorer(), TINY, tmp_path, seed=0, tensorboard=False, record_steps=40)
    assert run.trajectories
    venv = make_env(make_scorer(), "mlp", TINY, seed=0)
    starts = venv.reset()
    first_four = [t[0] for t in run.trajectories[:4]]
    assert any(np.array_equal(first_four[0], start) for start in starts)
    assert all(t.shape[1] == 8 for t in run.trajectories)
    assert sum(len(t) - 1 for t in run.trajectories) == 40 * min(4, TrajectoryRecorder().n_envs)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="Unknown agent kind 'lstm'; choose one of: mlp, memory"):
        make_env(make_scorer(), "lstm", TINY)


def test_config_validation():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        AgentConfig(batch_size=0)
