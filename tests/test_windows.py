"""Tests for hf_ad.data.windows: across-episode training windows cut from learning histories."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pytest
import torch

from hf_ad import constants
from hf_ad.data.columns import ChunkedColumn
from hf_ad.data.histories import column_to_numpy
from hf_ad.data.windows import (
    IGNORE_INDEX,
    HistoryWindows,
    RandomWindowBatches,
    dataset_columns,
    window_loader,
)

NUM_ACTIONS = 5
EPISODE_LENGTH = 4
TRAIN_TASKS = [[1, 2], [3, 4], [5, 6]]
TEST_TASKS = [[7, 8], [0, 0]]


def synthetic_columns(histories_per_task: int = 2, episodes: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Histories on TRAIN_TASKS and TEST_TASKS, interleaved, with non-consecutive history ids."""
    rng = np.random.default_rng(seed)
    tasks = [task for task in TRAIN_TASKS + TEST_TASKS for _ in range(histories_per_task)]
    order = rng.permutation(len(tasks))
    length = episodes * EPISODE_LENGTH
    n = len(tasks) * length
    return {
        constants.HISTORY_ID: np.repeat(10 * order + 3, length),
        constants.TASK: np.repeat(np.asarray(tasks)[order], length, axis=0),
        constants.EPISODE: np.tile(np.repeat(np.arange(episodes), EPISODE_LENGTH), len(tasks)),
        constants.OBSERVATION: rng.integers(0, 9, size=(n, 2)),
        constants.ACTION: rng.integers(0, NUM_ACTIONS, size=n),
        constants.REWARD: rng.random(n).astype(np.float32),
    }


def test_gather_shapes_and_dtypes():
    windows = HistoryWindows(synthetic_columns(), context=10, num_actions=NUM_ACTIONS)
    batch = windows.collate([0, 5, 13])
    assert set(batch) == {"observations", "prev_actions", "prev_rewards", "labels"}
    assert batch["observations"].shape == (3, 10, 2) and batch["observations"].dtype == torch.int64
    assert batch["prev_actions"].shape == (3, 10) and batch["prev_actions"].dtype == torch.int64
    assert batch["prev_rewards"].shape == (3, 10) and batch["prev_rewards"].dtype == torch.float32
    assert batch["labels"].shape == (3, 10) and batch["labels"].dtype == torch.int64
    assert windows.observation_shape == (2,)


def test_inputs_are_the_transitions_shifted_by_one_inside_one_history():
    columns = synthetic_columns()
    windows = HistoryWindows(columns, context=10, num_actions=NUM_ACTIONS)
    starts = windows.sample_starts(np.random.default_rng(0), 500)
    batch = windows.gather(starts)
    rows = starts[:, None] + np.arange(10)
    history = columns[constants.HISTORY_ID]
    # A window never leaves its history.
    assert (history[rows] == history[starts][:, None]).all()
    np.testing.assert_array_equal(batch["observations"].numpy(), columns[constants.OBSERVATION][rows])
    np.testing.assert_array_equal(batch["labels"].numpy(), columns[constants.ACTION][rows])
    # prev_* at row r are the action and reward of row r - 1, unless r starts a history.
    at_start = np.r_[True, history[1:] != history[:-1]][rows]
    previous = np.maximum(rows - 1, 0)
    np.testing.assert_array_equal(
        batch["prev_actions"].numpy(), np.where(at_start, NUM_ACTIONS, columns[constants.ACTION][previous])
    )
    np.testing.assert_array_equal(
        batch["prev_rewards"].numpy(), np.where(at_start, 0.0, columns[constants.REWARD][previous])
    )


def test_history_start_gets_the_no_previous_action_token():
    columns = synthetic_columns()
    windows = HistoryWindows(columns, context=8, num_actions=NUM_ACTIONS)
    batch = windows.gather(windows.history_first_rows)
    assert (batch["prev_actions"][:, 0] == NUM_ACTIONS).all()
    assert (batch["prev_rewards"][:, 0] == 0).all()
    assert (batch["prev_actions"][:, 1:] < NUM_ACTIONS).all()


