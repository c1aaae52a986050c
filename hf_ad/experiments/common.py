"""What every experiment shares: its run config, the env loop around an agent, the baselines' curves, and
writing `results.json`.

An experiment plays methods (AD, ED, the scripted heuristic, Q-learning from scratch) on the held-out
tasks of the AD checkpoint's env, `seeds` evaluation seeds each, and scores them like `hf-ad evaluate`:
a *run* is one evaluation seed over all the tasks, its score per episode the mean return over the tasks,
and a method's curve the mean, std (ddof 0) and number of its runs (`hf_ad.evaluation.curve_stats`).
Actions are sampled. Stream `i * num_tasks + k` is evaluation seed `i` on task `k`; its env is seeded with
`seed + i * num_tasks + k` (the batched env's `reset(seed=seed)`), its sampling by the agent's generator
seeded with `seed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from transformers import AutoConfig

from hf_ad.agent import InContextAgent
from hf_ad.baselines import ExploreThenStay
from hf_ad.command_line import command_line
from hf_ad.constants import DARK_ROOM, DARK_ROOM_HARD
from hf_ad.data.generate import DEFAULTS
from hf_ad.demo import shipped_checkpoint
from hf_ad.envs import make_vector_env, optimal_return, random_return
from hf_ad.evaluation import curve_stats, runs_from_returns, source_run_config
from hf_ad.files import atomic_write_json
from hf_ad.plotting import Band, Level, save_band_plot
from hf_ad.sources import SOURCES
from hf_ad.sources.base import EpisodeBlock

EXPERIMENT_PROGRAM = "hf-ad experiment"
RESULTS_FILE = "results.json"
SOURCE = "q_learning"
# The checkpoints the experiments measure by default: the first Dark Room release, distilled from Q-learning
# (`hf_ad.recipes.DARK_ROOM_V1_RECIPE`), which is the algorithm-distillation question docs/EVIDENCE.md asks.
EVIDENCE_AD, EVIDENCE_ED = "ad-darkroom-v1", "ed-darkroom-v1"
GOAL_ROOMS = (DARK_ROOM, DARK_ROOM_HARD)  # the envs the experiments apply to: one invisible goal cell


@dataclass
class ExperimentConfig:
    """`hf-ad experiment NAME`: one evaluation-only experiment on the shipped (or given) checkpoints."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "AD checkpoint folder or hub repo id. Default: the first Dark Room release, "
            "pretrained/ad-darkroom-v1."
        },
    )
    ed_model: str | None = field(
        default=None,
        metadata={
            "help": "ED checkpoint folder or hub repo id. Default: the first Dark Room release, "
            "pretrained/ed-darkroom-v1."
        },
    )
    out: str | None = field(
        default=None,
        metadata={"help": "Output folder for results.json and the plot. Default: runs/experiments/NAME."},
    )
    seeds: int = field(default=10, metadata={"help": "Evaluation seeds (runs) per method."})
    episodes: int | None = field(
        default=None,
        metadata={"help": "Episodes per stream. Default: the experiment's own (see its module)."},
    )
    seed: int = field(
        default=0, metadata={"help": "Base seed of the envs, the action sampling and the learners."}
    )
    num_tasks: int | None = field(
        default=None, metadata={"help": "Use the first N held-out tasks only. Default: all of them."}
    )
    switch_episode: int | None = field(
        default=None,
        metadata={
            "help": "goal-switch: the episode (0-based) from which the goal moves. Default: half of them."
        },
    )
    reward_prob: float = field(
        default=0.5, metadata={"help": "stochastic-reward: the probability that a step on the goal pays."}
    )
    device: str | None = field(default=None, metadata={"help": "Torch device of the models (default: CPU)."})
    # --- the experiments that train (ablation-*, ood; hf_ad.experiments.arms): one budget for every arm
    steps: int | None = field(
        default=None,
        metadata={"help": "Training experiments: optimizer steps per arm. Default: the experiment's."},
    )
    batch_size: int | None = field(
        default=None,
        metadata={"help": "Training experiments: windows per batch. Default: the recipe's (32)."},
    )
    histories_per_task: int | None = field(
        default=None,
        metadata={
            "help": "Training experiments: source learners per training goal. Default: the experiment's."
        },
    )
    source_episodes: int | None = field(
        default=None,
        metadata={
            "help": "Training experiments: source episodes per history, before subsampling. Default: "
            "the recipe's (500)."
        },
    )
    arms: str | None = field(
        default=None,
        metadata={"help": "Training experiments: run only these arms (comma-separated values, e.g. 1,4)."},
    )
    work_dir: str = field(
        default="runs/experiments",
        metadata={"help": "Training experiments: where the histories (histories/) and runs (runs/) go."},
    )

    def __post_init__(self):
        for name in (
            "seeds",
            "episodes",
            "num_tasks",
            "switch_episode",
            "steps",
            "batch_size",
            "histories_per_task",
            "source_episodes",
        ):
            value = getattr(self, name)
            minimum = 0 if name == "switch_episode" else 1
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < minimum
            ):
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not 0 < self.reward_prob <= 1:
            raise ValueError(f"reward_prob must be a probability in (0, 1], got {self.reward_prob!r}")

    def resolved(self, name: str, default_episodes: int) -> ExperimentConfig:
        """This config with the shipped first-release checkpoints, `runs/experiments/NAME` and the
        experiment's episodes filled in where not given."""
        return dataclasses.replace(
            self,
            model=self.model or shipped_checkpoint(EVIDENCE_AD),
            ed_model=self.ed_model or shipped_checkpoint(EVIDENCE_ED),
            out=self.out or str(Path("runs") / "experiments" / name),
            episodes=self.episodes or default_episodes,
        )


