"""Experiment `ood`: held-out goals inside the part of the room the training goals cover, and outside it.

The critique says AD's test goals are near-copies of its training goals. Here AD trains on Dark Room's
`regions` task split (`hf_ad.envs.task_split(env_id, kind="regions")`): training goals only in the left
two thirds of the room (columns x 0-5; 43 goals), held out a fifth of that region (11 *in-region* goals,
each with trained goals around it) and the whole right third (columns x 6-8: 27 *out-of-region* goals, no
training goal in those columns). Histories (`hf-ad generate --task-split regions`) and training follow the
Dark Room recipe under the experiment's budget (`hf_ad.experiments.arms`); the model plays every held-out
goal, `seeds` evaluation seeds, actions sampled, from an empty context, and each group is scored as its
own run set (mean over its goals per seed), with its own oracle, next to Q-learning from scratch on the
same goals.

    hf-ad experiment ood --out docs/evidence/ood
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from transformers import AutoConfig

from hf_ad.envs import in_training_region
from hf_ad.experiments.arms import Arm, arm_setting, budget, budget_record, evaluate_arm, run_arm
from hf_ad.experiments.common import (
    ExperimentConfig,
    Setting,
    curves,
    episodes_until,
    finish,
    first_episode_at_least,
    source_returns,
)
from hf_ad.plotting import Band, Level, save_band_plot

NAME = "ood"
EPISODES = 200
STEPS = 1200  # the ablations' budget per arm
ARM = Arm("AD, regions split", "regions", data={"task_split": "regions"})
GROUPS = ("in-region", "out-of-region")


def regions(held_out: Setting, num_tasks: int | None) -> dict[str, list[tuple]]:
    """The held-out goals by group, in-region first; the first `num_tasks` of each group."""
    inside = [in_training_region(held_out.env_id, task) for task in held_out.tasks]
    return {
        GROUPS[0]: [task for task, isin in zip(held_out.tasks, inside, strict=True) if isin][:num_tasks],
        GROUPS[1]: [task for task, isin in zip(held_out.tasks, inside, strict=True) if not isin][:num_tasks],
    }


def group_scores(returns: np.ndarray, held_out: Setting, tasks: list[tuple]) -> dict:
    """Curves and discovery times of the streams of `tasks` (a part of `held_out.tasks`) in `returns`
    `(seeds * tasks, episodes)`: each seed's run scored over `tasks` alone."""
    columns = [held_out.tasks.index(task) for task in tasks]
    by_seed = returns.reshape(held_out.seeds, len(held_out.tasks), -1)[:, columns]  # (seeds, T, E)
    picked = by_seed.reshape(-1, by_seed.shape[-1])  # (seeds * T, E)
    optimal = np.array([held_out.oracle([task]) for task in tasks] * held_out.seeds)  # (seeds * T,)
    return curves(picked, held_out.seeds) | {
        "first_reward": episodes_until(first_episode_at_least(picked, 1.0)),
        "half_optimal": episodes_until(first_episode_at_least(picked, optimal / 2)),
    }


def run(config: ExperimentConfig, command: str) -> dict:
    config = dataclasses.replace(
        config,
        out=config.out or str(Path("runs") / "experiments" / NAME),
        episodes=config.episodes or EPISODES,
    )
    if config.arms is not None:
        raise ValueError(f"--arms does not apply to {NAME} (one model); leave it out")
    plan = budget(config, STEPS)
    trained = run_arm(ARM, plan, config, NAME)
    by_group = regions(
        arm_setting(trained.final, dataclasses.replace(config, num_tasks=None)), config.num_tasks
    )
    held_out = arm_setting(
        trained.final, config, tasks=[task for tasks in by_group.values() for task in tasks]
    )
    returns = {
        "AD": evaluate_arm(trained.final, held_out, config, trained.run_dir),  # (seeds * tasks, episodes)
        "Q-learning": source_returns(held_out, config.episodes, config.seed),  # (seeds * tasks, episodes)
    }
    groups = {
        group: {
            "tasks": [list(task) for task in tasks],
            "oracle": held_out.oracle(tasks),
            "methods": {label: group_scores(r, held_out, tasks) for label, r in returns.items()},
        }
        for group, tasks in by_group.items()
    }
    methods = {f"{label}, {group}": g["methods"][label] for group, g in groups.items() for label in returns}
    bands = [
        Band(range(1, len(curve["mean"]) + 1), curve["mean"], curve["std"], label)
        for label, curve in methods.items()
    ]
    levels = [
        Level(g["oracle"], f"oracle, {group}", "black", style)
        for (group, g), style in zip(groups.items(), ("--", ":"), strict=True)
    ]
    title = f"Regions split: held-out goals in and out of the training region, {config.seeds} seeds"
    save_band_plot(f"{config.out}/returns.png", bands, title, levels=levels)
    results = {
        "task_split": "regions",
        "budget": budget_record(plan),
        "model": str(trained.final),
        "histories": str(trained.histories),
        "train_tasks": AutoConfig.from_pretrained(trained.final).train_tasks,
        "groups": groups,
        "methods": methods,
    }
    return finish(NAME, command, config, held_out, results)