def test_windows_run_across_episode_boundaries():
    columns = synthetic_columns()
    windows = HistoryWindows(columns, context=10, num_actions=NUM_ACTIONS)
    starts = windows.sample_starts(np.random.default_rng(1), 200)
    rows = starts[:, None] + np.arange(10)
    episodes = columns[constants.EPISODE][rows]
    assert (episodes[:, -1] - episodes[:, 0] >= 2).all()  # 10 transitions span at least 3 episodes of 4
    # The first step of a later episode carries the previous episode's last action and reward.
    batch = windows.gather(starts)
    boundary = np.diff(episodes, axis=1) > 0  # (B, T - 1): position j + 1 starts an episode
    prev_actions = batch["prev_actions"].numpy()[:, 1:][boundary]
    assert (prev_actions < NUM_ACTIONS).all()
    np.testing.assert_array_equal(prev_actions, columns[constants.ACTION][rows[:, :-1][boundary]])


def test_marked_episode_starts_get_the_no_previous_action_token():
    columns = synthetic_columns()
    episodes = len(columns[constants.ACTION]) // EPISODE_LENGTH
    columns[constants.STEP] = np.tile(np.arange(EPISODE_LENGTH), episodes)
    plain = HistoryWindows(columns, context=10, num_actions=NUM_ACTIONS)
    marked = HistoryWindows(columns, context=10, num_actions=NUM_ACTIONS, mark_episode_starts=True)
    starts = plain.sample_starts(np.random.default_rng(2), 200)
    episode_starts = columns[constants.STEP][starts[:, None] + np.arange(10)] == 0  # (B, T)
    assert episode_starts[:, 1:].any(axis=1).all()  # every window crosses an episode boundary
    unmarked, batch = plain.gather(starts), marked.gather(starts)
    expected = np.where(episode_starts, NUM_ACTIONS, unmarked["prev_actions"].numpy())
    np.testing.assert_array_equal(batch["prev_actions"].numpy(), expected)
    for name in ("observations", "prev_rewards", "labels"):  # the previous reward is kept
        torch.testing.assert_close(batch[name], unmarked[name])
    del columns[constants.STEP]
    with pytest.raises(ValueError, match=r"columns \['step'\] to mark episode starts"):
        HistoryWindows(columns, context=10, num_actions=NUM_ACTIONS, mark_episode_starts=True)


def test_every_window_is_reachable_and_sampling_is_uniform():
    columns = synthetic_columns(histories_per_task=1, episodes=3)
    windows = HistoryWindows(columns, context=5, num_actions=NUM_ACTIONS)
    # 5 histories of 12 transitions: 8 windows each.
    assert windows.num_windows == 5 * 8
    all_starts = windows.window_starts(np.arange(windows.num_windows))
    assert len(np.unique(all_starts)) == windows.num_windows
    offsets = all_starts - windows.history_first_rows[windows.history_of(all_starts)]
    assert offsets.min() == 0 and offsets.max() == 12 - 5
    drawn_starts = windows.sample_starts(np.random.default_rng(0), 40_000)
    counts = np.bincount(drawn_starts, minlength=60)
    drawn = counts[all_starts]
    assert drawn.min() > 0.7 * 1000 and drawn.max() < 1.3 * 1000


def test_training_tasks_only_no_held_out_task_ever_appears():
    columns = synthetic_columns()
    windows = HistoryWindows(columns, context=10, num_actions=NUM_ACTIONS, tasks=TRAIN_TASKS)
    assert sorted(map(list, windows.history_tasks.tolist())) == sorted(TRAIN_TASKS * 2)
    batches = RandomWindowBatches(windows, batch_size=256, seed=0)
    starts = np.concatenate([batches.batch_starts(b) for b in range(20)])
    row_tasks = columns[constants.TASK][starts[:, None] + np.arange(10)]  # (B, T, K)
    seen = {tuple(task) for task in row_tasks.reshape(-1, 2).tolist()}
    assert seen == {tuple(task) for task in TRAIN_TASKS}
    assert not seen & {tuple(task) for task in TEST_TASKS}


