"""The latent-edit environment of the report, as a gymnasium environment and a batched VecEnv.

An agent edits an 8-dimensional latent state one coordinate at a time by copying
that coordinate from one of the 14 codebook vectors. A decoder turns the state
into a real 22-vector, :mod:`nasutils.space` projects it to the nearest valid
architecture, and a surrogate predicts that architecture's 1-day accuracy. The
reward is the change of that prediction.

Two classes share one vectorized core (:class:`LatentEditCore`), so they follow
the same rules exactly: :class:`LatentEditEnv`, a ``gymnasium.Env`` for one
episode at a time, and :class:`BatchedLatentEditEnv`, a Stable-Baselines3
``VecEnv`` that decodes and predicts for all of its sub-environments in one call.
:class:`ArchitectureScorer` caches predictions keyed by the projected
architecture, so a repeated architecture costs one dictionary lookup.

Neither class plots, prints or writes files.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from .space import RESNET_SPACE, ResNetSpace

__all__ = [
    "ACCOUNTING_CHOICES",
    "START_CHOICES",
    "ArchitectureScorer",
    "BatchedLatentEditEnv",
    "EnvConfig",
    "LatentDecoder",
    "LatentEditCore",
    "LatentEditEnv",
    "register",
]

logger = logging.getLogger(__name__)

ACCOUNTING_CHOICES = ("report", "improvement")
START_CHOICES = ("normal", "dataset")
ENV_ID = "nasutils/LatentEdit-v0"

Predictor = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.floating[Any]]]


class LatentDecoder:
    """A NumPy copy of a VQ-VAE decoder: latent rows to valid integer architectures.

    The decoder is a stack of affine layers with ReLU between them, followed by
    the inverse of the training scaler and the projection of ``space``. NumPy
    runs these small matrix products faster than torch for the batch sizes of an
    environment step, and gives the same numbers up to float32 rounding.
    """

    def __init__(
        self,
        weights: Sequence[npt.ArrayLike],
        biases: Sequence[npt.ArrayLike],
        mean: npt.ArrayLike,
        scale: npt.ArrayLike,
        codebook: npt.ArrayLike,
        space: ResNetSpace = RESNET_SPACE,
    ) -> None:
        self.weights = [np.asarray(w, dtype=np.float32) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float32) for b in biases]
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.codebook = np.asarray(codebook, dtype=np.float32)
        self.space = space
        if len(self.weights) != len(self.biases) or not self.weights:
            raise ValueError("A decoder needs one bias per weight matrix and at least one layer.")
        if self.weights[0].shape[1] != self.codebook.shape[1]:
            raise ValueError(
                f"The first layer takes {self.weights[0].shape[1]} inputs but codebook vectors have "
                f"{self.codebook.shape[1]} coordinates."
            )
        if self.weights[-1].shape[0] != space.dim:
            raise ValueError(f"The decoder outputs {self.weights[-1].shape[0]} fields; the space has {space.dim}.")

    @classmethod
    def from_trained(cls, trained: Any) -> LatentDecoder:
        """Copy the decoder, scaler and codebook of a :class:`nasutils.vqvae.TrainedVQVAE`."""
        import torch

        weights, biases = [], []
        for module in trained.model.decoder:
            if isinstance(module, torch.nn.Linear):
                weights.append(module.weight.detach().numpy().copy())
                biases.append(module.bias.detach().numpy().copy())
            elif not isinstance(module, torch.nn.ReLU):
                raise TypeError(f"LatentDecoder supports Linear and ReLU layers only, found {type(module).__name__}.")
        return cls(weights, biases, trained.scaler.mean, trained.scaler.scale, trained.codebook)

    @property
    def latent_dim(self) -> int:
        return int(self.codebook.shape[1])

    @property
    def codebook_size(self) -> int:
        return int(self.codebook.shape[0])

    def decode_raw(self, latents: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Decode latent rows (n, latent_dim) to real 22-vectors in original units."""
        hidden = np.asarray(latents, dtype=np.float32)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = hidden @ weight.T + bias
            if i < last:
                np.maximum(hidden, 0.0, out=hidden)
        return hidden.astype(np.float64) * self.scale + self.mean

    def __call__(self, latents: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Decode latent rows to their nearest valid architectures."""
        return self.space.project(self.decode_raw(latents))


class ArchitectureScorer:
    """Decode latent states and predict the accuracy of the decoded architectures, with a cache.

    ``predict`` takes an (n, 22) integer matrix and returns n predicted
    accuracies. The cache maps each architecture's bytes to its prediction; it
    keeps the ``cache_size`` most recently used entries (``None`` for no limit,
    0 to disable it).
    """

    def __init__(self, decoder: LatentDecoder, predict: Predictor, *, cache_size: int | None = 1_000_000) -> None:
        if cache_size is not None and cache_size < 0:
            raise ValueError(f"cache_size must be None or at least 0, got {cache_size}.")
        self.decoder = decoder
        self.predict = predict
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def predict_architectures(self, architectures: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Return predictions for integer architectures, asking ``predict`` only for unseen ones."""
        architectures = np.ascontiguousarray(architectures, dtype=np.int64)
        if self.cache_size == 0:
            self.misses += len(architectures)
            return np.asarray(self.predict(architectures), dtype=np.float64).reshape(-1)

        keys = [row.tobytes() for row in architectures]
        values = np.empty(len(keys), dtype=np.float64)
        missing: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys):
            cached = self._cache.get(key)
            if cached is None:
                missing.setdefault(key, []).append(i)
            else:
                values[i] = cached
                self._cache.move_to_end(key)
        # A row whose architecture is cached, or repeats an earlier row of this
        # batch, costs no prediction and counts as a hit.
        self.hits += len(keys) - len(missing)
        if missing:
            first_rows = [rows[0] for rows in missing.values()]
            predictions = np.asarray(self.predict(architectures[first_rows]), dtype=np.float64).reshape(-1)
            self.misses += len(first_rows)
            for (key, rows), prediction in zip(missing.items(), predictions, strict=True):
                values[rows] = prediction
                self._cache[key] = float(prediction)
            if self.cache_size is not None:
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return values

    def __call__(self, latents: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Return the decoded architectures (n, 22) and their predicted accuracies (n,)."""
        architectures = self.decoder(latents)
        return architectures, self.predict_architectures(architectures)


@dataclass(frozen=True)
class EnvConfig:
    """Rules of an episode.

    ``max_steps`` is the step limit (the report authors' environment uses 200).
    ``history`` is the number of past actions in the observation, 0 for the plain
    latent observation (the report's memory agent uses 6). ``accounting`` is
    "report" (the accuracy before the first step counts as 0, so an episode's
    return equals its final predicted accuracy) or "improvement" (the accuracy
    of the start state counts, so the return is the gain over the start).
    ``start`` is "normal" (a standard normal latent, as in the authors' code) or
    "dataset" (the encoding of a random architecture of the dataset).
    """

    max_steps: int = 200
    history: int = 0
    accounting: str = "report"
    start: str = "normal"

    def __post_init__(self) -> None:
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}.")
        if not isinstance(self.history, int) or self.history < 0:
            raise ValueError(f"history must be a non-negative integer, got {self.history!r}.")
        if self.accounting not in ACCOUNTING_CHOICES:
            raise ValueError(f"accounting must be one of {ACCOUNTING_CHOICES}, got {self.accounting!r}.")
        if self.start not in START_CHOICES:
            raise ValueError(f"start must be one of {START_CHOICES}, got {self.start!r}.")


def _observation_space(config: EnvConfig, latent_dim: int, n_actions: int) -> spaces.Space:
    latent = spaces.Box(-np.inf, np.inf, shape=(latent_dim,), dtype=np.float32)
    if config.history == 0:
        return latent
    # Past actions are categories; the extra value n_actions marks "no action yet".
    history = spaces.MultiDiscrete(np.full(config.history, n_actions + 1, dtype=np.int64))
    return spaces.Dict({"latent": latent, "history": history})


class LatentEditCore:
    """The dynamics of ``n`` latent-edit episodes, stepped together with array operations.

    Each row has its own random generator, so row ``i`` of a core behaves
    exactly like a one-row core that uses the same generator.
    """

    def __init__(
        self,
        scorer: ArchitectureScorer,
        config: EnvConfig,
        n: int,
        *,
        start_latents: npt.ArrayLike | None = None,
    ) -> None:
        self.scorer = scorer
        self.config = config
        self.n = n
        self.codebook = scorer.decoder.codebook
        self.latent_dim = scorer.decoder.latent_dim
        self.n_actions = scorer.decoder.codebook_size * self.latent_dim + 1
        self.terminal_action = self.n_actions - 1
        self.no_action = self.n_actions
        if config.start == "dataset":
            if start_latents is None:
                raise ValueError('start="dataset" needs start_latents: the encodings of the dataset architectures.')
            self.start_latents = np.asarray(start_latents, dtype=np.float32)
            if self.start_latents.ndim != 2 or self.start_latents.shape[1] != self.latent_dim:
                raise ValueError(
                    f"start_latents must have shape (n, {self.latent_dim}), got {self.start_latents.shape}."
                )
        else:
            self.start_latents = None

        self.states = np.zeros((n, self.latent_dim), dtype=np.float32)
        self.steps = np.zeros(n, dtype=np.int64)
        self.accuracy = np.zeros(n, dtype=np.float64)
        self.baseline = np.zeros(n, dtype=np.float64)
        self.architectures = np.zeros((n, scorer.decoder.space.dim), dtype=np.int64)
        self.history = np.full((n, max(config.history, 1)), self.no_action, dtype=np.int64)

    def observation(self, rows: npt.ArrayLike | slice = slice(None)) -> Any:
        """Return the observation of ``rows``: the latent states, with the action history if configured."""
        latent = self.states[rows].copy()
        if self.config.history == 0:
            return latent
        return {"latent": latent, "history": self.history[rows].copy()}

    def info(self, row: int) -> dict[str, Any]:
        return {"architecture": self.architectures[row].copy(), "predicted_accuracy": float(self.accuracy[row])}

    def reset_rows(self, rows: npt.NDArray[np.int64], generators: Sequence[np.random.Generator]) -> None:
        """Draw new start states for ``rows``, one generator per row, and score them."""
        for row, rng in zip(rows, generators, strict=True):
            if self.start_latents is None:
                self.states[row] = rng.standard_normal(self.latent_dim).astype(np.float32)
            else:
                self.states[row] = self.start_latents[rng.integers(len(self.start_latents))]
        self.steps[rows] = 0
        self.history[rows] = self.no_action
        architectures, accuracy = self.scorer(self.states[rows])
        self.architectures[rows] = architectures
        self.accuracy[rows] = accuracy
        self.baseline[rows] = accuracy if self.config.accounting == "improvement" else 0.0

    def step(
        self, actions: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Apply one action per row; return rewards, terminated and truncated flags.

        The terminal action leaves the state as it is, earns 0 and terminates.
        Any other action ``a`` copies coordinate ``a % latent_dim`` of codebook
        vector ``a // latent_dim`` into the state, and earns the change of the
        predicted accuracy (measured from ``baseline`` on the first step).
        """
        actions = np.asarray(actions, dtype=np.int64).reshape(self.n)
        invalid = (actions < 0) | (actions >= self.n_actions)
        if invalid.any():
            raise ValueError(
                f"Actions must be integers in [0, {self.n_actions - 1}], got {actions[invalid].tolist()}."
            )

        rewards = np.zeros(self.n, dtype=np.float64)
        terminated = actions == self.terminal_action
        edit = np.flatnonzero(~terminated)
        if edit.size:
            codes, coordinates = np.divmod(actions[edit], self.latent_dim)
            self.states[edit, coordinates] = self.codebook[codes, coordinates]
            architectures, accuracy = self.scorer(self.states[edit])
            previous = np.where(self.steps[edit] == 0, self.baseline[edit], self.accuracy[edit])
            rewards[edit] = accuracy - previous
            self.architectures[edit] = architectures
            self.accuracy[edit] = accuracy

        self.steps += 1
        if self.config.history:
            self.history[:, :-1] = self.history[:, 1:]
            self.history[:, -1] = actions
        truncated = ~terminated & (self.steps >= self.config.max_steps)
        return rewards, terminated, truncated


class LatentEditEnv(gym.Env):
    """Edit a VQ-VAE latent state, one codebook coordinate at a time, toward accurate architectures.

    ## Episode
    An episode starts from a latent state and ends when the agent takes the
    terminal action (termination) or after ``config.max_steps`` steps
    (truncation, never reported together with termination).

    ## Action space
    ``Discrete(K * D + 1)`` for ``K`` codebook vectors of dimension ``D`` (14 and
    8 in the report, so 113 actions). Action ``a < K * D`` copies coordinate
    ``t = a % D`` of codebook vector ``k = a // D`` into coordinate ``t`` of the
    state. Action ``K * D`` is the terminal action.

    ## Observation space
    With ``config.history == 0``: ``Box(-inf, inf, (D,), float32)``, the latent
    state. Otherwise ``Dict(latent=Box, history=MultiDiscrete)``: the state and the
    last ``history`` actions, oldest first, where the value ``K * D + 1`` marks a
    step before the episode began. (The report authors feed the history as raw
    integers in a Box; a MultiDiscrete lets Stable-Baselines3 one-hot encode it.)

    ## Reward
    The change of the surrogate's predicted 1-day accuracy (a fraction) of the
    decoded and projected architecture. With ``accounting="report"`` the
    accuracy before the first step counts as 0, so the return of an episode that
    edits at least once equals its final predicted accuracy, as in the report's
    training curves. With ``accounting="improvement"`` the start state's
    accuracy counts, so the return is the gain over the start. The terminal
    action earns 0.

    ## Start state
    ``config.start="normal"``: a standard normal vector, as in the authors'
    code. ``"dataset"``: the encoding of a random architecture of the dataset
    (``start_latents``).

    ## Info
    ``architecture`` (the projected 22-vector of the current state) and
    ``predicted_accuracy``, after ``reset`` and after every step.

    ## Version history
    v0: first version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scorer: ArchitectureScorer,
        config: EnvConfig = EnvConfig(),
        *,
        start_latents: npt.ArrayLike | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self._core = LatentEditCore(scorer, config, 1, start_latents=start_latents)
        self.action_space = spaces.Discrete(self._core.n_actions)
        self.observation_space = _observation_space(config, self._core.latent_dim, self._core.n_actions)
        self._needs_reset = True

    @property
    def core(self) -> LatentEditCore:
        return self._core

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self._core.reset_rows(np.array([0]), [self.np_random])
        self._needs_reset = False
        return self._observation(), self._core.info(0)

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("The episode has ended or not begun: call reset() before step().")
        if not self.action_space.contains(action):
            raise ValueError(f"Invalid action {action!r}: expected an integer in [0, {self.action_space.n - 1}].")
        rewards, terminated, truncated = self._core.step([int(action)])
        self._needs_reset = bool(terminated[0] or truncated[0])
        return self._observation(), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), self._core.info(0)

    def _observation(self) -> Any:
        return self._core.observation(0)


class BatchedLatentEditEnv(VecEnv):
    """``n_envs`` latent-edit episodes as one Stable-Baselines3 VecEnv, decoded and scored in one batch.

    Sub-environment ``i`` follows :class:`LatentEditEnv` seeded with ``seed + i``
    exactly. As every SB3 VecEnv does, it resets a finished sub-environment at
    once, returns the last observation of the finished episode in
    ``info["terminal_observation"]`` and sets ``info["TimeLimit.truncated"]``
    for a truncated one. Wrap it in ``VecMonitor`` for episode statistics.
    """

    render_mode = None

    def __init__(
        self,
        scorer: ArchitectureScorer,
        n_envs: int,
        config: EnvConfig = EnvConfig(),
        *,
        start_latents: npt.ArrayLike | None = None,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be at least 1, got {n_envs}.")
        core = LatentEditCore(scorer, config, n_envs, start_latents=start_latents)
        super().__init__(
            n_envs,
            _observation_space(config, core.latent_dim, core.n_actions),
            spaces.Discrete(core.n_actions),
        )
        self.config = config
        self._core = core
        self._generators = [seeding.np_random(None)[0] for _ in range(n_envs)]
        self._actions: npt.NDArray[np.int64] | None = None

    @property
    def core(self) -> LatentEditCore:
        return self._core

    def reset(self) -> Any:
        for i, seed in enumerate(self._seeds):
            if seed is not None:
                self._generators[i] = seeding.np_random(seed)[0]
        self._reset_seeds()
        self._core.reset_rows(np.arange(self.num_envs), self._generators)
        self.reset_infos = [self._core.info(i) for i in range(self.num_envs)]
        return self._core.observation()

    def step_async(self, actions: npt.ArrayLike) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> tuple[Any, npt.NDArray[np.float32], npt.NDArray[np.bool_], list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async().")
        rewards, terminated, truncated = self._core.step(self._actions)
        self._actions = None
        done = terminated | truncated
        infos = [self._core.info(i) for i in range(self.num_envs)]

        finished = np.flatnonzero(done)
        if finished.size:
            last = self._core.observation(finished)
            for j, row in enumerate(finished):
                if isinstance(last, dict):
                    infos[row]["terminal_observation"] = {key: value[j] for key, value in last.items()}
                else:
                    infos[row]["terminal_observation"] = last[j]
                infos[row]["TimeLimit.truncated"] = bool(truncated[row])
            self._core.reset_rows(finished, [self._generators[row] for row in finished])
        return self._core.observation(), rewards.astype(np.float32), done, infos

    def close(self) -> None:
        return None

    def _rows(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._rows(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError("BatchedLatentEditEnv shares its attributes across sub-environments; set them on it.")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._rows(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._rows(indices)]


def register() -> None:
    """Register :class:`LatentEditEnv` with gymnasium as ``nasutils/LatentEdit-v0``.

    ``gymnasium.make(ENV_ID, scorer=..., config=...)`` then builds it.
    """
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=LatentEditEnv)
