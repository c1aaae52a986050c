"""Tests for hf_ad.training: a tiny model trained for a few steps on a tiny histories dataset."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from transformers import AutoModel

import hf_ad
from hf_ad import constants
from hf_ad.cli import parse_dataclass
from hf_ad.configuration_ad import ADConfig
from hf_ad.data.generate import GenerateConfig, generate_histories
from hf_ad.data.histories import load_histories
from hf_ad.data.windows import HistoryWindows
from hf_ad.envs import subset_tasks
from hf_ad.random_states import random_states_name
from hf_ad.sources import SOURCES
from hf_ad.training import (
    NonFiniteLossError,
    TrainConfig,
    checkpoint_steps,
    model_field_names,
    train,
    write_model_card,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = {
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "sliding_window": 10,
}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    """Q-learning histories on the 65 Dark Room training goals: one history of 6 episodes (120 steps) each."""
    folder = tmp_path_factory.mktemp("histories") / "darkroom"
    _, config_cls = SOURCES["q_learning"]
    generate_histories(
        GenerateConfig(out=str(folder)), config_cls(histories_per_task=1, episodes=6), progress=False
    )
    return folder


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide singletons, as a new process would (to change mixed precision)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each run builds its own Accelerator; accelerate keeps process-wide singletons between them."""
    reset_accelerate_state()
    yield
    reset_accelerate_state()


def tiny_config(dataset_dir: Path, output_dir: Path, **overrides) -> TrainConfig:
    values = {
        "dataset": str(dataset_dir),
        "output_dir": str(output_dir),
        "max_steps": 4,
        "batch_size": 4,
        "logging_steps": 1,
        "save_steps": 2,
        "report_to": "none",
        **TINY_MODEL,
        **overrides,
    }
    return TrainConfig(**values)


def weights(folder: Path) -> dict[str, np.ndarray]:
    return load_file(folder / "model.safetensors")


def assert_same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_every_model_field_has_a_flag(dataset_dir, tmp_path):
    flags = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(model_field_names()) <= flags
    assert {"env_id", "train_tasks"}.isdisjoint(model_field_names())  # env metadata comes from the dataset
    argv = ["--dataset", str(dataset_dir), "--output-dir", str(tmp_path), "--hidden-size", "32"]
    argv += ["--num-hidden-layers", "3", "--observation-nvec", "9", "9", "--attention-dropout", "0"]
    cfg = parse_dataclass(TrainConfig, argv, prog="test")
    assert cfg.model_overrides() == {
        "hidden_size": 32,
        "num_hidden_layers": 3,
        "observation_nvec": [9, 9],
        "attention_dropout": 0.0,
    }
    # The recorded command parses back to the same config.
    command = cfg.command(program="train")
    assert parse_dataclass(TrainConfig, command.split()[1:], prog="test") == cfg


def test_tiny_run_writes_a_loadable_final_model(dataset_dir, tmp_path):
    cfg = tiny_config(
        dataset_dir, tmp_path / "run", save_steps=1, save_total_limit=2, report_to="tensorboard"
    )
    final = train(cfg)
    assert final == tmp_path / "run" / constants.FINAL_DIR
    for name in ("config.json", "model.safetensors", "configuration_ad.py", "modeling_ad.py"):
        assert (final / name).is_file(), name
    assert not list(final.glob("*.bin")) and not list(final.glob("*.pkl"))
    # Checkpoints: the newest save_total_limit, no temporary folder left behind; final/ replaces step 4.
    assert checkpoint_steps(cfg.output_dir) == [2, 3]
    assert not list((tmp_path / "run" / constants.CHECKPOINTS_DIR).glob(".tmp-*"))
    assert list((tmp_path / "run" / constants.LOGS_DIR).rglob("events.out.tfevents.*"))

    model = AutoModel.from_pretrained(final)
    assert isinstance(model, hf_ad.ADModel)
    _, metadata = load_histories(dataset_dir)
    assert model.config.env_id == constants.DARK_ROOM
    assert model.config.train_tasks == metadata["task_split"]["train"]
    assert model.config.test_tasks == metadata["task_split"]["test"]
    assert model.config.hidden_size == 16 and model.config.observation_nvec == [9, 9]

    recorded = TrainConfig(**json.loads((final / constants.TRAIN_CONFIG).read_text()))
    assert recorded == cfg.with_recipe(constants.DARK_ROOM)  # with the recipe's settings not given
    state = json.loads((final / constants.TRAINER_STATE).read_text())
    assert state["step"] == 4 and state["context"] == 20 and np.isfinite(state["loss"])
    assert state["transitions_seen"] == 4 * 4 * 20
    card = (final / constants.MODEL_CARD).read_text()
    header = card.split("---")[1]
    assert "library_name: transformers" in header and "algorithm-distillation" in header
    assert "in-context-rl" in header and "pipeline_tag: reinforcement-learning" in header
    assert "--max-steps 4" in card and "During training" not in card  # no --eval-steps
    assert '"org/ad-tiny"' in write_model_card(final, repo_id="org/ad-tiny")


