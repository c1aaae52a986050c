"""Expert trajectories for the Expert Distillation (ED) baseline, in the learning-history format.

The "expert" plays the oracle's optimal policy from the first episode on, so its histories show no
learning at all: ED is AD trained on these, and the paper's contrast between the two is the
evidence that AD learns *how to improve*.

- Dark Room / Dark Room Hard: walk a shortest path to the goal, then stay on it (no-op).
- Dark Key-to-Door: a shortest path to the key, then to the door, then no-op. The expert counts
  its own rewards (the first one is the key's), like the tabular learner.
- Bandit: pull the arm with the largest mean.

Tie-break (`tie_break`): in an open room a shortest path from `(x, y)` to a target that differs in
both coordinates can start along x or along y. `"random"` (default) picks one of the two
uniformly at each such step (every choice stays optimal), so expert trajectories vary between
histories and episodes instead of all replaying one path; `"x_first"` always moves along x first
(`hf_ad.envs.greedy_action`) and is fully deterministic. Equally good bandit arms are broken
uniformly at random (`"random"`) or towards the lowest index (`"x_first"`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hf_ad import constants
from hf_ad.envs import make_vector_env
from hf_ad.envs.grid import DOWN, LEFT, NOOP, RIGHT, UP
from hf_ad.sources.base import EpisodeBlock, SourceConfig, check_lock_step

TIE_BREAKS = ("random", "x_first")
GRID_ENVS = (constants.DARK_ROOM, constants.DARK_ROOM_HARD, constants.DARK_KEY_TO_DOOR)


@dataclass
class ExpertConfig(SourceConfig):
    """The oracle's optimal policy, played for every episode (no learning)."""

    tie_break: Literal["random", "x_first"] = field(
        default="random",
        metadata={
            "help": "Between equally short moves: 'random' picks one uniformly (trajectories vary), "
            "'x_first' always moves along x first (deterministic)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {self.tie_break!r}")


def shortest_path_actions(
    positions: np.ndarray, targets: np.ndarray, rng: np.random.Generator | None
) -> np.ndarray:
    """`(N,)` int64 actions that each bring `positions (N, 2)` one step closer to `targets (N, 2)`.

    No-op where the position is the target. Where both coordinates differ, move along x or y at
    random (`rng`) or along x (`rng=None`).
    """
    dx, dy = np.sign(targets - positions).T  # (N,) each, in {-1, 0, 1}
    x_move = np.where(dx < 0, LEFT, RIGHT)
    y_move = np.where(dy < 0, UP, DOWN)
    along_x = dx != 0
    if rng is not None:
        along_x &= (dy == 0) | (rng.random(len(dx)) < 0.5)
    return np.where(along_x, x_move, np.where(dy != 0, y_move, NOOP)).astype(np.int64)


def _targets(env_id: str, tasks: np.ndarray, collected: np.ndarray) -> np.ndarray:
    """`(N, 2)` cell each expert is heading for: the goal, or the key then the door."""
    if env_id != constants.DARK_KEY_TO_DOOR:
        return tasks
    return np.where((collected == 0)[:, None], tasks[:, :2], tasks[:, 2:])


def _bandit_actions(tasks: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    best = tasks == tasks.max(axis=1, keepdims=True)  # (N, K) optimal arms
    if rng is None:
        return best.argmax(axis=1).astype(np.int64)
    return np.argmax(best * (1.0 + rng.random(best.shape)), axis=1).astype(np.int64)


def learn(
    env_id: str, tasks: list[tuple], config: ExpertConfig, env_kwargs: dict | None = None
) -> Iterator[EpisodeBlock]:
    """Play the optimal policy on each task; yield every episode (see `hf_ad.sources.base`)."""
    if env_id not in (*GRID_ENVS, constants.BANDIT):
        raise ValueError(f"no expert for {env_id!r}; experts exist for {(*GRID_ENVS, constants.BANDIT)}")
    if not tasks:
        raise ValueError("tasks must hold at least one task")
    env = make_vector_env(env_id, tasks, **(env_kwargs or {}))
    task_array = np.asarray(env.tasks, dtype=np.float64 if env_id == constants.BANDIT else np.int64)
    rng = np.random.default_rng(config.seed)
    tie_rng = rng if config.tie_break == "random" else None
    observations, _ = env.reset(seed=int(rng.integers(2**31)))
    try:
        for episode in range(config.episodes):
            steps = []
            collected = np.zeros(len(tasks), dtype=np.int64)  # (N,) rewards so far this episode
            ended = False
            while not ended:
                if env_id == constants.BANDIT:
                    actions = _bandit_actions(task_array, tie_rng)
                else:
                    targets = _targets(env_id, task_array, collected)
                    actions = shortest_path_actions(observations, targets, tie_rng)
                next_observations, rewards, terminated, truncated, _ = env.step(actions)
                steps.append((observations, actions, rewards, terminated, truncated))
                ended = check_lock_step(terminated, truncated, len(steps))
                collected += rewards > 0
                observations = next_observations
            yield EpisodeBlock.from_steps(episode, steps)
    finally:
        env.close()
