"""Expert trajectories for the Expert Distillation (ED) baseline, in the learning-history format.

The "expert" plays the oracle's optimal policy from the first episode on, so its histories show no
learning at all: ED is AD trained on these, and the paper's contrast between the two is the
evidence that AD learns *how to improve*.

- Dark Room / Dark Room Hard: walk a shortest path to the goal, then stay on it (no-op).
- Dark Key-to-Door: a shortest path to the key, then to the door, then no-op. The expert counts
  its own rewards (the first one is the key's), like the tabular learner.
- Bandit: pull the arm with the largest mean.
- Pixel Watermaze: an action that brings the pose one move closer to the goal cell (fewest actions,
  turns included, from MiniGrid's own moves), then turns on the goal. The expert reads the pose from
  `info["state"]` (privileged, like the tabular learner); the histories record the images.

Tie-break (`tie_break`): in an open room a shortest path from `(x, y)` to a target that differs in
both coordinates can start along x or along y. `"random"` (default) picks one of the two
uniformly at each such step (every choice stays optimal), so expert trajectories vary between
histories and episodes instead of all replaying one path; `"x_first"` always moves along x first
(`hf_ad.envs.greedy_action`) and is fully deterministic. Equally good bandit arms are broken
uniformly at random (`"random"`) or towards the lowest index (`"x_first"`), and so are equally short
Pixel Watermaze actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hf_ad import constants
from hf_ad.envs import STATE_INFO, make_vector_env
from hf_ad.envs.grid import DOWN, LEFT, NOOP, RIGHT, UP
from hf_ad.sources.base import EpisodeBlock, SourceConfig, check_lock_step

TIE_BREAKS = ("random", "x_first")
GRID_ENVS = (constants.DARK_ROOM, constants.DARK_ROOM_HARD, constants.DARK_KEY_TO_DOOR)
EXPERT_ENVS = (*GRID_ENVS, constants.BANDIT, constants.PIXEL_WATERMAZE)


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


def pose_actions(
    next_pose: np.ndarray, distances: np.ndarray, poses: np.ndarray, rng: np.random.Generator | None
) -> np.ndarray:
    """`(N,)` int64 actions that bring `poses (N,)` one move closer to their goals, or keep them on it.

    `next_pose (P, A)` is each action's next pose, `distances (N, P)` each learner's moves to its goal
    (`PoseTables.distances_to`). Among equally good actions: uniformly at random (`rng`) or the lowest.
    """
    learners = np.arange(len(poses))[:, None]  # (N, 1)
    after = distances[learners, next_pose[poses]]  # (N, A) distance after each action
    best = after == np.maximum(distances[learners[:, 0], poses] - 1, 0)[:, None]  # (N, A)
    if rng is None:
        return best.argmax(axis=1).astype(np.int64)
    return np.argmax(best * (1.0 + rng.random(best.shape)), axis=1).astype(np.int64)


def _bandit_actions(tasks: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    best = tasks == tasks.max(axis=1, keepdims=True)  # (N, K) optimal arms
    if rng is None:
        return best.argmax(axis=1).astype(np.int64)
    return np.argmax(best * (1.0 + rng.random(best.shape)), axis=1).astype(np.int64)


def learn(
    env_id: str, tasks: list[tuple], config: ExpertConfig, env_kwargs: dict | None = None
) -> Iterator[EpisodeBlock]:
    """Play the optimal policy on each task; yield every episode (see `hf_ad.sources.base`)."""
    if env_id not in EXPERT_ENVS:
        raise ValueError(f"no expert for {env_id!r}; experts exist for {EXPERT_ENVS}")
    if not tasks:
        raise ValueError("tasks must hold at least one task")
    env = make_vector_env(env_id, tasks, **(env_kwargs or {}))
    task_array = np.asarray(env.tasks, dtype=np.float64 if env_id == constants.BANDIT else np.int64)
    rng = np.random.default_rng(config.seed)
    tie_rng = rng if config.tie_break == "random" else None
    if env_id == constants.PIXEL_WATERMAZE:
        size, tables = env.size, env.tables
        distances = np.stack([tables.distances_to(y * size + x) for x, y in task_array])  # (N, P)
    observations, info = env.reset(seed=int(rng.integers(2**31)))
    try:
        for episode in range(config.episodes):
            steps = []
            collected = np.zeros(len(tasks), dtype=np.int64)  # (N,) rewards so far this episode
            ended = False
            while not ended:
                if env_id == constants.BANDIT:
                    actions = _bandit_actions(task_array, tie_rng)
                elif env_id == constants.PIXEL_WATERMAZE:
                    actions = pose_actions(tables.next_pose, distances, info[STATE_INFO], tie_rng)
                else:
                    targets = _targets(env_id, task_array, collected)
                    actions = shortest_path_actions(observations, targets, tie_rng)
                next_observations, rewards, terminated, truncated, info = env.step(actions)
                steps.append((observations, actions, rewards, terminated, truncated))
                ended = check_lock_step(terminated, truncated, len(steps))
                collected += rewards > 0
                observations = next_observations
            yield EpisodeBlock.from_steps(episode, steps)
    finally:
        env.close()
