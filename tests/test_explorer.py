"""The explore-then-stay search as a source of learning histories."""

from __future__ import annotations

import numpy as np
import pytest

from hf_ad import constants
from hf_ad.envs import optimal_return, task_split
from hf_ad.envs.grid import NOOP
from hf_ad.envs.pixel_watermaze import pose_tables
from hf_ad.sources import SOURCES
from hf_ad.sources.explorer import ExplorerConfig, PoseExploreThenStay, learn


def histories(tasks, env_id=constants.DARK_ROOM, **options) -> tuple[np.ndarray, list]:
    blocks = list(learn(env_id, tasks, ExplorerConfig(**options)))
    return np.stack([block.returns for block in blocks]), blocks  # (episodes, N)


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_searches_a_few_episodes_then_plays_the_optimum_without_random_steps(epsilon):
    tasks = task_split(constants.DARK_ROOM)[0]
    returns, _ = histories(tasks, episodes=12, epsilon=epsilon, seed=0)
    optimal = np.array([optimal_return(constants.DARK_ROOM, task) for task in tasks])
    assert returns[0].mean() < 0.5 * optimal.mean()  # it starts in the dark
    np.testing.assert_array_equal(returns[-1], optimal)  # the search is over: no random steps remain


def test_random_steps_replace_the_search_while_searching_and_the_seed_repeats_them():
    tasks = [(0, 5)] * 64
    _, plain = histories(tasks, episodes=1, epsilon=0.0, seed=0)
    _, noisy = histories(tasks, episodes=1, epsilon=1.0, seed=0)
    _, again = histories(tasks, episodes=1, epsilon=1.0, seed=0)
    noop_share = [np.mean(blocks[0].actions == NOOP) for blocks in (plain, noisy)]
    assert noop_share[0] < 0.15 < noop_share[1]  # the search no-ops only on its start cell and the goal
    np.testing.assert_array_equal(noisy[0].actions, again[0].actions)


def test_registry_and_checks():
    assert SOURCES["explorer"] == (learn, ExplorerConfig)
    with pytest.raises(ValueError, match="epsilon"):
        ExplorerConfig(epsilon=1.5)
    with pytest.raises(ValueError, match="PixelWatermaze"):
        next(learn(constants.BANDIT, [tuple([0.5] * 10)], ExplorerConfig()))


def test_dark_room_hard_search_finds_every_goal_then_takes_its_one_reward_each_episode():
    tasks = task_split(constants.DARK_ROOM_HARD)[0]
    returns, _ = histories(tasks, env_id=constants.DARK_ROOM_HARD, episodes=40, epsilon=0.0, seed=0)
    assert returns[0].mean() < 0.2  # a 17 x 17 room, 20 steps an episode: the search takes many
    np.testing.assert_array_equal(returns[-1], np.ones(len(tasks)))  # every goal reached, once an episode


def test_exploit_epsilon_adds_random_steps_after_the_goal_is_found():
    tasks = task_split(constants.DARK_ROOM)[0]
    optimal = np.array([optimal_return(constants.DARK_ROOM, task) for task in tasks])
    returns, _ = histories(tasks, episodes=12, exploit_epsilon=0.2, seed=0)
    assert returns[-1].mean() < optimal.mean() - 1  # wrong steps cost reward every episode
    assert returns[-1].mean() > 0.5 * optimal.mean()  # and the learner walks back to the goal


def test_key_to_door_searches_for_the_key_then_the_door_then_scores_two():
    tasks = task_split(constants.DARK_KEY_TO_DOOR)[0][::20]
    returns, _ = histories(tasks, constants.DARK_KEY_TO_DOOR, episodes=10, epsilon=0.1, seed=0)
    assert returns[0].mean() < 1.0
    np.testing.assert_array_equal(returns[-1], 2.0)  # both found, no random steps once found


def test_pixel_watermaze_search_on_the_hidden_pose_finds_every_goal_within_a_few_episodes():
    tasks = task_split(constants.PIXEL_WATERMAZE)[0]
    returns, blocks = histories(tasks, constants.PIXEL_WATERMAZE, episodes=5, epsilon=0.0, seed=0)
    optimal = np.array([optimal_return(constants.PIXEL_WATERMAZE, task) for task in tasks])
    assert returns[0].mean() < 0.5 * optimal.mean()  # it starts in the dark
    np.testing.assert_array_equal(returns[-1], optimal)  # every goal found and reached the fastest way
    assert blocks[0].observations.shape[-3:] == (28, 28, 3)  # the histories hold the views, not the pose


def test_pose_search_observes_its_own_actions_unless_told_others():
    tables = pose_tables(9, 4)
    own, told = PoseExploreThenStay(tables, seed=0), PoseExploreThenStay(tables, seed=0)
    for search in (own, told):
        search.reset(num_streams=2)
    poses = np.array([tables.start, tables.start])
    actions = own.act(poses)
    np.testing.assert_array_equal(told.act(poses), actions)
    own.observe(np.zeros(2))
    told.observe(np.zeros(2), actions=actions)
    np.testing.assert_array_equal(own.tested, told.tested)
    assert own.tested.sum() == 2  # one cell tested per stream, the one its move led to