def test_in_context_evaluation_during_training(dataset_dir, tmp_path):
    final = train(tiny_config(dataset_dir, tmp_path / "run", max_steps=3, eval_steps=2, eval_episodes=2))
    state = json.loads((final / constants.TRAINER_STATE).read_text())
    assert state["eval"]["step"] == 3  # every 2 steps and at the end
    for key in ("eval/return_first_episode", "eval/return_last_episode", "eval/return_mean"):
        assert 0 <= state["eval"][key] <= 20
    assert "During training (step 3, `--eval-steps`)" in (final / constants.MODEL_CARD).read_text()


def test_training_sees_training_tasks_only(dataset_dir, tmp_path, monkeypatch):
    """Histories of a held-out task slipped into the training split are never drawn."""
    seen_tasks = []
    original_init = HistoryWindows.__init__

    def recording_init(self, columns, *args, **kwargs):
        columns = dict(columns)
        held_out = metadata["task_split"]["test"][0]
        columns[constants.TASK] = columns[constants.TASK].to_numpy().copy()
        columns[constants.TASK][:120] = held_out  # the first history now claims a held-out goal
        original_init(self, columns, *args, **kwargs)
        seen_tasks.extend(map(list, self.history_tasks.tolist()))

    _, metadata = load_histories(dataset_dir)
    monkeypatch.setattr(HistoryWindows, "__init__", recording_init)
    train(tiny_config(dataset_dir, tmp_path / "run", max_steps=1))
    assert len(seen_tasks) == 64
    assert all(task in metadata["task_split"]["train"] for task in seen_tasks)


def test_num_train_tasks_trains_on_a_nested_subset_and_records_it(dataset_dir, tmp_path, monkeypatch):
    seen_tasks = []
    original_init = HistoryWindows.__init__

    def recording_init(self, columns, *args, **kwargs):
        original_init(self, columns, *args, **kwargs)
        seen_tasks.extend(map(tuple, self.history_tasks.tolist()))

    monkeypatch.setattr(HistoryWindows, "__init__", recording_init)
    final = train(tiny_config(dataset_dir, tmp_path / "run", max_steps=1, num_train_tasks=5))
    _, metadata = load_histories(dataset_dir)
    chosen = subset_tasks(metadata["task_split"]["train"], 5)
    assert sorted(set(seen_tasks)) == chosen and len(seen_tasks) == 5
    config = ADConfig.from_pretrained(final)
    assert [tuple(t) for t in config.train_tasks] == chosen
    assert config.test_tasks == metadata["task_split"]["test"]
    assert set(chosen) <= set(subset_tasks(metadata["task_split"]["train"], 10))
    with pytest.raises(ValueError, match="--num-train-tasks 66 exceeds the 65 training tasks"):
        train(tiny_config(dataset_dir, tmp_path / "too-many", max_steps=1, num_train_tasks=66))
    with pytest.raises(ValueError, match="num_train_tasks must be a positive integer"):
        tiny_config(dataset_dir, tmp_path / "zero", num_train_tasks=0)


def interrupted_run(cfg: TrainConfig, monkeypatch, stop_at_call: int) -> None:
    """Run `cfg` and stop it with a KeyboardInterrupt at micro-batch `stop_at_call`, as Ctrl-C would."""
    import hf_ad.training as training

    original_step, calls = training.train_step, []

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == stop_at_call:
            raise KeyboardInterrupt
        return original_step(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(training, "train_step", interrupted_step)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)


