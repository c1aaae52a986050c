"""`hf-ad demo`: Dark Room on held-out goals, the optimal policy against a random one.

Runs the real env on the first held-out goals of the task split, prints each policy's return next
to the exact oracle value (`hf_ad.envs.optimal_return` / `random_return`), and draws the room with
the optimal policy's path and one random episode's path. Takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from hf_ad.constants import DARK_ROOM, DARK_ROOM_HARD
from hf_ad.envs import draw_path, greedy_action, make_vector_env, optimal_return, random_return, task_split
from hf_ad.envs.grid import NUM_ACTIONS


@dataclass
class DemoConfig:
    """Options of `hf-ad demo`."""

    env: str = field(default=DARK_ROOM, metadata={"help": f"Env id: {DARK_ROOM} or {DARK_ROOM_HARD}."})
    num_goals: int = field(
        default=3, metadata={"help": "How many held-out goals to show (from the test split)."}
    )
    random_episodes: int = field(
        default=10_000,
        metadata={"help": "Episodes the random policy plays per goal (its mean return is shown)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random policy and the envs."})

    def __post_init__(self):
        if self.env not in (DARK_ROOM, DARK_ROOM_HARD):
            raise ValueError(f"the demo runs {DARK_ROOM} or {DARK_ROOM_HARD}, got env={self.env!r}")
        for name in ("num_goals", "random_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


def play(env: gym.Env, policy, seed: int) -> tuple[float, list[tuple[int, int]]]:
    """One episode of `policy(observation) -> action`; returns the return and the agent's path."""
    observation, _ = env.reset(seed=seed)
    path, total, done = [tuple(observation.tolist())], 0.0, False
    while not done:
        observation, reward, terminated, truncated, _ = env.step(policy(observation))
        path.append(tuple(observation.tolist()))
        total += reward
        done = terminated or truncated
    return total, path


def random_policy_mean_return(env_id: str, goal: tuple[int, int], episodes: int, seed: int) -> float:
    """Mean return of the uniformly random policy over `episodes` episodes, all run as one batch."""
    env = make_vector_env(env_id, [goal] * episodes)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    returns = np.zeros(episodes)
    for _ in range(env.max_episode_steps):
        _, rewards, *_ = env.step(rng.integers(0, env.single_action_space.n, size=episodes))
        returns += rewards
    return float(returns.mean())


def side_by_side(blocks: list[str], captions: list[str], gap: int = 4) -> str:
    """Text blocks next to each other, each under its caption."""
    columns = [[caption, *block.splitlines()] for caption, block in zip(captions, blocks, strict=True)]
    width = max(len(line) for column in columns for line in column)
    return "\n".join(
        (" " * gap).join(line.ljust(width) for line in row).rstrip() for row in zip(*columns, strict=True)
    )


def run_demo(config: DemoConfig) -> str:
    """The demo's whole text output."""
    _, test_goals = task_split(config.env)
    goals = test_goals[: config.num_goals]
    rng = np.random.default_rng(config.seed)
    lines = [
        f"{config.env}: {len(test_goals)} held-out goals, showing {len(goals)}; the agent sees only (x, y).",
        "",
        f"| goal | optimal policy | oracle optimum | random policy ({config.random_episodes} episodes) "
        "| oracle random |",
        "|---|---:|---:|---:|---:|",
    ]
    drawings = []
    for goal in goals:
        env = gym.make(config.env, goal=goal)
        best, best_path = play(
            env, lambda observation, goal=goal: greedy_action(observation, goal), config.seed
        )
        _, random_path = play(env, lambda _: int(rng.integers(NUM_ACTIONS)), config.seed)
        mean_random = random_policy_mean_return(config.env, goal, config.random_episodes, config.seed)
        lines.append(
            f"| {goal} | {best:.0f} | {optimal_return(config.env, goal):.0f} "
            f"| {mean_random:.3f} | {random_return(config.env, goal):.3f} |"
        )
        size = env.unwrapped.size
        blocks = [draw_path(size, best_path, {goal: "G"}), draw_path(size, random_path, {goal: "G"})]
        drawings.append(side_by_side(blocks, [f"goal {goal}: optimal path", "one random episode"]))
    legend = "S start, A last cell, G goal, arrows: the move made from each cell (o: stayed), # walls"
    return "\n".join([*lines, "", legend, "", *(f"{drawing}\n" for drawing in drawings)]).rstrip() + "\n"
