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

from transformers import AutoConfig

from hf_ad.envs import in_training_region
from hf_ad.experiments.arms import Arm, arm_setting, budget, budget_record, evaluate_arm, run_arm
from hf_ad.experiments.common import (
    ExperimentConfig,
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
    all_held_out = arm_setting(trained.final, dataclasses.replace(config, num_tasks=None))
    by_group = {
        group: [
            task for task in all_held_out.tasks if in_training_region(all_held_out.env_id, task) == inside
        ]
        for group, inside in zip(GROUPS, (True, False), strict=True)
    }
    by_group = {group: tasks[: config.num_tasks] for group, tasks in by_group.items()}
    held_out = arm_setting(
        trained.final, config, tasks=[task for tasks in by_group.values() for task in tasks]
    )
    run_dir = Path(config.work_dir) / NAME / ARM.folder_name
    returns = evaluate_arm(trained.final, held_out, config, run_dir)  # (seeds * tasks, episodes)
    learned = source_returns(held_out, config.episodes, config.seed)  # (seeds * tasks, episodes)
    groups, bands, levels = {}, [], []
    first = 0
    for group, tasks in by_group.items():
        columns = slice(first, first + len(tasks))
        first += len(tasks)
        group_oracle = held_out.oracle(tasks)
        methods = {}
        for label, method_returns in (("AD", returns), ("Q-learning", learned)):
            picked = method_returns.reshape(config.seeds, len(held_out.tasks), -1)[
                :, columns
            ]  # (seeds, T, E)
            picked = picked.reshape(-1, picked.shape[-1])  # (seeds * T, E)
            optimal = [held_out.oracle([task]) for task in tasks] * config.seeds  # (seeds * T,)
            methods[label] = curves(picked, config.seeds) | {
                "first_reward": episodes_until(first_episode_at_least(picked, 1.0)),
                "half_optimal": episodes_until(first_episode_at_least(picked, [o / 2 for o in optimal])),
            }
            curve = methods[label]
            bands.append(
                Band(range(1, len(curve["mean"]) + 1), curve["mean"], curve["std"], f"{label}, {group}")
            )
        levels.append(Level(group_oracle, f"oracle, {group}", "black", "--" if group == GROUPS[0] else ":"))
        groups[group] = {"tasks": [list(task) for task in tasks], "oracle": group_oracle, "methods": methods}
    title = f"Regions split: held-out goals in and out of the training region, {config.seeds} seeds"
    save_band_plot(f"{config.out}/returns.png", bands, title, levels=levels)
    results = {
        "task_split": "regions",
        "budget": budget_record(plan),
        "model": str(trained.final),
        "histories": str(trained.histories),
        "train_tasks": AutoConfig.from_pretrained(trained.final).train_tasks,
        "groups": groups,
        "methods": {
            f"{label}, {group}": g["methods"][label] for group, g in groups.items() for label in g["methods"]
        },
    }
    return finish(NAME, command, config, held_out, results)
