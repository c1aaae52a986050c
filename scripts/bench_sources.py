"""Benchmark: source algorithms (transitions/s) and histories parquet I/O (rows/s).

Usage:
    OMP_NUM_THREADS=1 python scripts/bench.py sources

Baselines measured in the same run: a plain per-step Python loop of tabular Q-learning on one
`gymnasium.make` env (what a straightforward implementation does), and `datasets.Dataset.from_dict`
+ `to_parquet` for writing. Sources are looked up through `hf_ad.sources.SOURCES`; those whose
module does not exist yet are listed as missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from hf_ad import constants
from hf_ad.envs import task_split

AD_EPS_GENERATOR = 63_000  # transitions/s of the public AD^eps generator on this machine (issue 3)
Q_GOAL, ACTOR_CRITIC_GOAL = 1_000_000, 100_000


def _rate(learn, env_id: str, tasks: list, config) -> tuple[float, float]:
    """(transitions/s, final mean return) of one run of a source."""
    start, transitions, last = time.perf_counter(), 0, None
    for block in learn(env_id, tasks, config):
        transitions += block.actions.size
        last = block
    return transitions / (time.perf_counter() - start), float(last.returns.mean())


def plain_q_learning(env_id: str, goal: tuple, episodes: int, seed: int = 0) -> float:
    """Baseline: per-step tabular Q-learning in Python on one env (same hyper-parameters); transitions/s."""
    env = gym.make(env_id, goal=goal)
    rng = np.random.default_rng(seed)
    q: dict[tuple, np.ndarray] = {}
    alpha, gamma, epsilon = 0.5, 0.9, 0.1
    start, steps = time.perf_counter(), 0
    observation, _ = env.reset(seed=seed)
    for _ in range(episodes):
        done = False
        while not done:
            state = tuple(observation)
            values = q.setdefault(state, np.full(5, 5.0))
            action = int(rng.integers(5)) if rng.random() < epsilon else int(values.argmax())
            observation, reward, terminated, truncated, _ = env.step(action)
            target = reward + gamma * q.setdefault(tuple(observation), np.full(5, 5.0)).max() * (
                not terminated
            )
            values[action] += alpha * (target - values[action])
            done = terminated or truncated
            steps += 1
        observation, _ = env.reset()
        epsilon *= 0.99
    return steps / (time.perf_counter() - start)


def bench_sources() -> list[str]:
    from hf_ad.sources import SOURCES

    train, _ = task_split(constants.DARK_ROOM)
    bandit_train, _ = task_split(constants.BANDIT)
    baseline = plain_q_learning(constants.DARK_ROOM, train[0], episodes=300)
    # (source, env, tasks, episodes, config overrides, goal)
    runs = [
        ("q_learning", constants.DARK_ROOM, train * 8, 200, {}, Q_GOAL),
        ("q_learning", constants.DARK_ROOM, train * 32, 50, {}, Q_GOAL),
        (
            "q_learning",
            constants.DARK_KEY_TO_DOOR,
            task_split(constants.DARK_KEY_TO_DOOR)[0][:520],
            100,
            {"init_q": 2.0},
            Q_GOAL,
        ),  # fmt: skip
        ("actor_critic", constants.DARK_ROOM, train * 8, 30, {}, ACTOR_CRITIC_GOAL),
        ("ucb", constants.BANDIT, bandit_train[:520], 200, {}, None),
        ("thompson", constants.BANDIT, bandit_train[:520], 200, {}, None),
        ("expert", constants.DARK_ROOM, train * 8, 50, {}, None),
    ]
    lines = [
        "| source | env | learners | episodes | transitions/s | vs plain Python Q-learning | goal "
        "| final mean return |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, env_id, tasks, episodes, overrides, goal in runs:
        try:
            learn, config_cls = SOURCES[name]
        except ImportError:
            lines.append(f"| {name} | `{env_id}` | | | module not written yet | | | |")
            continue
        rate, final = _rate(learn, env_id, tasks, config_cls(episodes=episodes, seed=0, **overrides))
        goal_text = "" if goal is None else f"{goal:,} ({'met' if rate >= goal else 'NOT met'})"
        lines.append(
            f"| {name} | `{env_id}` | {len(tasks)} | {episodes} | {rate:,.0f} | {rate / baseline:,.0f}x "
            f"| {goal_text} | {final:.2f} |"
        )
    lines += [
        f"| plain Python Q-learning (baseline) | `{constants.DARK_ROOM}` | 1 | 300 | {baseline:,.0f} | 1x "
        "| | |",
        f"| AD^eps public generator (context: reported in issue 3, not rerun) | Dark Room | | "
        f"| ~{AD_EPS_GENERATOR:,} | {AD_EPS_GENERATOR / baseline:.1f}x | | |",
    ]
    return lines


def _numpy_column(column) -> np.ndarray:
    """An Arrow column (fixed-size lists included) as one numpy array `(rows, *inner)`."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape = []
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).reshape(-1, *shape)