class Agent(Protocol):
    """What `play` drives: `hf_ad.InContextAgent` and `hf_ad.baselines.ExploreThenStay`."""

    def reset(self, num_streams: int = 1, seed: int | None = None) -> None: ...
    def act(self, observations) -> np.ndarray: ...
    def observe(self, rewards, episode_ended=None) -> None: ...


@dataclass
class Setting:
    """The env and tasks of an experiment: the AD checkpoint's env on its held-out tasks."""

    env_id: str
    env_kwargs: dict
    tasks: list[tuple]
    seeds: int

    @property
    def streams(self) -> list[tuple]:
        """Every stream's task, seed-major: `tasks * seeds`."""
        return self.tasks * self.seeds

    def oracle(self, tasks: Sequence[tuple] | None = None, **env_kwargs) -> float:
        """Mean optimal return of one episode over `tasks` (default: the held-out tasks)."""
        kwargs = {**self.env_kwargs, **env_kwargs}
        return float(np.mean([optimal_return(self.env_id, task, **kwargs) for task in tasks or self.tasks]))

    def random(self, **env_kwargs) -> float:
        """Mean expected return of one episode of the uniformly random policy over the held-out tasks."""
        kwargs = {**self.env_kwargs, **env_kwargs}
        return float(np.mean([random_return(self.env_id, task, **kwargs) for task in self.tasks]))


def setting(config: ExperimentConfig) -> Setting:
    """The checkpoint's env (id, kwargs) and its first `num_tasks` held-out tasks."""
    model_config = AutoConfig.from_pretrained(config.model)
    if model_config.env_id not in GOAL_ROOMS:
        raise ValueError(
            f"--model {config.model!r} plays {model_config.env_id}; these experiments (the heuristic "
            f"baseline, moving goals, reward_prob) need a checkpoint of {list(GOAL_ROOMS)}"
        )
    tasks = [tuple(task) for task in model_config.test_tasks][: config.num_tasks]
    if not tasks:
        raise ValueError(f"--model {config.model!r} records no held-out tasks (test_tasks) in its config")
    return Setting(model_config.env_id, dict(model_config.env_kwargs), tasks, config.seeds)


