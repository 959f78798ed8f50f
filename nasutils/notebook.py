"""What every notebook of the book does first: check parameters, load data, state provenance.

A notebook's parameters cell (tagged ``parameters`` for papermill) assigns its
defaults; the next cell calls :func:`start` with ``globals()``. Papermill only
warns about a parameter that the notebook does not declare, so :func:`start`
rejects any such name itself, and the run stops before it does any work.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .claims import Measurement, record_measurement
from .data import Dataset, load_dataset, project_dir
from .profiles import Profile, get_profile

__all__ = [
    "NOTEBOOK_PARAMETERS",
    "NotebookRun",
    "ParameterError",
    "UnknownParameterError",
    "check_positive",
    "artifacts_dir",
    "compare_words",
    "glue_figure",
    "require_artifact",
    "start",
    "typed_parameters",
]

logger = logging.getLogger(__name__)

_COMMON_PARAMETERS: dict[str, tuple[type, ...]] = {
    "profile": (str,),
    "data_path": (str, type(None)),
    "seed": (int, type(None)),
}

NOTEBOOK_PARAMETERS: dict[str, dict[str, tuple[type, ...]]] = {
    "01_dataset_and_bins": _COMMON_PARAMETERS,
    "02_latent_space": {**_COMMON_PARAMETERS, "max_epochs": (int, type(None))},
    "03_hyperparameter_search": {
        **_COMMON_PARAMETERS,
        "n_trials": (int, type(None)),
        "storage": (str, type(None)),
    },
    "04_surrogate": _COMMON_PARAMETERS,
    "05_rl_training": {
        **_COMMON_PARAMETERS,
        "timesteps": (int, type(None)),
        "seeds": (int, type(None)),
        "workers": (int, type(None)),
    },
    "06_search_comparison": {
        **_COMMON_PARAMETERS,
        "queries": (int, type(None)),
        "seeds": (int, type(None)),
    },
    "07_analog_validation": {
        **_COMMON_PARAMETERS,
        "epochs": (int, type(None)),
        "cifar10_path": (str, type(None)),
    },
    "08_claims_ledger": _COMMON_PARAMETERS,
}
"""Parameters each notebook declares, with the types a value may have.

A test checks that this table matches every notebook's parameters cell.
"""

_JSON_TYPES = (str, int, float, bool, type(None), list, dict)

# Names that IPython puts into every namespace.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}

_REPORTED_PACKAGES = ("numpy", "pandas", "torch", "xgboost-cpu", "stable-baselines3", "gymnasium", "optuna")


class ParameterError(ValueError):
    """Raised for a notebook parameter that is missing, of the wrong type or out of range."""


class UnknownParameterError(ParameterError):
    """Raised for a parameter that the notebook does not declare."""


@dataclass(frozen=True)
class NotebookRun:
    """The settings of one notebook run: its profile, seed and dataset."""

    notebook: str
    profile: Profile
    seed: int
    dataset: Dataset
    parameters: dict[str, Any]
    artifacts: Path

    def provenance(self) -> dict[str, str]:
        """Describe what built this page: profile, data file, checksum, seed and versions."""
        versions = []
        for package in _REPORTED_PACKAGES:
            try:
                versions.append(f"{package} {metadata.version(package)}")
            except metadata.PackageNotFoundError:
                continue
        checksum_note = "pinned AnalogNAS file" if self.dataset.matches_pinned else "NOT the pinned file"
        return {
            "profile": self.profile.name,
            "data file": self.dataset.path.name,
            "SHA-256": f"{self.dataset.sha256} ({checksum_note})",
            "rows": str(len(self.dataset)),
            "seed": str(self.seed) if self.parameters.get("seed") is not None
            else f"{self.seed} (the profile's)",
            "parameters": ", ".join(
                f"{name}={Path(value).name if name == 'data_path' and value else value!r}"
                for name, value in self.parameters.items()
            ),
            "software": f"nasutils {__version__}, Python {platform.python_version()}, " + ", ".join(versions),
        }

    def record(self, key: str, value: float, shown: str, **context: float) -> None:
        """Record this run's measured value of a report claim for the claims ledger."""
        record_measurement(
            self.artifacts,
            Measurement(key=key, value=float(value), shown=shown, source=self.notebook, context=context),
        )

    def provenance_markdown(self) -> str:
        """Return the provenance as a Markdown table for the top of a page."""
        lines = ["| built with | |", "|---|---|"]
        lines += [f"| {key} | `{value}` |" for key, value in self.provenance().items()]
        return "\n".join(lines)