def test_resumed_run_matches_the_uninterrupted_one_exactly(dataset_dir, tmp_path, monkeypatch):
    # In-context evaluation on (eval_steps=2) must not disturb the training RNG either.
    run = {"max_steps": 6, "save_steps": 3, "eval_steps": 2, "eval_episodes": 1}
    straight = train(tiny_config(dataset_dir, tmp_path / "straight", **run))
    cfg = tiny_config(dataset_dir, tmp_path / "resumed", **run)
    interrupted_run(cfg, monkeypatch, stop_at_call=5)  # during step 5, after the checkpoint of step 3
    assert checkpoint_steps(cfg.output_dir) == [3]
    checkpoint = tmp_path / "resumed" / constants.CHECKPOINTS_DIR / "3"
    assert not list(checkpoint.glob("*.pkl"))  # random states as safetensors, never a pickle
    resumed = train(dataclasses.replace(cfg, resume=True))
    assert_same_weights(weights(resumed), weights(straight))
    state = json.loads((resumed / constants.TRAINER_STATE).read_text())
    assert state["step"] == 6 and state["resumed_with_changes"] == []
    # Resuming a finished run returns its final model without training again.
    written = (resumed / "model.safetensors").stat().st_mtime_ns
    assert train(dataclasses.replace(cfg, resume=True)) == resumed
    assert (resumed / "model.safetensors").stat().st_mtime_ns == written


def damage(path: Path, how: str) -> None:
    """Remove, truncate or overwrite with garbage one file of a checkpoint."""
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"not what was saved")


@pytest.mark.parametrize(
    ("file", "how", "problem"),
    [
        ("random_states_0.*", "missing", "is missing"),
        ("random_states_0.*", "garbage", "is not a readable safetensors file"),
        ("optimizer.bin", "missing", "is missing"),
        ("optimizer.bin", "truncated", "is not a complete torch archive"),
    ],
)
def test_a_checkpoint_that_cannot_resume_exactly_is_refused(
    dataset_dir, tmp_path, monkeypatch, file, how, problem
):
    """Resume is exact or fails naming the file (accelerate skips bad random states with an INFO log)."""
    cfg = tiny_config(dataset_dir, tmp_path / "run", max_steps=6, save_steps=3)
    interrupted_run(cfg, monkeypatch, stop_at_call=5)
    (path,) = (tmp_path / "run" / constants.CHECKPOINTS_DIR / "3").glob(file)
    damage(path, how)
    with pytest.raises(ValueError, match=rf"{path.name}' {problem}.*Restore the named files.*--overwrite"):
        train(dataclasses.replace(cfg, resume=True))
    assert not (tmp_path / "run" / constants.FINAL_DIR).exists()


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(dataset_dir, tmp_path, monkeypatch, caplog):
    run = {"max_steps": 6, "save_steps": 2, "save_total_limit": 2}
    straight = train(tiny_config(dataset_dir, tmp_path / "straight", **run))
    cfg = tiny_config(dataset_dir, tmp_path / "run", **run)
    interrupted_run(cfg, monkeypatch, stop_at_call=6)  # during step 6, after the checkpoints of steps 2 and 4
    assert checkpoint_steps(cfg.output_dir) == [2, 4]
    checkpoints = tmp_path / "run" / constants.CHECKPOINTS_DIR
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    damage(checkpoints / "4" / "model.safetensors", "truncated")
    with caplog.at_level(logging.WARNING, logger="hf_ad.training"):
        resumed = train(dataclasses.replace(cfg, resume=True))
    assert re.search(
        r"checkpoint 4: .*checkpoints/4/model.safetensors' is not a complete safetensors", caplog.text
    )
    assert_same_weights(weights(resumed), weights(straight))  # exact from step 2
    assert checkpoint_steps(cfg.output_dir) == [2, 4]  # the damaged one was rewritten by the resumed run
    # Nothing usable: both checkpoints are named.
    copy = dataclasses.replace(cfg, output_dir=str(tmp_path / "copy"), resume=True)
    (tmp_path / "copy" / constants.CHECKPOINTS_DIR / "4" / constants.TRAINER_STATE).unlink()
    state_file = tmp_path / "copy" / constants.CHECKPOINTS_DIR / "2" / constants.TRAINER_STATE
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "num_processes": 2}))
    with pytest.raises(
        ValueError, match=r"4/trainer_state.json' is missing; .*2' was written by 2 processes"
    ):
        train(copy)


