"""`hf_ad.imitation`: how well a checkpoint predicts its source's actions, phase by phase."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import save_tiny_checkpoint
from transformers import AutoModel

from hf_ad.imitation import episode_first_rows, phase_losses, steps_before_reward

EPISODE_STEPS, EPISODES = 4, 5


def tiny_histories(num_histories: int = 2) -> dict[str, np.ndarray]:
    """Two histories of 5 stored episodes of 4 steps; rewards at steps 1 and 2 of every episode."""
    rng = np.random.default_rng(0)
    steps = num_histories * EPISODES * EPISODE_STEPS
    return {
        "history_id": np.repeat(np.arange(num_histories), EPISODES * EPISODE_STEPS),
        "task": np.repeat(np.array([[4, 4]] * num_histories), EPISODES * EPISODE_STEPS, axis=0),
        "episode": np.tile(
            np.repeat(np.arange(EPISODES) * 10, EPISODE_STEPS), num_histories
        ),  # kept: 0, 10..
        "observation": rng.integers(0, 9, size=(steps, 2)),
        "action": rng.integers(0, 5, size=steps),
        "reward": np.tile(np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32), num_histories * EPISODES),
    }


def test_steps_up_to_the_nth_reward_of_each_episode():
    histories = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1])
    episodes = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])  # history 1's episode 1 is another episode
    rewards = np.array([0, 1, 0, 1, 1, 0, 0, 0, 1])
    first_rows = episode_first_rows(histories, episodes)
    assert first_rows.tolist() == [0, 4, 7]
    assert steps_before_reward(first_rows, rewards, 1).tolist() == [1, 1, 0, 0, 1, 0, 0, 1, 1]
    assert steps_before_reward(first_rows, rewards, 2).tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1]


@torch.no_grad()
def window_loss_by_hand(model, columns: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """`(T,)` cross-entropy on the window of `rows` (mid-history: a_{t-1}, r_{t-1} from the row before)."""
    actions = torch.as_tensor(columns["action"][rows]).long()  # (T,)
    before = rows - 1
    logits = model(
        observations=torch.as_tensor(columns["observation"][rows][None]),
        prev_actions=torch.as_tensor(columns["action"][before][None]).long(),
        prev_rewards=torch.as_tensor(columns["reward"][before][None]).float(),
    ).logits[0]  # (T, A)
    return F.cross_entropy(logits, actions, reduction="none").numpy()


def test_phase_losses_score_the_second_half_of_each_training_window(tmp_path):
    model = AutoModel.from_pretrained(save_tiny_checkpoint(tmp_path / "m", [(0, 0)])).eval()
    columns = tiny_histories()
    losses = phase_losses(model, columns, phases=[0, 3], window_episodes=2)
    # By hand for phase 3: stored episodes 3 and 4 (episode ids 30, 40) of each history, last 4 of 8 steps.
    by_hand = []
    for history in (0, 1):
        rows = np.flatnonzero((columns["history_id"] == history) & np.isin(columns["episode"], [30, 40]))
        by_hand.append(window_loss_by_hand(model, columns, rows)[4:])
    assert losses[3] == pytest.approx(float(np.concatenate(by_hand).mean()), rel=1e-5)
    assert set(losses) == {0, 3} and losses[0] != losses[3]
    # Up to the first reward: steps 0 and 1 of each episode count (two of the four scored per window).
    before = phase_losses(model, columns, phases=[3], window_episodes=2, before_reward=1)
    firsts = np.concatenate([loss[[0, 1]] for loss in by_hand])  # steps 0, 1 of episode 40
    assert before[3] == pytest.approx(float(firsts.mean()), rel=1e-5)


def test_a_phase_past_the_stored_episodes_is_named(tmp_path):
    model = AutoModel.from_pretrained(save_tiny_checkpoint(tmp_path / "m", [(0, 0)])).eval()
    with pytest.raises(ValueError, match="phase 4 needs 2 stored episodes.*stores 5: choose phases below 4"):
        phase_losses(model, tiny_histories(), phases=[4], window_episodes=2)
