"""Generating learning-history datasets: run source learners in shards, resume, record the command.

One shard holds the whole histories of one batch of learners, and is a pure function of the
configuration and its index (its learners' seed comes from `(seed, split, index)`), so an
interrupted generation resumes by skipping the shards the metadata lists as done. The dataset format
itself (features, tables, validation, reading) lives in `hf_ad.data.histories`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from hf_ad import constants, envs
from hf_ad.command_line import command_line
from hf_ad.data.histories import FORMAT_VERSION, SPLITS, histories_table, history_features, write_shard
from hf_ad.data.history_card import write_card
from hf_ad.files import atomic_write_json
from hf_ad.sources import SOURCE_NAMES, SOURCES, EpisodeBlock, SourceConfig
from hf_ad.sources.base import check_lock_step

TASK_SETS = ("train", "test", "all")
ALWAYS_RECORDED = ("env", "source", "out", "tasks")  # flags every recorded command spells out


@dataclass(frozen=True)
class DatasetDefaults:
    """The default dataset of an env: what `hf-ad generate --env ENV_ID` builds.

    `source_options` tune the default source for this env and apply only when that source is used.
    """

    source: str
    histories_per_task: int
    episodes: int
    keep_every: int
    source_options: dict = field(default_factory=dict)


# Dark Room follows the recipe measured in shared/PAPER.md: 40 histories per goal, every 10th
# episode, so that a 4-episode (80-transition) window spans visible learning progress (tabular
# Q-learning converges in ~200 episodes there). Dark Room Hard learns over ~1000 episodes and needs
# a lower optimistic value (a far goal is worth less than an optimism of 5), Key-to-Door over ~200
# (measured in scripts/bench_sources.py; curves in each dataset's card).
DEFAULTS: dict[str, DatasetDefaults] = {
    constants.DARK_ROOM: DatasetDefaults("q_learning", 40, 500, 10),
    constants.DARK_ROOM_HARD: DatasetDefaults("q_learning", 10, 1000, 10, {"init_q": 1.0}),
    constants.DARK_KEY_TO_DOOR: DatasetDefaults("q_learning", 1, 500, 5, {"init_q": 2.0}),
    constants.BANDIT: DatasetDefaults("ucb", 1, 500, 1),
}


@dataclass
class GenerateConfig:
    """`hf-ad generate`: what to generate and where; the source's own options come with its config."""

    out: str = field(metadata={"help": "Output folder (a hub dataset repo once complete)."})
    env: str = field(
        default=constants.DARK_ROOM, metadata={"help": f"Environment id, one of {constants.ENV_IDS}."}
    )
    source: str | None = field(
        default=None,
        metadata={"help": f"Source algorithm, one of {SOURCE_NAMES}; default: the env's default source."},
    )
    tasks: Literal["train", "test", "all"] = field(
        default="train",
        metadata={
            "help": "Which tasks of the env's task split get histories (each becomes a dataset split)."
        },
    )
    env_kwargs: str = field(default="{}", metadata={"help": "JSON object of keyword arguments for the env."})
    task_split_seed: int = field(default=0, metadata={"help": "Seed of hf_ad.envs.task_split."})
    learners_per_shard: int = field(
        default=512,
        metadata={"help": "Learners run in one batch; their whole histories form one parquet shard."},
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "Replace an existing dataset in --out that has a different configuration."},
    )

    def __post_init__(self):
        if self.env not in constants.ENV_IDS:
            raise ValueError(f"env must be one of {constants.ENV_IDS}, got {self.env!r}")
        if self.source is not None and self.source not in SOURCE_NAMES:
            raise ValueError(f"source must be one of {SOURCE_NAMES}, got {self.source!r}")
        if self.tasks not in TASK_SETS:
            raise ValueError(f"tasks must be one of {TASK_SETS}, got {self.tasks!r}")
        if self.learners_per_shard < 1:
            raise ValueError(f"learners_per_shard must be a positive integer, got {self.learners_per_shard}")
        kwargs = json.loads(self.env_kwargs) if isinstance(self.env_kwargs, str) else self.env_kwargs
        if not isinstance(kwargs, dict):
            raise ValueError(f"env_kwargs must be a JSON object, got {self.env_kwargs!r}")

    @property
    def source_name(self) -> str:
        return self.source or DEFAULTS[self.env].source

    @property
    def env_kwargs_dict(self) -> dict:
        return json.loads(self.env_kwargs) if isinstance(self.env_kwargs, str) else dict(self.env_kwargs)


