"""Training windows: runs of consecutive transitions cut from one learning history.

Algorithm Distillation learns how a policy *improves*, so a training example must show the source
algorithm across several episodes of one learning history: a window is `context` consecutive
transitions of ONE history, starting at a random offset and running straight across episode
boundaries (the first step of episode k carries the last action and reward of episode k-1, exactly
as the streaming rollout feeds them). Windows are cut at load time and never stored.

The model sees, per transition t of a window, the inputs of `ADModel.forward`:
- `observations`: o_t;
- `prev_actions`: a_{t-1}, or `num_actions` ("no previous action") at the first transition of a
  history (and, with `mark_episode_starts`, of every episode: the `step` column's 0s);
- `prev_rewards`: r_{t-1}, or 0 at the first transition of a history;
- `labels`: a_t, the action to predict; -100 (ignored by the loss) inside the optional lead-in.

Segment length and lead-in. The model attends over a sliding window of `sliding_window`
transitions with several layers, and the streaming rollout sees, at every step after the first
`sliding_window`, a full window whose keys were themselves computed with context. Training on
segments exactly one window long would show most positions a shorter context than streaming ever
does, so the training code cuts segments longer than the window (by default `2 * sliding_window`):
every position from `sliding_window - 1` on sees a full window, like streaming. The positions
before that see a shorter, truncated context; `loss_lead_in` can leave the first positions out of
the loss, except in windows that start at the very beginning of a history, where training and
streaming start the same way and every position is exact. The default (no lead-in) keeps them: a
truncated context is what the rollout itself has during its first episodes, and it doubles the
labels per step at no extra compute.

Columns are read in place (`hf_ad.data.columns.ChunkedColumn`): the numpy views of a memory-mapped
Arrow table's chunks, never one in-RAM copy per column, so histories larger than RAM train; the
construction passes over them one chunk at a time (history starts, action range, NaN/inf), and only
arrays per history stay in RAM. A batch is a set of window start rows drawn from a seeded numpy
Generator; gathering reads `context + 1` rows per window and column (the row before a window gives its
first previous action and reward) and needs no shifted copy of any column. `RandomWindowBatches` derives
the Generator of batch b from `(seed, rank, b)` alone, so a run resumed at batch b draws exactly the
batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import count
from typing import Any

import numpy as np
import torch

from hf_ad import constants
from hf_ad.data.columns import ChunkedColumn, run_starts
from hf_ad.data.histories import FINITE_COLUMNS, first_non_finite

IGNORE_INDEX = -100  # label value ignored by the loss (torch cross-entropy's default)
WINDOW_COLUMNS = (
    constants.HISTORY_ID,
    constants.TASK,
    constants.OBSERVATION,
    constants.ACTION,
    constants.REWARD,
)


def window_columns(mark_episode_starts: bool = False) -> tuple[str, ...]:
    """The columns windows read: `WINDOW_COLUMNS`, and the step within the episode where episode starts are
    marked (`ADConfig.mark_episode_starts`)."""
    return (*WINDOW_COLUMNS, constants.STEP) if mark_episode_starts else WINDOW_COLUMNS


def dataset_columns(dataset, columns: Sequence[str] = WINDOW_COLUMNS) -> dict[str, ChunkedColumn]:
    """Columns of a `datasets.Dataset`, read in place from its (memory-mapped) Arrow table.

    `with_format("arrow")[:]` applies any selection or shuffle of the dataset and is zero-copy
    otherwise; each chunk becomes a numpy view (`ChunkedColumn`), never joined into one copy.
    """
    missing = [name for name in columns if name not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset lacks the columns {missing}; it has {dataset.column_names}")
    table = dataset.with_format("arrow")[:]
    return {name: ChunkedColumn.of(table.column(name)) for name in columns}


def _refuse_non_finite(columns: dict[str, ChunkedColumn]) -> None:
    """Raise before a NaN or infinite reward or observation can reach the model as NaN logits."""
    for name in FINITE_COLUMNS:
        for offset, chunk in columns[name].iter_chunks():
            row = first_non_finite(chunk)
            if row is not None:
                history = int(columns[constants.HISTORY_ID].take(np.array(offset + row)))
                raise ValueError(
                    f"the histories are damaged: column {name!r} holds a NaN or infinite value at row "
                    f"{offset + row} (history {history}); check the dataset with "
                    "`hf_ad.data.validate_histories(folder, verify=True)` and regenerate it with "
                    "`hf-ad generate`"
                )


def _action_range(actions: ChunkedColumn) -> tuple[int, int]:
    """The smallest and largest action, one chunk at a time."""
    ranges = [(int(chunk.min()), int(chunk.max())) for _, chunk in actions.iter_chunks() if len(chunk)]
    return min(low for low, _ in ranges), max(high for _, high in ranges)


class HistoryWindows:
    """Every window of `context` consecutive transitions inside one learning history.

    Args:
        columns: numpy arrays or `ChunkedColumn`s (read in place), one row per transition, keyed by the
            names in `WINDOW_COLUMNS`:
            `history_id (N,)`, `task (N, K)`, `observation (N, *obs_shape)`, `action (N,)`,
            `reward (N,)`. Rows of one history must be contiguous and in time order.
        context: transitions per window.
        num_actions: size of the action space; also the "no previous action" token.
        tasks: keep only the histories whose task is one of these (the training tasks); `None` keeps
            every history.
        loss_lead_in: the first `loss_lead_in` positions of a window get the label -100 (left out of
            the loss), except in windows that start at a history's first transition.
        mark_episode_starts: the first transition of every episode (`step` 0; the column is then needed)
            gets the "no previous action" index, as `ADConfig.mark_episode_starts` asks.

    Raises:
        ValueError: a history is split into several runs of rows, no history matches `tasks`, a kept
            history is shorter than `context`, an action is outside `[0, num_actions)`, a reward or a
            float observation is NaN or infinite, or an argument is out of range.
    """

    def __init__(
        self,
        columns: dict[str, np.ndarray | ChunkedColumn],
        context: int,
        num_actions: int,
        tasks: Sequence[Sequence[Any]] | None = None,
        loss_lead_in: int = 0,
        mark_episode_starts: bool = False,
    ):
        if not isinstance(context, int) or context < 1:
            raise ValueError(f"context must be a positive integer, got {context!r}")
        if not isinstance(loss_lead_in, int) or not 0 <= loss_lead_in < context:
            raise ValueError(
                f"loss_lead_in must be an integer in [0, context={context}), got {loss_lead_in!r}"
            )
        self.context = context
        self.num_actions = int(num_actions)
        self.loss_lead_in = loss_lead_in

        missing = [name for name in window_columns(mark_episode_starts) if name not in columns]
        if missing:
            raise ValueError(
                f"the windows need the columns {missing}"
                + (" to mark episode starts (mark_episode_starts=True)" if constants.STEP in missing else "")
            )
        columns = {name: ChunkedColumn.of(columns[name]) for name in window_columns(mark_episode_starts)}
        history_id, task = columns[constants.HISTORY_ID], columns[constants.TASK]
        if len(history_id) == 0:
            raise ValueError("the dataset holds no transition")
        low, high = _action_range(columns[constants.ACTION])
        if low < 0 or high >= self.num_actions:
            raise ValueError(
                f"dataset actions span [{low}, {high}] but the model has num_actions="
                f"{self.num_actions} (allowed: 0 to {self.num_actions - 1})"
            )
        _refuse_non_finite(columns)
        self.observations = columns[constants.OBSERVATION]  # (N, *obs_shape), read in place
        self.actions = columns[constants.ACTION]  # (N,)
        self.rewards = columns[constants.REWARD]  # (N,)
        self.steps = columns[constants.STEP] if mark_episode_starts else None  # (N,) step within the episode
        # Batches are cast, never the column: uint8 frames stay uint8 (the model scales them), as an int64
        # or float copy of a history of frames would take 8 or 4 times the memory of the column.
        kind = self.observations.dtype.kind
        self.observation_dtype = (
            np.float32
            if kind == "f"
            else self.observations.dtype
            if self.observations.dtype == np.uint8
            else np.int64
        )

        # History runs: rows of one history are contiguous, so a history starts where the id changes.
        first_rows = run_starts(history_id)  # (H,)
        if len(np.unique(history_id.take(first_rows))) != len(first_rows):
            raise ValueError(
                f"rows of a learning history must be contiguous, but the history ids come in "
                f"{len(first_rows)} separate runs of rows"
            )
        lengths = np.diff(np.r_[first_rows, len(history_id)])

        history_tasks = task.take(first_rows).reshape(len(first_rows), -1)  # (H, K)
        keep = np.ones(len(first_rows), dtype=bool)
        if tasks is not None:
            wanted = np.asarray([list(t) for t in tasks], dtype=task.dtype).reshape(len(tasks), -1)  # (M, K)
            if wanted.shape[1] != history_tasks.shape[1]:
                raise ValueError(
                    f"tasks have {wanted.shape[1]} entries each, the dataset's have {history_tasks.shape[1]}"
                )
            keep = (history_tasks[:, None, :] == wanted[None, :, :]).all(-1).any(-1)  # (H,)
            if not keep.any():
                raise ValueError(
                    f"none of the {len(first_rows)} histories has one of the {len(wanted)} requested tasks "
                    f"(first requested: {wanted[0].tolist()}; first in the data: "
                    f"{history_tasks[0].tolist() if len(history_tasks) else None})"
                )
        self.history_ids = history_id.take(first_rows)[keep]  # (H,)
        self.history_tasks = history_tasks[keep]  # (H, K)
        self.history_first_rows = first_rows[keep]  # (H,)
        self.history_lengths = lengths[keep]  # (H,)
        short = self.history_lengths < context
        if short.any():
            raise ValueError(
                f"{int(short.sum())} of {len(short)} learning histories are shorter than context={context} "
                f"transitions (shortest: {int(self.history_lengths.min())}); lower the context or generate "
                f"longer histories"
            )
        # Window k of the flat list of all windows belongs to history h = searchsorted(ends, k, "right").
        windows_per_history = self.history_lengths - context + 1  # (H,)
        self._window_ends = np.cumsum(windows_per_history)  # (H,)
        self._window_begins = self._window_ends - windows_per_history  # (H,)

    @classmethod
    def from_dataset(
        cls,
        dataset,
        context: int,
        num_actions: int,
        tasks: Sequence[Sequence[Any]] | None = None,
        loss_lead_in: int = 0,
        mark_episode_starts: bool = False,
    ) -> HistoryWindows:
        """Windows over a histories `datasets.Dataset` (columns `hf_ad.constants.HISTORY_COLUMNS`)."""
        return cls(
            dataset_columns(dataset, window_columns(mark_episode_starts)),
            context,
            num_actions,
            tasks=tasks,
            loss_lead_in=loss_lead_in,
            mark_episode_starts=mark_episode_starts,
        )

    @property
    def num_windows(self) -> int:
        """Number of distinct windows (start rows) over the kept histories."""
        return int(self._window_ends[-1])

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self.observations.row_shape

    def window_starts(self, window_indices: np.ndarray) -> np.ndarray:
        """First row of each window, for indices in `[0, num_windows)`."""
        window_indices = np.asarray(window_indices, dtype=np.int64)
        history = np.searchsorted(self._window_ends, window_indices, side="right")  # (B,)
        return self.history_first_rows[history] + window_indices - self._window_begins[history]  # (B,)

    def sample_starts(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """`batch_size` window start rows, uniformly over all windows (so over all transitions)."""
        return self.window_starts(rng.integers(0, self.num_windows, size=batch_size))

    def history_of(self, starts: np.ndarray) -> np.ndarray:
        """Index (into `history_ids`, `history_tasks`) of the history each start row belongs to."""
        return np.searchsorted(self.history_first_rows, np.asarray(starts, dtype=np.int64), side="right") - 1

    def gather(self, starts: np.ndarray) -> dict[str, torch.Tensor]:
        """The model inputs of the windows starting at rows `starts`, as `ADModel.forward` keywords.

        Returns:
            `observations (B, T, *obs_shape)`, `prev_actions (B, T)` int64, `prev_rewards (B, T)`
            float32 and `labels (B, T)` int64.
        """
        starts = np.asarray(starts, dtype=np.int64)  # (B,)
        at_history_start = self.history_first_rows[self.history_of(starts)] == starts  # (B,)
        # Rows start - 1 .. start + T - 1 (start .. start + T at row 0): the row before a window carries
        # its first a_{t-1} and r_{t-1}; a window never crosses a history, so only its first position can
        # begin one. A column of exactly T rows has one window, at row 0, and only T rows to read: its
        # position 0 then reads index -1, which the "no previous action" below overwrites.
        before = np.maximum(starts - 1, 0)  # (B,)
        span = min(self.context + 1, len(self.actions))
        actions = self.actions.runs(before, span).astype(np.int64, copy=False)  # (B, T + 1)
        rewards = self.rewards.runs(before, span).astype(np.float32, copy=False)  # (B, T + 1)
        own = (starts - before)[:, None] + np.arange(self.context)  # (B, T) positions of the window's rows
        labels = np.take_along_axis(actions, own, axis=1)  # (B, T) a_t
        prev_actions = np.take_along_axis(actions, own - 1, axis=1)  # (B, T) a_{t-1}
        prev_rewards = np.take_along_axis(rewards, own - 1, axis=1)  # (B, T) r_{t-1}
        prev_actions[at_history_start, 0] = self.num_actions  # "no previous action"
        prev_rewards[at_history_start, 0] = 0.0
        if self.steps is not None:
            episode_starts = self.steps.runs(starts, self.context) == 0  # (B, T)
            prev_actions[episode_starts] = self.num_actions  # "no previous action in this episode"
        observations = self.observations.runs(starts, self.context)  # (B, T, *obs_shape)
        if self.loss_lead_in:
            labels[~at_history_start, : self.loss_lead_in] = IGNORE_INDEX  # windows that start mid-history
        return {
            "observations": torch.from_numpy(observations.astype(self.observation_dtype, copy=False)),
            "prev_actions": torch.from_numpy(prev_actions),  # (B, T)
            "prev_rewards": torch.from_numpy(prev_rewards),  # (B, T)
            "labels": torch.from_numpy(labels),  # (B, T)
        }

    def collate(self, starts: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """`DataLoader` collate function: window start rows in, one batch of model inputs out."""
        return self.gather(np.asarray(starts, dtype=np.int64))


class RandomWindowBatches(torch.utils.data.IterableDataset):
    """An endless stream of batches of window start rows, each batch a pure function of its index.

    Batch `b` is drawn from `numpy.random.default_rng([seed, rank, b])`: different ranks see
    different windows, a run restarted at `start_batch=b` continues exactly where it stopped, and
    `DataLoader` workers (if any) split the batch indices round-robin, which the loader reassembles
    in order. Use with `DataLoader(batches, batch_size=None, collate_fn=windows.collate)`.

    Args:
        windows: the windows to draw from.
        batch_size: windows per batch.
        seed: base seed of the run.
        rank: process index (its own stream of batches).
        start_batch: index of the first batch to yield.
    """

    def __init__(
        self, windows: HistoryWindows, batch_size: int, seed: int, rank: int = 0, start_batch: int = 0
    ):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.windows = windows
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.start_batch = start_batch

    def batch_starts(self, batch_index: int) -> np.ndarray:
        """Window start rows of batch `batch_index`: `(batch_size,)` int64."""
        rng = np.random.default_rng([self.seed, self.rank, batch_index])
        return self.windows.sample_starts(rng, self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for batch_index in count(self.start_batch + worker_id, num_workers):
            yield self.batch_starts(batch_index)


def window_loader(
    windows: HistoryWindows,
    batch_size: int,
    seed: int,
    rank: int = 0,
    start_batch: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """An endless `DataLoader` of window batches (see `RandomWindowBatches` for the seeding)."""
    batches = RandomWindowBatches(windows, batch_size, seed=seed, rank=rank, start_batch=start_batch)
    return torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        collate_fn=windows.collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        # Its own generator: starting an iterator then leaves the global torch RNG (dropout) untouched,
        # so a resumed run's dropout stream matches the uninterrupted run's.
        generator=torch.Generator().manual_seed(seed),
    )


__all__ = [
    "IGNORE_INDEX",
    "HistoryWindows",
    "RandomWindowBatches",
    "dataset_columns",
    "window_columns",
    "window_loader",
]
