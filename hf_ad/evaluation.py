"""The paper's evaluation: AD against ED and the source algorithm learning from scratch, on held-out tasks.

`evaluate(EvaluateConfig(...))` (or `hf-ad evaluate --model PATH [--ed-model PATH] ...`) plays every method
on the same held-out tasks of the checkpoint's env, with the same env seeds, for `episodes` episodes:

- AD and ED: the frozen model acting in context (`InContextRLPipeline`), one run per checkpoint (training
  seed) and evaluation seed; the context is filled by the agent itself, no demonstrations (section 4);
- the source algorithm (e.g. tabular Q-learning) learning each task from scratch, one run per seed.

A *run* is one checkpoint and one evaluation seed over all the tasks; its score per episode is the mean
return over the tasks. Each method reports, per episode, the mean, the standard deviation (ddof 0) and
the number `n` of its runs, as in the paper's figures (mean ± 1 std). The evaluation seeds of a checkpoint
are played as one batch (tasks x seeds streams at once), each stream with its own env seed; the source's
seed i runs with seed `seed + i`.

Writes to `out`: `results.json` (every curve, the oracle's and the random policy's returns, and summary
numbers over episode ranges), `returns.png` (return vs. episode, ±1 std bands, the oracle line),
`replay.mp4` (the first AD checkpoint on the first task, episode 1 next to the last: `hf_ad.video`), and
fills the `model-index` and an evaluation table in each local checkpoint's model card (`README.md`; the
first AD checkpoint's folder also gets `replay.mp4`, which its card embeds).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoConfig

from hf_ad import constants
from hf_ad.cards import update_model_card
from hf_ad.command_line import command_line
from hf_ad.data.generate import DEFAULTS
from hf_ad.envs import optimal_return, random_return
from hf_ad.files import atomic_write_text
from hf_ad.plotting import Band, Level, save_band_plot
from hf_ad.rollout import InContextRLPipeline
from hf_ad.sources import SOURCE_NAMES, SOURCES
from hf_ad.video import VideoConfig, make_video

logger = logging.getLogger(__name__)

# Episode ranges (1-based, inclusive) summarised in results.json and the model card: early, the paper's
# "episode 200" point, plus the last 100 episodes (added per run, clipped to the episodes played).
SUMMARY_RANGES = ((1, 10), (41, 50), (191, 200))
LAST_EPISODES = 100
FALLBACK_SOURCE = "q_learning"


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
    source: str | None = field(
        default=None,
        metadata={
            "help": "Source algorithm learning from scratch, a name in hf_ad.sources.SOURCES, or 'none' to "
            "skip it. Default: the source recorded with the checkpoint's training data, else the env's "
            "default source."
        },
    )
    episodes: int = field(default=1000, metadata={"help": "Episodes per task and run (the paper: 1000)."})
    seeds: int = field(
        default=5, metadata={"help": "Evaluation seeds: runs per checkpoint (and of the source)."}
    )
    seed: int = field(
        default=0, metadata={"help": "Base seed of the envs, the action sampling and the source."}
    )
    num_tasks: int | None = field(
        default=None, metadata={"help": "Evaluate the first N held-out tasks only (default: all of them)."}
    )
    greedy: bool = field(
        default=False,
        metadata={"help": "Greedy actions instead of sampling from the policy (not the paper's)."},
    )
    device: str | None = field(
        default=None, metadata={"help": "Torch device of the models (default: GPU if any)."}
    )
    update_cards: bool = field(
        default=True, metadata={"help": "Write the measured numbers into each local checkpoint's model card."}
    )
    video: bool = field(
        default=True,
        metadata={
            "help": "Write replay.mp4: the first AD checkpoint on the first held-out task, episode 1 next "
            "to the last (one more rollout, of one stream); with update_cards also into its folder and card."
        },
    )

    def __post_init__(self):
        if isinstance(self.model, str):
            self.model = [self.model]
        if isinstance(self.ed_model, str):
            self.ed_model = [self.ed_model]
        if not self.model:
            raise ValueError("model must name at least one AD checkpoint")
        for name in ("episodes", "seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_tasks is not None and (isinstance(self.num_tasks, bool) or self.num_tasks < 1):
            raise ValueError(f"num_tasks must be a positive integer or None, got {self.num_tasks!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.source is not None and self.source != "none" and self.source not in SOURCE_NAMES:
            raise ValueError(f"source must be one of {SOURCE_NAMES} or 'none', got {self.source!r}")


# --- statistics -----------------------------------------------------------------------------------


def episode_ranges(episodes: int) -> list[tuple[int, int]]:
    """The summary ranges that fit in `episodes`, plus the last `LAST_EPISODES` (1-based, inclusive)."""
    ranges = [(first, last) for first, last in SUMMARY_RANGES if last <= episodes]
    final = (max(1, episodes - LAST_EPISODES + 1), episodes)
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


def stream_outcomes(returns: np.ndarray, window: int, solved: float) -> dict[str, float | int]:
    """How single streams change: the first vs the last `window` episodes of `returns (streams, episodes)`.

    The run scores average over tasks, which cannot tell a policy that improves a little on every task
    from one where a few streams jump from failing to solving (the lucky streams of ED: it walks back to
    a goal it stumbled on). `solved` is the mean return that counts as solving a task.
    """
    first = returns[:, :window].mean(axis=1)  # (streams,)
    last = returns[:, -window:].mean(axis=1)  # (streams,)
    return {
        "streams": len(returns),
        "first_mean": float(first.mean()),
        "last_mean": float(last.mean()),
        "solved_first": int((first >= solved).sum()),
        "solved_last": int((last >= solved).sum()),
        "under_1_last": int((last < 1).sum()),
        "failing_to_solved": int(((first < solved) & (last >= solved)).sum()),
    }


# --- the methods ----------------------------------------------------------------------------------


def held_out_tasks(path: str, model_config: Any, num_tasks: int | None = None) -> list[tuple]:
    """The first `num_tasks` (default: all) held-out tasks recorded in the config of checkpoint `path`."""
    tasks = [tuple(task) for task in model_config.test_tasks][:num_tasks]
    if not tasks:
        raise ValueError(f"{path!r} has no held-out tasks (test_tasks) in its config")
    return tasks


def stream_returns(path: str, tasks: list[tuple], config: EvaluateConfig) -> tuple[np.ndarray, Any]:
    """Play one AD/ED checkpoint on `tasks` for every evaluation seed.

    Returns the `(seeds * tasks, episodes)` seed-major returns of every stream (one task, one evaluation
    seed) and the checkpoint's config.
    """
    pipe = InContextRLPipeline.from_pretrained(path, device=config.device)
    # All seeds in one batch: stream (i, task) is evaluation seed i; every stream has its own env seed.
    result = pipe(
        tasks=tasks * config.seeds, num_episodes=config.episodes, seed=config.seed, sample=not config.greedy
    )
    return result.returns, pipe.model.config


def evaluate_checkpoint(path: str, tasks: list[tuple], config: EvaluateConfig) -> tuple[np.ndarray, Any]:
    """Run one AD/ED checkpoint on `tasks` for every evaluation seed: `(seeds, episodes)` run scores."""
    returns, model_config = stream_returns(path, tasks, config)
    return runs_from_returns(returns, config.seeds), model_config


def recorded_source(model_path: str) -> tuple[str, dict] | None:
    """The source algorithm and options that generated a checkpoint's training data, if recorded locally.

    Looks for the dataset folder named in the checkpoint's `train_config.json` and reads its histories
    metadata (`source`, `generator_config`). Returns `None` when any of it is not available.
    """
    train_config_path = Path(model_path) / constants.TRAIN_CONFIG
    if not train_config_path.is_file():
        return None
    train_config = json.loads(train_config_path.read_text())
    for key in ("dataset", "dataset_path", "dataset_name"):
        dataset = train_config.get(key)
        if isinstance(dataset, str) and (Path(dataset) / constants.HISTORIES_METADATA).is_file():
            metadata = json.loads((Path(dataset) / constants.HISTORIES_METADATA).read_text())
            if "source" in metadata:
                return metadata["source"], dict(metadata.get("generator_config") or {})
    return None


def resolve_source(config: EvaluateConfig, env_id: str) -> tuple[str, dict] | None:
    """`(name, options)` of the source baseline, or `None` when it is skipped (`source='none'`)."""
    if config.source == "none":
        return None
    recorded = recorded_source(config.model[0])
    if config.source is not None:
        options = recorded[1] if recorded is not None and recorded[0] == config.source else {}
        return config.source, options
    if recorded is not None:
        return recorded
    return (DEFAULTS[env_id].source if env_id in DEFAULTS else FALLBACK_SOURCE), {}


def evaluate_source(
    name: str, options: dict, env_id: str, env_kwargs: dict, tasks: list[tuple], config: EvaluateConfig
) -> tuple[np.ndarray, dict]:
    """The source algorithm learning every task from scratch, one learner per task and seed.

    Returns `(seeds, episodes)` run scores and the source config used. The learners of seed i run in one
    batch whose randomness comes from `seed + i`.
    """
    learn, config_cls = SOURCES[name]
    names = {f.name for f in dataclasses.fields(config_cls)}
    runs = []
    for i in range(config.seeds):
        overrides = {
            "episodes": config.episodes,
            "seed": config.seed + i,
            "histories_per_task": 1,
            "keep_every": 1,
        }
        source_config = config_cls(**{**{k: v for k, v in options.items() if k in names}, **overrides})
        returns = np.zeros((len(tasks), config.episodes))
        for block in learn(env_id, list(tasks), source_config, env_kwargs=dict(env_kwargs)):
            returns[:, block.episode] = block.returns
        runs.append(returns.mean(axis=0))
    return np.stack(runs), dataclasses.asdict(source_config) | {
        "seed": [config.seed + i for i in range(config.seeds)]
    }


# --- the evaluation -------------------------------------------------------------------------------


def check_same_env(paths: list[str]) -> Any:
    """Load every checkpoint's config and check they share one env (id and kwargs), before any rollout.

    Returns:
        The config of the first checkpoint.

    Raises:
        ValueError: a checkpoint without an env id, or two checkpoints of different envs.
    """
    configs = {path: AutoConfig.from_pretrained(path) for path in paths}
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


def evaluate(config: EvaluateConfig, log: Callable[[str], None] = logger.info) -> dict:
    """Evaluate AD (and ED and the source) on the held-out tasks; write results, the plot and the cards.

    Returns:
        The content of `results.json`.
    """
    model_config = check_same_env(config.model + (config.ed_model or []))
    env_id, env_kwargs = model_config.env_id, dict(model_config.env_kwargs)
    tasks = held_out_tasks(config.model[0], model_config, config.num_tasks)

    methods: dict[str, dict] = {}
    per_checkpoint: dict[str, dict[str, dict]] = {}
    for method, paths in (("AD", config.model), ("ED", config.ed_model or [])):
        runs = []
        for path in paths:
            log(f"{method}: {path} on {len(tasks)} tasks x {config.seeds} seeds, {config.episodes} episodes")
            checkpoint_runs, _ = evaluate_checkpoint(path, tasks, config)
            per_checkpoint.setdefault(method, {})[path] = curve_stats(checkpoint_runs)
            runs.append(checkpoint_runs)
        if runs:
            methods[method] = {
                "label": method,
                "checkpoints": list(paths),
                **curve_stats(np.concatenate(runs)),
            }

    source = resolve_source(config, env_id)
    if source is not None:
        name, options = source
        log(f"source: {name} learning from scratch on {len(tasks)} tasks x {config.seeds} seeds")
        runs, source_config = evaluate_source(name, options, env_id, env_kwargs, tasks, config)
        methods["source"] = {"label": f"{name} (from scratch)", "source": name, "config": source_config}
        methods["source"] |= curve_stats(runs)

    optimal = [optimal_return(env_id, task, **env_kwargs) for task in tasks]
    random = [random_return(env_id, task, **env_kwargs) for task in tasks]

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
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / constants.RESULTS_JSON, json.dumps(results, indent=1))
    plot_returns(results, out / constants.RESULTS_PNG)
    log(f"wrote {out / constants.RESULTS_JSON} and {out / constants.RESULTS_PNG}")
    if config.update_cards:
        for method in ("AD", "ED"):
            for path, stats in per_checkpoint.get(method, {}).items():
                if Path(path).is_dir():
                    update_model_card(Path(path), results, method, stats)
                    log(f"updated the model card of {path}")
    if config.video:
        make_video(replay_config(config), log=log)
    return results


def replay_config(config: EvaluateConfig) -> VideoConfig:
    """The `hf-ad video` run an evaluation makes: its first AD checkpoint, first task, episodes and seed."""
    return VideoConfig(
        model=config.model[0],
        out=config.out,
        episodes=config.episodes,
        seed=config.seed,
        greedy=config.greedy,
        device=config.device,
        update_card=config.update_cards and Path(config.model[0]).is_dir(),
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
    "plot_returns",
    "summary_lines",
]
