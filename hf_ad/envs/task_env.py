"""What every hf_ad env shares: a task that persists across episodes, set or drawn on reset."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from hf_ad.envs import grid

# The info key of an env's hidden state (an int; an `(N,)` array in a batched env), where the observation
# does not show it: for privileged learners such as tabular Q-learning, never for the agent's input.
STATE_INFO = "state"


class TaskEnv(gym.Env):
    """A gymnasium env with one task (goal, key and door, arm means) kept across episodes.

    The task is the one given to the constructor or to `reset(options={"task": ...})`; with none
    given, `sample_task()` draws one from `self.np_random` at the first `reset` and again at every
    `reset(seed=...)` (so a seed alone fixes the whole run). A subclass implements `check_task`
    and `sample_task`, and calls `reset_task` at the start of its `reset`.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, task: Any = None):
        self._given_task = None if task is None else self.check_task(task)
        self.task = self._given_task

    def check_task(self, task: object) -> tuple:
        """Return `task` as a tuple of Python numbers, or raise `ValueError` naming what is allowed."""
        raise NotImplementedError

    def sample_task(self) -> tuple:
        """Draw a task from `self.np_random`."""
        raise NotImplementedError

    def reset_task(self, seed: int | None, options: dict[str, Any] | None) -> None:
        """Seed `self.np_random` and set the episode's task from `options` (the only key: `task`)."""
        super().reset(seed=seed)
        options = dict(options or {})
        task = options.pop("task", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only option is 'task'")
        if task is not None:
            self.task = self._given_task = self.check_task(task)
        elif self._given_task is None and (seed is not None or self.task is None):
            self.task = self.sample_task()


class GoalEnv(TaskEnv):
    """A `TaskEnv` whose task is one goal cell `(x, y)` of a `size` x `size` room, also given as `goal=`.

    A subclass sets `self.size` before calling `super().__init__(goal, task)`.

    Raises:
        ValueError: `goal` and `task` both given and different.
    """

    def __init__(self, goal: tuple[int, int] | None = None, task: tuple[int, int] | None = None):
        if goal is not None and task is not None and tuple(goal) != tuple(task):
            raise ValueError(f"goal={goal!r} and task={task!r} disagree; pass only one of them")
        super().__init__(goal if goal is not None else task)

    @property
    def goal(self) -> tuple[int, int] | None:
        """The current goal `(x, y)`, i.e. the task (`None` before the first reset if none was given)."""
        return self.task

    def check_task(self, task: object) -> tuple[int, int]:
        """Return `task` as a goal `(x, y)` of Python ints, or raise `ValueError`."""
        return grid.check_cells(task, self.size, 1, "goal")

    def sample_task(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.np_random.integers(self.size, size=2))
