"""Tests for the RL² baseline: hf_ad.configuration_rl2, hf_ad.modeling_rl2, hf_ad.rl2_training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

import hf_ad
from hf_ad import cli, constants, rl2_training
from hf_ad.configuration_rl2 import RL2Config
from hf_ad.modeling_rl2 import RL2Model
from hf_ad.rl2_training import RL2TrainConfig, generalised_advantages, train_rl2
from hf_ad.training import NonFiniteLossError

TINY_RUN = {
    "env_kwargs": '{"size": 3}',
    "num_envs": 4,
    "episodes_per_trial": 2,
    "rollout_steps": 20,
    "update_epochs": 1,
    "num_minibatches": 2,
    "hidden_size": 8,
    "embedding_size": 8,
    "save_every": 1,
    "progress": False,
}


def tiny_model() -> RL2Model:
    torch.manual_seed(0)
    return RL2Model(
        RL2Config(hidden_size=8, embedding_size=8, env_id=constants.DARK_ROOM, test_tasks=[[1, 7]])
    )


def stream(batch: int, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randint(0, 9, (batch, steps, 2), generator=generator),
        "prev_actions": torch.randint(0, 6, (batch, steps), generator=generator),
        "prev_rewards": torch.randint(0, 2, (batch, steps), generator=generator).float(),
        "prev_dones": torch.randint(0, 2, (batch, steps), generator=generator).float(),
    }


def test_config_refuses_images_and_bad_sizes():
    with pytest.raises(ValueError, match="observation_type must be one of"):
        RL2Config(observation_type="image", observation_nvec=None, observation_shape=[8, 8, 3])
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        RL2Config(hidden_size=0)
    assert RL2Config().input_size == 9 + 9 + 6 + 2


def test_state_streaming_equals_one_forward_and_the_state_runs_on():
    model, inputs = tiny_model().eval(), stream(3, 12)
    whole = model(**inputs)
    state = model.new_cache()
    pieces = [
        model(**{k: v[:, t : t + 1] for k, v in inputs.items()}, past_key_values=state) for t in range(12)
    ]
    logits = torch.cat([piece.logits for piece in pieces], dim=1)  # (B, T, A)
    torch.testing.assert_close(logits, whole.logits, rtol=1e-5, atol=1e-6)
    assert state.hidden.shape == (1, 3, 8)
    with pytest.raises(ValueError, match="holds 3 streams, got a batch of 2"):
        model(**stream(2, 1), past_key_values=state)
    with pytest.raises(ValueError, match="prev_dones must have shape"):
        model(**{**inputs, "prev_dones": torch.zeros(3, 11)})


def test_save_and_reload_with_automodel_is_exact(tmp_path):
    model = tiny_model().eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / constants.MODEL_WEIGHTS).is_file()
    assert {"modeling_rl2.py", "configuration_rl2.py"} <= {p.name for p in tmp_path.iterdir()}
    assert AutoConfig.from_pretrained(tmp_path).model_type == "rl2"
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, RL2Model)
    inputs = stream(2, 5)
    torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_agent_plays_rl2_with_episode_ends():
    agent = hf_ad.InContextAgent(tiny_model(), seed=0)
    agent.reset(num_streams=2)
    agent.act(np.array([[4, 4], [4, 4]]))
    with pytest.raises(ValueError, match="reads episode ends"):
        agent.observe([0.0, 1.0])
    agent.observe([0.0, 1.0], [False, True])
    assert agent.prev_done.view(-1).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="prompt does not carry"):
        agent.prefill({"observations": np.zeros((1, 2), np.int64), "actions": [0], "rewards": [0.0]})


def test_generalised_advantages_run_across_episode_ends():
    rewards, values = torch.tensor([[0.0, 0.0, 1.0]]), torch.zeros(1, 3)
    advantages = generalised_advantages(rewards, values, torch.zeros(1), gamma=0.5, lam=1.0)
    torch.testing.assert_close(advantages, torch.tensor([[0.25, 0.5, 1.0]]))


def test_tiny_run_trains_saves_resumes_exactly_and_is_evaluated(tmp_path, capsys):
    full = train_rl2(RL2TrainConfig(output_dir=str(tmp_path / "full"), total_trials=2, **TINY_RUN))
    assert {constants.MODEL_WEIGHTS, constants.MODEL_CARD, constants.TRAIN_CONFIG} <= {
        p.name for p in full.iterdir()
    }
    assert "RL²" in (full / constants.MODEL_CARD).read_text()

    split = tmp_path / "split"
    train_rl2(RL2TrainConfig(output_dir=str(split), total_trials=1, **TINY_RUN))
    with pytest.raises(ValueError, match="already holds a training run"):
        train_rl2(RL2TrainConfig(output_dir=str(split), total_trials=2, **TINY_RUN))
    resumed = train_rl2(RL2TrainConfig(output_dir=str(split), total_trials=2, resume=True, **TINY_RUN))
    expected, got = load_file(full / constants.MODEL_WEIGHTS), load_file(resumed / constants.MODEL_WEIGHTS)
    assert all(torch.equal(expected[name], got[name]) for name in expected)

    out = tmp_path / "evaluation"
    argv = ["evaluate", "--model", str(full), "--out", str(out), "--episodes", "3", "--seeds", "2"]
    assert cli.main([*argv, "--source", "none", "--video", "false"]) == 0
    results = json.loads((out / constants.RESULTS_JSON).read_text())
    assert results["methods"]["AD"]["label"] == "RL²"
    assert np.array(results["methods"]["AD"]["mean"]).shape == (3,)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train_rl2(RL2TrainConfig(output_dir=str(run), total_trials=1, **TINY_RUN))
    checkpoint = run / constants.CHECKPOINTS_DIR / "1"
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    poisoned = generalised_advantages

    def nan_advantages(*args, **kwargs):
        return poisoned(*args, **kwargs) * float("nan")

    monkeypatch.setattr(rl2_training, "generalised_advantages", nan_advantages)
    with pytest.raises(NonFiniteLossError, match="the last checkpoint is intact"):
        train_rl2(RL2TrainConfig(output_dir=str(run), total_trials=2, resume=True, **TINY_RUN))
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == before
    final_state = json.loads((run / constants.FINAL_DIR / constants.TRAINER_STATE).read_text())
    assert final_state["trial"] == 1  # the finished 1-trial run's model, not a NaN one


def test_bad_settings_fail_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="--env-kwargs must be a JSON object"):
        RL2TrainConfig(output_dir=str(tmp_path), env_kwargs="size=3")
    with pytest.raises(ValueError, match="must divide --num-envs"):
        RL2TrainConfig(output_dir=str(tmp_path), num_envs=5, num_minibatches=2)
    with pytest.raises(ValueError, match="must divide a trial's 40 steps"):
        train_rl2(RL2TrainConfig(output_dir=str(tmp_path / "r"), **{**TINY_RUN, "rollout_steps": 30}))
    assert not Path(tmp_path / "r" / constants.FINAL_DIR).exists()
