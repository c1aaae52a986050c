"""The paper's evaluation: AD against ED, RL² and the source learning from scratch, on held-out tasks.

`evaluate(EvaluateConfig(...))` (or `hf-ad evaluate --model PATH [--ed-model PATH] [--rl2-model PATH] ...`)
plays every method on the same held-out tasks of the checkpoint's env, with the same env seeds, for
`episodes` episodes:

- AD, ED and RL²: the frozen model acting in context (`InContextRLPipeline`), one run per checkpoint
  (training seed) and evaluation seed; the context (RL²: the recurrent state) is filled by the agent itself,
  no demonstrations (section 4);
- the source algorithm (e.g. tabular Q-learning) learning each task from scratch, one run per seed.

A *run* is one checkpoint and one evaluation seed over all the tasks; its score per episode is the mean
return over the tasks. Each method reports, per episode, the mean, the standard deviation (ddof 0) and
the number `n` of its runs, as in the paper's figures (mean ± 1 std). The evaluation seeds of a checkpoint
are played in pieces of whole seeds (`hf_ad.evaluation_pieces.seed_pieces`), each stream with its own env
seed and its actions drawn as in one batch of all tasks x seeds streams; the source's seed i runs with seed
`seed + i`. Finished pieces are kept in `out` until the results are written, so an interrupted
evaluation resumes when run again (`hf_ad.evaluation_pieces`).

Every checkpoint, the output folder and the source are checked before the first rollout, so a typo fails
in a second with the flag and the value named. Writes to `out`: `results.json` (every curve, the oracle's
and the random policy's returns, and summary numbers over episode ranges), `returns.png` (return vs.
episode, ±1 std bands, the oracle line) and `replay.mp4` (the first AD checkpoint on the first task,
episode 1 next to the last: `hf_ad.video`); with `update_card` it also fills the `model-index` and an
evaluation table in each local checkpoint's model card (`README.md`; the first AD checkpoint's folder also
gets `replay.mp4`, which its card embeds), which it never touches otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub.utils import HFValidationError, validate_repo_id
from tqdm.auto import tqdm
from transformers import AutoConfig

from hf_ad import constants
from hf_ad.cards import update_model_card
from hf_ad.command_line import command_line
from hf_ad.envs import optimal_return, random_return, sample_bandit_tasks
from hf_ad.evaluation_pieces import EvaluationPieces, checkpoint_digest, seed_pieces
from hf_ad.files import atomic_write_text
from hf_ad.plotting import Band, Level, save_band_plot
from hf_ad.processes import current_processes
from hf_ad.recipes import RECIPES, EvaluationRecipe, recipe_of_run
from hf_ad.rollout import InContextRLPipeline
from hf_ad.sources import SOURCE_NAMES, SOURCES
from hf_ad.video import VideoConfig, make_video

logger = logging.getLogger(__name__)

# Episode ranges (1-based, inclusive) summarised in results.json and the model card: early, the paper's
# "episode 200" point, plus the last 100 episodes (added per run, clipped to the episodes played); a run of
# 50 to 100 episodes also reports its last 10 (Pixel Watermaze's bar: episodes 91-100 against 1-10).
SUMMARY_RANGES = ((1, 10), (41, 50), (191, 200))
LAST_EPISODES = 100
SHORT_RUN_LAST_EPISODES = 10
FALLBACK_SOURCE = "q_learning"
# A checkpoint under --model that is not AD is labelled by its model type (the RL² baseline).
METHOD_LABELS = {"rl2": "RL²"}
# The model type every --rl2-model checkpoint must have (`hf-ad train-rl2` writes it).
RL2_MODEL_TYPE = "rl2"


@dataclass
class EvaluateConfig:
    """`hf-ad evaluate`: AD vs. ED vs. the source algorithm from scratch on the held-out tasks."""

    model: list[str] = field(
        metadata={"help": "AD checkpoint folder(s) or hub repo id(s); several = several training seeds."}
    )
    out: str = field(metadata={"help": "Output folder for results.json and returns.png."})
    ed_model: list[str] | None = field(
        default=None,
        metadata={"help": "ED checkpoint(s): the same recipe trained on expert data. Omit to skip ED."},
    )
    rl2_model: list[str] | None = field(
        default=None,
        metadata={
            "help": "RL² checkpoint(s) from `hf-ad train-rl2`, the paper's upper-bound baseline, played with "
            "the same protocol. Omit to skip RL²."
        },
    )
    source: str | None = field(
        default=None,
        metadata={
            "help": "Source algorithm learning from scratch, a name in hf_ad.sources.SOURCES, or 'none' to "
            "skip it. Default: the source recorded with the checkpoint's training data, else the env's "
            "default source."
        },
    )
    episodes: int | None = field(
        default=None,
        metadata={
            "help": "Episodes per task and run (the paper: 1000; 100 pulls for the bandit). Default: the "
            "recipe of the checkpoint's env (hf_ad.recipes)."
        },
    )
    seeds: int | None = field(
        default=None,
        metadata={
            "help": "Evaluation seeds: runs per checkpoint (and of the source); the paper's 20. Default: the "
            "recipe of the checkpoint's env."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Base seed of the envs, the action sampling and the source."}
    )
    num_tasks: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate N of the held-out tasks only: a fixed sample (seed 0, in split order), the "
            "same for every checkpoint. Default: the recipe of the checkpoint's env (all of them but for "
            "Key-to-Door: 256)."
        },
    )
    greedy: bool = field(
        default=False,
        metadata={"help": "Greedy actions instead of sampling from the policy (not the paper's)."},
    )
    device: str | None = field(
        default=None, metadata={"help": "Torch device of the models (default: GPU if any)."}
    )
    update_card: bool = field(
        default=False,
        metadata={
            "help": "Write the measured numbers into each local checkpoint's model card (README.md); "
            "without it no card is touched."
        },
    )
    video: bool = field(
        default=True,
        metadata={
            "help": "Write replay.mp4: the first AD checkpoint on the first held-out task, episode 1 next "
            "to the last (one more rollout, of one stream); with --update-card also into its folder and card."
        },
    )

    def __post_init__(self):
        if isinstance(self.model, str):
            self.model = [self.model]
        if isinstance(self.ed_model, str):
            self.ed_model = [self.ed_model]
        if isinstance(self.rl2_model, str):
            self.rl2_model = [self.rl2_model]
        if not self.model:
            raise ValueError("model must name at least one AD checkpoint")
        for name in ("episodes", "seeds"):
            value = getattr(self, name)
            if value is None:
                continue  # the recipe's, filled in by `with_recipe`
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_tasks is not None and (isinstance(self.num_tasks, bool) or self.num_tasks < 1):
            raise ValueError(f"num_tasks must be a positive integer or None, got {self.num_tasks!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.source is not None and self.source != "none" and self.source not in SOURCE_NAMES:
            raise ValueError(f"source must be one of {SOURCE_NAMES} or 'none', got {self.source!r}")

    def with_recipe(self, recipe: EvaluationRecipe) -> EvaluateConfig:
        """This config with `episodes`, `seeds` and `num_tasks` taken from `recipe` where not given."""
        return dataclasses.replace(
            self,
            episodes=self.episodes or recipe.episodes,
            seeds=self.seeds or recipe.seeds,
            num_tasks=self.num_tasks or recipe.num_tasks,
        )


# --- statistics -----------------------------------------------------------------------------------


def episode_ranges(episodes: int) -> list[tuple[int, int]]:
    """The summary ranges that fit in `episodes`, plus the last `LAST_EPISODES` (1-based, inclusive), and
    the last `SHORT_RUN_LAST_EPISODES` of a run of 50 to `LAST_EPISODES` episodes."""
    ranges = [(first, last) for first, last in SUMMARY_RANGES if last <= episodes]
    final = (max(1, episodes - LAST_EPISODES + 1), episodes)
    short_final = (episodes - SHORT_RUN_LAST_EPISODES + 1, episodes)
    if final[0] == 1 and episodes >= 5 * SHORT_RUN_LAST_EPISODES and short_final not in ranges:
        ranges.append(short_final)
    if final not in ranges:
        ranges.append(final)
    return ranges


def range_label(first: int, last: int) -> str:
    return f"episodes {first}-{last}"


def curve_stats(runs: np.ndarray) -> dict[str, Any]:
    """Per-episode mean, std (ddof 0) and n of `runs` `(n, episodes)`, and the summary over episode ranges."""
    summary = {}
    for first, last in episode_ranges(runs.shape[1]):
        per_run = runs[:, first - 1 : last].mean(axis=1)  # (n,)
        summary[range_label(first, last)] = {"mean": float(per_run.mean()), "std": float(per_run.std())}
    return {
        "n": int(runs.shape[0]),
        "mean": runs.mean(axis=0).tolist(),
        "std": runs.std(axis=0).tolist(),
        "summary": summary,
    }


def runs_from_returns(returns: np.ndarray, seeds: int) -> np.ndarray:
    """`(seeds * tasks, episodes)` seed-major returns to `(seeds, episodes)` run scores (mean over tasks)."""
    return returns.reshape(seeds, -1, returns.shape[-1]).mean(axis=1)


FEW_EPISODE_RETURNS = 10  # `stream_outcomes` counts each episode return when there are at most this many


def stream_outcomes(returns: np.ndarray, window: int, solved: float) -> dict[str, float | int]:
    """How single streams change: the first vs the last `window` episodes of `returns (streams, episodes)`.

    The run scores average over tasks, which cannot tell a policy that improves a little on every task
    from one where a few streams jump from failing to solving (the lucky streams of ED: it walks back to
    a goal it stumbled on). `solved` is the mean return that counts as solving a task. Also the spread of
    the streams' last-window means (min, median, max) and, where episodes score at most
    `FEW_EPISODE_RETURNS` distinct returns (Key-to-Door: 0, 1 or 2), the share of the last windows'
    episodes that scored each: where a loose policy loses its points.
    """
    first = returns[:, :window].mean(axis=1)  # (streams,)
    last = returns[:, -window:].mean(axis=1)  # (streams,)
    values, counts = np.unique(returns[:, -window:], return_counts=True)
    shares = (
        {float(value): float(count / counts.sum()) for value, count in zip(values, counts, strict=True)}
        if len(values) <= FEW_EPISODE_RETURNS
        else None
    )
    return {
        "streams": len(returns),
        "first_mean": float(first.mean()),
        "last_mean": float(last.mean()),
        "solved_first": int((first >= solved).sum()),
        "solved_last": int((last >= solved).sum()),
        "under_1_last": int((last < 1).sum()),
        "failing_to_solved": int(((first < solved) & (last >= solved)).sum()),
        "last_min": float(last.min()),
        "last_median": float(np.median(last)),
        "last_max": float(last.max()),
        "last_episode_shares": shares,
    }


# --- the methods ----------------------------------------------------------------------------------


TASK_SAMPLE_SEED = 0  # the seed of the held-out sample `--num-tasks N` evaluates: one fixed sample per N


def held_out_tasks(path: str, model_config: Any, num_tasks: int | None = None) -> list[tuple]:
    """The held-out tasks recorded in the config of checkpoint `path`: all, or a fixed sample of `num_tasks`.

    The sample is drawn without replacement with `TASK_SAMPLE_SEED` and kept in the split's order, so a
    given `num_tasks` always plays the same tasks and spreads them over the whole split (the split is sorted:
    its first N would be one corner of the task space).
    """
    tasks = [tuple(task) for task in model_config.test_tasks]
    if not tasks:
        raise ValueError(f"{path!r} has no held-out tasks (test_tasks) in its config")
    if num_tasks is None or num_tasks >= len(tasks):
        return tasks
    chosen = np.random.default_rng(TASK_SAMPLE_SEED).choice(len(tasks), size=num_tasks, replace=False)
    return [tasks[index] for index in sorted(chosen)]


def stream_returns(
    path: str,
    tasks: list[tuple],
    config: EvaluateConfig,
    progress: bool = False,
    pieces: EvaluationPieces | None = None,
    name: str = "checkpoint",
) -> np.ndarray:
    """Play one AD/ED checkpoint on `tasks` for every evaluation seed.

    Returns the `(seeds * tasks, episodes)` seed-major returns of every stream (one task, one evaluation
    seed). `progress` shows a bar over the episodes. The seeds are played in pieces (`seed_pieces`), kept
    in `pieces` as `{name}-{k}` where given (a rerun reads them back); each piece's streams act as in the
    whole run (`rollout`'s `first_stream`). Under `accelerate launch` each process plays a contiguous block
    of every piece, and the blocks are gathered: the returns are those of one process playing them all.
    """
    streams = tasks * config.seeds  # stream (i, task) is evaluation seed i; each has its own env seed
    processes = current_processes()
    pipe = None

    def play(piece: range) -> np.ndarray:
        nonlocal pipe
        first = piece.start * len(tasks)
        block = processes.block(len(piece) * len(tasks))
        returns = np.zeros((0, config.episodes))  # (streams of this process, episodes)
        if block:
            if pipe is None:  # loaded once, for the first piece this process plays
                pipe = InContextRLPipeline.from_pretrained(path, device=config.device or processes.device)
            result = pipe(
                tasks=streams[first + block.start : first + block.stop],
                num_episodes=config.episodes,
                seed=config.seed,
                sample=not config.greedy,
                progress=progress,
                first_stream=first + block.start,
                total_streams=len(streams),
            )
            returns = result.returns
        return np.concatenate(processes.gather(returns))  # (piece's streams, episodes)

    returns = [
        pieces.piece(f"{name}-{index}", lambda piece=piece: play(piece)) if pieces else play(piece)
        for index, piece in enumerate(seed_pieces(len(tasks), config.seeds))
    ]
    return np.concatenate(returns)  # (seeds * tasks, episodes)


def evaluate_checkpoint(
    path: str,
    tasks: list[tuple],
    config: EvaluateConfig,
    progress: bool = False,
    pieces: EvaluationPieces | None = None,
    name: str = "checkpoint",
) -> np.ndarray:
    """Run one AD/ED checkpoint on `tasks` for every evaluation seed: `(seeds, episodes)` run scores."""
    return runs_from_returns(stream_returns(path, tasks, config, progress, pieces, name), config.seeds)


def recorded_source(model_path: str) -> tuple[str, dict] | None:
    """The source algorithm and options that generated a checkpoint's training data, if recorded locally.

    Looks for the dataset folder named in the checkpoint's `train_config.json` and reads its histories
    metadata (`source`, `generator_config`). Returns `None` when any of it is not available.
    """
    train_config_path = Path(model_path) / constants.TRAIN_CONFIG
    if not train_config_path.is_file():
        return None
    train_config = json.loads(train_config_path.read_text())
    metadata_path = Path(train_config.get("dataset", "")) / constants.HISTORIES_METADATA
    if not metadata_path.is_file():
        return None
    metadata = json.loads(metadata_path.read_text())
    if "source" not in metadata:
        return None
    return metadata["source"], dict(metadata.get("generator_config") or {})


def resolve_source(config: EvaluateConfig, env_id: str) -> tuple[str, dict] | None:
    """`(name, options)` of the source baseline, or `None` when it is skipped (`source='none'`).

    The source that generated the checkpoint's data where that is recorded locally (`recorded_source`),
    else the source of the recipe the checkpoint was trained with (`trained_recipe_source`).
    """
    if config.source == "none":
        return None
    recorded = recorded_source(config.model[0]) or trained_recipe_source(config.model[0], env_id)
    if config.source is not None:
        options = recorded[1] if recorded[0] == config.source else {}
        return config.source, options
    return recorded


def trained_recipe_source(model_path: str, env_id: str) -> tuple[str, dict]:
    """`(name, options)` of the source of the recipe a checkpoint was trained with (`recipe_of_run` on its
    `train_config.json`, the env's current recipe where that is missing); Q-learning for an env without
    a recipe."""
    if env_id not in RECIPES:
        return FALLBACK_SOURCE, {}
    train_config_path = Path(model_path) / constants.TRAIN_CONFIG
    recorded = json.loads(train_config_path.read_text()) if train_config_path.is_file() else {}
    _, recipe = recipe_of_run(env_id, recorded)
    return recipe.dataset.source, dict(recipe.dataset.source_options)


def source_run_config(name: str, options: dict, episodes: int, seed: int):
    """The config of one source run learning from scratch: the recorded `options` (those the source knows)
    with `episodes`, `seed`, one history per task and every episode kept."""
    config_cls = SOURCES[name][1]
    names = {f.name for f in dataclasses.fields(config_cls)}
    overrides = {"episodes": episodes, "seed": seed, "histories_per_task": 1, "keep_every": 1}
    return config_cls(**{**{k: v for k, v in options.items() if k in names}, **overrides})


def evaluate_source(
    name: str,
    options: dict,
    env_id: str,
    env_kwargs: dict,
    tasks: list[tuple],
    config: EvaluateConfig,
    progress: bool = False,
) -> tuple[np.ndarray, dict]:
    """The source algorithm learning every task from scratch, one learner per task and seed.

    Returns `(seeds, episodes)` run scores and the source config used. The learners of seed i run in one
    batch whose randomness comes from `seed + i`. `progress` shows one bar over every seed's episodes (this
    process's: under `accelerate launch` the seeds are shared among the processes and gathered).
    """
    learn = SOURCES[name][0]
    processes = current_processes()
    seeds = processes.share([config.seed + i for i in range(config.seeds)])
    runs = []
    with tqdm(total=len(seeds) * config.episodes, unit="episode", desc=name, disable=not progress) as bar:
        for seed in seeds:
            source_config = source_run_config(name, options, config.episodes, seed)
            returns = np.zeros((len(tasks), config.episodes))
            for block in learn(env_id, list(tasks), source_config, env_kwargs=dict(env_kwargs)):
                returns[:, block.episode] = block.returns
                bar.update()
            runs.append(returns.mean(axis=0))
    return np.stack(processes.gather_shares(runs)), source_record(name, options, config)


def source_record(name: str, options: dict, config: EvaluateConfig) -> dict:
    """The source's config as results.json records it: that of seed 0's run, with every seed listed."""
    recorded = dataclasses.asdict(source_run_config(name, options, config.episodes, config.seed))
    return recorded | {"seed": [config.seed + i for i in range(config.seeds)]}


# --- normalised scores on task distributions (the adversarial bandit) -------------------------------


NORMALISED_FORMULA = "(r - r_random) / (r_source - r_random)"


def normalise(runs: np.ndarray, random: float, reference: float) -> dict[str, float | int]:
    """The paper's bandit score of `(n, episodes)` run scores: each run's mean return per episode `r`,
    normalised so that the random policy (`random`) scores 0 and the source (`reference`) 1.

    Returns:
        `n`, the mean return per episode (`reward`), and the mean and std (ddof 0) of the normalised runs.
    """
    rewards = runs.mean(axis=1)  # (n,)
    scores = (rewards - random) / (reference - random)  # (n,)
    return {
        "n": len(rewards),
        "reward": float(rewards.mean()),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
    }


def normalised_scores(
    config: EvaluateConfig,
    recipe: EvaluationRecipe,
    source: tuple[str, dict],
    env: tuple[str, dict],
    log: Callable[[str], None] = logger.info,
    progress: bool = False,
) -> dict[str, dict]:
    """The paper's normalised bandit scores: every method on `recipe.tasks_per_distribution` tasks of each
    of `recipe.task_distributions` (`hf_ad.envs.sample_bandit_tasks`, seed `recipe.distribution_seed`),
    with `config.episodes` pulls per task and `config.seeds` seeds, normalised by the source learning the
    same tasks from scratch (`normalise`).

    Args:
        source: `(name, options)` of the source, the normalisation's reference (UCB1 for the bandit).
        env: `(env_id, env_kwargs)` of the checkpoints.

    Returns:
        `summary` (formula, reference, per distribution: tasks, seed, the random policy's and the source's
        mean return per episode), `methods[method][distribution]` and
        `per_checkpoint[method][path][distribution]`, each `normalise`'s dict.
    """
    (env_id, env_kwargs), (name, options) = env, source
    summary = {"formula": NORMALISED_FORMULA, "reference": name, "episodes": config.episodes}
    summary["distributions"] = {}
    methods: dict[str, dict] = {}
    per_checkpoint: dict[str, dict] = {}
    for distribution in recipe.task_distributions:
        tasks = sample_bandit_tasks(distribution, recipe.tasks_per_distribution, recipe.distribution_seed)
        log(f"normalised score: {len(tasks)} {distribution!r} tasks x {config.seeds} seeds")
        source_runs, _ = evaluate_source(name, options, env_id, env_kwargs, tasks, config, progress)
        random = float(np.mean([random_return(env_id, task, **env_kwargs) for task in tasks]))
        reference = float(source_runs.mean())
        summary["distributions"][distribution] = {
            "tasks": len(tasks),
            "seed": recipe.distribution_seed,
            "random": random,
            "source": reference,
        }
        methods.setdefault("source", {})[distribution] = normalise(source_runs, random, reference)
        for method, paths in checkpoint_methods(config):
            runs = []
            for path in paths:
                runs.append(evaluate_checkpoint(path, tasks, config, progress))
                scores = normalise(runs[-1], random, reference)
                per_checkpoint.setdefault(method, {}).setdefault(path, {})[distribution] = scores
            methods.setdefault(method, {})[distribution] = normalise(np.concatenate(runs), random, reference)
    return {"summary": summary, "methods": methods, "per_checkpoint": per_checkpoint}


def add_normalised(normalised: dict, methods: dict, per_checkpoint: dict) -> None:
    """Put `normalised_scores`' per-method and per-checkpoint scores under `"normalised"` in the curves'
    stats of `results.json` (`methods[method]`, `per_checkpoint[method][path]`)."""
    for method, scores in normalised["methods"].items():
        if method in methods:
            methods[method]["normalised"] = scores
    for method, paths in normalised["per_checkpoint"].items():
        for path, scores in paths.items():
            per_checkpoint[method][path]["normalised"] = scores


# --- the evaluation -------------------------------------------------------------------------------


# The methods played from checkpoints, in the order of results.json: key, flag, `EvaluateConfig` field.
CHECKPOINT_METHODS = (
    ("AD", "--model", "model"),
    ("ED", "--ed-model", "ed_model"),
    ("RL2", "--rl2-model", "rl2_model"),
)


def checkpoint_methods(config: EvaluateConfig) -> list[tuple[str, list[str]]]:
    """`(method, paths)` of every method given checkpoints, AD first."""
    return [
        (method, getattr(config, name)) for method, _, name in CHECKPOINT_METHODS if getattr(config, name)
    ]


def checkpoint_flags(config: EvaluateConfig) -> list[tuple[str, str]]:
    """`(flag, path_or_repo_id)` of every checkpoint to evaluate, AD first."""
    return [(flag, path) for _, flag, name in CHECKPOINT_METHODS for path in getattr(config, name) or []]


def is_repo_id(value: str) -> bool:
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def check_checkpoint(flag: str, value: str) -> None:
    """Refuse a checkpoint that is neither a local checkpoint folder nor a hub repo id, naming `flag`.

    `value` is a local path when it exists, when its first folder exists (`pretrained/ad-typo`) or when it
    cannot be a repo id (`runs/ad/final`); a path must be a folder holding `config.json`. Anything else is
    a repo id, whose config is loaded next (`load_checkpoint_config`).

    Raises:
        ValueError: naming the flag, the value and what to pass instead.
    """
    path = Path(value)
    if not (path.exists() or Path(path.parts[0]).is_dir() or not is_repo_id(value)):
        return
    if not (path / constants.MODEL_CONFIG).is_file():
        problem = f"has no {constants.MODEL_CONFIG}" if path.is_dir() else "is not a folder"
        raise ValueError(
            f"{flag} {value!r} {problem}: pass a checkpoint folder (the final/ folder written by "
            "`hf-ad train`) or a hub repo id org/name"
        )


def load_checkpoint_config(flag: str, value: str) -> Any:
    """The config of a checkpoint (local folder or hub repo id); a load failure names `flag` and `value`.

    Raises:
        ValueError: the folder or repo holds no loadable config (or the hub cannot be reached).
    """
    check_checkpoint(flag, value)
    try:
        return AutoConfig.from_pretrained(value)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{flag} {value!r}: cannot load its config: {' '.join(str(error).split())}"
        ) from error


def check_same_env(checkpoints: list[tuple[str, str]]) -> Any:
    """Load every checkpoint's config (`(flag, path)` pairs) and check they share one env (id and kwargs).

    Returns:
        The config of the first checkpoint.

    Raises:
        ValueError: a checkpoint that is not one, one without an env id, two checkpoints of different envs,
        or an `--rl2-model` that is not an RL² checkpoint.
    """
    configs = {path: load_checkpoint_config(flag, path) for flag, path in checkpoints}
    for flag, path in checkpoints:
        if flag == "--rl2-model" and configs[path].model_type != RL2_MODEL_TYPE:
            raise ValueError(
                f"--rl2-model {path!r} is not RL² (model type {configs[path].model_type!r}): pass a folder "
                "written by `hf-ad train-rl2`, or pass this one with --model"
            )
    first_path, first = next(iter(configs.items()))
    if first.env_id is None:
        raise ValueError(f"{first_path!r} has no env_id in its config: it cannot be evaluated on its env")
    for path, other in configs.items():
        if (other.env_id, other.env_kwargs) != (first.env_id, first.env_kwargs):
            raise ValueError(
                f"{path!r} was trained on {other.env_id!r} {other.env_kwargs}, {first_path!r} on "
                f"{first.env_id!r} {first.env_kwargs}: AD, ED and the source must play the same env; "
                "evaluate checkpoints of one env together"
            )
    return first


def check_out(out: str) -> None:
    """Refuse an output folder that cannot be written: an existing file, or under a file or read-only folder.

    Raises:
        ValueError: naming `--out`, the value and the blocking path.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out!r} is a file: pass a folder for results.json and returns.png")
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out!r} cannot be created: {str(existing)!r} is not a writable folder")