def check_parameters(namespace: Mapping[str, Any], notebook: str) -> dict[str, Any]:
    """Return the declared parameters from ``namespace``; reject unknown names and wrong types."""
    try:
        declared = NOTEBOOK_PARAMETERS[notebook]
    except KeyError:
        known = ", ".join(sorted(NOTEBOOK_PARAMETERS))
        raise UnknownParameterError(f"Unknown notebook {notebook!r}. Known notebooks: {known}.") from None

    # Papermill injects only JSON values, so objects that earlier cells imported
    # (modules, functions, classes, instances) are not parameters.
    candidates = {
        name
        for name, value in namespace.items()
        if not name.startswith("_") and name not in _IPYTHON_NAMES and isinstance(value, _JSON_TYPES)
    }
    unknown = sorted(candidates - set(declared))
    if unknown:
        raise UnknownParameterError(
            f"Unknown parameter(s) {', '.join(unknown)} for notebook {notebook}. "
            f"It accepts: {', '.join(declared)}. Check the spelling of papermill's -p options"
        )

    return typed_parameters(namespace, declared, where=f" of notebook {notebook}")


def check_positive(**values: int | None) -> None:
    """Reject a count parameter (epochs, seeds, budgets) that is given but below 1."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ParameterError(f"Parameter {name} must be a positive integer or None (the profile's value), got {value}.")


def typed_parameters(
    namespace: Mapping[str, Any],
    declared: Mapping[str, tuple[type, ...]],
    *,
    where: str = "",
    error: type[ValueError] = ParameterError,
) -> dict[str, Any]:
    """Return the ``declared`` parameters from ``namespace``, each present and of an allowed type.

    ``declared`` maps each name to the types its value may have, ``type(None)``
    for None. ``where`` is added after the parameter's name in messages, and
    ``error`` is the exception type raised.
    """
    values = {}
    for name, allowed in declared.items():
        if name not in namespace:
            raise error(
                f"Parameter {name}{where} is not defined; the parameters cell must assign {', '.join(declared)}."
            )
        value = namespace[name]
        # bool is a subclass of int, but True is no valid seed or budget.
        if isinstance(value, bool) or not isinstance(value, allowed):
            names = " or ".join("None" if kind is type(None) else kind.__name__ for kind in allowed)
            raise error(f"Parameter {name}{where} must be {names}, got {value!r}.")
        values[name] = value
    return values


def start(namespace: Mapping[str, Any], notebook: str) -> NotebookRun:
    """Validate a notebook's parameters, load the dataset and return the run's settings.

    A parameter set to None takes its value from the profile.

    ``namespace`` is the notebook's ``globals()``. The dataset is located from
    the ``data_path`` parameter with :func:`nasutils.data.load_dataset`.
    """
    values = check_parameters(namespace, notebook)
    profile = get_profile(values["profile"])
    seed = values.get("seed")
    seed = profile.seed if seed is None else int(seed)
    data_path = values.get("data_path")
    dataset = load_dataset(Path(os.path.expanduser(data_path)) if data_path else None)
    artifacts = artifacts_dir(profile.name)
    logger.info("Notebook %s: profile %s, seed %d, data %s", notebook, profile.name, seed, dataset.path)
    return NotebookRun(
        notebook=notebook, profile=profile, seed=seed, dataset=dataset, parameters=values, artifacts=artifacts
    )


def artifacts_dir(profile: str) -> Path:
    """Return (and create) the folder where notebooks of ``profile`` save models for later chapters.

    It is ``$NASUTILS_ARTIFACTS/<profile>`` when that variable is set, else
    ``artifacts/<profile>`` in the project folder.
    """
    root = os.environ.get("NASUTILS_ARTIFACTS")
    folder = (Path(root) if root else project_dir() / "artifacts") / profile
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def require_artifact(run: NotebookRun, name: str, producer: str) -> Path:
    """Return the path of an artifact an earlier chapter saved, or raise naming that chapter."""
    path = run.artifacts / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run notebook {producer} with profile {run.profile.name!r} first "
            "(make book runs every chapter in order)."
        )
    return path


def glue_figure(name: str, figure: Any) -> None:
    """Glue a figure as PNG for ``{glue:figure}`` and close it, so the notebook does not show it again.

    The PNG is rendered here rather than by IPython's display formatter, which
    exists only under the inline backend; importing aihwkit switches matplotlib
    to another backend.
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image
    from myst_nb import glue

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    glue(name, Image(data=buffer.getvalue(), format="png"), display=False)
    plt.close(figure)


def compare_words(value: float, reference: float, *, tolerance: float = 0.0) -> str:
    """Return "higher than", "lower than" or "about equal to" for prose glued beside measured values."""
    if abs(value - reference) <= tolerance:
        return "about equal to"
    return "higher than" if value > reference else "lower than"
