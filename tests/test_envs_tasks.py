"""Task splits (stable, disjoint, documented sizes) and the exact return oracles."""

import gymnasium as gym
import numpy as np
import pytest

from hf_ad.constants import BANDIT, DARK_KEY_TO_DOOR, DARK_ROOM, DARK_ROOM_HARD, ENV_IDS, PIXEL_WATERMAZE
from hf_ad.envs import (
    all_tasks,
    greedy_action,
    in_training_region,
    make_vector_env,
    optimal_return,
    random_return,
    sample_bandit_tasks,
    subset_tasks,
    task_split,
)

SPLIT_SIZES = {
    DARK_ROOM: (65, 16),
    DARK_ROOM_HARD: (231, 58),
    DARK_KEY_TO_DOOR: (1800, 4680),
    BANDIT: (1000, 200),
    PIXEL_WATERMAZE: (65, 16),
}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_split_sizes_disjoint_deterministic_and_valid(env_id):
    train, test = task_split(env_id)
    assert (len(train), len(test)) == SPLIT_SIZES[env_id]
    assert not set(train) & set(test) and len(set(train)) == len(train)
    assert task_split(env_id) == (train, test)
    assert task_split(env_id, seed=1) != (train, test)
    env = gym.make(env_id).unwrapped
    for task in train[:50] + test[:50]:
        assert isinstance(task, tuple) and env.check_task(task) == task
    if env_id != BANDIT:
        assert sorted(train + test) == all_tasks(env_id)


def test_splits_are_stable_across_versions():
    # Hard-coded: a change here silently changes every published dataset's held-out tasks.
    train, test = task_split(DARK_ROOM)
    assert test == [(0, 5), (1, 0), (1, 3), (1, 7), (2, 8), (3, 0), (4, 1), (4, 2),
                    (5, 0), (5, 4), (5, 7), (7, 4), (7, 8), (8, 1), (8, 5), (8, 6)]  # fmt: skip
    assert train[:3] == [(0, 0), (0, 1), (0, 2)]
    hard_train, hard_test = task_split(DARK_ROOM_HARD)
    assert hard_test[:4] == [(0, 5), (0, 9), (0, 12), (0, 16)]
    key_train, key_test = task_split(DARK_KEY_TO_DOOR)
    assert key_train[:3] == [(0, 0, 0, 2), (0, 0, 0, 3), (0, 0, 0, 4)]
    assert key_test[:2] == [(0, 0, 0, 1), (0, 0, 0, 5)]
    bandit_train, bandit_test = task_split(BANDIT)
    assert bandit_train[0] == (0.637, 0.9351, 0.041, 0.0165, 0.8133, 0.9128, 0.6066, 0.7295, 0.5436, 0.2698)
    assert np.argmax(bandit_train[0]) == 1


@pytest.mark.parametrize("env_id", [DARK_ROOM, DARK_ROOM_HARD])
def test_regions_split_trains_left_and_holds_out_in_and_beyond_the_region(env_id):
    train, test = task_split(env_id, kind="regions")
    size = gym.make(env_id).unwrapped.size
    boundary = 2 * size // 3  # the first column of the test region
    assert all(x < boundary for x, _ in train) and not set(train) & set(test)
    assert sorted(train + test) == all_tasks(env_id)
    in_region = [task for task in test if in_training_region(env_id, task)]
    assert test[: len(in_region)] == sorted(in_region)  # in-region first, then the test region
    assert [task for task in test if task[0] >= boundary] == test[len(in_region) :]
    assert len(in_region) == round(0.2 * boundary * size) and len(train) == boundary * size - len(in_region)
    assert task_split(env_id, kind="regions") == (train, test)
    if env_id == DARK_ROOM:  # the numbers the docs give
        assert (len(train), len(in_region), len(test) - len(in_region)) == (43, 11, 27)


def test_regions_split_needs_a_goal_room_and_a_known_kind():
    with pytest.raises(ValueError, match="regions task split needs one of"):
        task_split(DARK_KEY_TO_DOOR, kind="regions")
    with pytest.raises(ValueError, match="task split kind must be one of"):
        task_split(DARK_ROOM, kind="corners")


def test_subset_tasks_are_nested_and_checked():
    train, _ = task_split(DARK_ROOM)
    five, ten = subset_tasks(train, 5), subset_tasks(train, 10)
    assert len(five) == 5 and set(five) <= set(ten) <= set(train) and five == sorted(five)
    assert subset_tasks(train, 65) == train and subset_tasks(train, 5, seed=1) != five
    with pytest.raises(ValueError, match=r"num_tasks must be an integer in 1..65"):
        subset_tasks(train, 66)


def test_bandit_split_trains_on_odd_and_tests_on_even():
    train, test = task_split(BANDIT)
    assert 0.92 < np.mean([np.argmax(task) % 2 == 1 for task in train]) < 0.98
    assert 0.88 < np.mean([np.argmax(task) % 2 == 0 for task in test]) < 1.0


