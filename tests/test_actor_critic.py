"""Batched actor-critic source: block format, determinism, the exact table policy, and that it learns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import hf_ad  # noqa: F401  (registers the envs)
from hf_ad.constants import BANDIT, DARK_KEY_TO_DOOR, DARK_ROOM
from hf_ad.envs import make_vector_env, optimal_return, task_split
from hf_ad.sources import SOURCES
from hf_ad.sources import actor_critic as ac

GOALS = [(0, 0), (2, 7), (6, 3), (7, 8)]


def blocks(env_id=DARK_ROOM, tasks=GOALS, **config):
    return list(ac.learn(env_id, list(tasks), ac.ActorCriticConfig(**config)))


def assert_blocks_equal(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for name in ("observations", "actions", "rewards", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_registered():
    learn, config_cls = SOURCES["actor_critic"]
    assert learn is ac.learn and config_cls is ac.ActorCriticConfig


def test_blocks_shapes_and_dtypes():
    result = blocks(episodes=3, seed=0)
    assert [b.episode for b in result] == [0, 1, 2]
    for block in result:
        assert block.observations.shape == (4, 20, 2) and block.observations.dtype == np.int64
        assert block.actions.shape == (4, 20) and block.actions.dtype == np.int64
        assert block.rewards.dtype == np.float32 and block.terminated.dtype == bool
        assert ((block.actions >= 0) & (block.actions < 5)).all()
        assert block.truncated[:, -1].all() and not block.truncated[:, :-1].any()
        assert (block.observations[:, 0] == 4).all()  # every Dark Room episode starts at the centre


def test_transitions_are_consistent_with_the_env():
    # Replaying the recorded actions in a fresh env reproduces the recorded observations and rewards.
    (block,) = blocks(episodes=1, seed=3)
    env = make_vector_env(DARK_ROOM, GOALS)
    observations, _ = env.reset(seed=0)
    for t in range(block.length):
        np.testing.assert_array_equal(block.observations[:, t], observations)
        observations, rewards, *_ = env.step(block.actions[:, t])
        np.testing.assert_array_equal(block.rewards[:, t], rewards)


def test_same_seed_same_blocks_and_other_seed_differs():
    assert_blocks_equal(blocks(episodes=4, seed=7), blocks(episodes=4, seed=7))
    first, other = blocks(episodes=4, seed=7), blocks(episodes=4, seed=8)
    assert any((a.actions != b.actions).any() for a, b in zip(first, other, strict=True))


def test_table_policy_equals_per_step_policy(monkeypatch):
    # Acting from the per-episode table of all states is the same policy as a forward pass per step.
    with_table = blocks(episodes=3, seed=1)
    monkeypatch.setattr(ac, "MAX_TABLE_STATES", 0)
    assert_blocks_equal(with_table, blocks(episodes=3, seed=1))


def test_rewards_follow_each_learners_own_goal():
    for block in blocks(episodes=2, seed=0):
        on_goal = (block.observations[:, 1:] == np.array(GOALS)[:, None]).all(-1)  # (N, L - 1)
        np.testing.assert_array_equal(block.rewards[:, :-1], on_goal.astype(np.float32))


@pytest.mark.parametrize("env_id", [BANDIT, DARK_KEY_TO_DOOR])
def test_other_envs(env_id):
    train, _ = task_split(env_id)
    result = blocks(env_id, train[:3], episodes=2, seed=0)
    length = {BANDIT: 1, DARK_KEY_TO_DOOR: 50}[env_id]
    assert result[0].actions.shape == (3, length)


class FloatObservations(gym.vector.VectorWrapper):
    """Dark Room with its (x, y) given as floats in [0, 1]: a Box observation space."""

    def __init__(self, env):
        super().__init__(env)
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)

    def reset(self, **kwargs):
        observations, info = self.env.reset(**kwargs)
        return (observations / 8).astype(np.float32), info

    def step(self, actions):
        observations, *rest = self.env.step(actions)
        return (observations / 8).astype(np.float32), *rest


def test_box_observations():
    config = ac.ActorCriticConfig(episodes=3, seed=0)
    run = lambda: list(ac.run_learners(FloatObservations(make_vector_env(DARK_ROOM, GOALS)), config))  # noqa: E731
    result = run()
    assert result[0].observations.shape == (4, 20, 2) and result[0].observations.dtype == np.float32
    assert_blocks_equal(result, run())


def test_bad_inputs():
    with pytest.raises(ValueError, match="learning_rate"):
        ac.ActorCriticConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="gamma"):
        ac.ActorCriticConfig(gamma=1.5)
    with pytest.raises(ValueError, match="hidden_sizes"):
        ac.ActorCriticConfig(hidden_sizes=[])
    with pytest.raises(ValueError, match="tasks"):
        blocks(tasks=[], episodes=1)
    with pytest.raises(ValueError, match="Discrete, MultiDiscrete or Box"):
        ac.ObservationEncoder(gym.spaces.Text(5))


def test_observation_encoder_multidiscrete_with_reward_count():
    encoder = ac.ObservationEncoder(gym.spaces.MultiDiscrete([3, 4]), reward_memory=2)
    assert encoder.num_features == 3 + 4 + 3 and encoder.num_states == 3 * 4 * 3 and encoder.enumerable
    observations, collected = np.array([[2, 1], [0, 3]]), np.array([1, 2])
    features = encoder.features(observations, collected)  # (2, 10)
    expected = torch.zeros(2, 10)
    expected[0, [2, 3 + 1, 7 + 1]] = 1
    expected[1, [0, 3 + 3, 7 + 2]] = 1
    torch.testing.assert_close(features, expected)
    codes = encoder.all_codes()
    index = encoder.state_index(encoder.codes(observations, collected))
    np.testing.assert_array_equal(codes[index], [[2, 1, 1], [0, 3, 2]])


def test_gae_matrix_matches_the_recursion():
    gamma, lam, length = 0.9, 0.95, 6
    deltas = torch.randn(3, length, generator=torch.Generator().manual_seed(0))
    expected = torch.zeros_like(deltas)
    running = torch.zeros(3)
    for t in reversed(range(length)):
        running = deltas[:, t] + gamma * lam * running
        expected[:, t] = running
    torch.testing.assert_close(deltas @ ac.gae_matrix(length, gamma, lam), expected)


def test_clip_grad_norm_per_learner():
    weight = torch.zeros(2, 3, 4, requires_grad=True)
    bias = torch.zeros(2, 1, 4, requires_grad=True)
    weight.grad = torch.full((2, 3, 4), 1.0)
    weight.grad[1] = 0.01
    bias.grad = torch.full((2, 1, 4), 1.0)
    bias.grad[1] = 0.01
    ac.clip_grad_norm_per_learner([weight, bias], max_norm=1.0)
    norms = torch.cat([weight.grad.flatten(1), bias.grad.flatten(1)], dim=1).norm(dim=1)
    torch.testing.assert_close(norms[0], torch.tensor(1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(weight.grad[1], torch.full((3, 4), 0.01))  # under the cap: untouched


def test_sample_actions_follows_the_softmax():
    logits = np.log(np.array([[0.1, 0.2, 0.7]] * 20000))
    actions = ac.sample_actions(logits, np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(actions, minlength=3) / len(actions), [0.1, 0.2, 0.7], atol=0.01)


def test_learns_dark_room_to_near_optimal():
    # 4 training goals x 4 learners, 400 episodes (about 2 s): the untrained start almost never
    # reaches a goal, the last 50 episodes are within 10% of the oracle.
    train, _ = task_split(DARK_ROOM)
    goals = [train[i] for i in (3, 17, 40, 61)]
    tasks = [goal for goal in goals for _ in range(4)]
    returns = np.array([b.returns for b in blocks(tasks=tasks, episodes=400, seed=0)])  # (E, N)
    oracle = np.array([optimal_return(DARK_ROOM, task) for task in tasks])
    assert returns[:10].mean() < 0.1 * oracle.mean()
    assert returns[-50:].mean() >= 0.9 * oracle.mean()


def test_imports_no_other_source():
    """Sources share helpers through `hf_ad.sources.base` only: one learner never imports another."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(ac.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    sources = {name for name in imported if name and name.startswith("hf_ad.sources.")}
    assert sources == {"hf_ad.sources.base"}
    assert ac.reward_memory_for(DARK_KEY_TO_DOOR) == 2 and ac.reward_memory_for(DARK_ROOM) == 0
