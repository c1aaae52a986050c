"""Dark Key-to-Door (Laskin et al., 2023, section 4.1)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np

from hf_ad.envs import grid
from hf_ad.envs.task_env import TaskEnv


class DarkKeyToDoorEnv(TaskEnv):
    """Pick up an invisible key, then open an invisible door, seeing only your own position.

    ## Description
    A `size` x `size` room (9 x 9 registered as `hf_ad/DarkKeyToDoor-v0`) holds a key and a door on
    two different cells, neither visible. The agent starts each episode on a random cell (drawn
    from `self.np_random`, uniform over all cells, the key and door cells included) and must first
    step on the key, then on the door. The task is `(key_x, key_y, door_x, door_y)` and stays fixed
    across episodes until a new one is given.

    Number of tasks: key and door must be on different cells, so a 9 x 9 room has 81 * 80 = 6480
    tasks. The paper counts 81^2 = 6561, which would include key == door; such a task is
    degenerate (one cell gives both rewards, or the door could never be told apart from the key),
    so this env rejects it and uses the 6480 tasks.

    Coordinates: `(0, 0)` is the top-left cell, `x` grows to the right and `y` downwards. A start
    cell is drawn as `floor(u * size**2)` for one `u = self.np_random.random()` per episode (flat
    index `y * size + x`), which lets the batched env draw the same starts from blocks of uniforms.

    ## Action Space
    `Discrete(5)`, in the paper's order: 0 left (x - 1), 1 right (x + 1), 2 up (y - 1), 3 down
    (y + 1), 4 no-op. A move into a wall leaves the agent where it is. Any other action raises
    `ValueError`.

    ## Observation Space
    `MultiDiscrete([size, size])`: an int64 array `(x, y)` of the agent's own cell, and nothing else.
    Whether the key is held is not observed; it is reported in `info["has_key"]` (for learners such
    as tabular Q-learning that need it as part of their state, not for the agent's input).

    ## Rewards
    After each move: +1 the first time the agent stands on the key, then +1 the first time it
    stands on the door while holding the key. The door gives nothing before the key. The maximum
    return is 2 (and the optimal return is 2 for every 9 x 9 task: any two cells are at most
    16 + 16 steps apart). Rewards are given by `step` only: starting on the key pays at the first
    step (a no-op collects it), not at `reset`.

    ## Episode End
    The episode never terminates, not even at the door: every episode is truncated after 50 steps
    by the `TimeLimit` that `gymnasium.make` adds (`max_episode_steps=50`). The paper does not say
    whether the door ends the episode; fixed-length episodes keep the learning histories of a batch
    of learners aligned in lock-step, and the maximum return is 2 either way.

    ## Arguments
    - `task`: `(key_x, key_y, door_x, door_y)`, or `None` to draw one uniformly from the 6480 tasks
      with `self.np_random` at the first `reset` and again at every `reset(seed=...)`; the task is
      kept across other resets. `reset(options={"task": ...})` sets a new task.
    - `size`: side of the room (default 9).
    - `render_mode`: `"ansi"` (text: `#` walls, `A` agent, `K` key until picked up, `D` door, `@`
      agent on a marked cell) or `"rgb_array"` (an image; the cells visited since the episode began
      are drawn as a trail).

    `info["has_key"]` (bool) says whether the key is held after the reset or step.
    """

    def __init__(
        self,
        task: tuple[int, int, int, int] | None = None,
        size: int = 9,
        render_mode: str | None = None,
    ):
        self.size = grid.check_size(size)
        self.observation_space = gym.spaces.MultiDiscrete([self.size, self.size], dtype=np.int64)
        self.action_space = gym.spaces.Discrete(grid.NUM_ACTIONS)
        self.render_mode = grid.check_render_mode(render_mode, self.metadata["render_modes"])
        super().__init__(task)
        self._x = self._y = 0
        self._has_key = self._door_opened = False
        self._trail = {(0, 0)}  # cells visited this episode (at most size * size)

    def check_task(self, task: object) -> tuple[int, int, int, int]:
        """Return `task` as `(key_x, key_y, door_x, door_y)` of Python ints, or raise `ValueError`."""
        checked = grid.check_cells(task, self.size, 2, "task (key_x, key_y, door_x, door_y)")
        if checked[:2] == checked[2:]:
            raise ValueError(f"task {task!r} puts the key and the door on the same cell; they must differ")
        return checked

    @property
    def key(self) -> tuple[int, int]:
        return self.task[:2]

    @property
    def door(self) -> tuple[int, int]:
        return self.task[2:]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.reset_task(seed, options)
        self._x, self._y = grid.cell_from_uniform(self.np_random.random(), self.size)
        self._has_key = self._door_opened = False
        self._trail = {(self._x, self._y)}
        return self._observation(), {"has_key": False}

    def step(self, action):
        action = grid.check_action(action)
        self._x, self._y = grid.move(self._x, self._y, action, self.size)
        here = (self._x, self._y)
        self._trail.add(here)
        reward = 0.0
        if not self._has_key:
            if here == self.key:
                self._has_key, reward = True, 1.0
        elif not self._door_opened and here == self.door:
            self._door_opened, reward = True, 1.0
        return self._observation(), reward, False, False, {"has_key": self._has_key}

    def render(self):
        agent = (self._x, self._y)
        return draw_key_to_door(self.render_mode, self.size, self.task, agent, self._has_key, self._trail)

    def sample_task(self) -> tuple[int, int, int, int]:
        num_cells = self.size * self.size
        key = int(self.np_random.integers(num_cells))
        door = int(self.np_random.integers(num_cells - 1))
        door += door >= key  # skip the key's cell
        return (key % self.size, key // self.size, door % self.size, door // self.size)

    def _observation(self) -> np.ndarray:
        return np.array((self._x, self._y), dtype=np.int64)


def draw_key_to_door(
    render_mode: str | None,
    size: int,
    task: tuple[int, int, int, int] | None,
    agent: tuple[int, int],
    has_key: bool,
    trail: Iterable[tuple[int, int]] = (),
) -> str | np.ndarray | None:
    """One frame of a Key-to-Door room (the key is drawn until it is picked up; the `trail` of visited cells
    under everything in `"rgb_array"` images)."""
    items = []
    if task is not None:
        items.append((task[2:], "door"))
        if not has_key:
            items.append((task[:2], "key"))
    if render_mode == "ansi":
        marks = {cell: {"door": "D", "key": "K"}[name] for cell, name in items}
        marks[agent] = "@" if agent in marks else "A"
        return grid.draw_text(size, marks)
    if render_mode == "rgb_array":
        trail_items = [(cell, "trail") for cell in sorted(trail)]
        return grid.draw_rgb(size, [*trail_items, *items, (agent, "agent")])
    return None
