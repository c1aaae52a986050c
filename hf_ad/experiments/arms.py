"""Experiments that train: one *arm* = one histories dataset, one training run, one evaluation.

Every arm of an experiment trains under the experiment's one budget (`Budget`: optimizer steps, batch
size, and the Dark Room recipe's model) and differs from the others in one factor only: a data option
(`Arm.data`: the source, `keep_every`, the task split's kind, ...) or a training option (`Arm.train`: the
sliding window, the token-mask probability, the number of training goals). Each step is cached, so an
interrupted experiment continues where it stopped:

- histories: `<work_dir>/histories/<key>/`, where `<key>` is a hash of the dataset's `hf-ad generate`
  command (`hf_ad.data.generate.generate_histories`, which resumes an unfinished folder and checks a
  finished one), so arms and experiments that need the same data share one folder;
- training: `<work_dir>/runs/<histories key>-<key>/` is the arm's run folder, `<key>` a hash of the
  training options that differ from the recipe and the budget, so an arm that trains exactly the recipe
  (context 4 episodes, 65 goals, token mask 0.3, the Q-learning source) is trained once for all the
  experiments; trained with `resume=True` (`hf_ad.training.train`: a finished run returns its `final/`, a
  stopped one continues from its newest checkpoint);
- evaluation: `evaluation.json` in the run folder, the stream returns, reused when its settings
  (episodes, seeds, seed, tasks) are the experiment's.

An arm's model plays its held-out goals (`config.test_tasks` of the trained checkpoint) with the common
protocol (`hf_ad.experiments.common.play`: `seeds` evaluation seeds, actions sampled).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoConfig

from hf_ad.constants import DARK_ROOM
from hf_ad.data.generate import GenerateConfig, dataset_options, generate_command, generate_histories
from hf_ad.experiments.common import ExperimentConfig, Setting, load_agent, play
from hf_ad.files import atomic_write_json
from hf_ad.recipes import DARK_ROOM_V1_RECIPE
from hf_ad.sources import SOURCES
from hf_ad.training import TrainConfig, train

logger = logging.getLogger(__name__)

ENV_ID = DARK_ROOM
# The experiments measure the first release's recipe (Q-learning histories, every 10th episode kept), whose
# model docs/EVIDENCE.md evaluates (`pretrained/ad-darkroom-v1`); the shipped recipe distils a search.
RECIPE = DARK_ROOM_V1_RECIPE
HISTORIES_DIR = "histories"
RUNS_DIR = "runs"
EVALUATION_FILE = "evaluation.json"
KEY_PLACEHOLDER = "<key>"  # the --out of the command the histories' key is hashed from


@dataclass(frozen=True)
class Arm:
    """One arm: a label, the factor's value, and what it changes in the data and in training.

    Args:
        label: legend label, e.g. "context 2 episodes".
        value: the factor's value (for results.json and `--arms`), e.g. 2.
        data: `GenerateConfig` fields (`source`, `task_split`) and source-config fields (`keep_every`, ...)
            that differ from the recipe's dataset; the data's size (`histories_per_task`, `episodes`) is the
            budget's, the same for every arm.
        train: `TrainConfig` fields that differ from the recipe's training (`sliding_window`, ...).
    """

    label: str
    value: Any
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """What every arm of one experiment shares: optimizer steps, batch size, and the source data's size."""

    steps: int
    batch_size: int
    histories_per_task: int
    source_episodes: int


def budget(config: ExperimentConfig, default_steps: int, data_defaults: dict | None = None) -> Budget:
    """The experiment's budget: the flags given, else `default_steps`, the recipe's batch size and dataset
    (with the experiment's own `data_defaults`, e.g. fewer histories where every episode is kept)."""
    data = {"histories_per_task": RECIPE.dataset.histories_per_task, "episodes": RECIPE.dataset.episodes}
    data.update(data_defaults or {})
    return Budget(
        steps=config.steps or default_steps,
        batch_size=config.batch_size or RECIPE.training.batch_size,
        histories_per_task=config.histories_per_task or data["histories_per_task"],
        source_episodes=config.source_episodes or data["episodes"],
    )


