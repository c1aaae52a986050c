"""The contract every source algorithm implements.

A *learner* is a generator function

    learn(env_id, tasks, config, env_kwargs=None) -> Iterator[EpisodeBlock]

that runs one independent learner per entry of `tasks` (a list of task tuples, repeats allowed:
two entries with the same task are two independent learning histories), all in lock-step on one
batched env, and yields the transitions of episode 0, 1, 2, ... in order, one `EpisodeBlock` per
episode, until `config.episodes` episodes have been played. Learners never subsample and never
write: `keep_every` is applied by the data layer (`hf_ad.data.generate`), which also decides how
many learners run in one batch and which seed each batch gets.

Sources are registered by name in `hf_ad.sources.SOURCES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hf_ad import constants

# Envs whose rewards are one-offs, so a learner's state needs the number of rewards it collected this
# episode (capped) on top of the observation: the most rewards one episode can pay. In Dark
# Key-to-Door the first reward is the key, so "one reward collected" is "holds the key"; in Dark
# Room Hard "one" is "goal already paid". Shared by the tabular and the neural learners.
REWARD_MEMORY = {constants.DARK_ROOM_HARD: 1, constants.DARK_KEY_TO_DOOR: 2}


def reward_memory_for(env_id: str) -> int:
    """How many collected rewards a learner on `env_id` counts into its state (0: none needed)."""
    return REWARD_MEMORY.get(env_id, 0)


@dataclass
class SourceConfig:
    """Options every source shares; each source's config dataclass extends it."""

    histories_per_task: int = field(
        default=1, metadata={"help": "Independent learning histories (learners) per task."}
    )
    episodes: int = field(
        default=100, metadata={"help": "Episodes per learning history, before subsampling."}
    )
    keep_every: int = field(
        default=1,
        metadata={
            "help": "Keep every k-th episode (episodes 0, k, 2k, ...) when writing: the paper's "
            "subsampling. Applied by the data layer, not by the learner."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the learners' and the envs' randomness."})

    def __post_init__(self):
        for name in ("histories_per_task", "episodes", "keep_every"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass
class EpisodeBlock:
    """Every transition of one episode for N learners running in lock-step.

    Row `n` belongs to learner `n` (the n-th entry of the `tasks` given to `learn`); column `t` is
    step `t` of the episode. `observations[:, t]` is the observation the action `actions[:, t]` was
    taken in; `rewards[:, t]`, `terminated[:, t]` and `truncated[:, t]` are what that step returned.

    Args:
        episode: index of the episode in each learner's history (0 = untrained start).
        observations: `(N, L, *obs_shape)` observations before each action.
        actions: `(N, L)` int64 actions.
        rewards: `(N, L)` float32 rewards.
        terminated: `(N, L)` bool.
        truncated: `(N, L)` bool.
    """

    episode: int
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray

    def __post_init__(self):
        shape = self.actions.shape
        if len(shape) != 2:
            raise ValueError(f"actions must be (N, L), got shape {shape}")
        for name in ("observations", "rewards", "terminated", "truncated"):
            got = getattr(self, name).shape[:2]
            if got != shape:
                raise ValueError(f"{name} must start with (N, L) = {shape}, got shape {got}")

    @classmethod
    def from_steps(cls, episode: int, steps: list[tuple]) -> EpisodeBlock:
        """Stack per-step `(observations (N, ...), actions (N,), rewards (N,), terminated (N,),
        truncated (N,))` tuples, in time order, into one block."""
        observations, actions, rewards, terminated, truncated = (
            np.stack(x, axis=1) for x in zip(*steps, strict=True)
        )
        return cls(
            episode=episode,
            observations=observations,
            actions=actions.astype(np.int64, copy=False),
            rewards=rewards.astype(np.float32, copy=False),
            terminated=terminated.astype(bool, copy=False),
            truncated=truncated.astype(bool, copy=False),
        )

    @property
    def num_learners(self) -> int:
        return self.actions.shape[0]

    @property
    def length(self) -> int:
        return self.actions.shape[1]

    @property
    def returns(self) -> np.ndarray:
        """`(N,)` float64 return of this episode for each learner."""
        return self.rewards.sum(axis=1, dtype=np.float64)


MAX_EPISODE_STEPS = 1_000_000


def check_lock_step(terminated: np.ndarray, truncated: np.ndarray, steps: int) -> bool:
    """Whether the episodes of a lock-step batch ended on this step (its `steps`-th).

    Raises:
        RuntimeError: some learners' episodes ended and others did not (hf_ad's envs have fixed
            episode lengths, which is what keeps a batch in lock-step), or an episode ran past
            `MAX_EPISODE_STEPS`.
    """
    done = terminated | truncated
    if done.all():
        return True
    if done.any():
        raise RuntimeError(
            f"episodes of a lock-step batch ended at different steps ({int(done.sum())} of {done.size} "
            f"after {steps} steps); sources need fixed-length episodes"
        )
    if steps >= MAX_EPISODE_STEPS:
        raise RuntimeError(f"an episode ran past {MAX_EPISODE_STEPS} steps without ending")
    return False


def final_observations(info: dict) -> np.ndarray:
    """`(N, *obs_shape)` last observations of the episodes that all ended on this step.

    With same-step autoreset the step's returned observations already start the next episode;
    the ones the episodes ended in are in `info["final_obs"]` (an object array in gymnasium's
    convention, or a stacked array).
    """
    final = info["final_obs"]
    if isinstance(final, np.ndarray) and final.dtype != object:
        return final
    return np.stack(list(final))


class LearnFn(Protocol):
    def __call__(
        self,
        env_id: str,
        tasks: list[tuple],
        config: Any,
        env_kwargs: dict | None = None,
    ) -> Iterator[EpisodeBlock]: ...