def test_dark_room_optimal_return_hand_checked():
    assert optimal_return(DARK_ROOM, (4, 4)) == 20  # the centre: stay for 20 steps
    assert optimal_return(DARK_ROOM, (4, 5)) == 20  # one step away: 21 - 1
    assert optimal_return(DARK_ROOM, (6, 4)) == 19
    assert optimal_return(DARK_ROOM, (0, 0)) == 13  # 8 steps away
    assert optimal_return(DARK_ROOM, (0, 0), max_episode_steps=5) == 0
    # sum of 21 - d over the 81 goals: the distances sum to 2 * 9 * 20 = 360; the centre pays 20, not 21
    assert sum(optimal_return(DARK_ROOM, goal) for goal in all_tasks(DARK_ROOM)) == 81 * 21 - 360 - 1
    assert {optimal_return(DARK_ROOM_HARD, goal) for goal in all_tasks(DARK_ROOM_HARD)} == {1.0}


def test_key_to_door_and_bandit_optimal_return_hand_checked():
    assert {optimal_return(DARK_KEY_TO_DOOR, task) for task in task_split(DARK_KEY_TO_DOOR)[0][:200]} == {2.0}
    # 2x2 room, key (0, 0), door (1, 0): 3 starts reach the key within 1 step
    assert optimal_return(DARK_KEY_TO_DOOR, (0, 0, 1, 0), size=2, max_episode_steps=1) == 0.75
    # 2 steps: those 3 starts also open the door; the far start (1, 1) only gets the key
    assert optimal_return(DARK_KEY_TO_DOOR, (0, 0, 1, 0), size=2, max_episode_steps=2) == 1.75
    means = (0.1, 0.9, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.0)
    assert optimal_return(BANDIT, means) == 0.9
    assert random_return(BANDIT, means) == pytest.approx(0.45)


def test_random_return_hand_checked_on_a_2x2_room():
    # From the start (1, 1): left -> (0, 1), up -> (1, 0); right, down, no-op stay.
    assert random_return(DARK_ROOM, (1, 1), size=2, max_episode_steps=1) == pytest.approx(0.6)
    assert random_return(DARK_ROOM, (0, 1), size=2, max_episode_steps=1) == pytest.approx(0.2)
    # (0, 0) in two steps: via (0, 1) then up, or via (1, 0) then left.
    assert random_return(DARK_ROOM, (0, 0), size=2, max_episode_steps=2) == pytest.approx(0.08)
    # Key at (0, 0) from a uniform start: (3/5 + 1/5 + 1/5 + 0) / 4.
    assert random_return(DARK_KEY_TO_DOOR, (0, 0, 1, 1), size=2, max_episode_steps=1) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "env_id, task, env_kwargs",
    [
        (DARK_ROOM, (5, 3), {}),
        (DARK_ROOM_HARD, (9, 10), {}),
        (DARK_KEY_TO_DOOR, (2, 6, 7, 1), {}),
        (DARK_ROOM, (4, 3), {"reward_prob": 0.4}),
        (DARK_ROOM, (4, 3), {"reward_prob": 0.4, "reward_once": True}),
    ],
)
def test_random_return_matches_monte_carlo_in_the_batched_env(env_id, task, env_kwargs):
    num_envs, episodes = 2000, 4
    env = make_vector_env(env_id, [task] * num_envs, **env_kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    horizon = env.max_episode_steps
    returns = np.zeros(num_envs * episodes)
    for episode in range(episodes):
        for _ in range(horizon):
            _, rewards, *_ = env.step(rng.integers(0, 5, size=num_envs))
            returns[episode * num_envs : (episode + 1) * num_envs] += rewards
    error = returns.std() / np.sqrt(returns.size)
    assert abs(returns.mean() - random_return(env_id, task, **env_kwargs)) < 4 * error + 1e-9


@pytest.mark.parametrize("env_id", [DARK_ROOM, DARK_ROOM_HARD, DARK_KEY_TO_DOOR])
def test_greedy_policy_reaches_the_optimal_return(env_id):
    _, test = task_split(env_id)
    for task in test[:: max(1, len(test) // 8)]:
        env = gym.make(env_id, task=task)
        total, episodes = 0.0, 20
        for episode in range(episodes):
            observation, info = env.reset(seed=episode)
            done = False
            while not done:
                target = task[2:] if info.get("has_key") else task[:2]
                observation, reward, terminated, truncated, info = env.step(
                    greedy_action(observation, target)
                )
                total += reward
                done = terminated or truncated
        assert total / episodes == optimal_return(env_id, task)


def test_unknown_env_id_in_oracles():
    for function in (optimal_return, random_return):
        with pytest.raises(ValueError, match="unknown env id 'DarkRoom'"):
            function("DarkRoom", (1, 1))
    with pytest.raises(ValueError, match="continuous tasks"):
        all_tasks(BANDIT)
    with pytest.raises(ValueError, match="finite episode length"):
        optimal_return(DARK_ROOM, (1, 1), max_episode_steps=None)
    assert len(sample_bandit_tasks("uniform", 5)) == 5