def selected_arms(arms: tuple[Arm, ...], wanted: str | None, experiment: str) -> tuple[Arm, ...]:
    """The arms named in `--arms` (comma-separated values, e.g. "1,4"), all of them when not given.

    Raises:
        ValueError: a value that is no arm of the experiment, naming the ones there are.
    """
    if wanted is None:
        return arms
    by_value = {str(arm.value): arm for arm in arms}
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in by_value]
    if unknown or not names:
        raise ValueError(f"--arms {wanted!r}: {experiment} has the arms {list(by_value)}; name some of them")
    return tuple(by_value[name] for name in names)


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def histories_for(arm: Arm, plan: Budget, work_dir: str) -> Path:
    """Generate (or reuse) the arm's histories on the training goals; returns the complete folder."""
    data = dict(arm.data)
    generate_fields = {f.name for f in dataclasses.fields(GenerateConfig)}
    generate_options = {name: data.pop(name) for name in list(data) if name in generate_fields}
    generate_options.setdefault("source", RECIPE.dataset.source)
    config = GenerateConfig(out=KEY_PLACEHOLDER, env=ENV_ID, tasks="train", **generate_options)
    source_options = dataset_options(RECIPE.dataset, config.source_name)
    source_options.update(histories_per_task=plan.histories_per_task, episodes=plan.source_episodes, **data)
    source_config = SOURCES[config.source_name][1](**source_options)
    folder = Path(work_dir) / HISTORIES_DIR / short_hash(generate_command(config, source_config))
    return generate_histories(dataclasses.replace(config, out=str(folder)), source_config, progress=False)


def own_training_options(arm: Arm) -> dict:
    """The arm's training options that differ from the recipe's (the same run is then one folder)."""
    missing = object()
    return {
        name: value for name, value in arm.train.items() if getattr(RECIPE.training, name, missing) != value
    }


def run_folder(arm: Arm, plan: Budget, dataset: Path, seed: int, work_dir: str) -> Path:
    """`<work_dir>/runs/<histories key>-<hash of the training options and the budget>`."""
    options = {"train": own_training_options(arm), "steps": plan.steps, "batch_size": plan.batch_size}
    key = short_hash(json.dumps({**options, "seed": seed}, sort_keys=True))
    return Path(work_dir) / RUNS_DIR / f"{dataset.name}-{key}"


def train_arm(arm: Arm, plan: Budget, dataset: Path, run_dir: Path, seed: int) -> Path:
    """Train (or resume, or reuse the finished) run of `arm` in `run_dir`; returns its `final/` folder."""
    config = TrainConfig(
        dataset=str(dataset),
        output_dir=str(run_dir),
        max_steps=plan.steps,
        batch_size=plan.batch_size,
        seed=seed,
        report_to="none",
        save_steps=max(plan.steps // 8, 1),
        resume=True,
        **own_training_options(arm),
    ).with_recipe(ENV_ID, RECIPE.training)
    return train(config)


def arm_setting(final: Path, config: ExperimentConfig, tasks: list[tuple] | None = None) -> Setting:
    """The trained checkpoint's env and held-out goals (or `tasks`), `config.seeds` seeds."""
    model_config = AutoConfig.from_pretrained(final)
    held_out = tasks if tasks is not None else [tuple(t) for t in model_config.test_tasks][: config.num_tasks]
    return Setting(model_config.env_id, dict(model_config.env_kwargs), list(held_out), config.seeds)


def evaluate_arm(final: Path, held_out: Setting, config: ExperimentConfig, run_dir: Path) -> np.ndarray:
    """`(streams, episodes)` returns of the arm's model on `held_out`, cached in `run_dir`."""
    settings = {
        "model": str(final),
        "tasks": [list(task) for task in held_out.tasks],
        "seeds": config.seeds,
        "episodes": config.episodes,
        "seed": config.seed,
    }
    cache = run_dir / EVALUATION_FILE
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("settings") == settings:
            return np.asarray(saved["returns"], dtype=float)
    returns = play(load_agent(str(final), config), held_out, config.episodes, config.seed)
    atomic_write_json(cache, {"settings": settings, "returns": returns.tolist()})
    return returns


@dataclass
class TrainedArm:
    """An arm after training: its run folder, final folder and the histories it trained on."""

    arm: Arm
    run_dir: Path
    final: Path
    histories: Path


def run_arm(arm: Arm, plan: Budget, config: ExperimentConfig, experiment: str) -> TrainedArm:
    """Histories, then training, for one arm (each cached; see the module docstring)."""
    dataset = histories_for(arm, plan, config.work_dir)
    run_dir = run_folder(arm, plan, dataset, config.seed, config.work_dir)
    logger.info("%s, arm %s: training in %s", experiment, arm.label, run_dir)
    final = train_arm(arm, plan, dataset, run_dir, config.seed)
    return TrainedArm(arm, run_dir, final, dataset)


def budget_record(plan: Budget) -> dict[str, Any]:
    """The shared budget as results.json states it, with the recipe's model it trains."""
    model = {
        name: getattr(RECIPE.training, name)
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    }
    return {**dataclasses.asdict(plan), "processes": 1, "model": model}
