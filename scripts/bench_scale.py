"""Benchmark of training on histories of 100M transitions, read in place from the memory-mapped Arrow data.

Usage:
    make bench-scale        # python scripts/bench.py scale (not part of `make bench all`: minutes, ~7 GB)

Generates once (a re-run reuses it) a Dark Room dataset of 100.1M transitions under
`runs/bench-scale/darkroom-100m` (tabular Q-learning, 154 histories per training goal x 500 episodes,
every episode kept), then measures two training runs, each in a fresh process so that their memory
starts from the same point:
- tiny, in RAM: `pretrained/darkroom-histories` with every column copied into RAM (the path before the
  windows read in place);
- 100M rows, in place: the large dataset as `hf-ad train` reads it (`datasets` converts the parquet shards
  into its memory-mapped Arrow cache once; `HistoryWindows` reads numpy views of its chunks).
For each: the process's anonymous resident memory (`RssAnon`: what no page cache can give back) once the
windows are built and after the training steps, and training throughput, transitions/s at the median of
8 steps (gather, forward, backward, AdamW) of the Dark Room recipe's model, batch 32 x 160, 2 torch threads.
Goals (issue 17): at most 2 GiB more anonymous memory than the tiny run, and at least 0.90x its throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hf_ad import constants
from hf_ad.configuration_ad import ADConfig
from hf_ad.data.histories import load_histories
from hf_ad.data.windows import HistoryWindows, dataset_columns
from hf_ad.modeling_ad import ADModel
from hf_ad.recipes import DARK_ROOM_RECIPE, training_values
from hf_ad.training import model_field_names

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_windows import anonymous_memory_bytes, seconds  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "pretrained" / "darkroom-histories"
LARGE = ROOT / "runs" / "bench-scale" / "darkroom-100m"
# 65 training goals x 154 histories x 500 episodes x 20 steps = 100,100,000 transitions.
LARGE_OPTIONS = (
    *("--source", "q_learning", "--histories-per-task", "154"),
    *("--episodes", "500", "--keep-every", "1"),
)
THREADS, TRAIN_STEPS = 2, 8
MEMORY_GOAL_BYTES, THROUGHPUT_GOAL = 2 * 2**30, 0.90


def generate_large() -> None:
    """Generate the 100M-row dataset, or check the shards of the one generated before."""
    command = [sys.executable, "-m", "hf_ad", "generate", "--env", constants.DARK_ROOM, *LARGE_OPTIONS]
    subprocess.run([*command, "--out", str(LARGE)], check=True, cwd=ROOT)


def measure(dataset: Path, in_ram: bool) -> dict:
    """One run, in this process: build the windows of `dataset`, then train `TRAIN_STEPS` steps."""
    torch.set_num_threads(THREADS)
    training = DARK_ROOM_RECIPE.training
    start = time.perf_counter()
    histories, metadata = load_histories(dataset)
    columns = dataset_columns(histories)
    if in_ram:
        columns = {key: np.array(column.to_numpy()) for key, column in columns.items()}  # copies
    windows = HistoryWindows(columns, training.context, num_actions=5, tasks=metadata["task_split"]["train"])
    build_seconds = time.perf_counter() - start
    built = anonymous_memory_bytes()
    torch.manual_seed(0)
    recipe = training_values(constants.DARK_ROOM)
    model = ADModel(ADConfig(**{name: recipe[name] for name in model_field_names() if name in recipe}))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    rng = np.random.default_rng(0)

    def train_step() -> None:
        loss = model(**windows.gather(windows.sample_starts(rng, training.batch_size))).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step_seconds = [seconds(train_step) for _ in range(TRAIN_STEPS + 1)][1:]  # the first warms up
    return {
        "rows": len(histories),
        "build_seconds": build_seconds,
        "anon_built": built,
        "anon_trained": anonymous_memory_bytes(),
        "transitions_per_second": training.batch_size * training.context / float(np.median(step_seconds)),
    }


def measure_in_child(dataset: Path, in_ram: bool) -> dict:
    """`measure` in a fresh Python process (its memory starts from nothing of this one's)."""
    command = [sys.executable, __file__, "--child", str(dataset), *(["--in-ram"] if in_ram else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def run() -> str:
    generate_large()
    tiny = measure_in_child(TINY, in_ram=True)
    large = measure_in_child(LARGE, in_ram=False)
    parquet_bytes = sum(path.stat().st_size for path in LARGE.rglob("*.parquet"))
    rows = []
    for name, result in (("tiny, columns in RAM", tiny), ("100M rows, read in place", large)):
        rows.append(
            f"| {name} | {result['rows']:,} | {result['build_seconds']:.1f} s | "
            f"{result['anon_built'] / 2**20:,.0f} MiB | {result['anon_trained'] / 2**20:,.0f} MiB | "
            f"{result['transitions_per_second']:,.0f} |"
        )
    extra = large["anon_trained"] - tiny["anon_trained"]
    ratio = large["transitions_per_second"] / tiny["transitions_per_second"]
    memory_met = "met" if extra <= MEMORY_GOAL_BYTES else "NOT met"
    speed_met = "met" if ratio >= THROUGHPUT_GOAL else "NOT met"
    return "\n".join(
        [
            f"A Dark Room dataset of {large['rows']:,} transitions (`hf-ad generate --env "
            f"{constants.DARK_ROOM} {' '.join(LARGE_OPTIONS)}`, "
            f"{parquet_bytes / 2**20:,.0f} MiB of parquet) against the shipped "
            f"`pretrained/darkroom-histories`, each run in a fresh process; "
            f"training: median of {TRAIN_STEPS} steps of the Dark Room recipe's model, batch "
            f"{DARK_ROOM_RECIPE.training.batch_size} x {DARK_ROOM_RECIPE.training.context}, {THREADS} torch "
            f"threads. Build: loading (the first load of the large dataset also converts it into the "
            f"`datasets` Arrow cache) and the windows. Machine load (1-minute average) at the end: "
            f"{os.getloadavg()[0]:.1f}.",
            "",
            "| run | transitions | build | anonymous memory, built | after training | transitions/s |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"100M rows read in place against the tiny run in RAM: {extra / 2**20:+,.0f} MiB of anonymous "
            f"memory (goal: at most +2,048 MiB: **{memory_met}**), training throughput {ratio:.2f}x "
            f"(goal: >= {THROUGHPUT_GOAL:.2f}x: **{speed_met}**).",
        ]
    )


if __name__ == "__main__":
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--child", type=Path, help="measure this dataset in this process; print JSON")
    parser.add_argument("--in-ram", action="store_true", help="with --child: copy the columns into RAM")
    args = parser.parse_args()
    print(json.dumps(measure(args.child, args.in_ram)) if args.child else run())