def check_source(source: tuple[str, dict], env_id: str, env_kwargs: dict, task: tuple) -> None:
    """Refuse a source that cannot learn the env: one learner plays one episode of `task` (milliseconds).

    Raises:
        ValueError: naming `--source`, the source and the env.
    """
    name, options = source
    learn = SOURCES[name][0]
    try:
        next(iter(learn(env_id, [task], source_run_config(name, options, 1, 0), env_kwargs=dict(env_kwargs))))
    except ValueError as error:
        raise ValueError(
            f"--source {name} cannot learn {env_id}: {error}; pass another --source or --source none"
        ) from error


def evaluate(
    config: EvaluateConfig, log: Callable[[str], None] = logger.info, progress: bool = False
) -> dict:
    """Evaluate AD (and ED and the source) on the held-out tasks; write the results and the plot, and the
    cards with `config.update_card`.

    Every input is checked before the first rollout: the checkpoints (`check_same_env`), the output folder
    (`check_out`) and the source (`check_source`).

    Args:
        config: what to evaluate.
        log: where the progress lines go.
        progress: show a progress bar over the episodes of each run (one bar at a time; the CLI's default).

    Returns:
        The content of `results.json`.

    Under `accelerate launch` the processes share the streams of every checkpoint and the source's seeds
    (`stream_returns`, `evaluate_source`) and gather them, so the results equal one process's; the main
    process alone logs, shows progress and writes the results, the cards and the video.

    Raises:
        ValueError: a checkpoint, the output folder or the source that cannot be used, named with its flag.
    """
    processes = current_processes()
    if not processes.is_main:
        log, progress = (lambda _: None), False
    model_config = check_same_env(checkpoint_flags(config))
    env_id, env_kwargs = model_config.env_id, dict(model_config.env_kwargs)
    recipe = RECIPES[env_id].evaluation if env_id in RECIPES else EvaluationRecipe()
    config = config.with_recipe(recipe)
    tasks = held_out_tasks(config.model[0], model_config, config.num_tasks)
    check_out(config.out)
    source = resolve_source(config, env_id)
    if source is not None:
        check_source(source, env_id, env_kwargs, tasks[0])

    pieces = EvaluationPieces(config.out, evaluation_settings(config, tasks, source), log)
    methods: dict[str, dict] = {}
    per_checkpoint: dict[str, dict[str, dict]] = {}
    for method, paths in checkpoint_methods(config):
        runs = []
        for index, path in enumerate(paths):
            log(f"{method}: {path} on {len(tasks)} tasks x {config.seeds} seeds, {config.episodes} episodes")
            checkpoint_runs = evaluate_checkpoint(path, tasks, config, progress, pieces, f"{method}-{index}")
            per_checkpoint.setdefault(method, {})[path] = curve_stats(checkpoint_runs)
            runs.append(checkpoint_runs)
        methods[method] = {
            "label": METHOD_LABELS.get(AutoConfig.from_pretrained(paths[0]).model_type, method),
            "checkpoints": list(paths),
            **curve_stats(np.concatenate(runs)),
        }

    if source is not None:
        name, options = source
        log(f"source: {name} learning from scratch on {len(tasks)} tasks x {config.seeds} seeds")
        runs = pieces.piece(
            "source", lambda: evaluate_source(name, options, env_id, env_kwargs, tasks, config, progress)[0]
        )
        source_config = source_record(name, options, config)
        methods["source"] = {"label": f"{name} (from scratch)", "source": name, "config": source_config}
        methods["source"] |= curve_stats(runs)

    optimal = [optimal_return(env_id, task, **env_kwargs) for task in tasks]
    random = [random_return(env_id, task, **env_kwargs) for task in tasks]
    normalised = None
    if recipe.task_distributions and source is not None:
        normalised = normalised_scores(config, recipe, source, (env_id, env_kwargs), log, progress)
        add_normalised(normalised, methods, per_checkpoint)

    results = {
        "command": command_line(config, "hf-ad evaluate"),
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "tasks": [list(task) for task in tasks],
        "episodes": config.episodes,
        "seeds": config.seeds,
        "seed": config.seed,
        "sample": not config.greedy,
        "ranges": [range_label(*r) for r in episode_ranges(config.episodes)],
        "oracle": {"mean": float(np.mean(optimal)), "per_task": optimal},
        "random": {"mean": float(np.mean(random)), "per_task": random},
        "methods": methods,
        "per_checkpoint": per_checkpoint,
    }
    if normalised is not None:
        results["normalised"] = normalised["summary"]
    if processes.is_main:
        write_outputs(results, config, per_checkpoint, log)
    pieces.finish()
    return results


