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


# ExperimentConfig fields that only one kind of experiment reads.
EVALUATION_ONLY = ("model", "ed_model", "switch_episode", "reward_prob")
TRAINING_ONLY = ("steps", "batch_size", "histories_per_task", "source_episodes", "arms", "work_dir")


def check_flags(name: str, config: ExperimentConfig) -> None:
    """Refuse flags the experiment would ignore (e.g. `--model` for an experiment that trains its own)."""
    ignored = EVALUATION_ONLY if name in TRAINING_EXPERIMENTS else TRAINING_ONLY
    defaults = ExperimentConfig()
    given = [field for field in ignored if getattr(config, field) != getattr(defaults, field)]
    if given:
        flags = ", ".join("--" + field.replace("_", "-") for field in given)
        kind = "trains its own models" if name in TRAINING_EXPERIMENTS else "trains nothing"
        raise ValueError(f"{name} {kind} and does not read {flags}; leave it out")


def run_experiment(name: str, config: ExperimentConfig) -> dict:
    """Run experiment `name` (a key of `EXPERIMENTS`) and return its results.

    Raises:
        ValueError: an unknown experiment, or a flag it does not read.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {sorted(EXPERIMENTS)}")
    check_flags(name, config)
    return EXPERIMENTS[name](config, experiment_command(name, config))


__all__ = [
    "EVALUATION_EXPERIMENTS",
    "EXPERIMENTS",
    "TRAINING_EXPERIMENTS",
    "ExperimentConfig",
    "experiment_summary",
    "run_experiment",
]
