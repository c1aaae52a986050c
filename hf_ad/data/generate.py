"""Generating learning-history datasets: run source learners in shards, resume, record the command.

One shard holds the whole histories of one batch of learners, and is a pure function of the
configuration and its index (its learners' seed comes from `(seed, split, index)`). Shards are
written under the hidden staging folder (`constants.STAGING_DIR`) with a journal of the finished
ones and move into `data/` in one rename once all are written, so an unfinished folder never reads
as a dataset; a re-run resumes from the staged shards, and on a complete dataset regenerates exactly
the shards that fail their checksum. The dataset format itself (features, tables, validation,
reading) lives in `hf_ad.data.histories`, which never imports this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from datasets import Features
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from hf_ad import constants, envs
from hf_ad.cards import write_dataset_card
from hf_ad.command_line import FlagHelpFormatter, command_line
from hf_ad.data.histories import (
    FORMAT_VERSION,
    SPLITS,
    arrow_num_bytes,
    file_sha256,
    first_non_finite,
    foreign_shards,
    histories_table,
    history_features,
    read_json,
    shard_problem,
    write_shard,
)
from hf_ad.files import TEMP_SUFFIX, atomic_write_json, replace_folder
from hf_ad.processes import Processes, current_processes
from hf_ad.recipes import RECIPES, DatasetDefaults
from hf_ad.sources import SOURCE_NAMES, SOURCES, EpisodeBlock, LearnFn, SourceConfig
from hf_ad.sources.base import check_lock_step

logger = logging.getLogger(__name__)

TASK_SETS = ("train", "test", "all")
ALWAYS_RECORDED = ("env", "source", "out", "tasks")  # flags every recorded command spells out
STAGED_ENTRIES = "shards"  # under the staging folder: one metadata entry per staged shard


# Each env's default dataset is part of its recipe (`hf_ad.recipes`, where the choices are explained).
DEFAULTS: dict[str, DatasetDefaults] = {env_id: recipe.dataset for env_id, recipe in RECIPES.items()}


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
    task_split: Literal["random", "regions"] = field(
        default="random",
        metadata={
            "help": "Kind of hf_ad.envs.task_split: random held-out tasks, or regions (Dark Room: train in "
            "the left two thirds of the room, hold out goals there and in the right third)."
        },
    )
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
        if self.task_split not in envs.TASK_SPLIT_KINDS:
            raise ValueError(f"task_split must be one of {envs.TASK_SPLIT_KINDS}, got {self.task_split!r}")
        if self.task_split == "regions" and self.env not in envs.REGION_ENVS:
            raise ValueError(
                f"--task-split regions needs --env one of {envs.REGION_ENVS}, got {self.env!r}; "
                "use --task-split random"
            )
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


def _existing_generation(folder: Path, identity: dict, overwrite: bool) -> dict | None:
    """The metadata to resume or repair from (the dataset's, or an unfinished generation's journal),
    or None for a fresh start in an empty folder.

    Raises:
        ValueError: the folder is not empty and is no histories dataset (refused with or without
            `--overwrite`: hf_ad never clears a folder it did not write), or it holds a dataset of
            another configuration and `overwrite` is off.
    """
    paths = (
        folder / constants.HISTORIES_METADATA,
        folder / constants.STAGING_DIR / constants.HISTORIES_METADATA,
    )
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        if folder.exists() and any(p.name != constants.STAGING_DIR for p in folder.iterdir()):
            raise ValueError(
                f"{str(folder)!r} is not empty and holds no {constants.HISTORIES_METADATA}, so it is no "
                "histories dataset; hf-ad generate never writes into (or clears) such a folder, with or "
                "without --overwrite: choose an empty or new folder"
            )
        shutil.rmtree(folder / constants.STAGING_DIR, ignore_errors=True)  # stopped before its journal
        return None
    existing = read_json(path)
    different = sorted(k for k in identity if existing.get(k) != identity[k])
    if different and not overwrite:
        details = "; ".join(f"{k}: {existing.get(k)!r} there, {identity[k]!r} now" for k in different)
        raise ValueError(
            f"{str(folder)!r} holds a dataset generated with a different configuration ({details}); "
            "choose another folder or pass --overwrite"
        )
    if different or (path == paths[0] and not existing.get("complete")):  # or an older hf_ad's journal
        _clear_dataset_files(folder)
        return None
    return existing


def _clear_dataset_files(folder: Path) -> None:
    """Remove what a previous generation wrote (only hf_ad's own names), before a fresh start.

    Raises:
        ValueError: `data/` holds something hf_ad does not write (left untouched).
    """
    data = folder / constants.DATA_DIR
    if data.is_dir():
        others = sorted(p.name for p in data.iterdir() if p.suffix not in (".parquet", TEMP_SUFFIX))
        if others:
            raise ValueError(
                f"{str(data)!r} holds files hf_ad does not write ({others[:5]}); move them away first"
            )
        shutil.rmtree(data)
    card_files = (constants.DATASET_CARD, constants.LEARNING_CURVE_PNG, constants.SAMPLE_VIEWS_PNG)
    for name in (constants.HISTORIES_METADATA, *card_files):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / constants.STAGING_DIR, ignore_errors=True)


@dataclass(frozen=True)
class Generation:
    """One generation: its configs and everything they determine before a learner runs.

    Build it with `Generation.prepare(config, source_config)`.
    """

    config: GenerateConfig
    source_config: SourceConfig
    learn: LearnFn
    task_split: dict[str, list[tuple]]  # the env's whole split
    split_tasks: dict[str, list[tuple]]  # the dataset's splits
    plans: list[ShardPlan]
    observation_space: Any
    action_space: Any
    episode_length: int
    features: Features

    @classmethod
    def prepare(cls, config: GenerateConfig, source_config: SourceConfig | None = None) -> Generation:
        """Resolve the source, plan the shards and probe the env for its spaces and episode length.

        `config.source` left `None` with a `source_config` given: the source whose config class it is (a
        `QLearningConfig` generates Q-learning histories whatever the env's default source).

        Raises:
            ValueError: `source_config` is not the chosen source's config class.
        """
        if config.source is None and source_config is not None:
            named = [name for name, (_, cls_) in SOURCES.items() if type(source_config) is cls_]
            config = dataclasses.replace(config, source=named[0]) if named else config
        learn, config_cls = SOURCES[config.source_name]
        if source_config is None:
            source_config = config_cls(**default_source_options(config.env, config.source_name))
        if not isinstance(source_config, config_cls):
            raise ValueError(
                f"source {config.source_name!r} needs a {config_cls.__name__}, "
                f"got {type(source_config).__name__}"
            )
        train_tasks, test_tasks = envs.task_split(
            config.env, seed=config.task_split_seed, kind=config.task_split
        )
        task_split = {"train": [tuple(t) for t in train_tasks], "test": [tuple(t) for t in test_tasks]}
        split_tasks = {s: task_split[s] for s in SPLITS if config.tasks in (s, "all")}
        plans = plan_shards(split_tasks, source_config.histories_per_task, config.learners_per_shard)
        probe = envs.make_vector_env(config.env, list(plans[0].tasks[:1]), **config.env_kwargs_dict)
        observation_space, action_space = probe.single_observation_space, probe.single_action_space
        all_tasks = [t for tasks in split_tasks.values() for t in tasks]
        return cls(
            config=config,
            source_config=source_config,
            learn=learn,
            task_split=task_split,
            split_tasks=split_tasks,
            plans=plans,
            observation_space=observation_space,
            action_space=action_space,
            episode_length=_episode_length(probe),
            features=history_features(observation_space, all_tasks),
        )

    @property
    def identity(self) -> dict:
        """What must match for an existing folder to be resumed: everything that shapes the shards."""
        return {
            "format_version": FORMAT_VERSION,
            "env_id": self.config.env,
            "env_kwargs": _jsonable(self.config.env_kwargs_dict),
            "source": self.config.source_name,
            "generator_config": _jsonable(dataclasses.asdict(self.source_config)),
            "tasks": self.config.tasks,
            "task_split_seed": self.config.task_split_seed,
            **self.split_kind,
            "learners_per_shard": self.config.learners_per_shard,
        }

    @property
    def split_kind(self) -> dict:
        """`{"task_split_kind": kind}` for a split other than the default random one; empty for that one,
        so datasets written before the kinds existed keep their identity and metadata."""
        kind = self.config.task_split
        return {} if kind == "random" else {"task_split_kind": kind}

    def new_metadata(self) -> dict:
        """The metadata of this generation before any shard is written."""
        return {
            **self.identity,
            "hf_ad_version": constants.VERSION,
            "command": generate_command(self.config, self.source_config),
            "task_split": {
                "seed": self.config.task_split_seed,
                "kind": self.config.task_split,
                **_jsonable(self.task_split),
            },
            "observation_space": str(self.observation_space),
            "action_space": str(self.action_space),
            "episode_length": self.episode_length,
            "features": self.features.to_dict(),
            "splits": {},
            "shards": [],
            "learning_curve": {},
            "complete": False,
        }

    def stored_rows(self, plans: list[ShardPlan]) -> int:
        """Rows the shards of `plans` hold (the kept episodes' transitions): the progress bar's total."""
        kept_episodes = math.ceil(self.source_config.episodes / self.source_config.keep_every)
        return sum(len(p.tasks) for p in plans) * kept_episodes * self.episode_length

    def run_shard(self, plan: ShardPlan, on_kept=None) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """Run one batch of learners; `on_kept(block)` is called with each episode that is stored.

        Returns:
            (table of the kept episodes, per-episode sums of the returns, per-episode sums of squares).

        Raises:
            ValueError: the source produced a NaN or infinite reward or observation (nothing is written).
        """
        source_config = self.source_config
        shard_config = dataclasses.replace(source_config, seed=plan.seed(source_config.seed))
        kept: list[EpisodeBlock] = []
        return_sum = np.zeros(source_config.episodes)
        return_sq_sum = np.zeros(source_config.episodes)
        env_kwargs = self.config.env_kwargs_dict or None
        for block in self.learn(self.config.env, list(plan.tasks), shard_config, env_kwargs):
            self._refuse_non_finite(block, plan)
            returns = block.returns
            return_sum[block.episode] = returns.sum()
            return_sq_sum[block.episode] = np.square(returns).sum()
            if block.episode % source_config.keep_every == 0:
                kept.append(block)
                if on_kept is not None:
                    on_kept(block)
        if len(kept) != math.ceil(source_config.episodes / source_config.keep_every):
            raise RuntimeError(
                f"source {self.config.source_name!r} yielded {len(kept)} kept episodes for shard {plan.file}"
            )
        history_ids = np.arange(plan.first_history, plan.first_history + len(plan.tasks), dtype=np.int64)
        task_dtype = np.float32 if self.features[constants.TASK].feature.dtype == "float32" else np.int64
        tasks = np.asarray(plan.tasks, dtype=task_dtype)
        return histories_table(kept, history_ids, tasks, self.features), return_sum, return_sq_sum

    def _refuse_non_finite(self, block: EpisodeBlock, plan: ShardPlan) -> None:
        for name, values in ((constants.REWARD, block.rewards), (constants.OBSERVATION, block.observations)):
            learner = first_non_finite(values)
            if learner is not None:
                raise ValueError(
                    f"source {self.config.source_name!r} produced a NaN or infinite {name} in episode "
                    f"{block.episode} of history {plan.first_history + learner} (shard {plan.file}); nothing "
                    f"was written for that shard: check the source's options ({self.source_config})"
                )

    def write_shard(self, path: Path, plan: ShardPlan, bar: tqdm) -> dict:
        """Run the shard of `plan`, write it to `path`; returns its metadata entry (with the return
        sums the learning curve needs, which the complete metadata drops)."""
        table, return_sum, return_sq_sum = self.run_shard(plan, on_kept=lambda b: bar.update(b.actions.size))
        write_shard(path, table)
        return {
            "file": plan.file,
            "split": plan.split,
            "num_rows": table.num_rows,
            "num_bytes": arrow_num_bytes(path, self.features),  # as `datasets` counts it
            "num_histories": len(plan.tasks),
            "first_history_id": plan.first_history,
            "file_size": path.stat().st_size,
            "sha256": file_sha256(path),
            "episode_return_sum": return_sum.tolist(),
            "episode_return_sq_sum": return_sq_sum.tolist(),
        }

    def progress_bar(self, plans: list[ShardPlan], progress: bool) -> tqdm:
        """A bar over the rows the shards of `plans` will store (the learners play `keep_every` times as
        many transitions)."""
        total = self.stored_rows(plans)
        return tqdm(total=total, unit="row", unit_scale=True, disable=not progress, desc="generate")

    def complete(self, metadata: dict) -> None:
        """Fill in the per-split summary and learning curves once every shard is written."""
        for split, tasks in self.split_tasks.items():
            entries = [s for s in metadata["shards"] if s["split"] == split]
            optimal = float(np.mean([envs.optimal_return(self.config.env, t) for t in tasks]))
            metadata["splits"][split] = {
                "num_tasks": len(tasks),
                "num_histories": sum(s["num_histories"] for s in entries),
                "num_rows": sum(s["num_rows"] for s in entries),
                "num_bytes": split_num_bytes(metadata["shards"], split),
                "num_shards": len(entries),
                "optimal_return": optimal,
            }
            episodes = self.source_config.episodes
            metadata["learning_curve"][split] = learning_curve(metadata["shards"], split, episodes)
        for entry in metadata["shards"]:
            entry.pop("episode_return_sum", None)
            entry.pop("episode_return_sq_sum", None)
        metadata["complete"] = True


def split_num_bytes(shards: list[dict], split: str) -> int:
    """The `num_bytes` of a split: the sum over its shards (the card's `dataset_info` split size)."""
    return sum(s["num_bytes"] for s in shards if s["split"] == split)


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
    """Generate, resume or repair a histories dataset folder; returns the folder once complete.

    Shards are written under the hidden staging folder `constants.STAGING_DIR`, each with its metadata
    entry beside it (`STAGED_ENTRIES`), and move to `data/` only when all are written, so an unfinished
    folder never reads as a dataset (`datasets` skips hidden paths). A re-run resumes from the staged
    shards that pass their checksums; on a complete dataset it checks every shard
    (`shard_problem(verify=True)`) and regenerates exactly the damaged ones, which come back byte for byte
    (each shard is a pure function of its plan).

    Under `accelerate launch` (`hf_ad.processes`) every process writes its share of the shards (round-robin
    over the plans); the main process alone checks the folder first and, after a barrier, writes the
    metadata and the card, so the dataset is the one a single process writes, whatever the number of
    processes, and a resume may use another number. Outside a launch no accelerate state is created.

    Args:
        config: what to generate and where.
        source_config: the source's config (an instance of `SOURCES[config.source_name][1]`);
            defaults to that class with the env's default sizes (`DEFAULTS`).
        progress: show a tqdm progress bar over the rows stored (the main process's share).

    Raises:
        ValueError: the folder is not empty and no histories dataset, holds a dataset of another
            configuration (without `overwrite`) or foreign shards, the source produced NaN/inf, or a
            regenerated shard does not reproduce its recorded checksum (on every process).
    """
    generation = Generation.prepare(config, source_config)
    folder = Path(config.out)
    processes = current_processes()
    step = processes.on_main(lambda: _next_step(folder, generation))
    if step == REPAIR:
        processes.on_main(lambda: _repair_damaged_shards(folder, generation, progress))
    elif step == MOVE:
        processes.on_main(lambda: _move_into_place(folder, read_json(_journal(folder))))
    else:
        processes.together(lambda: _stage_shards(folder, generation, processes, progress))
        processes.on_main(lambda: _move_into_place(folder, _staged_metadata(folder, generation)))
    return folder


REPAIR, MOVE, STAGE = "repair", "move into place", "stage"  # what a run of `generate_histories` does


def _next_step(folder: Path, generation: Generation) -> str:
    """Check the folder and decide what this run does (the main process only): repair a complete dataset,
    move a fully staged one into place, or stage the missing shards (after writing the journal)."""
    existing = _existing_generation(folder, generation.identity, generation.config.overwrite)
    if (folder / constants.HISTORIES_METADATA).is_file() and existing is not None:
        return REPAIR
    if existing is not None and existing["complete"]:
        return MOVE  # interrupted while moving into place
    staging = folder / constants.STAGING_DIR
    _remove_temporaries(staging / constants.DATA_DIR)
    for entry in (existing or {}).get("shards", []):  # an older hf_ad's journal listed them itself
        if not _entry_path(folder, entry["file"]).is_file():
            atomic_write_json(_entry_path(folder, entry["file"]), entry)
    atomic_write_json(_journal(folder), generation.new_metadata())  # what a resume reads
    return STAGE


def _journal(folder: Path) -> Path:
    return folder / constants.STAGING_DIR / constants.HISTORIES_METADATA


def _entry_path(folder: Path, shard_file: str) -> Path:
    """Where a staged shard's metadata entry is kept (one file per shard: processes never share a file)."""
    return folder / constants.STAGING_DIR / STAGED_ENTRIES / f"{Path(shard_file).stem}.json"


def _stage_shards(folder: Path, generation: Generation, processes: Processes, progress: bool) -> None:
    """Write this process's shards that are not already staged (and intact), each with its entry."""
    staging = folder / constants.STAGING_DIR
    schema = generation.features.arrow_schema
    plans = processes.share(generation.plans)
    with generation.progress_bar(plans, progress and processes.is_main) as bar:
        for plan in plans:
            entry_path = _entry_path(folder, plan.file)
            if entry_path.is_file():
                entry = read_json(entry_path)
                if shard_problem(staging / plan.file, entry, schema, verify=True) is None:
                    bar.update(generation.stored_rows([plan]))
                    continue
                entry_path.unlink()
            entry = generation.write_shard(staging / plan.file, plan, bar)
            atomic_write_json(entry_path, entry)


def _staged_metadata(folder: Path, generation: Generation) -> dict:
    """The complete metadata of a generation whose every shard is staged with its entry."""
    metadata = generation.new_metadata()
    metadata["shards"] = [read_json(_entry_path(folder, plan.file)) for plan in generation.plans]
    generation.complete(metadata)
    return metadata


def _move_into_place(folder: Path, metadata: dict) -> None:
    """Move a fully staged generation into place: `data/` in one rename, then the card, then the
    metadata; every step can be repeated, so an interruption here resumes here."""
    staging = folder / constants.STAGING_DIR
    atomic_write_json(
        staging / constants.HISTORIES_METADATA, metadata
    )  # complete: a resume moves it into place
    if (staging / constants.DATA_DIR).is_dir():
        replace_folder(staging / constants.DATA_DIR, folder / constants.DATA_DIR)
    write_dataset_card(folder, metadata)
    atomic_write_json(folder / constants.HISTORIES_METADATA, metadata)
    shutil.rmtree(staging)


def _repair_damaged_shards(folder: Path, generation: Generation, progress: bool) -> None:
    """Check every shard of a complete dataset in full and regenerate exactly the damaged ones.

    Raises:
        ValueError: `data/` holds foreign shards, or a regenerated shard's sha256 differs from the
            recorded one (this machine or its library versions do not reproduce the dataset).
    """
    metadata = read_json(folder / constants.HISTORIES_METADATA)
    shutil.rmtree(folder / constants.STAGING_DIR, ignore_errors=True)  # a stop after the move left it
    _remove_temporaries(folder / constants.DATA_DIR)
    foreign = foreign_shards(folder, metadata)
    if foreign:
        raise ValueError(
            f"{str(folder)!r} holds shards its {constants.HISTORIES_METADATA} does not list ({foreign}); "
            "remove them (they are not part of this dataset)"
        )
    schema = generation.features.arrow_schema
    problems = {
        e["file"]: shard_problem(folder / e["file"], e, schema, verify=True) for e in metadata["shards"]
    }
    damaged = [plan for plan in generation.plans if problems[plan.file] is not None]
    entries = {entry["file"]: entry for entry in metadata["shards"]}
    with generation.progress_bar(damaged, progress and bool(damaged)) as bar:
        for plan in damaged:
            logger.warning("regenerating %s: %s", plan.file, problems[plan.file])
            recorded = entries[plan.file]
            fresh = generation.write_shard(folder / plan.file, plan, bar)
            if recorded.get("sha256", fresh["sha256"]) != fresh["sha256"]:
                raise ValueError(
                    f"regenerated shard {plan.file!r} of {str(folder)!r} differs from the one recorded "
                    f"(sha256 {fresh['sha256']}, recorded {recorded['sha256']}): this machine or its library "
                    "versions do not reproduce the dataset; generate it again into a new folder"
                )
            recorded.update(file_size=fresh["file_size"], sha256=fresh["sha256"])  # older datasets gain them
    if _refresh_num_bytes(folder, metadata, generation.features):
        write_dataset_card(folder, metadata)  # its dataset_info sizes come from the metadata
    elif not damaged:
        return
    atomic_write_json(folder / constants.HISTORIES_METADATA, metadata)


def _refresh_num_bytes(folder: Path, metadata: dict, features: Features) -> bool:
    """Record every shard's and split's `num_bytes` as `datasets` counts them (`arrow_num_bytes`), where an
    older hf_ad recorded the size of the table before writing; returns whether any number changed."""
    changed = False
    for entry in metadata["shards"]:
        num_bytes = arrow_num_bytes(folder / entry["file"], features)
        changed |= entry["num_bytes"] != num_bytes
        entry["num_bytes"] = num_bytes
    for split, info in metadata["splits"].items():
        info["num_bytes"] = split_num_bytes(metadata["shards"], split)
    return changed


def _remove_temporaries(data: Path) -> None:
    """Delete the temporary files of shard writes that were killed midway."""
    for stale in data.glob(f".*{TEMP_SUFFIX}"):
        stale.unlink()


def default_source_options(env_id: str, source: str | None = None) -> dict[str, Any]:
    """Config values of the env's default dataset (`DEFAULTS`) for `source` (default: the env's)."""
    if env_id not in DEFAULTS:
        raise ValueError(f"env must be one of {tuple(DEFAULTS)}, got {env_id!r}")
    return dataset_options(DEFAULTS[env_id], source)


def dataset_options(defaults: DatasetDefaults, source: str | None = None) -> dict[str, Any]:
    """Config values of the dataset `defaults` for `source` (default: its own source): its size and
    subsampling, and its `source_options` only where `source` is its source."""
    options = {
        "histories_per_task": defaults.histories_per_task,
        "episodes": defaults.episodes,
        "keep_every": defaults.keep_every,
    }
    if source in (None, defaults.source):
        options.update(defaults.source_options)
    return options


def parse_generate_args(argv: list[str], prog: str = "hf-ad generate", extra: tuple = ()) -> tuple[Any, ...]:
    """Parse `hf-ad generate` flags: `GenerateConfig` plus the chosen source's config, whose
    defaults are the env's default dataset (`DEFAULTS`), plus one instance of each `extra` dataclass
    (e.g. the command line's hub flags), in that order."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env", default=constants.DARK_ROOM)
    pre.add_argument("--source", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.env not in DEFAULTS:
        raise ValueError(f"--env must be one of {tuple(DEFAULTS)}, got {known.env!r}")
    source = known.source or DEFAULTS[known.env].source
    _, config_cls = SOURCES[source]
    parser = HfArgumentParser(
        (GenerateConfig, config_cls, *extra), prog=prog, formatter_class=FlagHelpFormatter
    )
    parser.set_defaults(**default_source_options(known.env, source))
    return tuple(parser.parse_args_into_dataclasses(args=argv))


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