def test_bf16_mixed_precision_keeps_float32_weights(dataset_dir, tmp_path):
    final = train(tiny_config(dataset_dir, tmp_path / "run", max_steps=2, mixed_precision="bf16"))
    assert all(value.dtype == np.float32 for value in weights(final).values())
    assert np.isfinite(json.loads((final / constants.TRAINER_STATE).read_text())["loss"])


def poison(model) -> None:
    """Make the next loss NaN, as a diverging run does (the model refuses NaN in its inputs)."""
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))


def test_nan_loss_stops_with_the_last_good_checkpoint_intact(dataset_dir, tmp_path, monkeypatch):
    import hf_ad.training as training

    original_step, calls = training.train_step, []

    def poisoned_step(model, *args):
        calls.append(1)
        if len(calls) == 5:  # step 5 diverges
            poison(model)
        return original_step(model, *args)

    monkeypatch.setattr(training, "train_step", poisoned_step)
    cfg = tiny_config(dataset_dir, tmp_path / "run", max_steps=8, save_steps=2)
    with pytest.raises(NonFiniteLossError, match=r"at step 5 .*checkpoints/4.*NaN or infinite rewards"):
        train(cfg)
    assert checkpoint_steps(cfg.output_dir) == [2, 4]
    assert not (tmp_path / "run" / constants.FINAL_DIR).exists()
    good = weights(tmp_path / "run" / constants.CHECKPOINTS_DIR / "4")
    assert all(np.isfinite(value).all() for value in good.values())
    # Once the cause is fixed, the run resumes from step 4 and finishes.
    monkeypatch.setattr(training, "train_step", original_step)
    final = train(dataclasses.replace(cfg, resume=True))
    assert json.loads((final / constants.TRAINER_STATE).read_text())["step"] == 8


def test_the_command_advised_after_a_nan_loss_finishes_the_run(dataset_dir, tmp_path, monkeypatch):
    """A loss that diverges at a high learning rate: the message's command continues with a lower one."""
    import hf_ad.training as training

    original_step = training.train_step

    def diverging_step(model, batch, optimizer, *args):
        adam_states = list(optimizer.state.values())
        steps_taken = int(adam_states[0]["step"]) if adam_states else 0
        if steps_taken == 4 and optimizer.param_groups[0]["lr"] > 1e-4:  # step 5, at too high a rate
            poison(model)
        return original_step(model, batch, optimizer, *args)

    monkeypatch.setattr(training, "train_step", diverging_step)
    cfg = tiny_config(dataset_dir, tmp_path / "run", max_steps=8, save_steps=2, mixed_precision="bf16")
    with pytest.raises(NonFiniteLossError) as error:
        train(cfg)
    with pytest.raises(NonFiniteLossError):  # the same settings hit it again
        train(dataclasses.replace(cfg, resume=True))
    command = shlex.split(str(error.value).splitlines()[-1])
    assert command[:2] == ["hf-ad", "train"] and "--resume" in command
    reset_accelerate_state()  # the command starts a new process
    final = train(parse_dataclass(TrainConfig, command[2:], prog="test"))
    state = json.loads((final / constants.TRAINER_STATE).read_text())
    assert state["step"] == 8
    changes = {"learning_rate": [3e-4, 3e-5], "mixed_precision": ["bf16", "no"]}
    assert state["resumed_with_changes"] == [{"step": 4, **changes}]
    assert json.loads((final / constants.TRAIN_CONFIG).read_text())["learning_rate"] == 3e-5


