"""Experiments: the evidence for (and against) AD's claims.

Evaluation-only experiments play the shipped checkpoints (`EVALUATION_EXPERIMENTS`); the training
experiments (`TRAINING_EXPERIMENTS`: the paper's ablations and the out-of-distribution split) train one
model per arm under one budget first (`hf_ad.experiments.arms`).

`hf-ad experiment NAME [--model ...] [--out DIR] [--seeds N] [--episodes N]` runs `EXPERIMENTS[NAME]`,
which writes `<out>/results.json` (every curve and number, and the command that made it) and a plot. Each
experiment is one small module; what they share (the run config, the env loop, the baselines, writing
results) is in `hf_ad.experiments.common`. docs/EVIDENCE.md holds their tables and readings.
"""

from __future__ import annotations

from collections.abc import Callable

from hf_ad.experiments import ablation, attention, goal_switch, heuristic, ood, prompting, stochastic_reward
from hf_ad.experiments.common import ExperimentConfig, experiment_command, experiment_summary

# name -> run(config, command) -> results dict (also written to <out>/results.json).
EXPERIMENTS: dict[str, Callable[[ExperimentConfig, str], dict]] = {
    heuristic.NAME: heuristic.run,
    goal_switch.NAME: goal_switch.run,
    prompting.NAME: prompting.run,
    attention.NAME: attention.run,
    stochastic_reward.NAME: stochastic_reward.run,
    **{name: ablation.runner(name) for name in ablation.NAMES},
    ood.NAME: ood.run,
}
TRAINING_EXPERIMENTS = (*ablation.NAMES, ood.NAME)
EVALUATION_EXPERIMENTS = tuple(name for name in EXPERIMENTS if name not in TRAINING_EXPERIMENTS)


def run_experiment(name: str, config: ExperimentConfig) -> dict:
    """Run experiment `name` (a key of `EXPERIMENTS`) and return its results."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name](config, experiment_command(name, config))


__all__ = [
    "EVALUATION_EXPERIMENTS",
    "EXPERIMENTS",
    "TRAINING_EXPERIMENTS",
    "ExperimentConfig",
    "experiment_summary",
    "run_experiment",
]
