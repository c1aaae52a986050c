"""Expert (oracle) trajectories for the ED baseline."""

from __future__ import annotations

import numpy as np
import pytest

from hf_ad import constants
from hf_ad.envs import optimal_return, task_split
from hf_ad.sources import SOURCES
from hf_ad.sources.experts import ExpertConfig, learn, shortest_path_actions


@pytest.mark.parametrize(
    "env_id", [constants.DARK_ROOM, constants.DARK_ROOM_HARD, constants.DARK_KEY_TO_DOOR]
)
def test_grid_experts_earn_the_optimal_return_every_episode(env_id):
    train, _ = task_split(env_id)
    tasks = train[:40]
    returns = np.stack([b.returns for b in learn(env_id, tasks, ExpertConfig(episodes=3, seed=0))])
    optimal = np.array([optimal_return(env_id, t) for t in tasks])
    np.testing.assert_array_equal(returns, np.broadcast_to(optimal, returns.shape))


def test_bandit_expert_pulls_the_best_arm():
    train, _ = task_split(constants.BANDIT)
    blocks = list(learn(constants.BANDIT, train[:20], ExpertConfig(episodes=4, seed=0)))
    assert blocks[0].actions.shape == (20, 1) and blocks[0].terminated.all()
    best = np.argmax(np.array(train[:20]), axis=1)
    assert all((b.actions[:, 0] == best).all() for b in blocks)


def test_random_tie_break_varies_trajectories_and_x_first_does_not():
    tasks = [(0, 0)] * 8  # up-left of the centre: x and y moves are both optimal
    varied = np.stack([b.actions for b in learn(constants.DARK_ROOM, tasks, ExpertConfig(episodes=1))])
    fixed = np.stack(
        [b.actions for b in learn(constants.DARK_ROOM, tasks, ExpertConfig(episodes=1, tie_break="x_first"))]
    )
    assert len({row.tobytes() for row in varied[0]}) > 1
    assert len({row.tobytes() for row in fixed[0]}) == 1
    assert fixed[0, 0, :8].tolist() == [0, 0, 0, 0, 2, 2, 2, 2]  # left x4, then up x4


def test_shortest_path_actions():
    positions = np.array([[4, 4], [4, 4], [4, 4], [2, 2]])
    targets = np.array([[4, 4], [6, 4], [4, 1], [0, 5]])
    assert shortest_path_actions(positions, targets, None).tolist() == [4, 1, 2, 0]
    random_choice = shortest_path_actions(
        positions[3:].repeat(50, 0), targets[3:].repeat(50, 0), np.random.default_rng(0)
    )
    assert set(random_choice.tolist()) == {0, 3}  # left or down, both optimal


def test_registry_and_checks():
    assert SOURCES["expert"] == (learn, ExpertConfig)
    with pytest.raises(ValueError, match="tie_break"):
        ExpertConfig(tie_break="y_first")
    with pytest.raises(ValueError, match="no expert"):
        next(learn("CartPole-v1", [(0,)], ExpertConfig()))


def test_pixel_watermaze_expert_is_the_oracle_from_the_privileged_pose():
    env_id = constants.PIXEL_WATERMAZE
    train, _ = task_split(env_id)
    blocks = list(learn(env_id, train, ExpertConfig(episodes=2, seed=0)))
    returns = np.stack([b.returns for b in blocks])  # (episodes, N)
    optimal = np.array([optimal_return(env_id, t) for t in train])
    np.testing.assert_array_equal(returns, np.broadcast_to(optimal, returns.shape))
    assert blocks[0].observations.shape == (len(train), 50, 28, 28, 3)  # the histories hold the views
    tasks = [(2, 7)] * 8  # left then ahead, or ahead then left: equally short
    varied = next(learn(env_id, tasks, ExpertConfig(episodes=1))).actions
    fixed = next(learn(env_id, tasks, ExpertConfig(episodes=1, tie_break="x_first"))).actions
    assert len({row.tobytes() for row in varied}) > 1 and len({row.tobytes() for row in fixed}) == 1
