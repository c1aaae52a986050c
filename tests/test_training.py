"""Tests for hf_ad.training: a tiny model trained for a few steps on a tiny histories dataset."""

from __future__ import annotations

import dataclasses
import json
import os
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


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each run builds its own Accelerator; accelerate keeps process-wide singletons between them."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


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

    assert TrainConfig(**json.loads((final / constants.TRAIN_CONFIG).read_text())) == cfg
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
        columns[constants.TASK] = columns[constants.TASK].copy()
        columns[constants.TASK][:120] = held_out  # the first history now claims a held-out goal
        original_init(self, columns, *args, **kwargs)
        seen_tasks.extend(map(list, self.history_tasks.tolist()))

    _, metadata = load_histories(dataset_dir)
    monkeypatch.setattr(HistoryWindows, "__init__", recording_init)
    train(tiny_config(dataset_dir, tmp_path / "run", max_steps=1))
    assert len(seen_tasks) == 64
    assert all(task in metadata["task_split"]["train"] for task in seen_tasks)


def test_resumed_run_matches_the_uninterrupted_one_exactly(dataset_dir, tmp_path, monkeypatch):
    # In-context evaluation on (eval_steps=2) must not disturb the training RNG either.
    run = {"max_steps": 6, "save_steps": 3, "eval_steps": 2, "eval_episodes": 1}
    straight = train(tiny_config(dataset_dir, tmp_path / "straight", **run))

    import hf_ad.training as training

    original_step, calls = training.train_step, []

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # stops during step 5, after the checkpoint of step 3
        return original_step(*args, **kwargs)

    cfg = tiny_config(dataset_dir, tmp_path / "resumed", **run)
    monkeypatch.setattr(training, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(training, "train_step", original_step)
    assert checkpoint_steps(cfg.output_dir) == [3]
    resumed = train(dataclasses.replace(cfg, resume=True))
    assert_same_weights(weights(resumed), weights(straight))
    state = json.loads((resumed / constants.TRAINER_STATE).read_text())
    assert state["step"] == 6
    # Resuming a finished run returns its final model without training again.
    written = (resumed / "model.safetensors").stat().st_mtime_ns
    assert train(dataclasses.replace(cfg, resume=True)) == resumed
    assert (resumed / "model.safetensors").stat().st_mtime_ns == written


def test_bf16_mixed_precision_keeps_float32_weights(dataset_dir, tmp_path):
    final = train(tiny_config(dataset_dir, tmp_path / "run", max_steps=2, mixed_precision="bf16"))
    assert all(value.dtype == np.float32 for value in weights(final).values())
    assert np.isfinite(json.loads((final / constants.TRAINER_STATE).read_text())["loss"])


def test_nan_loss_stops_with_the_last_good_checkpoint_intact(dataset_dir, tmp_path, monkeypatch):
    original_gather, calls = HistoryWindows.gather, []

    def poisoned_gather(self, starts):
        batch = original_gather(self, starts)
        calls.append(1)
        if len(calls) == 5:
            batch["prev_rewards"][0, 3] = float("nan")  # one bad reward in the batch of step 5
        return batch

    monkeypatch.setattr(HistoryWindows, "gather", poisoned_gather)
    cfg = tiny_config(dataset_dir, tmp_path / "run", max_steps=8, save_steps=2)
    with pytest.raises(NonFiniteLossError, match=r"at step 5 .*checkpoints/4.*--learning-rate"):
        train(cfg)
    assert checkpoint_steps(cfg.output_dir) == [2, 4]
    assert not (tmp_path / "run" / constants.FINAL_DIR).exists()
    good = weights(tmp_path / "run" / constants.CHECKPOINTS_DIR / "4")
    assert all(np.isfinite(value).all() for value in good.values())
    # Once the data is fixed, the run resumes from step 4 and finishes.
    monkeypatch.setattr(HistoryWindows, "gather", original_gather)
    final = train(dataclasses.replace(cfg, resume=True))
    assert json.loads((final / constants.TRAINER_STATE).read_text())["step"] == 8


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
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(cfg)
    with pytest.raises(ValueError, match=r"learning_rate: 0.0003 -> 0.001"):
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
    # The card's command starts two CPU processes again.
    assert (
        "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 scripts/train.py"
        in (final / constants.MODEL_CARD).read_text()
    )
    final_weights = weights(final)
    for name, value in final_weights.items():
        np.testing.assert_array_equal(value, rank0[name], err_msg=name)


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

    from hf_ad.cli import main
    from hf_ad.evaluation import CARD_SECTION

    final = train(tiny_config(dataset_dir, tmp_path / "run", max_steps=1))
    argv = ["evaluate", "--model", str(final), "--source", "none", "--episodes", "2", "--seeds", "1"]
    assert main([*argv, "--out", str(tmp_path / "eval")]) == 0
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append((repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append((kw["repo_id"], kw)) or "url")
    assert main(["publish", "--model", str(final), "--repo-id", "org/ad-tiny"]) == 0
    assert [(repo_id, kw["repo_type"]) for repo_id, kw in calls] == [("org/ad-tiny", "model")] * 2
    card = ModelCard.load(final / constants.MODEL_CARD)
    assert 'from_pretrained("org/ad-tiny")' in card.text
    assert CARD_SECTION[0] in card.text and "hf-ad evaluate" in card.text
    assert card.data.eval_results and all(np.isfinite(r.metric_value) for r in card.data.eval_results)

    (final / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="missing \\['model.safetensors'\\]"):
        main(["publish", "--model", str(final), "--repo-id", "org/ad-tiny"])
    assert len(calls) == 2  # nothing more uploaded
