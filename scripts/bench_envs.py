"""Env speed: one single env against the native batched env, measured in the same run.

Usage:
    OMP_NUM_THREADS=1 python scripts/bench.py envs            # writes the section of BENCHMARKS.md
    OMP_NUM_THREADS=1 python scripts/bench_envs.py            # prints it only

For each env: env-steps/s of one env from `gymnasium.make` (with its TimeLimit/OrderEnforcing/
PassiveEnvChecker wrappers, as users get it), of the bare env class (no wrappers, reset by hand at
the episode length), and of the batched env with 1024 tasks (env-steps/s = steps/s x 1024).
Actions are drawn before timing; see `measure` for how repeats and ratios are taken.
"""

from __future__ import annotations

import statistics
import time

import gymnasium as gym
import numpy as np

import hf_ad  # noqa: F401  (registers the envs)
from hf_ad.constants import BANDIT, DARK_ROOM, ENV_IDS
from hf_ad.envs import make_vector_env, sample_bandit_tasks, task_split

NUM_TASKS = 1024
SINGLE_STEPS = 10_000
BATCHED_STEPS = 2_000
REPEATS = 5
GOAL_RATIO = 100
AD_EPS_SINGLE_STEPS_PER_S = 73_000  # the public AD^eps code's single Dark Room env, on this machine


def _tasks(env_id: str, n: int) -> list[tuple]:
    if env_id == BANDIT:
        return sample_bandit_tasks("uniform", n, seed=0)
    train, test = task_split(env_id)
    tasks = train + test
    return [tasks[i % len(tasks)] for i in range(n)]


def single_runner(env: gym.Env, horizon: int | None):
    """A function stepping one env `SINGLE_STEPS` times; `horizon` set: reset by hand (a bare env)."""
    actions = np.random.default_rng(0).integers(0, env.action_space.n, size=SINGLE_STEPS).tolist()
    env.reset(seed=0)

    def run():
        elapsed = 0
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            elapsed += 1
            if terminated or truncated or elapsed == horizon:
                env.reset()
                elapsed = 0

    return run


def batched_runner(env_id: str):
    """A function stepping the batched env of `NUM_TASKS` tasks `BATCHED_STEPS` times (with autoreset)."""
    env = make_vector_env(env_id, _tasks(env_id, NUM_TASKS))
    actions = np.random.default_rng(0).integers(0, env.single_action_space.n, size=(BATCHED_STEPS, NUM_TASKS))
    env.reset(seed=0)

    def run():
        for step_actions in actions:
            env.step(step_actions)

    return run


def _rate(run, env_steps: int) -> float:
    start = time.perf_counter()
    run()
    return env_steps / (time.perf_counter() - start)


def measure(env_id: str) -> dict[str, float]:
    """Median env-steps/s of each variant, and the median of the per-repeat ratios.

    The three variants are timed back to back in every repeat, so a ratio compares runs that saw
    the same machine load.
    """
    wrapped = gym.make(env_id, task=_tasks(env_id, 1)[0])
    runners = {
        "made": (single_runner(wrapped, None), SINGLE_STEPS),
        "bare": (single_runner(wrapped.unwrapped, wrapped.spec.max_episode_steps), SINGLE_STEPS),
        "batched": (batched_runner(env_id), BATCHED_STEPS * NUM_TASKS),
    }
    samples = {name: [] for name in (*runners, "ratio_made", "ratio_fastest")}
    for _ in range(REPEATS):
        rates = {name: _rate(run, steps) for name, (run, steps) in runners.items()}
        for name, rate in rates.items():
            samples[name].append(rate)
        samples["ratio_made"].append(rates["batched"] / rates["made"])
        samples["ratio_fastest"].append(rates["batched"] / max(rates["made"], rates["bare"]))
    return {name: statistics.median(values) for name, values in samples.items()}


def run() -> str:
    rows, figures = [], {}
    for env_id in ENV_IDS:
        figures[env_id] = m = measure(env_id)
        rows.append(
            f"| `{env_id}` | {m['made']:,.0f} | {m['bare']:,.0f} | {m['batched']:,.0f} "
            f"| {m['ratio_made']:,.0f}x | {m['ratio_fastest']:,.0f}x |"
        )
    ratio = figures[DARK_ROOM]["ratio_fastest"]
    lines = [
        "Env-steps/s. Single: one env from `gymnasium.make` (with its wrappers) and the bare env class. "
        f"Batched: `make_vector_env` with {NUM_TASKS} tasks, same-step autoreset included. Medians of "
        f"{REPEATS} repeats; in each repeat the three are timed back to back and the ratios are taken "
        f"within the repeat ({SINGLE_STEPS:,} single steps, {BATCHED_STEPS:,} batched steps).",
        "",
        f"| env | single (gym.make) | single (bare) | batched x{NUM_TASKS} | batched / gym.make "
        "| batched / best single |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Goal: batched Dark Room >= {GOAL_RATIO}x the best single env: **{ratio:,.0f}x, "
        f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}**. Context: the public AD^eps code steps about "
        f"{AD_EPS_SINGLE_STEPS_PER_S:,} single-env steps/s on this machine.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
