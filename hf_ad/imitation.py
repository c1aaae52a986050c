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

COLUMNS = ("history_id", "episode", "observation", "action", "reward")


def steps_before_reward(episodes: np.ndarray, rewards: np.ndarray, count: int) -> np.ndarray:
    """`(T,)` bool: the steps of each episode up to the one that earns its `count`-th positive reward (that
    step included: its action is the one that reaches the reward)."""
    before = np.zeros(len(episodes), dtype=bool)
    for episode in np.unique(episodes):
        steps = np.nonzero(episodes == episode)[0]
        paid = rewards[steps] > 0
        before[steps] = np.cumsum(paid) - paid < count  # rewards strictly before each step
    return before


@torch.no_grad()
def window_losses(model, columns: dict[str, np.ndarray]) -> np.ndarray:
    """`(T,)` cross-entropy of the model's prediction of each action of one window of one history."""
    observations = torch.as_tensor(columns["observation"][None])  # (1, T, ...)
    actions = torch.as_tensor(columns["action"][None]).long()  # (1, T)
    rewards = torch.as_tensor(columns["reward"][None]).float()  # (1, T)
    start = torch.full((1, 1), model.config.num_actions)  # "no previous action"
    prev_actions = torch.cat([start, actions[:, :-1]], dim=1)  # (1, T)
    prev_rewards = torch.cat([torch.zeros(1, 1), rewards[:, :-1]], dim=1)  # (1, T)
    logits = model(observations=observations, prev_actions=prev_actions, prev_rewards=prev_rewards).logits
    return F.cross_entropy(logits[0].float(), actions[0], reduction="none").numpy()  # (T,)


def phase_losses(
    model,
    columns: dict[str, np.ndarray],
    phases: Sequence[int],
    window_episodes: int,
    before_reward: int | None = None,
) -> dict[int, float]:
    """Mean cross-entropy per phase over every history in `columns` (numpy columns of `COLUMNS`, rows in
    history order): for phase p, the window of stored episodes p .. p + window_episodes - 1 of each history,
    scored on its second half (and, with `before_reward`, on the steps up to that reward only).

    Raises:
        ValueError: a phase whose window runs past a history's stored episodes.
    """
    losses: dict[int, list[np.ndarray]] = {phase: [] for phase in phases}
    histories = columns["history_id"]
    for history in np.unique(histories):
        rows = np.nonzero(histories == history)[0]
        stored = np.unique(columns["episode"][rows])
        for phase in phases:
            if phase + window_episodes > len(stored):
                raise ValueError(
                    f"phase {phase} needs {window_episodes} stored episodes from there; history {history} "
                    f"stores {len(stored)}: choose phases below {len(stored) - window_episodes + 1}"
                )
            window = rows[np.isin(columns["episode"][rows], stored[phase : phase + window_episodes])]
            window_columns = {name: columns[name][window] for name in COLUMNS}
            loss = window_losses(model, window_columns)
            scored = np.arange(len(window)) >= len(window) // 2
            if before_reward is not None:
                scored &= steps_before_reward(
                    window_columns["episode"], window_columns["reward"], before_reward
                )
            losses[phase].append(loss[scored])
    return {phase: float(np.concatenate(parts).mean()) for phase, parts in losses.items()}