def test_a_used_output_dir_is_refused_unless_overwrite(dataset_dir, tmp_path):
    output = tmp_path / "run"
    first = train(tiny_config(dataset_dir, output, max_steps=2, save_steps=1))
    (output / "notes.txt").write_text("mine")
    written = (first / "model.safetensors").read_bytes()
    cfg = tiny_config(dataset_dir, output, max_steps=3, save_steps=0)
    with pytest.raises(ValueError, match=r"already holds a training run .*--resume .*--overwrite"):
        train(cfg)
    assert (first / "model.safetensors").read_bytes() == written  # untouched
    final = train(dataclasses.replace(cfg, overwrite=True))
    assert json.loads((final / constants.TRAINER_STATE).read_text())["step"] == 3
    assert not (output / constants.CHECKPOINTS_DIR).exists()  # the old run's checkpoints are gone
    assert (output / "notes.txt").read_text() == "mine"  # unrelated files are kept
    # A folder with run-like entries but no train_config.json is not overwritten.
    stranger = tmp_path / "stranger"
    (stranger / constants.CHECKPOINTS_DIR).mkdir(parents=True)
    with pytest.raises(ValueError, match="not a training run folder; nothing was removed"):
        train(tiny_config(dataset_dir, stranger, overwrite=True))
    assert (stranger / constants.CHECKPOINTS_DIR).is_dir()
    with pytest.raises(ValueError, match="not both"):
        tiny_config(dataset_dir, output, resume=True, overwrite=True)


def test_a_model_folder_is_never_trained_into(dataset_dir, tmp_path):
    final = train(tiny_config(dataset_dir, tmp_path / "run", max_steps=2, save_steps=1))
    before = {path.name: path.read_bytes() for path in final.iterdir()}
    for flags in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(ValueError, match="it is a model or checkpoint folder.*nothing was changed"):
            train(tiny_config(dataset_dir, final, max_steps=2, **flags))
    assert {path.name: path.read_bytes() for path in final.iterdir()} == before


def test_resume_without_a_checkpoint_still_checks_the_folder(dataset_dir, tmp_path):
    output = tmp_path / "run"
    train(tiny_config(dataset_dir, output, max_steps=2, save_steps=0))  # finished, no checkpoint kept
    (output / constants.FINAL_DIR / constants.TRAINER_STATE).unlink()  # final/ no longer a finished run
    with pytest.raises(ValueError, match=r"final'? exists but holds no finished run"):
        train(tiny_config(dataset_dir, output, max_steps=2, save_steps=0, resume=True))
    with pytest.raises(ValueError, match=r"different configuration \(max_steps: 2 -> 5\)"):
        train(tiny_config(dataset_dir, output, max_steps=5, save_steps=0, resume=True))


def test_a_checkpoint_of_an_older_hf_ad_says_to_start_over(dataset_dir, tmp_path):
    output = tmp_path / "run"
    train(tiny_config(dataset_dir, output, max_steps=3, save_steps=2))
    shutil.rmtree(output / constants.FINAL_DIR)
    checkpoint = output / constants.CHECKPOINTS_DIR / "2"
    (checkpoint / random_states_name(0)).rename(checkpoint / "random_states_0.pkl")  # as accelerate wrote it
    with pytest.raises(ValueError, match="older hf_ad.*--overwrite"):
        train(tiny_config(dataset_dir, output, max_steps=3, save_steps=2, resume=True))


