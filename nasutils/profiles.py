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
    """One named set of run sizes. Every field is documented where it is set."""

    name: str
    description: str
    seed: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        description="small budgets so that the whole book builds in minutes on two CPU cores",
        seed=0,
    ),
    "paper": Profile(
        name="paper",
        description="the report's settings; hours of CPU time",
        seed=0,
    ),
}


def get_profile(name: str) -> Profile:
    """Return the profile called ``name``; raise :class:`UnknownProfileError` otherwise."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(PROFILES))
        raise UnknownProfileError(f"Unknown profile {name!r}. Choose one of: {known}.") from None