def load_agent(path: str, config: ExperimentConfig, **from_pretrained_kwargs) -> InContextAgent:
    return InContextAgent.from_pretrained(
        path, seed=config.seed, device=config.device, **from_pretrained_kwargs
    )


def heuristic_agent(setting: Setting, config: ExperimentConfig, reexplore: bool = False) -> ExploreThenStay:
    size = make_vector_env(setting.env_id, setting.tasks[:1], **setting.env_kwargs).size
    return ExploreThenStay(size=size, seed=config.seed, reexplore=reexplore)


@dataclass
class GoalSwitch:
    """From episode `episode` (0-based) on, stream `i` plays `tasks[i]`; the agent keeps its context."""

    episode: int
    tasks: list[tuple]


def play(
    agent: Agent,
    setting: Setting,
    episodes: int,
    seed: int,
    switch: GoalSwitch | None = None,
    env_kwargs: dict | None = None,
    prompt: Any = None,
    record: list | None = None,
) -> np.ndarray:
    """Play `agent` on every stream of `setting` for `episodes` episodes: `(streams, episodes)` returns.

    Args:
        agent: reset here with `num_streams` streams and `seed`.
        setting: the env and the streams' tasks.
        episodes: episodes per stream (lock-step: all streams end their episodes together).
        seed: the envs' seed (`reset(seed=seed)`) and the agent's.
        switch: move the goals at an episode boundary (the env is reset with the new tasks; the agent is not).
        env_kwargs: override the setting's env kwargs (e.g. `reward_prob`).
        prompt: transitions `prefill`ed into the agent's context before the first step (AD/ED only).
        record: a list that gets `(observations, actions, rewards)` of every step, `(streams, ...)` each.
    """
    env = make_vector_env(setting.env_id, setting.streams, **{**setting.env_kwargs, **(env_kwargs or {})})
    agent.reset(num_streams=env.num_envs, seed=seed)
    if prompt is not None:
        agent.prefill(prompt)
    observations, _ = env.reset(seed=seed)
    returns = np.zeros((env.num_envs, episodes))
    for episode in range(episodes):
        if switch is not None and episode == switch.episode:
            observations, _ = env.reset(options={"tasks": switch.tasks})
        for _ in range(env.max_episode_steps):
            actions = agent.act(observations)
            next_observations, rewards, terminated, truncated, _ = env.step(actions)
            if record is not None:
                record.append((observations, actions, rewards))
            observations = next_observations
            ended = terminated | truncated
            agent.observe(rewards, ended)
            returns[:, episode] += rewards
            if ended.all():
                break
        else:
            raise RuntimeError(f"an episode of {setting.env_id} did not end in {env.max_episode_steps} steps")
    env.close()
    return returns


def learn_from_scratch(
    setting: Setting, streams: Sequence[tuple], episodes: int, seed: int, env_kwargs: dict | None = None
) -> Iterator[EpisodeBlock]:
    """Q-learning (with the env's recipe options where Q-learning is its recipe's source) from scratch, one
    independent learner per entry of `streams`, all in one batch seeded with `seed`: every episode's
    `EpisodeBlock`."""
    defaults = DEFAULTS.get(setting.env_id)
    options = defaults.source_options if defaults is not None and defaults.source == SOURCE else {}
    learn = SOURCES[SOURCE][0]
    kwargs = {**setting.env_kwargs, **(env_kwargs or {})}
    return learn(setting.env_id, list(streams), source_run_config(SOURCE, options, episodes, seed), kwargs)


def source_returns(
    setting: Setting,
    episodes: int,
    seed: int,
    tasks: Sequence[tuple] | None = None,
    env_kwargs: dict | None = None,
) -> np.ndarray:
    """`(streams, episodes)` returns of Q-learning from scratch on every stream of `setting` (or on
    `tasks * seeds`)."""
    streams = list(tasks) * setting.seeds if tasks is not None else setting.streams
    returns = np.zeros((len(streams), episodes))
    for block in learn_from_scratch(setting, streams, episodes, seed, env_kwargs):
        returns[:, block.episode] = block.returns
    return returns


