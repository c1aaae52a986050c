"""Dark Room and Dark Room Hard (Laskin et al., 2023, section 4.1)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np

from hf_ad.envs import grid
from hf_ad.envs.task_env import GoalEnv


class DarkRoomEnv(GoalEnv):
    """Find an invisible goal in an empty square room, seeing only your own position.

    ## Description
    The agent starts every episode at the centre cell `(size // 2, size // 2)` of a `size` x `size`
    room and must find a goal cell it cannot see. The task is the goal `(goal_x, goal_y)`; the same
    goal stays for every episode until a new one is given, so an agent can learn it across
    episodes. Registered as `hf_ad/DarkRoom-v0` (9 x 9, 20 steps: the paper's Dark Room, 81 goals)
    and `hf_ad/DarkRoomHard-v0` (`size=17, reward_once=True`, 20 steps, 289 goals).

    Coordinates: `(0, 0)` is the top-left cell, `x` grows to the right and `y` downwards.

    ## Action Space
    `Discrete(5)`, in the paper's order: 0 left (x - 1), 1 right (x + 1), 2 up (y - 1), 3 down
    (y + 1), 4 no-op. A move into a wall leaves the agent where it is. Any other action raises
    `ValueError`.

    ## Observation Space
    `MultiDiscrete([size, size])`: an int64 array `(x, y)` of the agent's own cell, and nothing else
    (the goal is never observed).

    ## Rewards
    After each move, 1 if the agent stands on the goal, else 0: on every such step for Dark Room
    (the optimal return is 21 - d for a goal at Manhattan distance d > 0 from the centre and 20 for
    the centre goal), or only the first time in the episode with `reward_once=True` (Dark Room Hard,
    optimal return 1). Rewards are given by `step` only, so a goal at the centre pays from the first
    step on, not at `reset`.

    Stochastic rewards (`reward_prob=p < 1`, not the paper's: the critique's test that one lucky
    episode is no longer enough): a step on the goal pays 1 with probability `p` only (one uniform
    from `self.np_random` per step, drawn whether or not the agent is on the goal); with `reward_once`
    the first *paid* step is the one reward of the episode. The expected optimal return is then
    `p * (21 - d)` (`1 - (1 - p) ** (21 - d)` with `reward_once`).

    ## Episode End
    The episode never terminates. It is truncated after 20 steps by the `TimeLimit` that
    `gymnasium.make` adds (`max_episode_steps=20` in the registration, for both ids).

    ## Arguments
    - `goal` (or its alias `task`): the goal `(x, y)`, or `None` to draw one uniformly from
      `self.np_random` at the first `reset` and again at every `reset(seed=...)`; the goal is kept
      across other resets. `reset(options={"task": (x, y)})` sets a new goal.
    - `size`: side of the room (default 9).
    - `reward_once`: reward only the first arrival on the goal per episode (default False).
    - `reward_prob`: probability in (0, 1] that a step on the goal pays (default 1: always).
    - `render_mode`: `"ansi"` (text: `#` walls, `A` agent, `G` goal, `@` agent on the goal) or
      `"rgb_array"` (an image; the cells visited since the episode began are drawn as a trail).

    ```python
    env = gym.make("hf_ad/DarkRoom-v0", goal=(2, 7))
    observation, info = env.reset(seed=0)  # array([4, 4])
    ```
    """

    def __init__(
        self,
        goal: tuple[int, int] | None = None,
        task: tuple[int, int] | None = None,
        size: int = 9,
        reward_once: bool = False,
        reward_prob: float = 1.0,
        render_mode: str | None = None,
    ):
        self.size = grid.check_size(size)
        self.reward_once = bool(reward_once)
        self.reward_prob = check_reward_prob(reward_prob)
        self.start = (self.size // 2, self.size // 2)
        self.observation_space = gym.spaces.MultiDiscrete([self.size, self.size], dtype=np.int64)
        self.action_space = gym.spaces.Discrete(grid.NUM_ACTIONS)
        self.render_mode = grid.check_render_mode(render_mode, self.metadata["render_modes"])
        super().__init__(goal, task)
        self._x, self._y = self.start
        self._rewarded = False
        self._trail = {self.start}  # cells visited this episode (at most size * size)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.reset_task(seed, options)
        self._x, self._y = self.start
        self._rewarded = False
        self._trail = {self.start}
        return self._observation(), {}

    def step(self, action):
        action = grid.check_action(action)
        self._x, self._y = grid.move(self._x, self._y, action, self.size)
        self._trail.add((self._x, self._y))
        on_goal = (self._x, self._y) == self.goal
        if self.reward_prob < 1.0:
            on_goal &= bool(self.np_random.random() < self.reward_prob)  # drawn on every step
        reward = float(on_goal and not (self.reward_once and self._rewarded))
        self._rewarded |= on_goal
        return self._observation(), reward, False, False, {}

    def render(self):
        return draw_dark_room(self.render_mode, self.size, self.goal, (self._x, self._y), self._trail)

    def _observation(self) -> np.ndarray:
        return np.array((self._x, self._y), dtype=np.int64)


def check_reward_prob(reward_prob: object) -> float:
    """`reward_prob` as a float in (0, 1], or `ValueError`."""
    if isinstance(reward_prob, bool) or not isinstance(reward_prob, int | float) or not 0 < reward_prob <= 1:
        raise ValueError(f"reward_prob must be a probability in (0, 1], got {reward_prob!r}")
    return float(reward_prob)


def draw_dark_room(
    render_mode: str | None,
    size: int,
    goal: tuple[int, int] | None,
    agent: tuple[int, int],
    trail: Iterable[tuple[int, int]] = (),
) -> str | np.ndarray | None:
    """One frame of a Dark Room: text for `"ansi"`, an `(H, W, 3)` uint8 image for `"rgb_array"` (with the
    `trail` of visited cells under the goal and the agent)."""
    if render_mode == "ansi":
        marks = {} if goal is None else {goal: "G"}
        marks[agent] = "@" if agent == goal else "A"
        return grid.draw_text(size, marks)
    if render_mode == "rgb_array":
        items = [(cell, "trail") for cell in sorted(trail)]
        items += [] if goal is None else [(goal, "goal")]
        return grid.draw_rgb(size, [*items, (agent, "agent")])
    return None
