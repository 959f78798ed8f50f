"""Measure environment steps per second: one LatentEditEnv against the batched VecEnv.

Run from the project folder:

    .venv/bin/python benchmarks/env_speed.py --data path/to/data [--seconds 3] [--ppo]

The script trains a small VQ-VAE and fits the surrogate on the real dataset
(a few seconds), then times random-action steps of the single environment and
of BatchedLatentEditEnv with 16 and 64 sub-environments, with and without the
prediction cache, and prints each rate with its ratio to the single
environment, all measured in this one run. With ``--ppo`` it also times
1 × 2048-transition rollouts of PPO training for both policies and
extrapolates the report's 1.5 M timesteps. All timings use one torch thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from nasutils.agents import AgentConfig, train_agent
from nasutils.data import load_dataset
from nasutils.env import ArchitectureScorer, BatchedLatentEditEnv, LatentDecoder, LatentEditEnv
from nasutils.surrogate import fit_surrogate
from nasutils.vqvae import VQVAEConfig, make_split, train_vqvae


def time_single(scorer: ArchitectureScorer, seconds: float) -> float:
    env = LatentEditEnv(scorer)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in rng.integers(0, env.action_space.n - 1, size=256):
            _, _, terminated, truncated, _ = env.step(int(action))
            if terminated or truncated:
                env.reset()
        steps += 256
    return steps / (time.perf_counter() - start)


def time_batched(scorer: ArchitectureScorer, n_envs: int, seconds: float) -> float:
    venv = BatchedLatentEditEnv(scorer, n_envs)
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(16):
            venv.step(rng.integers(0, venv.action_space.n, size=n_envs))
        steps += 16 * n_envs
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset CSV or its folder (default: the usual search)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement, in seconds")
    parser.add_argument("--ppo", action="store_true", help="also time PPO training of both policies")
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = load_dataset(args.data)
    split = make_split(len(dataset), seed=0, labels=dataset.bins)
    trained = train_vqvae(dataset.X, dataset.bins, VQVAEConfig(max_epochs=30), split=split, seed=0)
    decoder = LatentDecoder.from_trained(trained)
    surrogate = fit_surrogate(dataset)

    rows = []
    for cache_size, label in ((1_000_000, "cache"), (0, "no cache")):
        single = time_single(ArchitectureScorer(decoder, surrogate.predict, cache_size=cache_size), args.seconds)
        rows.append((f"single env, {label}", single, single))
        for n_envs in (16, 64):
            rate = time_batched(ArchitectureScorer(decoder, surrogate.predict, cache_size=cache_size), n_envs, args.seconds)
            rows.append((f"batched x{n_envs}, {label}", rate, single))

    print(f"{'environment':<26}{'steps/s':>12}{'vs single':>12}")
    for name, rate, reference in rows:
        print(f"{name:<26}{rate:>12,.0f}{rate / reference:>11.1f}x")

    if args.ppo:
        print(f"\n{'PPO (64 envs x 32 steps)':<26}{'timesteps/s':>12}{'1.5 M takes':>14}")
        for kind in ("mlp", "memory"):
            config = AgentConfig(total_timesteps=2048 * 3, checkpoint_every=0)
            scorer = ArchitectureScorer(decoder, surrogate.predict)
            start = time.perf_counter()
            train_agent(kind, scorer, config, f"_build/benchmark-ppo-{kind}", seed=0, resume=False, tensorboard=False)
            rate = config.total_timesteps / (time.perf_counter() - start)
            print(f"{kind:<26}{rate:>12,.0f}{1_500_000 / rate / 60:>10.1f} min")


if __name__ == "__main__":
    main()