def curves(returns: np.ndarray, seeds: int) -> dict[str, Any]:
    """`curve_stats` of `(seeds * tasks, episodes)` stream returns scored per run (mean over tasks)."""
    return curve_stats(runs_from_returns(returns, seeds))


def experiment_command(name: str, config: ExperimentConfig) -> str:
    """The `hf-ad experiment NAME ...` line that reruns `config` (the flags given, before `resolved`)."""
    return command_line(config, f"{EXPERIMENT_PROGRAM} {name}")


def finish(
    name: str, command: str, config: ExperimentConfig, setting: Setting, results: dict[str, Any]
) -> dict[str, Any]:
    """Add what every results.json records (command, env, tasks, settings) and write `<out>/results.json`."""
    results = {
        "experiment": name,
        "command": command,
        "env_id": setting.env_id,
        "env_kwargs": setting.env_kwargs,
        "tasks": [list(task) for task in setting.tasks],
        "settings": {
            "model": config.model,
            "ed_model": config.ed_model,
            "seeds": config.seeds,
            "episodes": config.episodes,
            "seed": config.seed,
            "sample": True,
            "out": config.out,
        },
        **results,
    }
    atomic_write_json(Path(config.out) / RESULTS_FILE, results)
    return results


def first_episode_at_least(returns: np.ndarray, level: np.ndarray | float) -> np.ndarray:
    """`(streams,)` index of each stream's first episode with return >= `level` (one value, or `(streams,)`);
    -1 where there is none."""
    levels = np.broadcast_to(np.asarray(level, dtype=float), returns.shape[:1])  # (S,)
    reached = returns >= levels[:, None]  # (S, E)
    return np.where(reached.any(axis=1), reached.argmax(axis=1), -1)


def episodes_until(first: np.ndarray) -> dict[str, float | int | None]:
    """Summary of `first_episode_at_least` indices: how many streams got there, and in how many episodes
    (1-based: 1 = the first episode), mean and median over those that did."""
    done = first[first >= 0] + 1
    return {
        "streams": int(first.size),
        "reached": int(done.size),
        "mean_episodes": float(done.mean()) if done.size else None,
        "median_episodes": float(np.median(done)) if done.size else None,
    }


def save_curves(
    path: str | Path,
    curves_by_label: dict[str, dict],
    title: str,
    oracle: float,
    first_episode: dict[str, int] | None = None,
) -> None:
    """Mean ± std per method (`curves` dicts) and the oracle as a dashed line; `first_episode[label]`
    (0-based) shifts a curve that starts later (e.g. a learner started at a goal switch)."""
    bands = []
    for label, curve in curves_by_label.items():
        start = (first_episode or {}).get(label, 0)
        x = np.arange(start, start + len(curve["mean"])) + 1  # 1-based episodes
        bands.append(Band(x, curve["mean"], curve["std"], label))
    save_band_plot(path, bands, title, levels=[Level(oracle, "oracle", "black", "--")])


def per_task(returns: np.ndarray, num_tasks: int, first: int, last: int) -> list[float]:
    """Mean return of each task over episodes `first..last` (1-based, inclusive) and every seed."""
    by_task = returns.reshape(-1, num_tasks, returns.shape[-1])  # (seeds, tasks, E)
    return by_task[:, :, first - 1 : last].mean(axis=(0, 2)).tolist()


def experiment_summary(results: dict[str, Any]) -> list[str]:
    """Lines to print after a run: where the results are, and each method's summary ranges."""
    lines = [f"{results['experiment']}: {results['settings']['out']}/{RESULTS_FILE}"]
    for label, method in results.get("methods", {}).items():
        ranges = ", ".join(f"{name} {value['mean']:.2f}" for name, value in method.get("summary", {}).items())
        lines.append(f"  {label}: {ranges}")
    return lines
