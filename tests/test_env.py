from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from nasutils.env import (
    ENV_ID,
    ArchitectureScorer,
    BatchedLatentEditEnv,
    EnvConfig,
    LatentDecoder,
    LatentEditEnv,
    register,
)
from nasutils.space import RESNET_SPACE
from nasutils.vqvae import VQVAEConfig, make_split, train_vqvae

K, D = 14, 8
WEIGHTS = np.random.default_rng(1).normal(size=22)


def linear_predictor(architectures):
    """A synthetic surrogate: a fixed linear function of the architecture fields."""
    return 0.9 + 0.001 * (np.asarray(architectures) @ WEIGHTS)


def random_decoder(seed=0):
    rng = np.random.default_rng(seed)
    return LatentDecoder(
        weights=[rng.normal(size=(32, D)), rng.normal(size=(22, 32)) * 0.3],
        biases=[rng.normal(size=32), rng.normal(size=22)],
        mean=RESNET_SPACE.sample(500, seed=seed).mean(axis=0),
        scale=np.full(22, 3.0),
        codebook=rng.normal(size=(K, D)),
    )


def make_scorer(**kwargs):
    return ArchitectureScorer(random_decoder(), linear_predictor, **kwargs)


@pytest.mark.parametrize("history", [0, 6])
def test_environment_checkers(history):
    env = LatentEditEnv(make_scorer(), EnvConfig(history=history))
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env)


def test_spaces_follow_the_report():
    env = LatentEditEnv(make_scorer(), EnvConfig(history=6))
    assert env.action_space.n == K * D + 1
    assert env.observation_space["latent"].shape == (D,)
    assert env.observation_space["history"].nvec.tolist() == [K * D + 2] * 6


def test_action_copies_the_named_codebook_coordinate():
    env = LatentEditEnv(make_scorer())
    codebook = env.core.codebook
    observation, _ = env.reset(seed=3)
    for action in (0, 7, 8 * 5 + 2, K * D - 1):
        before = observation.copy()
        observation, *_ = env.step(action)
        k, t = divmod(action, D)
        assert observation[t] == codebook[k, t]
        others = np.arange(D) != t
        np.testing.assert_array_equal(observation[others], before[others])


def test_terminal_action_ends_with_zero_reward():
    env = LatentEditEnv(make_scorer())
    observation, _ = env.reset(seed=0)
    observation, _, _, _, _ = env.step(5)
    final, reward, terminated, truncated, info = env.step(K * D)
    assert reward == 0.0
    assert terminated
    assert not truncated
    np.testing.assert_array_equal(final, observation)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_invalid_action_is_rejected():
    env = LatentEditEnv(make_scorer())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Invalid action 113: expected an integer in \[0, 112\]"):
        env.step(K * D + 1)


