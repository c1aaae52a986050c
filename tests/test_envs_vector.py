"""The native batched envs match N single envs step for step, with same-step autoreset."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from hf_ad.constants import BANDIT, DARK_KEY_TO_DOOR, DARK_ROOM, DARK_ROOM_HARD, ENV_IDS, PIXEL_WATERMAZE
from hf_ad.envs import (
    STATE_INFO,
    DarkRoomVectorEnv,
    make_vector_env,
    optimal_return,
    sample_bandit_tasks,
    task_split,
)
from hf_ad.envs.grid import DOWN, LEFT, NOOP, RIGHT


def some_tasks(env_id, n):
    if env_id == BANDIT:
        return sample_bandit_tasks("uniform", n, seed=3)
    train, test = task_split(env_id)
    return (train + test)[:: max(1, len(train + test) // n)][:n]


def assert_infos_equal(single_infos, vector_info, key):
    assert np.array_equal(vector_info[key], [info[key] for info in single_infos])


INFO_KEYS = {DARK_KEY_TO_DOOR: ("has_key",), PIXEL_WATERMAZE: (STATE_INFO,)}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_batched_env_matches_single_envs_step_for_step(env_id):
    num_envs, seed = 6, 11
    tasks = some_tasks(env_id, num_envs)
    vector = make_vector_env(env_id, tasks)
    singles = [gym.make(env_id, task=task) for task in tasks]
    assert vector.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert vector.num_envs == num_envs and vector.single_observation_space == singles[0].observation_space

    observations, info = vector.reset(seed=seed)
    resets = [env.reset(seed=seed + i) for i, env in enumerate(singles)]
    assert np.array_equal(observations, [obs for obs, _ in resets])
    for key in INFO_KEYS.get(env_id, ()):
        assert_infos_equal([info for _, info in resets], info, key)

    rng = np.random.default_rng(0)
    length = 2 * (singles[0].spec.max_episode_steps or 40) + 7  # crosses two episode ends
    for _ in range(length):
        actions = rng.integers(0, vector.single_action_space.n, size=num_envs)
        observations, rewards, terminated, truncated, info = vector.step(actions)
        results = [env.step(int(action)) for env, action in zip(singles, actions, strict=True)]
        assert rewards.dtype == np.float32
        assert np.array_equal(rewards, [r[1] for r in results])
        assert np.array_equal(terminated, [r[2] for r in results])
        assert np.array_equal(truncated, [r[3] for r in results])
        ended = terminated | truncated
        for key in INFO_KEYS.get(env_id, ()):  # the step's own info (final_info where episodes ended)
            assert_infos_equal([r[4] for r in results], info["final_info"] if ended.any() else info, key)
        if ended.any():
            assert np.array_equal(info["_final_obs"], ended)
            final = np.array([r[0] for r in results])
            assert np.array_equal(info["final_obs"][ended], final[ended])
            # same-step autoreset: the returned observation starts the next episode
            results = [
                env.reset() if end else r[:1] + r[4:]
                for env, end, r in zip(singles, ended, results, strict=True)
            ]
            next_observations = np.array([r[0] for r in results])
        else:
            assert "final_obs" not in info
            next_observations = np.array([r[0] for r in results])
        assert np.array_equal(observations, next_observations)
        for key in INFO_KEYS.get(env_id, ()):  # the returned observations' info
            assert_infos_equal([r[-1] for r in results], info, key)


def test_key_to_door_random_starts_match_single_envs_across_many_episodes():
    tasks = some_tasks(DARK_KEY_TO_DOOR, 3)
    vector = make_vector_env(DARK_KEY_TO_DOOR, tasks, max_episode_steps=1)  # one start per step
    singles = [gym.make(DARK_KEY_TO_DOOR, task=task, max_episode_steps=1) for task in tasks]
    seeds = [5, 17, 5]
    starts, _ = vector.reset(seed=seeds)
    expected = [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)]
    assert np.array_equal(starts, expected)
    assert np.array_equal(starts[0], starts[2])  # same seed, same stream
    for _ in range(600):  # several refills of the blocks of uniforms
        starts, *_ = vector.step(np.full(3, NOOP))
        for env in singles:
            env.step(NOOP)
        assert np.array_equal(starts, [env.reset()[0] for env in singles])


def test_reset_with_new_tasks_and_reseed():
    vector = make_vector_env(DARK_ROOM, [(5, 4), (3, 4)])
    vector.reset(seed=0)
    assert vector.step(np.array([RIGHT, RIGHT]))[1].tolist() == [1.0, 0.0]
    vector.reset(options={"tasks": [(3, 4), (5, 4)]})
    assert vector.tasks == [(3, 4), (5, 4)]
    assert vector.step(np.array([RIGHT, RIGHT]))[1].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="expected 2 tasks"):
        vector.reset(options={"tasks": [(1, 1)]})
    with pytest.raises(ValueError, match="outside the 9x9 grid"):
        vector.reset(options={"tasks": [(1, 1), (1, 9)]})
    with pytest.raises(ValueError, match="unknown reset options \\['task'\\]"):
        vector.reset(options={"task": (1, 1)})


def test_dark_room_episodes_end_together_and_hard_rewards_once():
    vector = make_vector_env(DARK_ROOM_HARD, [(9, 8), (8, 8)])
    observations, _ = vector.reset(seed=0)
    assert observations.tolist() == [[8, 8], [8, 8]]
    moves = [RIGHT, LEFT, RIGHT]  # arrive, leave, arrive again: only the first arrival pays
    rewards = np.array([vector.step(np.array([move, NOOP]))[1] for move in moves])
    assert rewards.tolist() == [[1, 1], [0, 0], [0, 0]]
    for _ in range(16):
        *_, truncated, info = vector.step(np.array([NOOP, NOOP]))
    assert not truncated.any()
    observations, _, terminated, truncated, info = vector.step(np.array([LEFT, NOOP]))  # step 20
    assert truncated.all() and not terminated.any()
    assert info["final_obs"].tolist() == [[8, 8], [8, 8]] and observations.tolist() == [[8, 8], [8, 8]]
    assert vector.step(np.array([RIGHT, NOOP]))[1].tolist() == [1, 1]  # a new episode pays again


def test_bandit_vector_terminates_every_pull():
    tasks = sample_bandit_tasks("odd", 4, seed=0)
    vector = make_vector_env(BANDIT, tasks)
    observations, info = vector.reset(seed=0)
    assert observations.tolist() == [0, 0, 0, 0] and info == {}
    observations, rewards, terminated, truncated, info = vector.step(np.array([0, 1, 2, 3]))
    assert terminated.all() and not truncated.any() and info["_final_obs"].all()
    assert set(rewards.tolist()) <= {0.0, 1.0}


def test_make_vec_uses_the_native_batched_env():
    env = gym.make_vec(DARK_ROOM, num_envs=2, tasks=[(0, 0), (1, 1)])
    assert isinstance(env.unwrapped, DarkRoomVectorEnv) and env.max_episode_steps == 20
    with pytest.raises(ValueError, match="num_envs=3 does not match the 2 tasks"):
        gym.make_vec(DARK_ROOM, num_envs=3, tasks=[(0, 0), (1, 1)])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_vec_defaults_to_held_out_tasks(env_id):
    held_out = task_split(env_id)[1]
    env = gym.make_vec(env_id, num_envs=3)
    assert len(env.unwrapped.tasks) == 3 and set(env.unwrapped.tasks) <= set(held_out)
    assert gym.make_vec(env_id, num_envs=3).unwrapped.tasks == env.unwrapped.tasks  # deterministic
    other = gym.make_vec(env_id, num_envs=3, task_seed=1).unwrapped.tasks
    assert other != env.unwrapped.tasks and set(other) <= set(held_out)
    assert make_vector_env(env_id).tasks == held_out  # no num_envs either: every held-out task


def test_make_vec_default_tasks_cover_the_split_then_repeat():
    held_out = task_split(DARK_ROOM)[1]
    assert sorted(gym.make_vec(DARK_ROOM, num_envs=len(held_out)).unwrapped.tasks) == held_out
    tasks = gym.make_vec(DARK_ROOM, num_envs=len(held_out) + 2).unwrapped.tasks
    assert tasks[-2:] == tasks[:2]
    with pytest.raises(ValueError, match=r"held-out tasks of hf_ad/DarkRoom-v0 do not fit .*pass tasks="):
        gym.make_vec(DARK_ROOM, num_envs=2, size=3)


def test_vector_render_returns_one_frame_per_sub_env():
    vector = make_vector_env(DARK_KEY_TO_DOOR, [(0, 0, 1, 1), (2, 2, 3, 3)], render_mode="ansi")
    vector.reset(seed=0)
    frames = vector.render()
    assert len(frames) == 2 and all("K" in frame and "D" in frame for frame in frames)
    images = make_vector_env(BANDIT, sample_bandit_tasks("even", 3), render_mode="rgb_array")
    images.reset(seed=0)
    images.step(np.array([0, 1, 2]))
    assert [frame.shape for frame in images.render()] == [(80, 120, 3)] * 3


def test_bad_input_to_batched_envs():
    vector = make_vector_env(DARK_ROOM, [(0, 0), (1, 1)])
    vector.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must be integers in 0\.\.4, got \[5\]"):
        vector.step(np.array([0, 5]))
    with pytest.raises(ValueError, match=r"actions must be integers in 0\.\.4, got \[-1\]"):
        vector.step(np.array([-1, 0]))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        vector.step(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        vector.step(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="unknown env id 'hf_ad/Nope-v0'"):
        make_vector_env("hf_ad/Nope-v0", [(0, 0)])
    with pytest.raises(ValueError, match="same cell"):
        make_vector_env(DARK_KEY_TO_DOOR, [(0, 0, 0, 0)])
    with pytest.raises(ValueError, match="at least one task"):
        make_vector_env(DARK_ROOM, [])
    with pytest.raises(ValueError, match="not `task=`"):
        make_vector_env(DARK_ROOM, [(0, 0)], goal=(1, 1))
    with pytest.raises(ValueError, match="seed must be an int or 2 ints"):
        vector.reset(seed=[1, 2, 3])


@pytest.mark.parametrize("reward_once", [False, True])
def test_stochastic_dark_room_matches_single_envs_and_pays_about_p(reward_once):
    """`reward_prob < 1`: one uniform per sub-env and step, as in the single env; a stay on the goal pays
    on about a fraction p of the steps (the first paid step only, with `reward_once`)."""
    tasks, seed = [(4, 5)] * 200, 3  # one step below the start
    vector = make_vector_env(DARK_ROOM, tasks, reward_prob=0.3, reward_once=reward_once)
    singles = [gym.make(DARK_ROOM, task=task, reward_prob=0.3, reward_once=reward_once) for task in tasks[:4]]
    vector.reset(seed=seed)
    for i, env in enumerate(singles):
        env.reset(seed=seed + i)
    actions_per_step = [np.full(len(tasks), DOWN)] + [np.full(len(tasks), NOOP)] * 19  # onto the goal, stay
    total = np.zeros(len(tasks))
    for step_actions in actions_per_step:
        rewards = vector.step(step_actions)[1]
        single_rewards = [env.step(int(a))[1] for env, a in zip(singles, step_actions[:4], strict=True)]
        assert rewards[:4].tolist() == single_rewards
        total += rewards
    expected = optimal_return(DARK_ROOM, (4, 5), reward_prob=0.3, reward_once=reward_once)
    assert expected == pytest.approx(1 - 0.7**20 if reward_once else 0.3 * 20)
    assert total.mean() == pytest.approx(expected, abs=0.1 if reward_once else 0.6)
    assert set(np.unique(total)) <= ({0.0, 1.0} if reward_once else set(range(21)))


def test_reward_prob_is_checked():
    for bad in (0, 1.5, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match="reward_prob must be a probability in \\(0, 1\\]"):
            make_vector_env(DARK_ROOM, [(0, 0)], reward_prob=bad)
