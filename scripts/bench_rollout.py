"""Rollout speed: the KV-cached streaming pipeline against recomputing the context every step, same run.

Usage:
    OMP_NUM_THREADS=1 python scripts/bench.py rollout          # writes the section of BENCHMARKS.md
    OMP_NUM_THREADS=1 python scripts/bench_rollout.py          # prints it only

A paper-size random-init AD model (embedding 64, 4 layers, 4 heads, window 80 transitions) plays Dark
Room through `InContextRLPipeline` on 81 and 1024 tasks at once (sampled actions, native batched env):

- cached: the pipeline's default, one `(B, 1)` model step per env step through the sliding-window KV
  cache, from an empty context (the window fills after 80 steps);
- recompute: `use_cache=False, context_length=80`, every step recomputes the last 80 transitions from
  scratch (what the public AD^eps evaluation does); the context is prefilled with an 80-transition prompt
  so that every timed step recomputes a full window.

Env-steps/s = tasks x steps / time of the whole call (env stepping, sampling and bookkeeping included),
per second of the process's CPU time (robust to a shared machine) and per wall-clock second.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

import hf_ad  # noqa: F401  (registers the envs)
from hf_ad import ADConfig, ADModel, InContextRLPipeline, constants
from hf_ad.envs import all_tasks

TASK_COUNTS = (81, 1024)
WINDOW = 80
EPISODE_STEPS = 20
CACHED_EPISODES = {81: 20, 1024: 10}
RECOMPUTE_EPISODES = 1
CACHED_REPEATS = 3
GOAL_VS_RECOMPUTE = 20
AD_EPS_ENV_STEPS_PER_S = 300  # the public AD^eps evaluation over 81 goals with a small model, this machine
GOAL_VS_AD_EPS = 100


def paper_size_pipeline(device: str = "cpu") -> InContextRLPipeline:
    torch.manual_seed(0)
    config = ADConfig(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        sliding_window=WINDOW,
        env_id=constants.DARK_ROOM,
        test_tasks=[list(task) for task in all_tasks(constants.DARK_ROOM)],
    )
    return InContextRLPipeline(ADModel(config), task=constants.PIPELINE_TASK, device=device)


def full_window_prompt(num_tasks: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "observations": rng.integers(0, 9, size=(num_tasks, WINDOW, 2)),
        "actions": rng.integers(0, 5, size=(num_tasks, WINDOW)),
        "rewards": (rng.random((num_tasks, WINDOW)) < 0.2).astype(np.float32),
    }


def env_steps_per_s(pipe: InContextRLPipeline, tasks: list, episodes: int, **kwargs) -> tuple[float, float]:
    """`(per CPU second, per wall second)` of one pipeline call."""
    wall, cpu = time.perf_counter(), time.process_time()
    pipe(tasks=tasks, num_episodes=episodes, seed=0, **kwargs)
    env_steps = len(tasks) * episodes * EPISODE_STEPS
    return env_steps / (time.process_time() - cpu), env_steps / (time.perf_counter() - wall)


def measure(pipe: InContextRLPipeline, num_tasks: int) -> dict[str, float]:
    goals = all_tasks(constants.DARK_ROOM)
    tasks = [goals[i % len(goals)] for i in range(num_tasks)]
    env_steps_per_s(pipe, tasks, 1)  # warm-up
    cached = [env_steps_per_s(pipe, tasks, CACHED_EPISODES[num_tasks]) for _ in range(CACHED_REPEATS)]
    recompute_cpu, recompute_wall = env_steps_per_s(
        pipe,
        tasks,
        RECOMPUTE_EPISODES,
        use_cache=False,
        context_length=WINDOW,
        prompt=full_window_prompt(num_tasks),
    )
    cached_cpu = statistics.median(rate for rate, _ in cached)
    cached_wall = statistics.median(rate for _, rate in cached)
    return {
        "cached": cached_cpu,
        "cached_wall": cached_wall,
        "recompute": recompute_cpu,
        "recompute_wall": recompute_wall,
        "ratio": cached_cpu / recompute_cpu,
        "ratio_wall": cached_wall / recompute_wall,
    }


def _met(value: float, goal: float) -> str:
    return "met" if value >= goal else "NOT met"


def run() -> str:
    pipe = paper_size_pipeline()
    figures = {num_tasks: measure(pipe, num_tasks) for num_tasks in TASK_COUNTS}
    vs_ad_eps = {n: m["cached_wall"] / AD_EPS_ENV_STEPS_PER_S for n, m in figures.items()}
    rows = [
        f"| {n} | {m['cached']:,.0f} | {m['cached_wall']:,.0f} | {m['recompute']:,.0f} "
        f"| {m['recompute_wall']:,.0f} | {m['ratio']:,.0f}x | {m['ratio_wall']:,.0f}x "
        f"| {vs_ad_eps[n]:,.0f}x |"
        for n, m in figures.items()
    ]
    worst_ratio = min(m["ratio"] for m in figures.values())
    config = pipe.model.config
    kv_bytes = WINDOW * config.hidden_size * 2 * 4 * config.num_hidden_layers
    model = (
        f"embedding {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} "
        f"heads, feed-forward {config.intermediate_size}, window {WINDOW} transitions"
    )
    lines = [
        f"Env-steps/s of `InContextRLPipeline` on Dark Room with a random-init model of the paper's size "
        f"({model}), sampled actions, the native batched env; the whole call is timed (env, sampling and "
        "bookkeeping included). Cached: one (B, 1) step per env step through the sliding-window KV cache, "
        f"{CACHED_EPISODES[81]} / {CACHED_EPISODES[1024]} episodes at 81 / 1024 tasks from an empty context, "
        f"median of {CACHED_REPEATS} runs. Recompute (baseline): `use_cache=False, context_length={WINDOW}`, "
        f"the last {WINDOW} transitions recomputed every step, context prefilled with {WINDOW} prompt "
        f"transitions so that every step is a full window, {RECOMPUTE_EPISODES} episode. CPU: per second "
        "of the process's CPU time (one thread), which a shared machine disturbs less; wall: per wall-clock "
        "second.",
        "",
        "| tasks | cached, CPU | cached, wall | recompute, CPU | recompute, wall | cached / recompute, CPU "
        "| same, wall | cached wall / AD^eps (~300) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Goal: cached >= {GOAL_VS_RECOMPUTE}x recompute at both sizes: **{worst_ratio:,.0f}x (the smaller), "
        f"{_met(worst_ratio, GOAL_VS_RECOMPUTE)}**.",
        f"Goal: >= {GOAL_VS_AD_EPS}x the public AD^eps evaluation, which steps about "
        f"{AD_EPS_ENV_STEPS_PER_S} env-steps/s over 81 goals on this machine with a small model, recomputing "
        f"the context every step (context, not rerun here): **{vs_ad_eps[81]:,.0f}x at 81 tasks "
        f"({_met(vs_ad_eps[81], GOAL_VS_AD_EPS)}), {vs_ad_eps[1024]:,.0f}x at 1024 tasks "
        f"({_met(vs_ad_eps[1024], GOAL_VS_AD_EPS)})**, wall-clock figures.",
        "",
        f"A cached step reads the whole cached window: {kv_bytes / 1e3:,.0f} kB of keys and values per "
        "stream (window x hidden x 2 x 4 bytes x layers), "
        f"{1024 * kv_bytes / 1e6:,.0f} MB per step at 1024 streams.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
