"""The explore-then-stay heuristic: finds every goal by a systematic search, then plays optimally; seeded."""

from __future__ import annotations

import numpy as np
import pytest

from hf_ad.baselines import ExploreThenStay, KeyThenDoorSearch
from hf_ad.constants import DARK_KEY_TO_DOOR, DARK_ROOM
from hf_ad.envs import all_tasks, make_vector_env, optimal_return
from hf_ad.envs.grid import RIGHT, greedy_action, greedy_actions


def play(agent, tasks, episodes, seed=0, switch=None, env_id=DARK_ROOM, steps=20, **env_kwargs):
    """`(tasks, episodes)` returns of `agent` (a goal switch: `(episode, new tasks)`)."""
    env = make_vector_env(env_id, tasks, **env_kwargs)
    agent.reset(num_streams=len(tasks))
    observations, _ = env.reset(seed=seed)
    returns = np.zeros((len(tasks), episodes))
    for episode in range(episodes):
        if switch is not None and episode == switch[0]:
            observations, _ = env.reset(options={"tasks": switch[1]})
        for _ in range(steps):
            actions = agent.act(observations)
            observations, rewards, terminated, truncated, _ = env.step(actions)
            agent.observe(rewards, terminated | truncated)
            returns[:, episode] += rewards
    return returns


def test_finds_every_goal_within_a_few_episodes_then_scores_the_optimum():
    goals = all_tasks(DARK_ROOM)
    returns = play(ExploreThenStay(size=9, seed=0), goals, episodes=8)
    optimal = np.array([optimal_return(DARK_ROOM, goal) for goal in goals])
    rewarded = returns > 0
    first = rewarded.argmax(axis=1)
    assert rewarded.any(axis=1).all() and first.max() <= 5  # 81 cells, about 15 new ones an episode
    for stream, episode in enumerate(first):  # every episode after the discovery is optimal
        assert (returns[stream, episode + 1 :] == optimal[stream]).all()


def test_seeded_ties_same_seed_same_play_other_seed_other_play():
    goals = all_tasks(DARK_ROOM)[::7]
    first, again = (play(ExploreThenStay(seed=3), goals, 4) for _ in range(2))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, play(ExploreThenStay(seed=4), goals, 4))


def test_after_a_goal_switch_it_stays_unless_it_reexplores():
    old, new = [(1, 7), (8, 5)], [(8, 5), (1, 7)]
    stays = play(ExploreThenStay(seed=0), old, 20, switch=(10, new))
    assert (stays[:, 9] > 0).all() and (stays[:, 10:] == 0).all()  # back to the old cell, forever
    reexplores = play(ExploreThenStay(seed=0, reexplore=True), old, 20, switch=(10, new))
    optimal = [optimal_return(DARK_ROOM, goal) for goal in new]
    assert (reexplores[:, -1] == optimal).all()


def test_stochastic_rewards_one_paid_step_is_enough_to_stay():
    returns = play(ExploreThenStay(seed=0), [(2, 2)] * 50, 30, reward_prob=0.5)
    expected = optimal_return(DARK_ROOM, (2, 2), reward_prob=0.5)
    assert returns[:, -10:].mean() == pytest.approx(expected, abs=1.0)


def test_observe_remembers_the_cells_of_the_actions_actually_taken():
    agent = ExploreThenStay(seed=0)
    agent.reset(num_streams=1)
    agent.act(np.array([[4, 4]]))  # the centre: its plan is a no-op to test the start cell
    agent.observe(np.zeros(1), actions=np.array([RIGHT]))  # a caller moved right instead
    assert agent.visited[0, 4 * 9 + 5] and not agent.visited[0, 4 * 9 + 4]
    with pytest.raises(ValueError, match="actions"):
        agent.act(np.array([[5, 4]]))
        agent.observe(np.zeros(1), actions=np.array([7]))


def test_misuse_raises_named_errors():
    agent = ExploreThenStay()
    with pytest.raises(RuntimeError, match="before reset"):
        agent.act(np.zeros((1, 2)))
    agent.reset(num_streams=2)
    with pytest.raises(ValueError, match="observations must have shape \\(2, 2\\)"):
        agent.act(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="observe\\(\\) without act"):
        agent.observe([0, 0])
    agent.act(np.full((2, 2), 4))
    with pytest.raises(RuntimeError, match="act\\(\\) twice"):
        agent.act(np.full((2, 2), 4))
    with pytest.raises(ValueError, match="rewards must have shape \\(2,\\)"):
        agent.observe([0, 0, 0])
    with pytest.raises(ValueError, match="num_streams must be a positive integer"):
        agent.reset(num_streams=0)


def test_key_then_door_finds_both_within_a_few_episodes_then_scores_two_every_episode():
    tasks = all_tasks(DARK_KEY_TO_DOOR)[::5]
    returns = play(KeyThenDoorSearch(seed=0), tasks, 8, env_id=DARK_KEY_TO_DOOR, steps=50)
    assert returns[:, 0].mean() < 1.0  # it starts in the dark
    solved = (returns == 2).argmax(axis=1)  # (tasks,) first episode with both rewards
    assert (returns == 2).any(axis=1).all() and solved.max() <= 5
    for stream, episode in enumerate(solved):  # both cells known: every later episode pays 2
        assert (returns[stream, episode:] == 2).all()


def test_key_then_door_rules_out_the_door_only_with_the_key_in_hand():
    agent = KeyThenDoorSearch(seed=0)
    agent.reset(num_streams=1)
    agent.act(np.array([[4, 4]]))
    agent.observe(np.zeros(1), episode_ended=np.zeros(1, bool), actions=np.array([RIGHT]))
    assert agent.tested[0, 0, 4 * 9 + 5] and not agent.tested[0, 1].any()  # not the key; the door unknown
    agent.act(np.array([[5, 4]]))
    agent.observe(np.ones(1), episode_ended=np.zeros(1, bool), actions=np.array([RIGHT]))  # the key
    assert agent.found[0, 0] == 4 * 9 + 6 and agent.rewards_this_episode[0] == 1
    agent.act(np.array([[6, 4]]))
    agent.observe(np.zeros(1), episode_ended=np.ones(1, bool), actions=np.array([RIGHT]))
    assert agent.tested[0, 1, 4 * 9 + 7] and agent.rewards_this_episode[0] == 0  # a new episode: no key
    assert agent.searching[0]
    with pytest.raises(ValueError, match="episode_ended is required"):
        agent.act(np.array([[7, 4]]))
        agent.observe(np.zeros(1))


def test_batched_greedy_actions_are_the_single_ones():
    cells = np.stack(np.meshgrid(np.arange(9), np.arange(9)), axis=-1).reshape(-1, 2)  # (81, 2)
    positions, targets = np.repeat(cells, 81, axis=0), np.tile(cells, (81, 1))  # every pair
    expected = [greedy_action(p, t) for p, t in zip(positions, targets, strict=True)]
    np.testing.assert_array_equal(greedy_actions(positions, targets), expected)
