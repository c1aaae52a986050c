import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from hf_ad import ADConfig, constants
from hf_ad.spaces import check_spaces, config_kwargs_from_spaces

ACTIONS = spaces.Discrete(5)


@pytest.mark.parametrize(
    ("observation_space", "expected"),
    [
        (
            spaces.Discrete(7),
            {"observation_type": "discrete", "observation_nvec": [7], "observation_shape": []},
        ),
        (
            spaces.MultiDiscrete([9, 9]),
            {"observation_type": "multi_discrete", "observation_nvec": [9, 9], "observation_shape": [2]},
        ),
        (
            spaces.Box(-1.0, 1.0, (3,), np.float32),
            {"observation_type": "vector", "observation_nvec": None, "observation_shape": [3]},
        ),
        (
            spaces.Box(0, 255, (12, 16, 3), np.uint8),
            {"observation_type": "image", "observation_nvec": None, "observation_shape": [12, 16, 3]},
        ),
    ],
)
def test_config_kwargs_from_spaces_builds_a_matching_config(observation_space, expected):
    kwargs = config_kwargs_from_spaces(observation_space, ACTIONS)
    assert kwargs == {**expected, "num_actions": 5}
    check_spaces(ADConfig(**kwargs), observation_space, ACTIONS)


def test_every_registered_env_fits_a_config():
    for env_id in constants.ENV_IDS:
        env = gym.make(env_id)
        config = ADConfig(env_id=env_id, **config_kwargs_from_spaces(env.observation_space, env.action_space))
        check_spaces(config, env.observation_space, env.action_space)
        env.close()


def test_check_spaces_names_both_specs():
    with pytest.raises(ValueError) as error:
        check_spaces(ADConfig(), spaces.MultiDiscrete([17, 17]), ACTIONS)
    message = str(error.value)
    assert "'observation_nvec': [9, 9]" in message
    assert "MultiDiscrete([17 17])" in message


def test_check_spaces_refuses_another_action_count():
    with pytest.raises(ValueError, match="'num_actions': 5.*Discrete\\(4\\)"):
        check_spaces(ADConfig(), spaces.MultiDiscrete([9, 9]), spaces.Discrete(4))


def test_check_spaces_names_the_config_when_a_space_is_unsupported():
    with pytest.raises(ValueError, match="the model expects .*unsupported observation space"):
        check_spaces(ADConfig(), spaces.Box(0.0, 1.0, (2, 2)), ACTIONS)


@pytest.mark.parametrize(
    ("observation_space", "action_space", "message"),
    [
        (spaces.Discrete(3, start=1), ACTIONS, "must start at 0"),
        (spaces.MultiDiscrete([[2, 2], [2, 2]]), ACTIONS, "must be 1-D and start at 0"),
        (spaces.Box(0.0, 1.0, (2, 2)), ACTIONS, "unsupported observation space"),
        (spaces.MultiDiscrete([9, 9]), spaces.Box(0.0, 1.0, (2,)), "action space must be Discrete"),
        (spaces.MultiDiscrete([9, 9]), spaces.Discrete(5, start=-2), "action space must be Discrete"),
    ],
)
def test_unsupported_spaces_raise(observation_space, action_space, message):
    with pytest.raises(ValueError, match=message):
        config_kwargs_from_spaces(observation_space, action_space)
