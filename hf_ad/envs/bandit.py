"""The adversarial multi-armed bandit (Laskin et al., 2023, section 4.1)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from hf_ad.envs.grid import as_items, check_action, check_render_mode
from hf_ad.envs.task_env import TaskEnv

BANDIT_DISTRIBUTIONS = ("odd", "even", "uniform")
# Probability that the best arm has the preferred parity under the "odd" / "even" distributions.
PREFERRED_PARITY_PROBABILITY = 0.95
# Arm means are rounded to this many decimals so tasks stay short in JSON configs.
MEAN_DECIMALS = 4


def check_arm_means(task: object, num_arms: int) -> tuple[float, ...]:
    """Return `task` as `num_arms` arm means (Python floats in [0, 1]), or raise `ValueError`."""
    items = as_items(task, "a bandit task", f"{num_arms} arm means")
    if len(items) != num_arms:
        raise ValueError(f"a bandit task must have {num_arms} arm means, got {len(items)}: {task!r}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float | np.integer | np.floating):
            raise ValueError(f"arm means must be numbers in [0, 1], got {item!r} in {task!r}")
        if not (math.isfinite(item) and 0.0 <= item <= 1.0):
            raise ValueError(
                f"arm means are Bernoulli probabilities and must be in [0, 1], got {item!r} in {task!r}"
            )
    return tuple(float(item) for item in items)


def sample_arm_means(
    rng: np.random.Generator, distribution: str, num_tasks: int, num_arms: int = 10
) -> np.ndarray:
    """Draw `(num_tasks, num_arms)` arm means from one of the paper's bandit task distributions.

    Every arm mean is uniform in [0, 1). For `"odd"` (`"even"`) the best arm is then moved, by
    swapping means, to an arm of odd (even) index with probability 0.95, and to one of the other
    parity otherwise, the arm chosen uniformly within the parity. Arm indices are 0-based: the odd
    arms are 1, 3, 5, 7, 9. `"uniform"` keeps the i.i.d. means (no preferred arms). Only
    `rng.random` is used, whose stream numpy keeps stable across versions.

    Args:
        rng: the generator to draw from.
        distribution: `"odd"` (the paper's training tasks), `"even"` (its evaluation tasks) or
            `"uniform"` (its third test condition).
        num_tasks: number of tasks.
        num_arms: number of arms (at least 2).
    """
    if distribution not in BANDIT_DISTRIBUTIONS:
        raise ValueError(
            f"unknown bandit distribution {distribution!r}; expected one of {BANDIT_DISTRIBUTIONS}"
        )
    if num_arms < 2:
        raise ValueError(f"num_arms must be at least 2, got {num_arms!r}")
    means = rng.random((num_tasks, num_arms))  # (N, K)
    if distribution != "uniform":
        preferred = 1 if distribution == "odd" else 0
        parity = np.where(rng.random(num_tasks) < PREFERRED_PARITY_PROBABILITY, preferred, 1 - preferred)
        arms_of_parity = np.where(parity == 1, num_arms // 2, (num_arms + 1) // 2)  # (N,)
        best_arm = 2 * (rng.random(num_tasks) * arms_of_parity).astype(np.int64) + parity  # (N,)
        rows = np.arange(num_tasks)
        current_best = means.argmax(axis=1)
        means[rows, best_arm], means[rows, current_best] = means[rows, current_best], means[rows, best_arm]
    return np.round(means, MEAN_DECIMALS)


class BanditEnv(TaskEnv):
    """A multi-armed Bernoulli bandit where every pull is a one-step episode.

    ## Description
    A bandit with `num_arms` arms (10 registered as `hf_ad/Bandit-v0`); the task is the tuple of
    arm means, fixed across episodes until a new one is given. Each pull is one episode, so the
    paper's 100 trials are 100 episodes of one step, and the in-context learner's stream crosses
    episode boundaries exactly as in the grid envs. Task distributions `odd`, `even` and `uniform`
    (the paper's adversarial bandit) come from `sample_arm_means` / `hf_ad.envs.sample_bandit_tasks`.

    ## Action Space
    `Discrete(num_arms)`: the arm to pull. Any other action raises `ValueError`.

    ## Observation Space
    `Discrete(1)`: the observation is always 0 (a bandit has no state).

    ## Rewards
    Bernoulli: 1 with probability equal to the pulled arm's mean, else 0 (the paper does not name a
    reward distribution; Bernoulli keeps rewards in {0, 1} like the grid envs). The reward is
    `float(u < mean)` for one `u = self.np_random.random()` per pull, so a batched env can draw the
    same rewards from blocks of uniforms. Optimal return per pull: the largest mean; a uniformly
    random policy: the mean of the means.

    ## Episode End
    Every pull terminates its episode (`terminated=True`); nothing is ever truncated, so the
    registration sets no `max_episode_steps`.

    ## Arguments
    - `task`: the arm means (numbers in [0, 1]), or `None` to draw one task from the `uniform`
      distribution with `self.np_random` at the first `reset` and again at every `reset(seed=...)`.
      `reset(options={"task": ...})` sets a new task.
    - `num_arms`: number of arms (default 10).
    - `render_mode`: `"ansi"` (one line per arm: mean, a bar, and the last pull) or `"rgb_array"`.
    """

    def __init__(
        self, task: tuple[float, ...] | None = None, num_arms: int = 10, render_mode: str | None = None
    ):
        if isinstance(num_arms, bool) or not isinstance(num_arms, int | np.integer) or num_arms < 2:
            raise ValueError(f"num_arms must be an integer >= 2, got {num_arms!r}")
        self.num_arms = int(num_arms)
        self.observation_space = gym.spaces.Discrete(1)
        self.action_space = gym.spaces.Discrete(self.num_arms)
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        super().__init__(task)
        self._last_pull: tuple[int, float] | None = None

    def check_task(self, task: object) -> tuple[float, ...]:
        """Return `task` as a tuple of arm means, or raise `ValueError`."""
        return check_arm_means(task, self.num_arms)

    def sample_task(self) -> tuple[float, ...]:
        return tuple(sample_arm_means(self.np_random, "uniform", 1, self.num_arms)[0].tolist())

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.reset_task(seed, options)
        self._last_pull = None
        return 0, {}

    def step(self, action):
        action = check_action(action, self.num_arms)
        reward = float(self.np_random.random() < self.task[action])
        self._last_pull = (action, reward)
        return 0, reward, True, False, {}

    def render(self):
        return draw_bandit(self.render_mode, self.task, self._last_pull)


def draw_bandit(
    render_mode: str | None, arm_means: tuple[float, ...] | None, last_pull: tuple[int, float] | None
) -> str | np.ndarray | None:
    """One frame of a bandit: a bar per arm mean, the last pulled arm marked (`last_pull = (arm, reward)`)."""
    means = arm_means or ()
    if render_mode == "ansi":
        lines = []
        for arm, mean in enumerate(means):
            note = f"  <- pulled, reward {last_pull[1]:.0f}" if last_pull and last_pull[0] == arm else ""
            lines.append(f"arm {arm:>2} {mean:.3f} |{'=' * round(20 * mean):<20}|{note}")
        return "\n".join(lines)
    if render_mode == "rgb_array":
        width, height = 12, 80
        image = np.full((height, width * max(len(means), 1), 3), 40, dtype=np.uint8)  # (H, W, 3)
        for arm, mean in enumerate(means):
            top = height - round(mean * (height - 4))
            color = (230, 60, 60) if last_pull and last_pull[0] == arm else (70, 130, 230)
            image[top:, arm * width + 2 : (arm + 1) * width - 2] = color
        return image
    return None
