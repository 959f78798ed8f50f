"""The report's quantitative claims, as data, so the book can list and check them.

Each claim keeps the report's wording of the value and where the report states
it. Chapters that measure a claim record a :class:`Measurement` in the profile's
artifacts folder, and :func:`ledger` sets each claim beside its measurement with
a verdict.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "REPORT_CLAIMS",
    "VERDICTS",
    "Claim",
    "Measurement",
    "MissingMeasurementError",
    "claim",
    "claims_markdown",
    "judge",
    "ledger",
    "read_measurements",
    "record_measurement",
]


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


VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "cannot be checked here")


class MissingMeasurementError(RuntimeError):
    """Raised when the ledger has a claim that no chapter measured."""


@dataclass(frozen=True)
class Measurement:
    """A value this build measured for one claim.

    ``shown`` is the value as the ledger prints it; ``context`` holds what the
    verdict needs besides the value (for example the share of the report's
    training budget that the run used).
    """

    key: str
    value: float
    shown: str
    source: str
    context: dict[str, float] = field(default_factory=dict)


def record_measurement(folder: str | os.PathLike[str], measurement: Measurement) -> None:
    """Add or replace one measurement in ``folder/measurements.json``."""
    if measurement.key not in {c.key for c in REPORT_CLAIMS}:
        raise KeyError(f"No claim {measurement.key!r}; known: {', '.join(c.key for c in REPORT_CLAIMS)}.")
    path = Path(folder) / "measurements.json"
    records = json.loads(path.read_text()) if path.is_file() else {}
    records[measurement.key] = asdict(measurement)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")


def read_measurements(folder: str | os.PathLike[str]) -> dict[str, Measurement]:
    """Read every measurement recorded in ``folder``."""
    path = Path(folder) / "measurements.json"
    if not path.is_file():
        return {}
    return {key: Measurement(**record) for key, record in json.loads(path.read_text()).items()}


def _budget_note(context: dict[str, float]) -> str | None:
    fraction = context.get("budget_fraction", 1.0)
    if fraction < 0.5:
        return f"this build trained {fraction:.1%} of the report's budget"
    return None


def judge(claim_: Claim, measurement: Measurement) -> tuple[str, str]:
    """Return the verdict on one claim and the reason, in one sentence.

    The tolerances are this project's reading of the report's wording: "about"
    allows 0.02 on a return and 30 % on an episode length; "above" is strict.
    Claims about training curves cannot be checked, whichever way they come
    out, when the run used less than half of the report's training budget. A
    return that passes only partly reproduces the claim when untrained start
    states already score above 0.85 (``context["start_accuracy"]``).
    """
    value, context = measurement.value, measurement.context
    key = claim_.key
    short_budget = _budget_note(context)

    if key == "surrogate_rmse":
        if abs(value - 0.05) <= 0.01:
            return "reproduced", f"cross-validated RMSE is {value:.3f}, within 0.01 of 0.05"
        return "not reproduced", f"cross-validated RMSE is {value:.3f}, more than 0.01 from 0.05"
    if key == "latent_clusters":
        chance, train = context["chance"], context["train_purity"]
        if value >= 2 * chance:
            return "reproduced", f"held-out purity {value:.2f} is at least twice chance ({chance:.2f})"
        if train >= 2 * chance:
            return "partly reproduced", (
                f"training architectures cluster by bin (purity {train:.2f}) but held-out ones barely do "
                f"({value:.2f}; chance {chance:.2f})"
            )
        return "not reproduced", f"purity {value:.2f} on held-out and {train:.2f} on training rows is near chance"

    if key in {"return_mlp", "return_memory", "length_mlp", "length_memory"}:
        if short_budget:
            return "cannot be checked here", f"{short_budget}; the value reached so far is {measurement.shown}"
        if key == "return_mlp":
            ok = value > 0.85
        elif key == "return_memory":
            ok = abs(value - 0.90) <= 0.02
        elif key == "length_mlp":
            ok = abs(value - 130) <= 0.3 * 130
        else:
            ok = value <= 10
        start = context.get("start_accuracy")
        if ok and key.startswith("return") and start is not None and start > 0.85:
            return "partly reproduced", (
                f"final value {measurement.shown} against {claim_.reported}, but untrained start states "
                f"already score {start:.3f}"
            )
        return ("reproduced" if ok else "not reproduced"), f"final value {measurement.shown} against {claim_.reported}"

    if key == "search_accuracy":
        seconds = context.get("seconds", 600.0)
        random_best = context.get("random_median", float("nan"))
        if value >= 0.945 and random_best >= 0.945:
            return "partly reproduced", (
                f"the agents reach a median best prediction of {value:.3f}, but uniform random sampling "
                f"reaches {random_best:.3f} with the same budget, so the surrogate sets this number"
            )
        if value >= 0.945:
            return "reproduced", f"the agents' median best predicted accuracy is {value:.3f}"
        if seconds < 600 or short_budget:
            return "cannot be checked here", (
                f"the search ran {seconds:.0f} s with agents trained on a reduced budget and reached {value:.3f}"
            )
        return "not reproduced", f"the agents' median best predicted accuracy after {seconds:.0f} s is {value:.3f}"

    if key == "search_speedup":
        # Training shortens episodes but not the cost of a policy step, so a
        # short training budget does not excuse a lower speed-up.
        if not np.isfinite(value):
            return "not reproduced", "the agents did not reach the target accuracy within the budget"
        if value > 3:
            return "reproduced", f"evolution took {value:.1f} times as long as the agents to reach the target"
        return "not reproduced", f"evolution took {value:.2f} times as long as the agents to reach the target"

    raise KeyError(f"No verdict rule for claim {key!r}.")


def ledger(measurements: dict[str, Measurement]) -> pd.DataFrame:
    """Return one row per claim: the report's value, this build's, the verdict and its reason.

    Raises :class:`MissingMeasurementError` naming every claim without a measurement.
    """
    missing = [c.key for c in REPORT_CLAIMS if c.key not in measurements]
    if missing:
        raise MissingMeasurementError(
            f"No measured value for claim(s) {', '.join(missing)}; run the chapters that measure them first."
        )
    rows = []
    for item in REPORT_CLAIMS:
        measured = measurements[item.key]
        verdict, reason = judge(item, measured)
        rows.append(
            {
                "claim": item.statement,
                "report": item.reported,
                "this build": measured.shown,
                "verdict": verdict,
                "reason": reason,
                "measured in": measured.source,
            }
        )
    return pd.DataFrame(rows)