def bench_parquet(folder: Path) -> list[str]:
    """Write/read rows/s of one histories shard (pyarrow path) against Dataset.from_dict + to_parquet."""
    import pyarrow.parquet as pq
    from datasets import Dataset, load_dataset

    from hf_ad.data.histories import histories_table, history_features, write_shard
    from hf_ad.sources.q_learning import QLearningConfig, learn

    train, _ = task_split(constants.DARK_ROOM)
    tasks = train * 8  # 520 learners
    blocks = [
        b for b in learn(constants.DARK_ROOM, tasks, QLearningConfig(episodes=200)) if b.episode % 2 == 0
    ]
    features = history_features(gym.spaces.MultiDiscrete([9, 9]), tasks)
    ids, task_array = np.arange(len(tasks)), np.asarray(tasks)

    start = time.perf_counter()
    table = histories_table(blocks, ids, task_array, features)
    write_shard(folder / "shard.parquet", table)
    write_s = time.perf_counter() - start
    rows = table.num_rows

    columns = {name: _numpy_column(table[name]) for name in table.column_names}
    start = time.perf_counter()
    Dataset.from_dict(columns, features=features).to_parquet(str(folder / "from_dict.parquet"))
    from_dict_s = time.perf_counter() - start

    start = time.perf_counter()
    read_table = pq.read_table(folder / "shard.parquet")
    read_s = time.perf_counter() - start
    assert read_table.num_rows == rows
    start = time.perf_counter()
    dataset = load_dataset(
        "parquet", data_files=str(folder / "shard.parquet"), split="train", cache_dir=str(folder / "cache")
    )
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    arrow_columns = {name: _numpy_column(dataset.data.table[name]) for name in dataset.column_names}
    arrow_s = time.perf_counter() - start
    start = time.perf_counter()
    numpy_columns = dataset.with_format("numpy")[:]
    numpy_s = time.perf_counter() - start
    assert (numpy_columns[constants.OBSERVATION] == arrow_columns[constants.OBSERVATION]).all()
    size = (folder / "shard.parquet").stat().st_size
    return [
        f"One shard: {rows:,} rows (520 Dark Room learners x 100 kept episodes x 20 steps), "
        f"{size / 1e6:.1f} MB zstd parquet ({size / rows:.1f} bytes/row).",
        "",
        "| operation | rows/s | vs baseline |",
        "|---|---|---|",
        f"| write: blocks -> pyarrow table -> parquet (hf_ad) | {rows / write_s:,.0f} | "
        f"{from_dict_s / write_s:.0f}x |",
        f"| write baseline: `Dataset.from_dict(numpy columns)` + `to_parquet` | {rows / from_dict_s:,.0f} "
        "| 1x |",
        f"| read: `pyarrow.parquet.read_table` | {rows / read_s:,.0f} | |",
        f"| read: `load_dataset('parquet')`, first load (builds the Arrow cache) | {rows / load_s:,.0f} | |",
        f"| read: every column of that Dataset to numpy via its Arrow table | {rows / arrow_s:,.0f} | "
        f"{numpy_s / arrow_s:.0f}x |",
        f"| read baseline: the same with `dataset.with_format('numpy')[:]` | {rows / numpy_s:,.0f} | 1x |",
    ]


def bench_default_dataset(folder: Path) -> list[str]:
    from hf_ad.data.generate import DEFAULTS, GenerateConfig, generate_histories

    out = folder / "darkroom"
    start = time.perf_counter()
    generate_histories(GenerateConfig(out=str(out)), progress=False)
    seconds = time.perf_counter() - start
    from hf_ad.data.histories import read_metadata

    metadata = read_metadata(out)
    split = metadata["splits"]["train"]
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    defaults = DEFAULTS[constants.DARK_ROOM]
    curve = metadata["learning_curve"]["train"]["mean_return"]
    transitions = split["num_histories"] * defaults.episodes * metadata["episode_length"]
    shown = [e for e in (0, 10, 20, 50, 100, 200) if e < len(curve) - 1] + [len(curve) - 1]
    points = ", ".join(f"{curve[e]:.1f} (ep {e})" for e in shown)
    return [
        f"`hf-ad generate --env {constants.DARK_ROOM}` (defaults: {defaults.source}, "
        f"{defaults.histories_per_task} histories per training goal, {defaults.episodes} episodes, "
        f"keep_every {defaults.keep_every}): {split['num_histories']:,} histories, "
        f"{transitions:,} transitions learned, {split['num_rows']:,} rows stored in "
        f"{split['num_shards']} shards, "
        f"{size / 1e6:.1f} MB on disk, generated in {seconds:.1f} s "
        f"({transitions / seconds:,.0f} transitions/s end to end, parquet and card included).",
        "",
        f"Source learning curve (mean return over the training goals; oracle {split['optimal_return']:.2f}): "
        f"{points}.",
    ]


def run() -> str:
    folder = Path(tempfile.mkdtemp(prefix="bench_sources_"))
    load = os.getloadavg()[0]
    try:
        lines = [
            f"Load average when the run started: {load:.1f} on {os.cpu_count()} cores (other jobs share the "
            "machine, so absolute rates are lower bounds; each ratio is against a baseline run alongside).",
            "",
            "### Sources (transitions/s)",
            "",
            *bench_sources(),
            "",
        ]
        lines += ["### Histories parquet I/O", "", *bench_parquet(folder), ""]
        lines += ["### Default Dark Room dataset", "", *bench_default_dataset(folder)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