def evaluation_settings(config: EvaluateConfig, tasks: list[tuple], source: tuple[str, dict] | None) -> dict:
    """What a rerun must share with an interrupted evaluation to reuse its finished pieces: every checkpoint
    and its weights, the tasks, the protocol and the source."""
    return {
        "checkpoints": [
            [method, path, checkpoint_digest(path)]
            for method, paths in checkpoint_methods(config)
            for path in paths
        ],
        "tasks": [list(task) for task in tasks],
        "episodes": config.episodes,
        "seeds": config.seeds,
        "seed": config.seed,
        "greedy": config.greedy,
        "source": source,
        "pieces": [[piece.start, piece.stop] for piece in seed_pieces(len(tasks), config.seeds)],
    }


def write_outputs(
    results: dict, config: EvaluateConfig, per_checkpoint: dict, log: Callable[[str], None]
) -> None:
    """Write `results.json` and the plot to `config.out`; with `update_card` the cards; with `video` the
    replay video."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / constants.RESULTS_JSON, json.dumps(results, indent=1))
    plot_returns(results, out / constants.RESULTS_PNG)
    log(f"wrote {out / constants.RESULTS_JSON} and {out / constants.RESULTS_PNG}")
    if config.update_card:
        for method, checkpoints in per_checkpoint.items():
            for path, stats in checkpoints.items():
                if Path(path).is_dir():
                    update_model_card(Path(path), results, method, stats)
                    log(f"updated the model card of {path}")
    if config.video:
        make_video(replay_config(config), log=log)


def replay_config(config: EvaluateConfig) -> VideoConfig:
    """The `hf-ad video` run an evaluation makes: its first AD checkpoint, first task, episodes and seed."""
    return VideoConfig(
        model=config.model[0],
        out=config.out,
        episodes=config.episodes,
        seed=config.seed,
        greedy=config.greedy,
        device=config.device,
        update_card=config.update_card and Path(config.model[0]).is_dir(),
    )


# --- outputs --------------------------------------------------------------------------------------


def plot_returns(results: dict, path: Path) -> None:
    """Write the PNG of every method's mean return per episode (± 1 std band), oracle and random lines."""
    bands = [
        Band(
            np.arange(1, results["episodes"] + 1),
            stats["mean"],
            stats["std"],
            f"{stats['label']} (n={stats['n']})",
        )
        for stats in results["methods"].values()
    ]
    levels = [
        Level(results["oracle"]["mean"], "oracle", color="black", linestyle="--"),
        Level(results["random"]["mean"], "random policy", color="gray", linestyle=":"),
    ]
    title = f"{results['env_id']}: {len(results['tasks'])} held-out tasks, mean ± 1 std over runs"
    save_band_plot(path, bands, title, levels, figsize=(7, 4.2), dpi=120, linewidth=1.2)


def summary_lines(results: dict) -> list[str]:
    """One line per method with its summary numbers, then the oracle and the random policy."""
    lines = []
    for stats in results["methods"].values():
        numbers = ", ".join(f"{key} {v['mean']:.2f} ± {v['std']:.2f}" for key, v in stats["summary"].items())
        lines.append(f"{stats['label']} (n={stats['n']}): {numbers}")
    lines.append(f"oracle {results['oracle']['mean']:.2f}, random policy {results['random']['mean']:.2f}")
    return lines


__all__ = [
    "EvaluateConfig",
    "curve_stats",
    "episode_ranges",
    "evaluate",
    "evaluate_source",
    "normalise",
    "normalised_scores",
    "plot_returns",
    "summary_lines",
]
