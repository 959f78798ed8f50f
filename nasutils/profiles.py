"""Named parameter sets that size every notebook's run.

``quick`` keeps the whole book within a CI budget on two cores; ``paper`` uses the
report's settings. A notebook reads its settings from the profile and lets a
papermill parameter override single values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["PROFILES", "Profile", "UnknownProfileError", "get_profile"]


class UnknownProfileError(ValueError):
    """Raised for a profile name that is not in :data:`PROFILES`."""


@dataclass(frozen=True)
class Profile:
    """One named set of run sizes.

    ``vqvae_max_epochs`` and ``vqvae_patience`` bound VQ-VAE training (early
    stopping on validation loss). ``tuning_trials`` is the number of Optuna
    trials and ``tuning_epochs`` the inclusive range of epochs a trial may draw.
    ``tsne_perplexity`` sets the t-SNE views of the latent space.
    ``surrogate_folds`` and ``surrogate_members`` size the surrogate's
    cross-validation and ensemble. ``agent_timesteps`` is each PPO run's budget,
    ``agent_seeds`` the number of seeds per agent, ``agent_n_envs`` the number
    of sub-environments (each rollout holds 2048 transitions, so each collects
    ``2048 // agent_n_envs`` steps) and ``checkpoint_every`` the checkpoint
    interval in timesteps. ``search_queries`` is each search run's budget of
    surrogate queries and ``search_seeds`` the number of seeds per method.
    ``analog_epochs`` and ``analog_seeds`` size chapter 07's digital training
    and its analog noise seeds; ``analog_proxy`` holds the arguments of
    :func:`nasutils.analog.proxy_architecture` (channel divisor, residual blocks
    and branches per main block) that shrink the found architectures for a CPU.
    """

    name: str
    description: str
    seed: int
    vqvae_max_epochs: int
    vqvae_patience: int
    tuning_trials: int
    tuning_epochs: tuple[int, int]
    tsne_perplexity: float
    surrogate_folds: int
    surrogate_members: int
    agent_timesteps: int
    agent_seeds: int
    agent_n_envs: int
    checkpoint_every: int
    search_queries: int
    search_seeds: int
    analog_epochs: int
    analog_seeds: int
    analog_proxy: tuple[int, int, int]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        description="small budgets so that the whole book builds in minutes on two CPU cores",
        seed=0,
        vqvae_max_epochs=100,
        vqvae_patience=20,
        tuning_trials=8,
        tuning_epochs=(10, 60),
        tsne_perplexity=30.0,
        surrogate_folds=5,
        surrogate_members=5,
        agent_timesteps=16_384,
        agent_seeds=3,
        agent_n_envs=64,
        checkpoint_every=8_192,
        search_queries=2_000,
        search_seeds=10,
        analog_epochs=8,
        analog_seeds=2,
        analog_proxy=(8, 1, 1),
    ),
    "paper": Profile(
        name="paper",
        description="the report's settings; hours of CPU time",
        seed=0,
        vqvae_max_epochs=1000,  # the report trains for 1000 epochs
        vqvae_patience=100,
        tuning_trials=50,
        tuning_epochs=(100, 1000),
        tsne_perplexity=30.0,
        surrogate_folds=5,
        surrogate_members=5,
        agent_timesteps=1_500_000,  # the report's budget per agent
        agent_seeds=3,
        agent_n_envs=64,
        checkpoint_every=100_000,
        search_queries=20_000,
        search_seeds=10,
        analog_epochs=30,
        analog_seeds=5,
        analog_proxy=(2, 4, 4),
    ),
}


def get_profile(name: str) -> Profile:
    """Return the profile called ``name``; raise :class:`UnknownProfileError` otherwise."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(PROFILES))
        raise UnknownProfileError(f"Unknown profile {name!r}. Choose one of: {known}.") from None
