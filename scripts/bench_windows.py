"""Benchmark of training windows read in place (memory-mapped Arrow chunks) against in-RAM column copies.

Usage:
    OMP_NUM_THREADS=2 python scripts/bench.py windows

The shipped Dark Room histories (`pretrained/darkroom-histories`, 2.6M transitions, loaded by `datasets`
into its memory-mapped Arrow cache, 1,000-row record batches) feed two `HistoryWindows`:
- in RAM (the path before windows read in place): every column copied into one numpy array;
- memory-mapped: `HistoryWindows.from_dataset`, the numpy views of the Arrow chunks (`ChunkedColumn`).
Measured in the same run, alternating between the two: the anonymous memory (`RssAnon`, what no page
cache can give back) each adds, the median time to gather a batch of the Dark Room recipe (32 x 160
transitions), and training throughput, transitions/s at the median of gather + forward + backward + AdamW
step of the recipe's model on 2 torch threads. The ratio memory-mapped / in RAM is the figure to watch.
"""

from __future__ import annotations

import os
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

THREADS = 2
DATASET = Path(__file__).resolve().parent.parent / "pretrained" / "darkroom-histories"
GATHER_REPEATS, TRAIN_STEPS = 200, 8


def anonymous_memory_bytes() -> int:
    """This process's `RssAnon` (Linux): resident memory that is no mapped file."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("RssAnon is not in /proc/self/status (not Linux?)")


def build_both(histories, train_tasks, context: int) -> tuple[dict[str, HistoryWindows], dict[str, int]]:
    """The two windows, and the anonymous memory building each added."""
    windows, added = {}, {}
    for name in ("memory-mapped", "in RAM"):
        before = anonymous_memory_bytes()
        columns = dataset_columns(histories)
        if name == "in RAM":
            columns = {key: np.array(column.to_numpy()) for key, column in columns.items()}  # copies
        windows[name] = HistoryWindows(columns, context, num_actions=5, tasks=train_tasks)
        added[name] = anonymous_memory_bytes() - before
    return windows, added


def seconds(run, *args) -> float:
    """Wall time of one call `run(*args)`."""
    start = time.perf_counter()
    run(*args)
    return time.perf_counter() - start


def run() -> str:
    training = DARK_ROOM_RECIPE.training
    batch, context = training.batch_size, training.context
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        histories, metadata = load_histories(DATASET)
        windows, added = build_both(histories, metadata["task_split"]["train"], context)
        rng = np.random.default_rng(0)
        starts = [windows["in RAM"].sample_starts(rng, batch) for _ in range(GATHER_REPEATS)]
        gather = {name: [] for name in windows}
        for index in range(GATHER_REPEATS):  # alternating: both see the same machine load
            for name, w in windows.items():
                gather[name].append(seconds(w.gather, starts[index]))
        torch.manual_seed(0)
        recipe = training_values(constants.DARK_ROOM)  # the model the recipe trains, on Dark Room's spaces
        model = ADModel(ADConfig(**{name: recipe[name] for name in model_field_names() if name in recipe}))
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)

        def train_step(w: HistoryWindows, index: int) -> None:
            loss = model(**w.gather(starts[index])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        steps = {name: [] for name in windows}
        for index in range(TRAIN_STEPS + 1):  # the first step of each warms up
            for name, w in windows.items():
                step_seconds = seconds(train_step, w, index)
                if index:
                    steps[name].append(step_seconds)
    finally:
        torch.set_num_threads(threads)
    transitions = batch * context
    rows = []
    for name in windows:
        per_second = transitions / float(np.median(steps[name]))
        rows.append(
            f"| {name} | {added[name] / 2**20:,.1f} MiB | {np.median(gather[name]) * 1e3:.2f} ms "
            f"| {per_second:,.0f} |"
        )
    ratio_gather = np.median(gather["in RAM"]) / np.median(gather["memory-mapped"])
    ratio_train = np.median(steps["in RAM"]) / np.median(steps["memory-mapped"])
    return "\n".join(
        [
            f"Training windows over `pretrained/darkroom-histories` ({len(histories):,} transitions), batch "
            f"{batch} x {context} (the Dark Room recipe), {THREADS} torch threads; gather: median of "
            f"{GATHER_REPEATS} batches; training: median of {TRAIN_STEPS} steps (gather, forward, backward, "
            f"AdamW) of the recipe's model. Machine load (1-minute average) at the end: "
            f"{os.getloadavg()[0]:.1f}.",
            "",
            "| columns | anonymous memory added | gather a batch | training transitions/s |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            f"Memory-mapped / in RAM: gather throughput {ratio_gather:.2f}x, training throughput "
            f"{ratio_train:.2f}x (goal: >= 0.90x).",
        ]
    )


if __name__ == "__main__":
    print(run())
