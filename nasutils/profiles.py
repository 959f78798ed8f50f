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
    """

    name: str
    description: str
    seed: int
    vqvae_max_epochs: int
    vqvae_patience: int
    tuning_trials: int
    tuning_epochs: tuple[int, int]
    tsne_perplexity: float

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
    ),
}


def get_profile(name: str) -> Profile:
    """Return the profile called ``name``; raise :class:`UnknownProfileError` otherwise."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(PROFILES))
        raise UnknownProfileError(f"Unknown profile {name!r}. Choose one of: {known}.") from None
