"""Experiment `stochastic-reward`: Dark Room whose goal pays only with probability p, so one lucky episode
is no longer proof of where the goal is (the env's `reward_prob`, `hf_ad.envs.DarkRoomEnv`).

The shipped AD model never saw such rewards in training (its histories pay on every step on the goal):
this is an out-of-distribution test of what it does with noisy evidence, next to the heuristic (both
variants: staying at the first cell that paid is right here, since only the goal can pay; re-exploring
after an unpaid episode is not) and Q-learning from scratch, on every held-out goal. The oracle is the
expected optimal return, `p * (21 - d)`.

    hf-ad experiment stochastic-reward --reward-prob 0.5 --out docs/evidence/stochastic-reward
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
    play,
    save_curves,
    setting,
    source_returns,
)

NAME = "stochastic-reward"
EPISODES = 200


def run(config: ExperimentConfig, command: str) -> dict:
    config = config.resolved(NAME, EPISODES)
    held_out = setting(config)
    episodes, seed, noisy = config.episodes, config.seed, {"reward_prob": config.reward_prob}
    returns = {
        "AD": play(load_agent(config.model, config), held_out, episodes, seed, env_kwargs=noisy),
        "heuristic (stays)": play(
            heuristic_agent(held_out, config), held_out, episodes, seed, env_kwargs=noisy
        ),
        "heuristic (re-explores)": play(
            heuristic_agent(held_out, config, reexplore=True), held_out, episodes, seed, env_kwargs=noisy
        ),
        "Q-learning": source_returns(held_out, episodes, seed, env_kwargs=noisy),
    }
    optimal = np.array([held_out.oracle([task], **noisy) for task in held_out.streams])  # (streams,)
    methods = {
        label: curves(method_returns, held_out.seeds)
        | {
            "first_reward": episodes_until(first_episode_at_least(method_returns, 1.0)),
            "half_optimal": episodes_until(first_episode_at_least(method_returns, optimal / 2)),
        }
        for label, method_returns in returns.items()
    }
    oracle = held_out.oracle(**noisy)
    save_curves(
        f"{config.out}/returns.png",
        methods,
        f"Goal pays with probability {config.reward_prob:g}: held-out goals, {config.seeds} seeds",
        oracle,
    )
    results = {
        "reward_prob": config.reward_prob,
        "oracle": oracle,
        "random": held_out.random(**noisy),
        "methods": methods,
    }
    return finish(NAME, command, config, held_out, results)