def test_step_limit_truncates_without_terminating():
    env = LatentEditEnv(make_scorer(), EnvConfig(max_steps=3))
    env.reset(seed=0)
    flags = [env.step(1)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_report_accounting_returns_final_accuracy():
    env = LatentEditEnv(make_scorer(), EnvConfig(accounting="report"))
    _, info = env.reset(seed=2)
    total = 0.0
    for action in (3, 50, 77, 101):
        _, reward, _, _, info = env.step(action)
        total += reward
    assert total == pytest.approx(info["predicted_accuracy"])
    assert info["predicted_accuracy"] == pytest.approx(linear_predictor(info["architecture"]))


def test_improvement_accounting_returns_gain():
    env = LatentEditEnv(make_scorer(), EnvConfig(accounting="improvement"))
    _, start = env.reset(seed=2)
    total = 0.0
    for action in (3, 50, 77, 101):
        _, reward, _, _, info = env.step(action)
        total += reward
    assert total == pytest.approx(info["predicted_accuracy"] - start["predicted_accuracy"])
    assert start["predicted_accuracy"] != 0


def test_dataset_start_uses_the_given_encodings():
    starts = np.random.default_rng(0).normal(size=(5, D)).astype(np.float32)
    env = LatentEditEnv(make_scorer(), EnvConfig(start="dataset"), start_latents=starts)
    for seed in range(10):
        observation, _ = env.reset(seed=seed)
        assert any(np.array_equal(observation, row) for row in starts)
    with pytest.raises(ValueError, match="needs start_latents"):
        LatentEditEnv(make_scorer(), EnvConfig(start="dataset"))


def test_info_holds_a_valid_architecture():
    env = LatentEditEnv(make_scorer())
    _, info = env.reset(seed=0)
    assert RESNET_SPACE.is_valid(info["architecture"]).all()
    _, _, _, _, info = env.step(9)
    assert RESNET_SPACE.is_valid(info["architecture"]).all()


@pytest.mark.parametrize("history", [0, 6])
def test_batched_env_matches_single_envs(history):
    n, seed, steps = 5, 10, 60
    config = EnvConfig(max_steps=7, history=history)
    venv = BatchedLatentEditEnv(make_scorer(), n, config)
    venv.seed(seed)
    batched_obs = venv.reset()
    singles = [LatentEditEnv(make_scorer(), config) for _ in range(n)]
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]

    actions = np.random.default_rng(0).integers(0, K * D + 1, size=(steps, n))
    for step_actions in actions:
        for i in range(n):
            expected = single_obs[i]
            got = {key: value[i] for key, value in batched_obs.items()} if history else batched_obs[i]
            if history:
                np.testing.assert_array_equal(got["latent"], expected["latent"])
                np.testing.assert_array_equal(got["history"], expected["history"])
            else:
                np.testing.assert_array_equal(got, expected)

        batched_obs, rewards, dones, infos = venv.step(step_actions)
        for i, env in enumerate(singles):
            observation, reward, terminated, truncated, _ = env.step(int(step_actions[i]))
            assert rewards[i] == pytest.approx(reward, abs=1e-6)
            assert dones[i] == (terminated or truncated)
            if terminated or truncated:
                assert infos[i]["TimeLimit.truncated"] == truncated
                observation, _ = env.reset()
            single_obs[i] = observation


def test_cache_returns_the_same_predictions():
    cached, uncached = make_scorer(), make_scorer(cache_size=0)
    latents = np.random.default_rng(0).normal(size=(200, D))
    latents = np.vstack([latents, latents[:50]])
    architectures, predictions = cached(latents)
    _, plain = uncached(latents)
    np.testing.assert_allclose(predictions, plain)
    np.testing.assert_allclose(predictions, linear_predictor(architectures))
    assert cached.hits >= 50
    assert cached.misses + cached.hits == len(latents)


def test_cache_size_is_bounded():
    scorer = make_scorer(cache_size=10)
    scorer(np.random.default_rng(0).normal(size=(100, D)))
    assert len(scorer._cache) <= 10


def test_numpy_decoder_matches_the_trained_model(real_dataset):
    torch.set_num_threads(1)
    split = make_split(len(real_dataset), seed=0, labels=real_dataset.bins)
    trained = train_vqvae(
        real_dataset.X, real_dataset.bins, VQVAEConfig(hidden_sizes=(16, 8), max_epochs=2), split=split, seed=0
    )
    decoder = LatentDecoder.from_trained(trained)
    latents = np.random.default_rng(0).normal(size=(300, 8))
    np.testing.assert_allclose(decoder.decode_raw(latents), trained.decode_raw(latents), rtol=1e-5, atol=1e-4)
    assert (decoder(latents) == trained.decode(latents)).mean() > 0.99


def test_registered_with_gymnasium():
    register()
    env = gym.make(ENV_ID, scorer=make_scorer(), config=EnvConfig(max_steps=5))
    observation, info = env.reset(seed=0)
    assert observation.shape == (D,)
    assert "predicted_accuracy" in info


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_steps": 0}, "max_steps must be a positive integer"),
        ({"history": -1}, "history must be a non-negative integer"),
        ({"accounting": "delta"}, "accounting must be one of"),
        ({"start": "uniform"}, "start must be one of"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EnvConfig(**kwargs)