@dataclass(frozen=True)
class ShardPlan:
    split: str
    index: int
    count: int
    first_history: int  # history id of the shard's first learner
    tasks: tuple[tuple, ...]  # one per learner

    @property
    def file(self) -> str:
        return f"{constants.DATA_DIR}/{self.split}-{self.index:05d}-of-{self.count:05d}.parquet"

    def seed(self, base_seed: int) -> int:
        """Seed of this shard's learners: a pure function of (base seed, split, shard index)."""
        sequence = np.random.SeedSequence([base_seed, SPLITS.index(self.split), self.index])
        return int(sequence.generate_state(1, dtype=np.uint32)[0])


def plan_shards(
    split_tasks: dict[str, list[tuple]], histories_per_task: int, learners_per_shard: int
) -> list[ShardPlan]:
    """Cut each split's learners into shards. Learners cycle through the tasks (task 0, 1, ...,
    then the second history of each task, ...) so that every shard covers many tasks."""
    plans, first_history = [], 0
    for split, tasks in split_tasks.items():
        learners = [task for _ in range(histories_per_task) for task in tasks]
        count = math.ceil(len(learners) / learners_per_shard)
        for index in range(count):
            chunk = learners[index * learners_per_shard : (index + 1) * learners_per_shard]
            plans.append(ShardPlan(split, index, count, first_history, tuple(chunk)))
            first_history += len(chunk)
    return plans


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _generation_identity(config: GenerateConfig, source_config: SourceConfig) -> dict:
    """What must match for an existing folder to be resumed: everything that shapes the shards."""
    return {
        "format_version": FORMAT_VERSION,
        "env_id": config.env,
        "env_kwargs": _jsonable(config.env_kwargs_dict),
        "source": config.source_name,
        "generator_config": _jsonable(dataclasses.asdict(source_config)),
        "tasks": config.tasks,
        "task_split_seed": config.task_split_seed,
        "learners_per_shard": config.learners_per_shard,
    }


def generate_command(config: GenerateConfig, source_config: SourceConfig) -> str:
    """The `hf-ad generate` command line that reproduces this dataset.

    `--env`, `--source`, `--out`, `--tasks` and the options every source shares are always written;
    other flags only where they differ from their defaults; `--overwrite` never (it is no property of
    the dataset).
    """
    config = dataclasses.replace(
        config, source=config.source_name, env_kwargs=json.dumps(config.env_kwargs_dict)
    )
    generate = command_line(config, "hf-ad generate", skip=("overwrite",), keep=ALWAYS_RECORDED)
    shared = tuple(f.name for f in dataclasses.fields(SourceConfig))
    return f"{generate} {command_line(source_config, '', keep=shared)}"


def _check_resumable(folder: Path, identity: dict, overwrite: bool) -> dict | None:
    """The existing metadata to resume from, None for a fresh start; raises on a foreign folder."""
    metadata_path = folder / constants.HISTORIES_METADATA
    if not metadata_path.exists():
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise ValueError(
                f"{str(folder)!r} is not empty and holds no {constants.HISTORIES_METADATA}; "
                "choose an empty or new folder, or pass --overwrite"
            )
        return None
    existing = json.loads(metadata_path.read_text())
    different = sorted(k for k in identity if existing.get(k) != identity[k])
    if not different:
        return existing
    if not overwrite:
        details = "; ".join(f"{k}: {existing.get(k)!r} there, {identity[k]!r} now" for k in different)
        raise ValueError(
            f"{str(folder)!r} holds a dataset generated with a different configuration ({details}); "
            "choose another folder or pass --overwrite"
        )
    return None


def _clear_dataset_files(folder: Path) -> None:
    """Remove what a previous generation wrote (only hf_ad's own file names)."""
    data = folder / constants.DATA_DIR
    if data.is_dir():
        for path in data.glob("*.parquet"):
            path.unlink()
    for name in (constants.HISTORIES_METADATA, constants.DATASET_CARD, constants.LEARNING_CURVE_PNG):
        (folder / name).unlink(missing_ok=True)