def test_batches_are_reproducible_per_seed_rank_and_index():
    windows = HistoryWindows(synthetic_columns(), context=6, num_actions=NUM_ACTIONS)
    first = RandomWindowBatches(windows, batch_size=8, seed=3)
    again = RandomWindowBatches(windows, batch_size=8, seed=3)
    stream = iter(first)
    drawn = [next(stream) for _ in range(5)]
    for index, starts in enumerate(drawn):
        np.testing.assert_array_equal(starts, again.batch_starts(index))
    # Restarting at batch 3 continues the same stream (what resuming a run does).
    resumed = iter(RandomWindowBatches(windows, batch_size=8, seed=3, start_batch=3))
    np.testing.assert_array_equal(next(resumed), drawn[3])
    np.testing.assert_array_equal(next(resumed), drawn[4])
    other_rank = RandomWindowBatches(windows, batch_size=8, seed=3, rank=1)
    other_seed = RandomWindowBatches(windows, batch_size=8, seed=4)
    assert not np.array_equal(other_rank.batch_starts(0), drawn[0])
    assert not np.array_equal(other_seed.batch_starts(0), drawn[0])


def test_loader_with_workers_yields_the_same_batches_in_order():
    windows = HistoryWindows(synthetic_columns(), context=6, num_actions=NUM_ACTIONS)
    plain = iter(window_loader(windows, batch_size=4, seed=0, start_batch=2))
    workers = iter(window_loader(windows, batch_size=4, seed=0, start_batch=2, num_workers=2))
    for _ in range(5):
        a, b = next(plain), next(workers)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_loss_lead_in_masks_the_first_positions_except_at_a_history_start():
    columns = synthetic_columns()
    windows = HistoryWindows(columns, context=10, num_actions=NUM_ACTIONS, loss_lead_in=4)
    first = windows.history_first_rows[0]
    labels = windows.gather(np.array([first, first + 1]))["labels"]
    np.testing.assert_array_equal(labels[0].numpy(), columns[constants.ACTION][first : first + 10])
    assert (labels[1, :4] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(labels[1, 4:].numpy(), columns[constants.ACTION][first + 5 : first + 11])


def test_from_a_datasets_table_with_a_selection():
    columns = synthetic_columns()
    features = datasets.Features(
        {
            constants.HISTORY_ID: datasets.Value("int64"),
            constants.TASK: datasets.List(datasets.Value("int64"), length=2),
            constants.EPISODE: datasets.Value("int64"),
            constants.OBSERVATION: datasets.List(datasets.Value("int64"), length=2),
            constants.ACTION: datasets.Value("int64"),
            constants.REWARD: datasets.Value("float32"),
        }
    )
    dataset = datasets.Dataset.from_dict({k: v.tolist() for k, v in columns.items()}, features=features)
    subset = dataset.select(range(24, 72))  # histories 1 and 2, read through an indices mapping
    arrays = dataset_columns(subset)
    np.testing.assert_array_equal(
        arrays[constants.OBSERVATION].to_numpy(), columns[constants.OBSERVATION][24:72]
    )
    np.testing.assert_array_equal(arrays[constants.TASK].to_numpy(), columns[constants.TASK][24:72])
    windows = HistoryWindows.from_dataset(subset, context=8, num_actions=NUM_ACTIONS)
    assert len(windows.history_ids) == 2 and windows.num_windows == 2 * (24 - 8 + 1)
    # Nested lists (an image-like observation) flatten to (N, *shape).
    nested = pa.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    np.testing.assert_array_equal(column_to_numpy(nested), np.arange(1.0, 9.0).reshape(2, 2, 2))


def test_malformed_histories_are_refused():
    split = synthetic_columns()
    split[constants.HISTORY_ID][:3] = split[constants.HISTORY_ID][-1]  # the last history also owns rows 0-2
    with pytest.raises(ValueError, match="contiguous"):
        HistoryWindows(split, context=6, num_actions=NUM_ACTIONS)
    bad_action = synthetic_columns()
    bad_action[constants.ACTION][7] = NUM_ACTIONS
    with pytest.raises(ValueError, match="num_actions=5"):
        HistoryWindows(bad_action, context=6, num_actions=NUM_ACTIONS)


def test_non_finite_rewards_and_observations_are_named():
    """A NaN or infinity never reaches the model (it would make the logits NaN); the history is named."""
    columns = synthetic_columns()
    columns[constants.REWARD][30] = np.nan
    history = columns[constants.HISTORY_ID][30]
    with pytest.raises(
        ValueError, match=rf"'reward' holds a NaN .* row 30 \(history {history}\).*hf-ad generate"
    ):
        HistoryWindows(columns, context=6, num_actions=NUM_ACTIONS)
    with pytest.raises(ValueError, match=rf"'reward' holds a NaN .* row 30 \(history {history}\)"):
        HistoryWindows(chunked(columns, [7, 1, 11, 3]), context=6, num_actions=NUM_ACTIONS)  # a later chunk
    columns = synthetic_columns()
    columns[constants.OBSERVATION] = columns[constants.OBSERVATION].astype(np.float32)
    columns[constants.OBSERVATION][11, 1] = -np.inf
    with pytest.raises(ValueError, match=r"'observation' holds a NaN or infinite value at row 11"):
        HistoryWindows(columns, context=6, num_actions=NUM_ACTIONS)
    columns[constants.OBSERVATION][11, 1] = 0.0
    HistoryWindows(columns, context=6, num_actions=NUM_ACTIONS)  # float observations are fine when finite


def test_bad_arguments_are_refused():
    columns = synthetic_columns(episodes=2)  # histories of 8 transitions
    with pytest.raises(ValueError, match="shorter than context=9"):
        HistoryWindows(columns, context=9, num_actions=NUM_ACTIONS)
    with pytest.raises(ValueError, match="none of the"):
        HistoryWindows(columns, context=4, num_actions=NUM_ACTIONS, tasks=[[4, 4]])
    with pytest.raises(ValueError, match="loss_lead_in"):
        HistoryWindows(columns, context=4, num_actions=NUM_ACTIONS, loss_lead_in=4)
    with pytest.raises(ValueError, match="context"):
        HistoryWindows(columns, context=0, num_actions=NUM_ACTIONS)


def test_uint8_image_observations_stay_uint8():
    columns = synthetic_columns()
    rows = len(columns[constants.ACTION])
    columns[constants.OBSERVATION] = np.arange(rows * 12, dtype=np.uint8).reshape(
        rows, 2, 2, 3
    )  # (N, H, W, C)
    windows = HistoryWindows(columns, context=8, num_actions=NUM_ACTIONS)
    (frames,) = windows.observations.chunks
    assert frames is columns[constants.OBSERVATION]  # no int64 or float copy of the frames
    batch = windows.gather(np.array([0, 30]))
    assert batch["observations"].dtype == torch.uint8 and batch["observations"].shape == (2, 8, 2, 2, 3)
    np.testing.assert_array_equal(batch["observations"][1].numpy(), columns[constants.OBSERVATION][30:38])


def chunked(columns: dict[str, np.ndarray], sizes: list[int]) -> dict[str, ChunkedColumn]:
    """`columns` cut into chunks of `sizes` (cycled), like the record batches of a memory-mapped table."""
    bounds, row = [], 0
    while row < len(columns[constants.ACTION]):
        row += sizes[len(bounds) % len(sizes)]
        bounds.append(row)
    return {name: ChunkedColumn(np.split(values, bounds[:-1])) for name, values in columns.items()}


def test_chunked_columns_give_the_batches_of_one_array():
    """Chunks of 1 to 11 rows: windows of 10 cross one or several chunk boundaries, one starts at row 0."""
    columns = synthetic_columns()
    parts = chunked(columns, [7, 1, 11, 3])
    assert len(parts[constants.ACTION].chunks) > 30
    for options in ({}, {"tasks": TRAIN_TASKS, "loss_lead_in": 2}):
        whole = HistoryWindows(columns, context=10, num_actions=NUM_ACTIONS, **options)
        windows = HistoryWindows(parts, context=10, num_actions=NUM_ACTIONS, **options)
        every = whole.window_starts(np.arange(whole.num_windows))
        assert windows.num_windows == whole.num_windows and 0 in every  # history 0 is on a training task
        np.testing.assert_array_equal(windows.history_tasks, whole.history_tasks)
        got, expected = windows.gather(every), whole.gather(every)
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
