import json

import pytest

from hf_ad import ADConfig


def test_defaults_are_the_paper_model_on_dark_room():
    config = ADConfig()
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (64, 4, 4)
    assert (config.hidden_dropout, config.attention_dropout, config.token_mask_prob) == (0.1, 0.5, 0.3)
    assert config.label_smoothing == 0.0
    assert config.sliding_window == 80
    assert config.observation_type == "multi_discrete"
    assert config.observation_nvec == [9, 9]
    assert config.observation_shape == [2]
    assert config.num_actions == 5
    assert config.model_type == "algorithm_distillation"


def test_observation_shape_is_derived_for_discrete_kinds():
    assert ADConfig(observation_type="discrete", observation_nvec=[1]).observation_shape == []
    assert ADConfig(observation_nvec=[3, 4, 5]).observation_shape == [3]


def test_save_and_load_keep_env_metadata(tmp_path):
    config = ADConfig(
        env_id="hf_ad/DarkRoom-v0",
        env_kwargs={"size": 9},
        train_tasks=[(0, 0), (8, 8)],
        test_tasks=[[2, 7]],
        label_smoothing=0.2,
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoConfig"] == "configuration_ad.ADConfig"
    loaded = ADConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.train_tasks == [[0, 0], [8, 8]]
    assert loaded.env_kwargs == {"size": 9}
    assert loaded.label_smoothing == 0.2


def test_numpy_values_become_plain_lists():
    np = pytest.importorskip("numpy")
    config = ADConfig(observation_nvec=np.array([9, 9]), train_tasks=[np.array([1, 2])])
    assert config.observation_nvec == [9, 9]
    assert config.train_tasks == [[1, 2]]
    json.dumps(config.to_dict())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_attention_heads": 7}, "got 7 heads for hidden_size 64"),
        ({"hidden_size": 24, "num_attention_heads": 8}, "must be even"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer, got 0"),
        ({"num_actions": 0}, "num_actions must be a positive integer, got 0"),
        ({"sliding_window": -1}, "sliding_window must be a positive integer, got -1"),
        ({"attention_dropout": 1.0}, "attention_dropout must be a probability in [0, 1), got 1.0"),
        ({"token_mask_prob": -0.1}, "token_mask_prob must be a probability in [0, 1), got -0.1"),
        ({"label_smoothing": 2}, "label_smoothing must be a probability in [0, 1), got 2"),
        ({"mark_episode_starts": 1}, "mark_episode_starts must be True or False, got 1"),
        ({"rope_theta": 0}, "rope_theta must be a positive number, got 0"),
        ({"reward_scale": float("nan")}, "reward_scale must be a finite number, got nan"),
        ({"observation_type": "graph"}, "observation_type must be one of"),
        ({"observation_nvec": [9, 0]}, "positive integers for 'multi_discrete' observations, got [9, 0]"),
        ({"observation_type": "discrete", "observation_nvec": [3, 3]}, "must be [n] for 'discrete'"),
        ({"observation_nvec": [9, 9], "observation_shape": [3]}, "observation_shape must be [2]"),
        ({"observation_type": "vector", "observation_shape": [3]}, "pass observation_nvec=None"),
        ({"observation_type": "vector", "observation_nvec": None}, "got None for 'vector'"),
        ({"observation_type": "image", "observation_nvec": None, "observation_shape": [8, 8]}, "[H, W, C]"),
        ({"env_kwargs": [1]}, "env_kwargs must be a dict, got [1]"),
        ({"train_tasks": [1, 2]}, "train_tasks must be a list of tasks"),
    ],
)
def test_invalid_values_raise_naming_the_value(kwargs, message):
    with pytest.raises(ValueError) as error:
        ADConfig(**kwargs)
    assert message in str(error.value)