def _run_shard(
    learn, source_config: SourceConfig, config: GenerateConfig, plan: ShardPlan, features, on_block=None
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Run one batch of learners.

    Returns:
        (table of the kept episodes, per-episode sums of the returns, per-episode sums of squares).
    """
    shard_config = dataclasses.replace(source_config, seed=plan.seed(source_config.seed))
    kept: list[EpisodeBlock] = []
    return_sum = np.zeros(source_config.episodes)
    return_sq_sum = np.zeros(source_config.episodes)
    for block in learn(config.env, list(plan.tasks), shard_config, config.env_kwargs_dict or None):
        returns = block.returns
        return_sum[block.episode] = returns.sum()
        return_sq_sum[block.episode] = np.square(returns).sum()
        if block.episode % source_config.keep_every == 0:
            kept.append(block)
        if on_block is not None:
            on_block(block)
    if len(kept) != math.ceil(source_config.episodes / source_config.keep_every):
        raise RuntimeError(
            f"source {config.source_name!r} yielded {len(kept)} kept episodes for shard {plan.file}"
        )
    history_ids = np.arange(plan.first_history, plan.first_history + len(plan.tasks), dtype=np.int64)
    task_dtype = np.float32 if features[constants.TASK].feature.dtype == "float32" else np.int64
    tasks = np.asarray(plan.tasks, dtype=task_dtype)
    return histories_table(kept, history_ids, tasks, features), return_sum, return_sq_sum


def learning_curve(shards: list[dict], split: str, episodes: int) -> dict:
    """Mean and std of the return per episode over all histories of `split`."""
    entries = [s for s in shards if s["split"] == split]
    count = sum(s["num_histories"] for s in entries)
    total = np.sum([s["episode_return_sum"] for s in entries], axis=0)
    total_sq = np.sum([s["episode_return_sq_sum"] for s in entries], axis=0)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {
        "episode": list(range(episodes)),
        "mean_return": [round(float(v), 6) for v in mean],
        "std_return": [round(float(v), 6) for v in std],
    }


def generate_histories(
    config: GenerateConfig, source_config: SourceConfig | None = None, progress: bool = True
) -> Path:
    """Generate (or resume) a histories dataset folder; returns the folder.

    Args:
        config: what to generate and where.
        source_config: the source's config (an instance of `SOURCES[config.source_name][1]`);
            defaults to that class with the env's default sizes (`DEFAULTS`).
        progress: show a tqdm progress bar (transitions).
    """
    learn, config_cls = SOURCES[config.source_name]
    if source_config is None:
        source_config = config_cls(**default_source_options(config.env, config.source_name))
    if not isinstance(source_config, config_cls):
        raise ValueError(
            f"source {config.source_name!r} needs a {config_cls.__name__}, got {type(source_config).__name__}"
        )
    folder = Path(config.out)
    identity = _generation_identity(config, source_config)
    existing = _check_resumable(folder, identity, config.overwrite)
    if existing is not None and existing.get("complete"):
        return folder  # already generated with this very configuration
    if existing is None and folder.exists():
        _clear_dataset_files(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{constants.DATA_DIR}/.*.tmp"):
        stale.unlink()

    train_tasks, test_tasks = envs.task_split(config.env, seed=config.task_split_seed)
    task_split = {"train": [tuple(t) for t in train_tasks], "test": [tuple(t) for t in test_tasks]}
    split_tasks = {s: task_split[s] for s in SPLITS if config.tasks in (s, "all")}
    plans = plan_shards(split_tasks, source_config.histories_per_task, config.learners_per_shard)
    probe_env = envs.make_vector_env(config.env, list(plans[0].tasks[:1]), **config.env_kwargs_dict)
    observation_space, action_space = probe_env.single_observation_space, probe_env.single_action_space
    length = _episode_length(probe_env)
    features = history_features(observation_space, [t for tasks in split_tasks.values() for t in tasks])

    metadata = {
        **identity,
        "hf_ad_version": _version(),
        "command": generate_command(config, source_config),
        "task_split": {"seed": config.task_split_seed, **_jsonable(task_split)},
        "observation_space": str(observation_space),
        "action_space": str(action_space),
        "episode_length": length,
        "features": features.to_dict(),
        "splits": {},
        "shards": [],
        "learning_curve": {},
        "complete": False,
    }
    done = {s["file"]: s for s in (existing or {}).get("shards", []) if (folder / s["file"]).is_file()}
    metadata_path = folder / constants.HISTORIES_METADATA
    total = sum(len(p.tasks) for p in plans) * source_config.episodes * length
    with tqdm(total=total, unit="transition", unit_scale=True, disable=not progress, desc="generate") as bar:
        for plan in plans:
            if plan.file in done:
                metadata["shards"].append(done[plan.file])
                bar.update(len(plan.tasks) * source_config.episodes * length)
                continue
            table, return_sum, return_sq_sum = _run_shard(
                learn, source_config, config, plan, features, on_block=lambda b: bar.update(b.actions.size)
            )
            write_shard(folder / plan.file, table)
            metadata["shards"].append(
                {
                    "file": plan.file,
                    "split": plan.split,
                    "num_rows": table.num_rows,
                    "num_bytes": table.nbytes,
                    "num_histories": len(plan.tasks),
                    "first_history_id": plan.first_history,
                    "episode_return_sum": return_sum.tolist(),
                    "episode_return_sq_sum": return_sq_sum.tolist(),
                }
            )
            atomic_write_json(metadata_path, metadata)  # the journal a resumed run reads

    for split, tasks in split_tasks.items():
        entries = [s for s in metadata["shards"] if s["split"] == split]
        optimal = float(np.mean([envs.optimal_return(config.env, t) for t in tasks]))
        metadata["splits"][split] = {
            "num_tasks": len(tasks),
            "num_histories": sum(s["num_histories"] for s in entries),
            "num_rows": sum(s["num_rows"] for s in entries),
            "num_bytes": sum(s["num_bytes"] for s in entries),
            "num_shards": len(entries),
            "optimal_return": optimal,
        }
        metadata["learning_curve"][split] = learning_curve(metadata["shards"], split, source_config.episodes)
    for entry in metadata["shards"]:
        entry.pop("episode_return_sum", None)
        entry.pop("episode_return_sq_sum", None)
    metadata["complete"] = True
    write_card(folder, metadata, features)
    atomic_write_json(metadata_path, metadata)
    return folder


def default_source_options(env_id: str, source: str | None = None) -> dict[str, Any]:
    """Config values of the env's default dataset (`DEFAULTS`) for `source` (default: the env's)."""
    if env_id not in DEFAULTS:
        raise ValueError(f"env must be one of {tuple(DEFAULTS)}, got {env_id!r}")
    defaults = DEFAULTS[env_id]
    options = {
        "histories_per_task": defaults.histories_per_task,
        "episodes": defaults.episodes,
        "keep_every": defaults.keep_every,
    }
    if source in (None, defaults.source):
        options.update(defaults.source_options)
    return options


def parse_generate_args(argv: list[str], prog: str = "hf-ad generate") -> tuple[GenerateConfig, SourceConfig]:
    """Parse `hf-ad generate` flags: `GenerateConfig` plus the chosen source's config, whose
    defaults are the env's default dataset (`DEFAULTS`)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env", default=constants.DARK_ROOM)
    pre.add_argument("--source", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.env not in DEFAULTS:
        raise ValueError(f"--env must be one of {tuple(DEFAULTS)}, got {known.env!r}")
    source = known.source or DEFAULTS[known.env].source
    _, config_cls = SOURCES[source]
    parser = HfArgumentParser((GenerateConfig, config_cls), prog=prog)
    parser.set_defaults(**default_source_options(known.env, source))
    config, source_config = parser.parse_args_into_dataclasses(args=argv)
    return config, source_config


def _episode_length(env) -> int:
    """Steps in one episode of a batched env (fixed for every hf_ad env), by playing one with action 0."""
    env.reset(seed=0)
    try:
        for steps in range(1, 10**6):
            _, _, terminated, truncated, _ = env.step(np.zeros(env.num_envs, dtype=np.int64))
            if check_lock_step(terminated, truncated, steps):
                return steps
    finally:
        env.close()
    raise RuntimeError("unreachable: check_lock_step bounds the episode")


def _version() -> str:
    """The installed hf_ad's version (from the package metadata: no import of the package itself)."""
    return importlib.metadata.version("hf_ad")
