"""The report's quantitative claims, as data, so the book can list and check them.

Each claim keeps the report's wording of the value and where the report states
it. Chapters that measure a claim will add the measured value beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REPORT_CLAIMS", "Claim", "claim", "claims_markdown"]


@dataclass(frozen=True)
class Claim:
    """One quantitative statement of the report."""

    key: str
    statement: str
    reported: str
    section: str
    reference: float | None = None
    """The reported value as a number, where it is one, for plots and comparisons."""


REPORT_CLAIMS: tuple[Claim, ...] = (
    Claim("surrogate_rmse", "XGBoost surrogate error on 1-day accuracy", "RMSE 0.05", "4.2", 0.05),
    Claim("latent_clusters", "the supervised VQ-VAE clusters architectures by accuracy bin", "qualitative", "4.1.4"),
    Claim("return_mlp", "final mean episode return, PPO with MlpPolicy", "above 0.85", "5.2", 0.85),
    Claim("return_memory", "final mean episode return, PPO with memory of 6 actions", "about 0.90", "5.2", 0.90),
    Claim("length_mlp", "final mean episode length, PPO with MlpPolicy", "about 130 steps", "5.2", 130.0),
    Claim("length_memory", "final mean episode length, PPO with memory", "about 5 steps", "5.2", 5.0),
    Claim("search_accuracy", "predicted 1-day accuracy found after 10 minutes of search on a CPU", "about 95 %", "5.3", 0.95),
    Claim("search_speedup", "search time against AnalogNAS's evolutionary search", "more than 3 times faster", "5.3"),
)  # fmt: skip


def claim(key: str) -> Claim:
    """Return the claim called ``key``."""
    for item in REPORT_CLAIMS:
        if item.key == key:
            return item
    raise KeyError(f"No claim {key!r}; known: {', '.join(c.key for c in REPORT_CLAIMS)}.")


def claims_markdown() -> str:
    """Return the claims as a Markdown table."""
    lines = ["| claim | value in the report | report section |", "|---|---|---|"]
    lines += [f"| {c.statement} | {c.reported} | {c.section} |" for c in REPORT_CLAIMS]
    return "\n".join(lines) + "\n"
