"""How well a checkpoint imitates its source, phase by phase of the learning histories it was trained on.

A model that plays poorly in context either did not learn to predict its source's actions, or predicts them
and fails on the contexts its own play creates. `phase_losses` tells the two apart: the cross-entropy of
the model's next-action prediction on windows of the training histories, at a few phases of each history
(early: the source still exploring; late: converged), measured on the second half of each window so that
the context is full. `before_reward=n` keeps only the steps of an episode up to its n-th reward (Key-to-Door's
door is the second), where the converged source is on its way and its actions are predictable.

    python scripts/imitation_by_phase.py --model M --dataset D --phases 0 20 96 --before-reward 2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hf_ad import constants
from hf_ad.data.windows import HistoryWindows, window_columns

COLUMNS = (*window_columns(mark_episode_starts=True), constants.EPISODE)  # all any model needs
BATCH_SIZE = 32  # windows per forward pass


def episode_first_rows(history_ids: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """The first row of every stored episode of every history (rows of a history contiguous, in order)."""
    new_history = np.r_[True, history_ids[1:] != history_ids[:-1]]  # (N,)
    return np.flatnonzero(new_history | np.r_[True, episodes[1:] != episodes[:-1]])


def steps_before_reward(first_rows: np.ndarray, rewards: np.ndarray, count: int) -> np.ndarray:
    """`(N,)` bool: the steps of each episode (starting at `first_rows`) up to the one that earns its
    `count`-th positive reward (that step included: its action is the one that reaches the reward)."""
    paid = (rewards > 0).astype(np.int64)  # (N,)
    earned = np.cumsum(paid)  # (N,) rewards up to each step, over the whole column
    lengths = np.diff(np.r_[first_rows, len(rewards)])  # (E,)
    before_episode = np.repeat(earned[first_rows] - paid[first_rows], lengths)  # (N,)
    return earned - paid - before_episode < count  # rewards of the episode strictly before each step


@torch.no_grad()
def phase_losses(
    model,
    columns: dict[str, np.ndarray],
    phases: Sequence[int],
    window_episodes: int,
    before_reward: int | None = None,
) -> dict[int, float]:
    """Mean cross-entropy per phase over every history in `columns` (numpy columns of `COLUMNS`, rows of a
    history contiguous and in time order, episodes of one length): for phase p, the training window
    (`HistoryWindows.gather`) of stored episodes p .. p + window_episodes - 1 of each history, scored on its
    second half (and, with `before_reward`, on the steps up to that reward only).

    Raises:
        ValueError: a phase whose window runs past a history's stored episodes.
    """
    first_rows = episode_first_rows(columns[constants.HISTORY_ID], columns[constants.EPISODE])  # (E,)
    episode_length = int(first_rows[1] - first_rows[0]) if len(first_rows) > 1 else len(first_rows)
    context = window_episodes * episode_length
    marks = model.config.mark_episode_starts
    windows = HistoryWindows(
        {name: columns[name] for name in window_columns(marks)},
        context,
        model.config.num_actions,
        mark_episode_starts=marks,
    )
    history_of_episode = windows.history_of(first_rows)  # (E,)
    rank = np.arange(len(first_rows)) - np.searchsorted(history_of_episode, history_of_episode)  # (E,)
    stored = np.bincount(history_of_episode)  # (H,) episodes stored per history
    scored = np.arange(context) >= context // 2  # (T,)
    kept = (
        steps_before_reward(first_rows, columns[constants.REWARD], before_reward) if before_reward else None
    )
    losses = {}
    for phase in phases:
        if phase + window_episodes > stored.min():
            raise ValueError(
                f"phase {phase} needs {window_episodes} stored episodes from there; a history stores "
                f"{stored.min()}: choose phases below {stored.min() - window_episodes + 1}"
            )
        starts = first_rows[rank == phase]  # (H,) one window per history
        parts = []
        for batch in np.array_split(starts, max(1, len(starts) // BATCH_SIZE)):
            inputs = windows.gather(batch)
            labels = inputs.pop("labels")  # (B, T)
            logits = model(**inputs).logits  # (B, T, A)
            loss = F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none").numpy()  # (B, T)
            mask = np.broadcast_to(scored, loss.shape)
            if kept is not None:
                mask = mask & kept[batch[:, None] + np.arange(context)]
            parts.append(loss[mask])
        losses[phase] = float(np.concatenate(parts).mean())
    return losses