def test_resume_compares_resolved_paths_and_records_them_as_typed(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = tiny_config(Path(os.path.relpath(dataset_dir)), Path("run"), max_steps=6, save_steps=3)
    interrupted_run(relative, monkeypatch, stop_at_call=5)
    saved = json.loads((tmp_path / "run" / constants.TRAIN_CONFIG).read_text())
    assert saved["output_dir"] == "run" and saved["dataset"] == os.path.relpath(dataset_dir)
    absolute = tiny_config(dataset_dir, tmp_path / "run", max_steps=6, save_steps=3, resume=True)
    final = train(absolute)
    assert json.loads((final / constants.TRAINER_STATE).read_text())["resumed_with_changes"] == []
    assert train(dataclasses.replace(relative, resume=True)) == Path("run") / constants.FINAL_DIR


def test_a_dataset_that_does_not_match_the_model_is_refused(dataset_dir, tmp_path):
    other = tmp_path / "hard-model"
    hard = ADConfig(**TINY_MODEL, observation_nvec=[17, 17], env_id=constants.DARK_ROOM_HARD)
    hf_ad.ADModel(hard).save_pretrained(other)
    output = tmp_path / "run"
    with pytest.raises(
        ValueError, match=r"does not match the model config of --init-from .*\[17, 17\].*\[9 9\]"
    ):
        train(tiny_config(dataset_dir, output, init_from=str(other)))
    with pytest.raises(ValueError, match=r"num_actions.: 4.*Discrete\(5\)"):
        train(tiny_config(dataset_dir, output, num_actions=4))
    assert not output.exists()  # refused before anything was written


def test_bad_runs_are_refused_before_training(dataset_dir, tmp_path):
    with pytest.raises(ValueError, match="max_context=30"):
        train(tiny_config(dataset_dir, tmp_path / "a", max_context=30, context=40))
    with pytest.raises(ValueError, match="shorter than context=200"):
        train(tiny_config(dataset_dir, tmp_path / "b", context=200, max_context=200))
    with pytest.raises(ValueError, match="report_to"):
        tiny_config(dataset_dir, tmp_path, report_to="wandb")
    with pytest.raises(ValueError, match="mixed_precision"):
        tiny_config(dataset_dir, tmp_path, mixed_precision="fp8")
    cfg = tiny_config(dataset_dir, tmp_path / "c", max_steps=2, save_steps=1)
    train(cfg)
    with pytest.raises(ValueError, match="already holds a training run"):
        train(cfg)
    with pytest.raises(ValueError, match=r"batch_size: 4 -> 8"):
        train(dataclasses.replace(cfg, resume=True, batch_size=8))
    with pytest.raises(ValueError, match=r"learning_rate: 0.0003 -> 0.001"):  # the run is over
        train(dataclasses.replace(cfg, resume=True, learning_rate=1e-3))


def _two_process_run(dataset_dir: str, output_dir: str, record_dir: str) -> None:
    """Runs in each of the processes `debug_launcher` forks: train, then record data and weights per rank."""
    from accelerate.state import AcceleratorState, GradientState

    import hf_ad.training as training

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    starts: list[np.ndarray] = []
    original_gather, original_save_final = HistoryWindows.gather, training.save_final

    def recording_gather(self, window_starts):
        starts.append(np.asarray(window_starts))
        return original_gather(self, window_starts)

    def recording_save_final(accelerator, model, cfg, state):
        params = {k: v.detach().numpy() for k, v in accelerator.unwrap_model(model).state_dict().items()}
        rank = accelerator.process_index
        np.savez(Path(record_dir) / f"rank{rank}.npz", starts=np.stack(starts), **params)
        return original_save_final(accelerator, model, cfg, state)

    HistoryWindows.gather = recording_gather
    training.save_final = recording_save_final
    train(tiny_config(Path(dataset_dir), Path(output_dir), max_steps=3, save_steps=2))


def test_two_processes_see_different_data_and_end_with_identical_weights(dataset_dir, tmp_path):
    from accelerate import debug_launcher

    debug_launcher(
        _two_process_run, args=(str(dataset_dir), str(tmp_path / "run"), str(tmp_path)), num_processes=2
    )
    rank0, rank1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    assert rank0["starts"].shape == rank1["starts"].shape == (3, 4)
    assert not np.array_equal(rank0["starts"], rank1["starts"])
    names = [name for name in rank0.files if name != "starts"]
    assert names
    for name in names:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    final = tmp_path / "run" / constants.FINAL_DIR
    assert json.loads((final / constants.TRAINER_STATE).read_text())["num_processes"] == 2
    # The card's command starts two CPU processes again, from an installed package.
    assert (
        "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 "
        "--mixed_precision no --dynamo_backend no -m hf_ad train --dataset"
    ) in (final / constants.MODEL_CARD).read_text()
    final_weights = weights(final)
    for name, value in final_weights.items():
        np.testing.assert_array_equal(value, rank0[name], err_msg=name)


def _two_process_train(dataset_dir: str, output_dir: str, resume: bool) -> None:
    """Runs in each of the processes `debug_launcher` forks: a 4-step run with a checkpoint at step 2."""
    reset_accelerate_state()
    train(tiny_config(Path(dataset_dir), Path(output_dir), max_steps=4, save_steps=2, resume=resume))


def test_two_processes_resume_exactly(dataset_dir, tmp_path):
    """Each rank restores its own random states (its dropout differs from the other rank's)."""
    from accelerate import debug_launcher

    output = tmp_path / "run"
    debug_launcher(_two_process_train, args=(str(dataset_dir), str(output), False), num_processes=2)
    straight = weights(output / constants.FINAL_DIR)
    checkpoint = output / constants.CHECKPOINTS_DIR / "2"
    assert sorted(path.name for path in checkpoint.glob("random_states_*")) == [
        "random_states_0.safetensors",
        "random_states_1.safetensors",
    ]
    shutil.rmtree(output / constants.FINAL_DIR)  # as if killed after the checkpoint of step 2
    debug_launcher(_two_process_train, args=(str(dataset_dir), str(output), True), num_processes=2)
    assert_same_weights(weights(output / constants.FINAL_DIR), straight)


def test_sigkill_mid_run_then_resume_finishes(dataset_dir, tmp_path):
    """`scripts/train.py` killed with SIGKILL once it has saved a checkpoint; `--resume` finishes the run."""
    output = tmp_path / "run"
    flags = ["--dataset", str(dataset_dir), "--output-dir", str(output), "--max-steps", "200"]
    flags += ["--save-steps", "5", "--batch-size", "4", "--report-to", "none"]
    for name, value in TINY_MODEL.items():
        flags += ["--" + name.replace("_", "-"), str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    script = str(REPO_ROOT / "scripts" / "train.py")
    process = subprocess.Popen(
        [sys.executable, script, *flags], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not checkpoint_steps(output) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpoint_steps(output), (
            process.stderr.read().decode() if process.poll() is not None else "timeout"
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (output / constants.FINAL_DIR).exists()
    assert 0 < checkpoint_steps(output)[-1] < 200

    final = train(parse_dataclass(TrainConfig, [*flags, "--resume"], prog="test"))
    state = json.loads((final / constants.TRAINER_STATE).read_text())
    assert state["step"] == 200
    model = AutoModel.from_pretrained(final)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_publish_model_keeps_the_evaluation_and_names_the_repo(dataset_dir, tmp_path, monkeypatch):
    from huggingface_hub import HfApi, ModelCard

    from hf_ad.cards import CARD_SECTION
    from hf_ad.cli import main

    final = train(tiny_config(dataset_dir, tmp_path / "run", max_steps=1))
    argv = [
        "evaluate",
        "--model",
        str(final),
        "--source",
        "none",
        "--episodes",
        "2",
        "--seeds",
        "1",
        "--update-card",
    ]
    assert main([*argv, "--out", str(tmp_path / "eval")]) == 0
    local_card = (final / constants.MODEL_CARD).read_text()
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append((repo_id, kw)))

    def create_commit(self, repo_id, operations, **kw):
        calls.append((repo_id, {**kw, "card": operations[0].path_or_fileobj.decode()}))
        return type("Commit", (), {"commit_url": "url"})

    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    assert main(["publish", "--model", str(final), "--repo-id", "org/ad-tiny"]) == 0
    assert [(repo_id, kw["repo_type"]) for repo_id, kw in calls] == [("org/ad-tiny", "model")] * 2
    assert (final / constants.MODEL_CARD).read_text() == local_card  # the local card is left alone
    card = ModelCard(calls[1][1]["card"])
    assert 'from_pretrained("org/ad-tiny")' in card.text
    assert CARD_SECTION[0] in card.text and "hf-ad evaluate" in card.text
    assert card.data.eval_results and all(np.isfinite(r.metric_value) for r in card.data.eval_results)


def test_the_dataset_hub_id_is_recorded_at_train_time(dataset_dir, tmp_path):
    """A hub --dataset is recorded as the card's dataset id; a local folder is not (a card rendered later,
    elsewhere, cannot tell a vanished local path from a hub id)."""
    hub = TrainConfig(dataset="org/dark-histories", output_dir="run").with_dataset_id()
    assert hub.hub_dataset_id == "org/dark-histories" and "--hub-dataset-id" not in hub.command()
    assert TrainConfig(dataset=str(dataset_dir), output_dir="run").with_dataset_id().hub_dataset_id is None
    final = train(tiny_config(dataset_dir, tmp_path / "run", max_steps=1, hub_dataset_id="org/dark"))
    assert json.loads((final / constants.TRAIN_CONFIG).read_text())["hub_dataset_id"] == "org/dark"
    with pytest.raises(ValueError, match="'/data/histories' is not a hub dataset id"):
        TrainConfig(dataset="d", output_dir="run", hub_dataset_id="/data/histories")
