"""Experiment `goal-switch`: after AD has found its goal, the goal moves; does AD search again?

Every stream plays a held-out goal; from episode `switch_episode` (0-based; default: half the episodes) on,
the goal of stream k is the held-out goal half the list away (`switched_tasks`: goal k -> goal
(k + n // 2) mod n of the checkpoint's sorted held-out list, so every goal moves and the set of goals, hence
the oracle, stays the same). The env is reset with the new goals at that episode boundary; the agent's
context is kept, so its window still holds episodes on the old goal.

Methods: AD; the heuristic that stays at the cell that paid once (`ExploreThenStay`, the literal "go back
to the reward" rule, which never recovers); the heuristic that re-explores after an episode without reward
(`reexplore=True`); Q-learning from scratch on the new goals, started at the switch. For each: episodes
until the first reward and until half the goal's optimal return, from the start (the first discovery) and
from the switch (the recovery).

    hf-ad experiment goal-switch --out docs/evidence/goal-switch
"""

from __future__ import annotations

import numpy as np

from hf_ad.experiments.common import (
    ExperimentConfig,
    GoalSwitch,
    curves,
    episodes_until,
    finish,
    first_episode_at_least,
    heuristic_agent,
    load_agent,
    play,
    save_curves,
    setting,
    source_returns,
)

NAME = "goal-switch"
EPISODES = 200
SCRATCH = "Q-learning from scratch"


def switched_tasks(tasks: list[tuple]) -> list[tuple]:
    """Goal k -> goal (k + n // 2) mod n: every goal moves to another held-out goal."""
    n = len(tasks)
    if n < 2:
        raise ValueError(
            f"goal-switch needs at least 2 held-out tasks to move between, got {n} (--num-tasks)"
        )
    return [tasks[(k + n // 2) % n] for k in range(n)]


def phase_numbers(returns: np.ndarray, optimal: np.ndarray) -> dict:
    """Episodes until the first reward and until half of `optimal` `(streams,)`, from the phase start."""
    return {
        "first_reward": episodes_until(first_episode_at_least(returns, 1.0)),
        "half_optimal": episodes_until(first_episode_at_least(returns, optimal / 2)),
        "mean_return": float(returns.mean()),
    }


def run(config: ExperimentConfig, command: str) -> dict:
    config = config.resolved(NAME, EPISODES)
    episodes, seed = config.episodes, config.seed
    switch_at = config.switch_episode if config.switch_episode is not None else episodes // 2
    if not 0 < switch_at < episodes:
        raise ValueError(
            f"--switch-episode must lie inside the {episodes} episodes (1..{episodes - 1}), got {switch_at}"
        )
    held_out = setting(config)
    new_tasks = switched_tasks(held_out.tasks)
    switch = GoalSwitch(switch_at, new_tasks * held_out.seeds)
    returns = {
        "AD": play(load_agent(config.model, config), held_out, episodes, seed, switch),
        "heuristic (stays)": play(heuristic_agent(held_out, config), held_out, episodes, seed, switch),
        "heuristic (re-explores)": play(
            heuristic_agent(held_out, config, reexplore=True), held_out, episodes, seed, switch
        ),
    }
    scratch = source_returns(held_out, episodes - switch_at, seed, tasks=new_tasks)
    old_optimal = np.array([held_out.oracle([task]) for task in held_out.streams])  # (streams,)
    new_optimal = np.array([held_out.oracle([task]) for task in switch.tasks])  # (streams,)
    methods = {
        label: curves(method_returns, held_out.seeds)
        | {
            "before_switch": phase_numbers(method_returns[:, :switch_at], old_optimal),
            "after_switch": phase_numbers(method_returns[:, switch_at:], new_optimal),
        }
        for label, method_returns in returns.items()
    }
    methods[SCRATCH] = curves(scratch, held_out.seeds) | {"after_switch": phase_numbers(scratch, new_optimal)}
    oracle = held_out.oracle()
    save_curves(
        f"{config.out}/returns.png",
        methods,
        f"Goal moves after episode {switch_at}: held-out goals, {config.seeds} seeds",
        oracle,
        first_episode={SCRATCH: switch_at},
    )
    results = {
        "switch_episode": switch_at,
        "new_tasks": [list(task) for task in new_tasks],
        "oracle": oracle,
        "methods": methods,
    }
    return finish(NAME, command, config, held_out, results)
