"""The single envs: gymnasium API, each env's spec, seeding, rendering and bad input."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import hf_ad
from hf_ad.constants import BANDIT, DARK_KEY_TO_DOOR, DARK_ROOM, DARK_ROOM_HARD, ENV_IDS, PIXEL_WATERMAZE
from hf_ad.envs import draw_path, greedy_action
from hf_ad.envs.grid import COLORS, DOWN, LEFT, NOOP, RIGHT, UP

TRAIL = COLORS["trail"]

EXAMPLE_TASKS = {
    DARK_ROOM: (2, 7),
    DARK_ROOM_HARD: (15, 1),
    DARK_KEY_TO_DOOR: (1, 2, 7, 6),
    BANDIT: (0.1, 0.9, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.0),
    PIXEL_WATERMAZE: (2, 7),
}


def run_episode(env, actions, **reset_kwargs):
    """Reset, then play `actions`; return (observations incl. the first, rewards, terminated, truncated)."""
    observation, _ = env.reset(**reset_kwargs)
    observations, rewards, terminated, truncated = [observation], [], [], []
    for action in actions:
        observation, reward, term, trunc, _ = env.step(action)
        observations.append(observation)
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc)
    return np.array(observations), np.array(rewards), np.array(terminated), np.array(truncated)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("with_task", [True, False])
def test_check_env_passes_without_warnings(env_id, with_task):
    kwargs = {"task": EXAMPLE_TASKS[env_id]} if with_task else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(env_id, **kwargs).unwrapped)


def test_import_hf_ad_registers_every_env_with_its_episode_length():
    assert hf_ad.envs.env_spec(DARK_ROOM).max_episode_steps == 20
    assert hf_ad.envs.env_spec(DARK_ROOM_HARD).max_episode_steps == 20
    assert hf_ad.envs.env_spec(DARK_ROOM_HARD).kwargs == {"size": 17, "reward_once": True}
    assert hf_ad.envs.env_spec(DARK_KEY_TO_DOOR).max_episode_steps == 50
    assert hf_ad.envs.env_spec(BANDIT).max_episode_steps is None
    for env_id in ENV_IDS:
        assert env_id in gym.registry


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory_and_different_seed_differs(env_id):
    actions = np.random.default_rng(0).integers(0, gym.make(env_id).action_space.n, size=120).tolist()

    def trajectory(seed):
        env = gym.make(env_id)  # no task: drawn from the seed
        env.reset(seed=seed)
        task = env.unwrapped.task
        rows = []
        for action in actions:
            observation, reward, term, trunc, _ = env.step(action)
            rows.append((np.asarray(observation).tolist(), reward, term, trunc))
            if term or trunc:
                env.reset()
        return task, rows

    assert trajectory(3) == trajectory(3)
    assert trajectory(3) != trajectory(4)


def test_dark_room_spec_start_moves_rewards_and_length():
    env = gym.make(DARK_ROOM, goal=(6, 4))
    assert env.observation_space == gym.spaces.MultiDiscrete([9, 9])
    assert env.action_space == gym.spaces.Discrete(5)
    observation, info = env.reset(seed=0)
    assert observation.dtype == np.int64 and observation.tolist() == [4, 4] and info == {}
    moves = {LEFT: [3, 4], RIGHT: [5, 4], UP: [4, 3], DOWN: [4, 5], NOOP: [4, 4]}
    for action, expected in moves.items():
        env.reset()
        assert env.step(action)[0].tolist() == expected
    # Right twice reaches the goal at step 2, then stay: reward 1 on every step on the goal.
    observations, rewards, terminated, truncated = run_episode(env, [RIGHT, RIGHT] + [NOOP] * 18)
    assert rewards.tolist() == [0.0] + [1.0] * 19
    assert rewards.sum() == 21 - 2 == hf_ad.envs.optimal_return(DARK_ROOM, (6, 4))
    assert not terminated.any() and truncated.tolist() == [False] * 19 + [True]
    # Leaving the goal stops the reward; walls stop the agent.
    _, rewards, _, _ = run_episode(env, [RIGHT, RIGHT, RIGHT, LEFT, RIGHT])
    assert rewards.tolist() == [0, 1, 0, 1, 0]
    observations, _, _, _ = run_episode(env, [LEFT] * 6)
    assert observations[-1].tolist() == [0, 4]


def test_dark_room_centre_goal_pays_every_step_and_goal_persists_across_resets():
    env = gym.make(DARK_ROOM, goal=(4, 4))
    for _ in range(2):
        _, rewards, _, _ = run_episode(env, [NOOP] * 20)
        assert rewards.sum() == 20
    assert env.unwrapped.goal == (4, 4)
    env.reset(options={"task": (0, 0)})
    _, rewards, _, _ = run_episode(env, [LEFT] * 4 + [UP] * 4 + [NOOP] * 12)  # the new goal stays
    assert env.unwrapped.goal == (0, 0) and rewards.sum() == 13


def test_dark_room_hard_is_17x17_starts_at_centre_and_rewards_once():
    env = gym.make(DARK_ROOM_HARD, goal=(10, 8))
    assert env.observation_space == gym.spaces.MultiDiscrete([17, 17])
    observations, rewards, terminated, truncated = run_episode(env, [RIGHT, RIGHT] + [NOOP] * 18)
    assert observations[0].tolist() == [8, 8]
    assert rewards.tolist() == [0.0, 1.0] + [0.0] * 18
    assert truncated[-1] and truncated.sum() == 1 and not terminated.any()
    _, rewards, _, _ = run_episode(env, [RIGHT, RIGHT, LEFT, RIGHT])  # a second arrival pays nothing
    assert rewards.tolist() == [0, 1, 0, 0]


def test_key_to_door_key_before_door_once_each_and_no_termination_at_door():
    env = gym.make(DARK_KEY_TO_DOOR, task=(1, 0, 3, 0))
    env.reset(seed=0)
    env.unwrapped._x, env.unwrapped._y = 4, 0  # start right of the door
    steps = [env.step(action) for action in [LEFT, LEFT, LEFT, RIGHT, RIGHT, LEFT, RIGHT] + [NOOP] * 43]
    rewards = [step[1] for step in steps]
    # door before key: 0; key at step 3; door after the key at step 5; never again
    assert rewards[:7] == [0, 0, 1, 0, 1, 0, 0] and sum(rewards) == 2
    assert [step[4]["has_key"] for step in steps[:4]] == [False, False, True, True]
    assert not any(step[2] for step in steps)  # never terminated, not even at the door
    assert [step[3] for step in steps] == [False] * 49 + [True]  # truncated at 50 steps


def test_key_to_door_random_start_each_episode_and_has_key_info():
    env = gym.make(DARK_KEY_TO_DOOR, task=(0, 0, 8, 8))
    starts = []
    observation, info = env.reset(seed=5)
    assert info == {"has_key": False}
    for _ in range(400):
        starts.append(tuple(observation))
        observation, info = env.reset()
    counts = np.bincount([y * 9 + x for x, y in starts], minlength=81)
    assert (counts > 0).sum() >= 75  # uniform over 81 cells: 400 draws miss almost none
    assert max(counts) < 20


def test_bandit_every_pull_is_a_one_step_episode_with_bernoulli_rewards():
    task = EXAMPLE_TASKS[BANDIT]
    env = gym.make(BANDIT, task=task)
    assert env.observation_space == gym.spaces.Discrete(1) and env.action_space == gym.spaces.Discrete(10)
    observation, _ = env.reset(seed=0)
    assert observation == 0
    rewards = {arm: [] for arm in (0, 1, 9)}
    for pull in range(3000):
        arm = (0, 1, 9)[pull % 3]
        observation, reward, terminated, truncated, _ = env.step(arm)
        assert observation == 0 and terminated and not truncated and reward in (0.0, 1.0)
        rewards[arm].append(reward)
        env.reset()
    assert np.mean(rewards[9]) == 0.0
    for arm in (0, 1):
        assert abs(np.mean(rewards[arm]) - task[arm]) < 4 * np.sqrt(task[arm] * (1 - task[arm]) / 1000)


@pytest.mark.parametrize("distribution, preferred", [("odd", 1), ("even", 0), ("uniform", None)])
def test_bandit_distributions_put_the_best_arm_on_the_preferred_parity(distribution, preferred):
    tasks = np.array(hf_ad.envs.sample_bandit_tasks(distribution, 4000, seed=1))
    assert tasks.shape == (4000, 10) and tasks.min() >= 0 and tasks.max() <= 1
    odd_best = (tasks.argmax(axis=1) % 2 == 1).mean()
    expected = {1: 0.95, 0: 0.05, None: 0.5}[preferred]
    assert abs(odd_best - expected) < 0.025
    assert hf_ad.envs.sample_bandit_tasks(distribution, 3, seed=1) == hf_ad.envs.sample_bandit_tasks(
        distribution, 3, seed=1
    )


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_modes(env_id):
    text_env = gym.make(env_id, task=EXAMPLE_TASKS[env_id], render_mode="ansi")
    text_env.reset(seed=0)
    text_env.step(1)
    text = text_env.render()
    image_env = gym.make(env_id, task=EXAMPLE_TASKS[env_id], render_mode="rgb_array")
    image_env.reset(seed=0)
    image = image_env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if env_id == BANDIT:
        assert "<- pulled" in text.splitlines()[1] and len(text.splitlines()) == 10
        return
    size = text_env.unwrapped.size
    rows = text.splitlines()
    assert len(rows) == size + 2 and all(len(row) == 2 * size + 3 for row in rows)
    assert rows[0] == "#" * (2 * size + 3)
    assert image.shape == ((size + 2) * 16, (size + 2) * 16, 3)
    agent = "A@" if env_id != PIXEL_WATERMAZE else "^>v<@"  # Pixel Watermaze draws its direction
    assert sum(text.count(mark) for mark in agent) == 1
    agent_y = text_env.unwrapped.pose[1] if env_id == PIXEL_WATERMAZE else text_env.unwrapped._y
    assert any(mark in rows[agent_y + 1] for mark in agent)


def test_dark_room_ansi_marks_goal_and_agent():
    env = gym.make(DARK_ROOM, goal=(5, 4), render_mode="ansi")
    env.reset()
    assert env.render().splitlines()[5] == "# . . . . A G . . . #"
    env.step(RIGHT)
    assert env.render().splitlines()[5] == "# . . . . . @ . . . #"


def test_draw_path_draws_an_optimal_path_with_arrows():
    env = gym.make(DARK_ROOM, goal=(6, 2))
    observation, _ = env.reset()
    path = [tuple(observation)]
    for _ in range(5):
        observation, *_ = env.step(greedy_action(path[-1], (6, 2)))
        path.append(tuple(observation))
    drawing = draw_path(9, path, {(6, 2): "G"}).splitlines()
    assert drawing[5] == "# . . . . S > ^ . . #"
    assert drawing[4] == "# . . . . . . ^ . . #"
    assert drawing[3] == "# . . . . . . G . . #"  # goal drawn over the last cell
    assert path[-1] == (6, 2)


BAD_TASKS = [
    (DARK_ROOM, (9, 0), "outside the 9x9 grid"),
    (DARK_ROOM, (-1, 3), "outside"),
    (DARK_ROOM, (1, 2, 3), "must have 2 integers"),
    (DARK_ROOM, (1.5, 2), "must hold integers"),
    (DARK_ROOM, "ab", "must hold integers"),
    (DARK_ROOM, 7, "sequence"),
    (DARK_ROOM_HARD, (17, 3), "outside the 17x17 grid"),
    (DARK_KEY_TO_DOOR, (1, 1, 1, 1), "same cell"),
    (DARK_KEY_TO_DOOR, (1, 1, 2), "must have 4 integers"),
    (DARK_KEY_TO_DOOR, (0, 0, 9, 9), "outside"),
    (BANDIT, (0.5,) * 9, "must have 10 arm means"),
    (BANDIT, (0.5,) * 9 + (1.5,), "must be in [0, 1]"),
    (BANDIT, (0.5,) * 9 + (float("nan"),), "must be in [0, 1]"),
    (BANDIT, (0.5,) * 9 + ("x",), "numbers"),
]


@pytest.mark.parametrize("env_id, task, message", BAD_TASKS)
def test_malformed_task_raises_value_error_naming_it(env_id, task, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        gym.make(env_id, task=task)
    env = gym.make(env_id)
    with pytest.raises(ValueError, match="must|outside|same cell"):
        env.reset(options={"task": task})
    with pytest.raises(ValueError):
        hf_ad.envs.optimal_return(env_id, task)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("action", [-1, 5 + 5, 2.0, "1", np.array([1, 2])])
def test_action_out_of_range_raises_value_error_naming_it(env_id, action):
    env = gym.make(env_id, task=EXAMPLE_TASKS[env_id])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an .* in 0\.\.\d+, got"):
        env.unwrapped.step(action)


def test_other_bad_arguments_raise_value_errors():
    with pytest.raises(gym.error.Error, match="DarkRom"):
        gym.make("hf_ad/DarkRom-v0")
    with pytest.raises(ValueError, match="unknown env id 'CartPole-v1'; expected one of"):
        hf_ad.envs.task_split("CartPole-v1")
    with pytest.raises(ValueError, match="goal=.* and task=.* disagree"):
        gym.make(DARK_ROOM, goal=(1, 1), task=(2, 2))
    with pytest.raises(ValueError, match="size must be an integer >= 2, got 1"):
        gym.make(DARK_ROOM, size=1)
    with pytest.raises(ValueError, match="render_mode must be one of"):
        hf_ad.envs.DarkRoomEnv(render_mode="human")
    with pytest.raises(ValueError, match="unknown reset options \\['tasks'\\]"):
        gym.make(DARK_ROOM).reset(options={"tasks": [(1, 1)]})
    with pytest.raises(ValueError, match="unknown bandit distribution 'odds'"):
        hf_ad.envs.sample_bandit_tasks("odds", 3)


@pytest.mark.parametrize("env_id", [DARK_ROOM, DARK_KEY_TO_DOOR])
def test_rgb_array_draws_the_episodes_trail(env_id):
    env = gym.make(env_id, task=EXAMPLE_TASKS[env_id], render_mode="rgb_array")
    env.reset(seed=0)
    start = (env.unwrapped._x, env.unwrapped._y)
    for action in (LEFT, UP, UP):
        env.step(action)

    def trail_cells(
        image,
    ) -> set[tuple[int, int]]:  # a trail fills its cell: marks and agent leave the corner
        return {
            cell for cell in np.ndindex(9, 9) if tuple(image[(cell[1] + 1) * 16, (cell[0] + 1) * 16]) == TRAIL
        }

    assert start in trail_cells(env.render()) and len(trail_cells(env.render())) >= 2
    env.reset()  # a new episode starts a new trail
    assert trail_cells(env.render()) == {(env.unwrapped._x, env.unwrapped._y)}
