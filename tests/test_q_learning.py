"""Batched tabular Q-learning: it learns, it is seeded, its learners are independent."""

from __future__ import annotations

import numpy as np
import pytest

from hf_ad import constants
from hf_ad.envs import optimal_return, task_split
from hf_ad.sources import SOURCES
from hf_ad.sources.q_learning import QLearningConfig, learn, state_encoder


def _returns(env_id, tasks, **config):
    blocks = list(learn(env_id, tasks, QLearningConfig(**config)))
    return blocks, np.stack([b.returns for b in blocks])  # (E, N)


def test_reaches_90_percent_of_the_oracle_on_dark_room_training_goals():
    train, _ = task_split(constants.DARK_ROOM)
    _, returns = _returns(constants.DARK_ROOM, train, episodes=150, seed=0)
    optimal = np.mean([optimal_return(constants.DARK_ROOM, t) for t in train])
    assert returns[:5].mean() < 0.3 * optimal  # it starts untrained ...
    assert returns[-10:].mean() >= 0.9 * optimal  # ... and learns


def test_key_to_door_learns_with_the_reward_count_state():
    train, _ = task_split(constants.DARK_KEY_TO_DOOR)
    _, returns = _returns(constants.DARK_KEY_TO_DOOR, train[:64], episodes=150, init_q=2.0, seed=0)
    assert returns[:5].mean() < 0.6 and returns[-10:].mean() >= 1.6  # optimal: 2


def test_blocks_follow_the_contract():
    tasks = [(0, 0), (8, 8), (0, 0)]
    blocks, _ = _returns(constants.DARK_ROOM, tasks, episodes=3, seed=1)
    assert [b.episode for b in blocks] == [0, 1, 2]
    block = blocks[0]
    assert block.observations.shape == (3, 20, 2) and block.observations.dtype == np.int64
    assert block.actions.shape == (3, 20) and block.actions.dtype == np.int64
    assert block.rewards.dtype == np.float32 and block.truncated[:, -1].all() and not block.terminated.any()
    assert (block.observations[:, 0] == 4).all()
    # Each observation follows from the previous one and the action taken (the env's dynamics).
    moves = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)])
    expected = np.clip(block.observations[:, :-1] + moves[block.actions[:, :-1]], 0, 8)
    assert (expected == block.observations[:, 1:]).all()


def test_seeded_and_independent_learners():
    tasks = [(2, 7)] * 4
    first, _ = _returns(constants.DARK_ROOM, tasks, episodes=5, seed=7)
    again, _ = _returns(constants.DARK_ROOM, tasks, episodes=5, seed=7)
    other, _ = _returns(constants.DARK_ROOM, tasks, episodes=5, seed=8)
    assert all((a.actions == b.actions).all() for a, b in zip(first, again, strict=True))
    assert any((a.actions != b.actions).any() for a, b in zip(first, other, strict=True))
    # Four learners on one task explore differently (random tie-breaks and exploration).
    actions = np.concatenate([b.actions for b in first], axis=1)  # (4, 5 * 20)
    assert len({row.tobytes() for row in actions}) == 4


def test_registry_and_config_checks():
    assert SOURCES["q_learning"] == (learn, QLearningConfig)
    with pytest.raises(ValueError, match="learning_rate"):
        QLearningConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="keep_every"):
        QLearningConfig(keep_every=0)
    assert QLearningConfig(epsilon=0.1, epsilon_decay=0.5, epsilon_min=0.02).epsilon_at(3) == 0.02


def test_state_encoder():
    import gymnasium as gym

    cells, encode = state_encoder(gym.spaces.MultiDiscrete([3, 4]))
    assert cells == 12
    assert encode(np.array([[0, 0], [2, 3], [1, 2]])).tolist() == [0, 11, 6]
    with pytest.raises(ValueError, match="Discrete"):
        state_encoder(gym.spaces.Box(0, 1, (2,)))


def test_pixel_watermaze_learns_on_the_privileged_pose_and_records_the_images():
    env_id = constants.PIXEL_WATERMAZE
    train, _ = task_split(env_id)
    tasks = train[::8]  # 9 goals all over the room
    blocks, returns = _returns(env_id, tasks, episodes=200, seed=0)
    optimal = np.mean([optimal_return(env_id, t) for t in tasks])
    assert returns[:5].mean() < 0.3 * optimal  # it starts untrained ...
    assert returns[-10:].mean() >= 0.9 * optimal  # ... and learns the goal from info["state"]
    observations = blocks[-1].observations  # what AD sees: the first-person images
    assert observations.shape == (len(tasks), 50, 28, 28, 3) and observations.dtype == np.uint8
