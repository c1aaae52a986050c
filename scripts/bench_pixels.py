"""Pixel Watermaze frames/s: the batched renderer against MiniGrid's own, measured in the same run.

Usage:
    OMP_NUM_THREADS=1 python scripts/bench.py pixels          # writes the section of BENCHMARKS.md
    OMP_NUM_THREADS=1 python scripts/bench_pixels.py          # prints it only

Frames/s of random play (a frame = one step's first-person view): MiniGrid's renderer (the room in
`minigrid.wrappers.RGBImgPartialObsWrapper`, stepped by MiniGrid), the single `hf_ad/PixelWatermaze-v0`
from `gymnasium.make` and the batched env with 1024 tasks (frames/s = steps/s x 1024), same-step
autoreset included. The pose tables (every view drawn once by MiniGrid) are built before timing.
"""

from __future__ import annotations

import os
import statistics
import time

import gymnasium as gym
import numpy as np
from minigrid.wrappers import RGBImgPartialObsWrapper

import hf_ad  # noqa: F401  (registers the envs)
from hf_ad.constants import PIXEL_WATERMAZE
from hf_ad.envs import draw_test_tasks, make_vector_env
from hf_ad.envs.pixel_watermaze import DEFAULT_TILE_SIZE, WatermazeRoom

NUM_TASKS = 1024
MINIGRID_STEPS = 2_000
SINGLE_STEPS = 20_000
BATCHED_STEPS = 300
REPEATS = 3
GOAL_FRAMES_PER_S = 100_000


def _actions(shape) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 3, size=shape)


def minigrid_runner():
    """MiniGrid's own stepping and rendering, as `RGBImgPartialObsWrapper` users get it."""
    env = RGBImgPartialObsWrapper(WatermazeRoom(tile_size=DEFAULT_TILE_SIZE), tile_size=DEFAULT_TILE_SIZE)
    actions = _actions(MINIGRID_STEPS).tolist()
    env.reset(seed=0)

    def run():
        for step, action in enumerate(actions):
            env.step(action)
            if (step + 1) % 50 == 0:
                env.reset(seed=0)

    return run


def single_runner():
    env = gym.make(PIXEL_WATERMAZE, goal=(2, 7))
    actions = _actions(SINGLE_STEPS).tolist()
    env.reset(seed=0)

    def run():
        for action in actions:
            if env.step(action)[3]:
                env.reset()

    return run


def batched_runner():
    env = make_vector_env(PIXEL_WATERMAZE, draw_test_tasks(PIXEL_WATERMAZE, NUM_TASKS))
    actions = _actions((BATCHED_STEPS, NUM_TASKS))
    env.reset(seed=0)

    def run():
        for step_actions in actions:
            env.step(step_actions)

    return run


def measure() -> dict[str, float]:
    """Median frames/s of each variant over `REPEATS` back-to-back repeats, and the median ratio."""
    runners = {
        "minigrid": (minigrid_runner(), MINIGRID_STEPS),
        "single": (single_runner(), SINGLE_STEPS),
        "batched": (batched_runner(), BATCHED_STEPS * NUM_TASKS),
    }
    samples = {name: [] for name in (*runners, "ratio")}
    for _ in range(REPEATS):
        rates = {}
        for name, (run, frames) in runners.items():
            start = time.perf_counter()
            run()
            rates[name] = frames / (time.perf_counter() - start)
            samples[name].append(rates[name])
        samples["ratio"].append(rates["batched"] / rates["minigrid"])
    return {name: statistics.median(values) for name, values in samples.items()}


def run() -> str:
    load = os.getloadavg()[0]
    m = measure()
    met = "met" if m["batched"] >= GOAL_FRAMES_PER_S else "NOT met"
    return "\n".join(
        [
            f"Load average when the run started: {load:.1f} on {os.cpu_count()} cores (other jobs share the "
            "machine, so absolute rates are lower bounds; the ratio is against MiniGrid run alongside).",
            "",
            "First-person frames/s (28 x 28 x 3 views, random play). MiniGrid: the room in "
            "`RGBImgPartialObsWrapper`, stepped by MiniGrid. Single: `gymnasium.make` (views looked up "
            f"in the table MiniGrid drew once per pose). Batched: `make_vector_env` with {NUM_TASKS} tasks. "
            f"Medians of {REPEATS} back-to-back repeats ({MINIGRID_STEPS:,} MiniGrid steps, "
            f"{SINGLE_STEPS:,} single steps, {BATCHED_STEPS} batched steps).",
            "",
            f"| MiniGrid | single (gym.make) | batched x{NUM_TASKS} | batched / MiniGrid |",
            "|---:|---:|---:|---:|",
            f"| {m['minigrid']:,.0f} | {m['single']:,.0f} | {m['batched']:,.0f} | {m['ratio']:,.0f}x |",
            "",
            f"Goal: batched >= {GOAL_FRAMES_PER_S:,} frames/s on one core: **{m['batched']:,.0f}, {met}**.",
        ]
    )


if __name__ == "__main__":
    print(run())
