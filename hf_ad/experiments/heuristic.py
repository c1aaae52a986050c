"""Experiment `heuristic`: is AD more than "explore until rewarded, then go back and stay"?

AD, ED, the scripted heuristic (`hf_ad.baselines.ExploreThenStay`), Q-learning from scratch (the source)
and the oracle on every held-out goal, `seeds` evaluation seeds, sampled actions, return by episode. Also
per method: the episode of the first reward and the first episode at half the goal's optimal return
(mean over the streams that get there), and the mean return per goal early and late (where AD is better,
equal or worse than the heuristic).

    hf-ad experiment heuristic --out docs/evidence/heuristic
"""

from __future__ import annotations

import numpy as np

from hf_ad.experiments.common import (
    ExperimentConfig,
    curves,
    episodes_until,
    finish,
    first_episode_at_least,
    heuristic_agent,
    load_agent,
    per_task,
    play,
    save_curves,
    setting,
    source_returns,
)

NAME = "heuristic"
EPISODES = 200
EARLY = (1, 10)  # episodes (1-based, inclusive) of the per-goal "early" column


def run(config: ExperimentConfig, command: str) -> dict:
    config = config.resolved(NAME, EPISODES)
    held_out = setting(config)
    episodes, seed = config.episodes, config.seed
    returns = {
        "AD": play(load_agent(config.model, config), held_out, episodes, seed),
        "ED": play(load_agent(config.ed_model, config), held_out, episodes, seed),
        "heuristic": play(heuristic_agent(held_out, config), held_out, episodes, seed),
        "Q-learning": source_returns(held_out, episodes, seed),
    }
    optimal = np.array([held_out.oracle([task]) for task in held_out.streams])  # (streams,)
    late = (max(1, episodes - 49), episodes)
    methods = {}
    for label, method_returns in returns.items():
        methods[label] = curves(method_returns, held_out.seeds) | {
            "first_reward": episodes_until(first_episode_at_least(method_returns, 1.0)),
            "half_optimal": episodes_until(first_episode_at_least(method_returns, optimal / 2)),
            "per_task": {
                f"episodes {EARLY[0]}-{EARLY[1]}": per_task(method_returns, len(held_out.tasks), *EARLY),
                f"episodes {late[0]}-{late[1]}": per_task(method_returns, len(held_out.tasks), *late),
            },
        }
    oracle = held_out.oracle()
    save_curves(
        f"{config.out}/returns.png",
        {label: methods[label] for label in returns},
        f"Held-out goals: AD vs the explore-then-stay heuristic ({config.seeds} seeds)",
        oracle,
    )
    return finish(NAME, command, config, held_out, {"oracle": oracle, "methods": methods})
