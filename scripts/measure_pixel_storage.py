"""How to store histories of images: fixed-shape uint8 lists against `datasets.Image` PNGs, measured.

Usage:
    OMP_NUM_THREADS=1 python scripts/measure_pixel_storage.py                  # 100 x 50 x 50 frames
    OMP_NUM_THREADS=1 python scripts/measure_pixel_storage.py --learners 10    # a quick look

Plays tabular Q-learning (on the privileged pose) on `hf_ad/PixelWatermaze-v0`'s training goals, one
learner per goal (cycled), and writes the same transitions twice, as one zstd parquet shard each:
`uint8` the observation as `history_features` stores a Box today (nested fixed-length lists of uint8),
`png` the observation as a `datasets.Image` (PNG bytes). For each it prints the shard's size, the time
`datasets.load_dataset("parquet", ...)` takes into a fresh cache (and the cache's size), the time to
read every observation into one numpy array (what `HistoryWindows.from_dataset` does), and the time
per batch of training windows read from the loaded dataset without holding every frame in memory
(`--batch` windows of `--context` transitions at random starts, decoded to `(B, T, H, W, 3)` uint8).
The default size takes about 3 minutes and 10 GB of memory on 2 cores; the results are in
docs/ARCHITECTURE.md (Histories).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import datasets
import gymnasium as gym
import numpy as np
import pyarrow as pa
from PIL import Image

from hf_ad import constants
from hf_ad.data.histories import column_to_numpy, histories_table, history_features, write_shard
from hf_ad.envs import task_split
from hf_ad.sources.q_learning import QLearningConfig, learn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32, help="windows per training batch")
    parser.add_argument("--context", type=int, default=200, help="transitions per window")
    parser.add_argument("--batches", type=int, default=5, help="batches timed (the median is shown)")
    return parser.parse_args(argv)


def uint8_table(learners: int, episodes: int) -> tuple[pa.Table, datasets.Features, tuple[int, ...]]:
    """The histories of Q-learners as hf_ad writes them today: observations as nested uint8 lists."""
    train, _ = task_split(constants.PIXEL_WATERMAZE)
    tasks = [train[i % len(train)] for i in range(learners)]
    blocks = list(learn(constants.PIXEL_WATERMAZE, tasks, QLearningConfig(episodes=episodes, seed=0)))
    space = gym.make(constants.PIXEL_WATERMAZE).observation_space
    features = history_features(space, tasks)
    return histories_table(blocks, np.arange(learners), np.array(tasks), features), features, space.shape


def png_table(table: pa.Table, features: datasets.Features) -> tuple[pa.Table, datasets.Features]:
    """The same rows with each observation as a PNG (`datasets.Image`'s storage: struct of bytes and path)."""
    frames = column_to_numpy(table[constants.OBSERVATION])  # (R, H, W, 3) uint8
    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    png_features = datasets.Features({**features, constants.OBSERVATION: datasets.Image()})
    column = pa.array(encoded, type=png_features.arrow_schema.field(constants.OBSERVATION).type)
    index = table.schema.get_field_index(constants.OBSERVATION)
    return table.set_column(index, constants.OBSERVATION, column), png_features


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def decode(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """`(R, H, W, 3)` uint8 frames of an observation column: lists straight from Arrow
    (`column_to_numpy`, as `HistoryWindows` reads them), PNGs through Pillow.

    (`with_format("numpy")` is far slower for nested lists: it builds Python objects per row.)
    """
    if pa.types.is_struct(column.type):
        return np.stack(
            [np.asarray(Image.open(io.BytesIO(png))) for png in column.field("bytes").to_pylist()]
        )
    return column_to_numpy(column)


def window_batch(dataset: datasets.Dataset, rows: np.ndarray, context: int) -> np.ndarray:
    """`(B, T, H, W, 3)` uint8: the observations of windows starting at `rows`, read and decoded per batch."""
    indices = (rows[:, None] + np.arange(context)).reshape(-1)  # (B * T,)
    column = dataset.with_format("arrow")[indices][constants.OBSERVATION].combine_chunks()
    frames = decode(column)
    return frames.reshape(len(rows), context, *frames.shape[1:])


def measure(name: str, table: pa.Table, features: datasets.Features, args, work: Path) -> dict[str, float]:
    shard = work / name / "data" / "train-00000.parquet"
    shard.parent.mkdir(parents=True)
    start = time.perf_counter()
    write_shard(shard, table)
    write_s = time.perf_counter() - start

    start = time.perf_counter()
    dataset = datasets.load_dataset(
        "parquet",
        data_files=str(shard),
        split="train",
        features=features,
        cache_dir=str(work / f"{name}-cache"),
    )
    load_s = time.perf_counter() - start

    start = time.perf_counter()
    all_frames = decode(dataset.with_format("arrow")[:][constants.OBSERVATION].combine_chunks())
    whole_s = time.perf_counter() - start

    rng = np.random.default_rng(0)
    batch_times = []
    for _ in range(args.batches):
        rows = rng.integers(0, len(dataset) - args.context, size=args.batch)
        start = time.perf_counter()
        frames = window_batch(dataset, rows, args.context)
        batch_times.append(time.perf_counter() - start)
        assert frames.shape == (args.batch, args.context, *all_frames.shape[1:])
    return {
        "parquet_mb": shard.stat().st_size / 1e6,
        "cache_mb": folder_bytes(work / f"{name}-cache") / 1e6,
        "write_s": write_s,
        "load_s": load_s,
        "whole_s": whole_s,
        "batch_ms": 1000 * float(np.median(batch_times)),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    datasets.disable_progress_bars()
    table, features, frame_shape = uint8_table(args.learners, args.episodes)
    start = time.perf_counter()
    png, png_features = png_table(table, features)
    encode_s = time.perf_counter() - start
    frames = table.num_rows
    raw_mb = frames * np.prod(frame_shape) / 1e6
    with tempfile.TemporaryDirectory() as folder:
        results = {
            "uint8 lists": measure("uint8", table, features, args, Path(folder)),
            "datasets.Image (PNG)": measure("png", png, png_features, args, Path(folder)),
        }
    print(
        f"{args.learners} learners x {args.episodes} episodes x 50 steps = {frames:,} frames of "
        f"{frame_shape} ({raw_mb:,.0f} MB raw); PNG encoding took {encode_s:.1f} s. "
        f"Batch: {args.batch} windows x {args.context} transitions.\n"
    )
    print("| storage | parquet (MB) | load_dataset (s) | Arrow cache (MB) | all frames (s) | batch (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in results.items():
        print(
            f"| {name} | {m['parquet_mb']:,.2f} | {m['load_s']:.1f} | {m['cache_mb']:,.0f} "
            f"| {m['whole_s']:.1f} | {m['batch_ms']:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
