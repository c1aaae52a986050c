"""Train an Algorithm Distillation model on a histories dataset with Accelerate.

One code path for one CPU process, several CPU processes or many GPUs:

    accelerate launch scripts/train.py --dataset data/darkroom-histories --output-dir runs/ad-darkroom
    hf-ad train --dataset data/darkroom-histories --output-dir runs/ad-darkroom     # one process

What a run writes under `--output-dir`:

    train_config.json           the `TrainConfig` of the run (a resumed run must match it)
    logs/                       tracker logs (TensorBoard by default)
    checkpoints/<step>/         `Accelerator.save_state` + trainer_state.json, the newest `save_total_limit`
    final/                      `save_pretrained` of the model (safetensors + remote code),
                                train_config.json, trainer_state.json and the model card README.md

Data: every process draws its own batches of across-episode windows (`hf_ad.data.windows`) from the
training tasks of the dataset; batch b of rank r is a pure function of `(seed, r, b)`, so ranks see
different data and a resumed run draws exactly the batches the uninterrupted run would have drawn.
The global batch is `batch_size * gradient_accumulation_steps * num_processes` windows.

Checkpoints are written into a temporary folder and renamed into place, so a run killed mid-save
leaves the previous checkpoint intact; `--resume` continues from the newest one with the same step,
learning-rate schedule, window stream and RNG states.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hf_ad import cards, constants
from hf_ad.command_line import command_line
from hf_ad.configuration_ad import ADConfig

logger = logging.getLogger(__name__)

MIXED_PRECISION = ("no", "fp16", "bf16")
TRACKERS = ("tensorboard", "trackio")
# Fields that may differ between a run and its resumption: they do not change what is computed.
RESUMABLE_CHANGES = frozenset(
    {"resume", "report_to", "logging_steps", "save_steps", "save_total_limit", "num_workers", "run_name"}
    | {"eval_steps", "eval_episodes", "eval_seed"}
)


def _model_field(name: str, help: str) -> Any:
    """A TrainConfig field for the ADConfig field `name`: `None` keeps ADConfig's default."""
    default = getattr(ADConfig, name)
    return field(default=None, metadata={"help": f"{help} Default: ADConfig's ({default!r})."})


@dataclass
class TrainConfig:
    """`hf-ad train` / `scripts/train.py`: everything one training run needs, saved as train_config.json."""

    # --- data and output
    dataset: str = field(
        metadata={"help": "Histories dataset: a folder written by `hf-ad generate` or a hub repo id."}
    )
    output_dir: str = field(metadata={"help": "Run folder: train_config.json, logs/, checkpoints/, final/."})
    dataset_split: str = field(
        default="train",
        metadata={"help": "Split of the dataset to train on (histories of the training tasks)."},
    )
    hub_dataset_id: str | None = field(
        default=None,
        metadata={"help": "Hub id of the dataset for the model card, when --dataset is a local folder."},
    )

    # --- model: every ADConfig field but the env metadata, which comes from the dataset
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Start from this AD checkpoint (folder or hub id) instead of a fresh model; its "
            "observation and action spec must match the dataset's."
        },
    )
    hidden_size: int | None = _model_field("hidden_size", "Width of the embeddings and of the transformer.")
    num_hidden_layers: int | None = _model_field("num_hidden_layers", "Decoder layers.")
    num_attention_heads: int | None = _model_field("num_attention_heads", "Attention heads.")
    intermediate_size: int | None = _model_field("intermediate_size", "Width of the feed-forward block.")
    hidden_dropout: float | None = _model_field(
        "hidden_dropout", "Dropout on the tokens and residual branches."
    )
    attention_dropout: float | None = _model_field(
        "attention_dropout", "Dropout on the attention probabilities."
    )
    token_mask_prob: float | None = _model_field(
        "token_mask_prob", "Probability of masking a whole input token."
    )
    label_smoothing: float | None = _model_field("label_smoothing", "Label smoothing of the loss.")
    sliding_window: int | None = _model_field("sliding_window", "Transitions each position attends to.")
    max_context: int | None = _model_field("max_context", "Longest sequence of one forward call.")
    rope_theta: float | None = _model_field("rope_theta", "Base period of the rotary positions.")
    initializer_range: float | None = _model_field("initializer_range", "Std of the weight initialisation.")
    rms_norm_eps: float | None = _model_field("rms_norm_eps", "Epsilon of the RMS normalisations.")
    reward_scale: float | None = _model_field(
        "reward_scale", "Rewards are multiplied by this before embedding."
    )
    observation_type: str | None = field(
        default=None,
        metadata={
            "help": "Observation spec; default: derived from the dataset's env (must match it if given)."
        },
    )
    observation_nvec: list[int] | None = field(
        default=None,
        metadata={"help": "Observation spec (sizes of discrete coordinates); default: from the env."},
    )
    observation_shape: list[int] | None = field(
        default=None, metadata={"help": "Observation spec (shape of one observation); default: from the env."}
    )
    num_actions: int | None = field(
        default=None, metadata={"help": "Action spec (number of actions); default: from the env."}
    )

    # --- windows
    context: int | None = field(
        default=None,
        metadata={
            "help": "Transitions per training segment; default 2 * sliding_window, so that most positions "
            "see a full attention window as in a streaming rollout (see hf_ad.data.windows)."
        },
    )
    loss_lead_in: int = field(
        default=0,
        metadata={
            "help": "Leave the first N positions of each segment out of the loss (not in segments that "
            "start a history)."
        },
    )

    # --- optimisation
    max_steps: int = field(default=1500, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=64, metadata={"help": "Windows per micro-batch, per process."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches per optimizer step."}
    )
    learning_rate: float = field(default=3e-4, metadata={"help": "Peak learning rate (paper: 3e-4)."})
    warmup_ratio: float = field(
        default=0.03, metadata={"help": "Fraction of max_steps of linear warm-up before the cosine decay."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (0: the paper's Adam)."})
    adam_beta1: float = field(default=0.9, metadata={"help": "Adam beta1 (paper: 0.9)."})
    adam_beta2: float = field(default=0.99, metadata={"help": "Adam beta2 (paper: 0.99)."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "Adam epsilon."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (paper: 1)."})
    mixed_precision: str = field(default="no", metadata={"help": f"One of {MIXED_PRECISION}."})
    seed: int = field(default=0, metadata={"help": "Seed of the model init, the windows and dropout."})
    num_workers: int = field(
        default=0, metadata={"help": "DataLoader worker processes per training process."}
    )

    # --- in-context evaluation during training
    eval_steps: int = field(
        default=0,
        metadata={
            "help": "Every N steps (and at the end), play --eval-episodes episodes in context on the "
            "held-out tasks with the current weights and log the returns (0: off)."
        },
    )
    eval_episodes: int = field(
        default=20, metadata={"help": "Episodes per held-out task in each evaluation."}
    )
    eval_seed: int = field(default=0, metadata={"help": "Seed of the evaluation envs and action sampling."})

    # --- logging and checkpoints
    report_to: str = field(
        default="auto",
        metadata={
            "help": f"Trackers, comma-separated from {TRACKERS}, or 'auto' (TensorBoard, plus trackio when "
            "installed), or 'none'."
        },
    )
    run_name: str | None = field(
        default=None, metadata={"help": "Tracker run name; default: the output folder name."}
    )
    logging_steps: int = field(default=20, metadata={"help": "Log the mean loss every N steps."})
    save_steps: int = field(
        default=250, metadata={"help": "Save a checkpoint every N steps (0: only the final model)."}
    )
    save_total_limit: int = field(default=2, metadata={"help": "Keep the newest N checkpoints."})
    resume: bool = field(
        default=False,
        metadata={
            "help": "Continue from the newest checkpoint in --output-dir (start afresh if there is none)."
        },
    )

    def __post_init__(self):
        positive = (
            "max_steps",
            "batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_total_limit",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.eval_episodes, int) or self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be a positive integer, got {self.eval_episodes!r}")
        for name in ("save_steps", "num_workers", "loss_lead_in", "eval_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.context is not None and (not isinstance(self.context, int) or self.context < 1):
            raise ValueError(f"context must be a positive integer or None, got {self.context!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive, got {self.max_grad_norm!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}"
            )
        self.trackers()  # validates report_to

    def trackers(self) -> list[str]:
        """The Accelerate trackers `report_to` asks for."""
        if self.report_to == "none":
            return []
        if self.report_to == "auto":
            from accelerate.utils import is_trackio_available

            return ["tensorboard"] + (["trackio"] if is_trackio_available() else [])
        names = [name.strip() for name in self.report_to.split(",") if name.strip()]
        unknown = [name for name in names if name not in TRACKERS]
        if unknown or not names:
            raise ValueError(
                f"report_to must be 'auto', 'none' or a comma-separated list of {TRACKERS}, "
                f"got {self.report_to!r}"
            )
        return names

    def model_overrides(self) -> dict[str, Any]:
        """The ADConfig fields set on the command line (the others keep ADConfig's defaults)."""
        return {name: getattr(self, name) for name in model_field_names() if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def command(self, program: str = "accelerate launch scripts/train.py") -> str:
        """The command line that reproduces this run (flags that differ from the defaults)."""
        return command_line(self, program, skip=("resume",))


def model_field_names() -> tuple[str, ...]:
    """ADConfig's own fields that `TrainConfig` exposes: all of them but the env metadata."""
    env_metadata = {"env_id", "env_kwargs", "train_tasks", "test_tasks"}
    return tuple(name for name in ADConfig.__annotations__ if name not in env_metadata)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient norm; the optimizer step was not taken."""


# --- the model config from the dataset ------------------------------------------------------------


def dataset_spaces(metadata: dict):
    """`(observation_space, action_space)` of the env a histories dataset was generated on."""
    from hf_ad import envs

    tasks = metadata["task_split"]["train"] or metadata["task_split"]["test"]
    env = envs.make_vector_env(metadata["env_id"], [tuple(tasks[0])], **metadata.get("env_kwargs", {}))
    try:
        return env.single_observation_space, env.single_action_space
    finally:
        env.close()


def build_model_config(cfg: TrainConfig, metadata: dict) -> ADConfig:
    """The model config for a dataset: the env's spec and task split, plus the command line's fields.

    With `init_from`, the checkpoint's config (with the command line's fields applied on top) must
    describe the dataset's observation and action spaces.

    Raises:
        ValueError: the config's observation/action spec does not match the dataset's env, naming both.
    """
    from hf_ad.spaces import check_spaces, config_kwargs_from_spaces

    observation_space, action_space = dataset_spaces(metadata)
    env_metadata = {
        "env_id": metadata["env_id"],
        "env_kwargs": metadata.get("env_kwargs", {}),
        "train_tasks": metadata["task_split"]["train"],
        "test_tasks": metadata["task_split"]["test"],
    }
    overrides = cfg.model_overrides()
    if cfg.init_from is not None:
        config = ADConfig.from_pretrained(cfg.init_from, **overrides, **env_metadata)
        source = f"the model config of --init-from {cfg.init_from}"
    else:
        config = ADConfig(
            **{**config_kwargs_from_spaces(observation_space, action_space), **overrides}, **env_metadata
        )
        source = "the model config given on the command line"
    try:
        check_spaces(config, observation_space, action_space)
    except ValueError as err:
        raise ValueError(
            f"dataset {cfg.dataset!r} (env {metadata['env_id']}) does not match {source}: {err}"
        ) from err
    return config


def resolve_context(cfg: TrainConfig, config: ADConfig) -> int:
    """Training segment length: `--context`, or twice the sliding window; at most `max_context`."""
    context = cfg.context if cfg.context is not None else 2 * config.sliding_window
    if context > config.max_context:
        raise ValueError(
            f"context={context} exceeds the model's max_context={config.max_context}; pass "
            f"--max-context {context} or a shorter --context"
        )
    return context


def build_model_and_windows(cfg: TrainConfig):
    """The model (fresh or `--init-from`) and the training windows of `cfg.dataset`, checked together.

    Raises:
        ValueError: the dataset's spec does not match the model config (naming both), or the windows
            do not fit (context longer than `max_context` or than the histories).
    """
    from hf_ad.data.histories import load_histories
    from hf_ad.data.windows import HistoryWindows
    from hf_ad.modeling_ad import ADModel

    dataset, metadata = load_histories(cfg.dataset, split=cfg.dataset_split)
    model_config = build_model_config(cfg, metadata)
    windows = HistoryWindows.from_dataset(
        dataset,
        context=resolve_context(cfg, model_config),
        num_actions=model_config.num_actions,
        tasks=metadata["task_split"]["train"],
        loss_lead_in=cfg.loss_lead_in,
    )
    if windows.observation_shape != tuple(model_config.observation_shape):
        raise ValueError(
            f"dataset {cfg.dataset!r} stores observations of shape {windows.observation_shape}, the model "
            f"config expects {tuple(model_config.observation_shape)}"
        )
    if cfg.init_from is not None:
        model = ADModel.from_pretrained(cfg.init_from, config=model_config)
    else:
        model = ADModel(model_config)
    return model.train(), windows


# --- one step ------------------------------------------------------------------------------------------


def train_step(
    model, batch: dict[str, torch.Tensor], optimizer, scheduler, accelerator, max_grad_norm: float = 1.0
):
    """Forward and backward one micro-batch; at the end of each accumulation cycle, clip and step.

    With `gradient_accumulation_steps = k` (set on the `Accelerator`), the optimizer and the schedule
    step on every k-th call, as `accelerator.accumulate` decides. Before stepping, the loss and the
    gradient norm are summed over processes: if any process has a NaN or infinite value, every process
    raises `NonFiniteLossError` together and the weights are left as they were.

    Args:
        model: the prepared `ADModel`.
        batch: `ADModel.forward` keywords with `labels`, on the model's device.
        optimizer, scheduler: prepared by the accelerator (scheduler not stepped with the optimizer).
        accelerator: the run's `Accelerator`.
        max_grad_norm: gradient clipping norm.

    Returns:
        `{"loss": ...}` of this micro-batch, plus `grad_norm` (before clipping) and `lr` on an optimizer
        step.
    """
    metrics: dict[str, float] = {}
    with accelerator.accumulate(model):
        loss = model(**batch).loss
        accelerator.backward(loss)
        metrics["loss"] = loss.item()
        if accelerator.sync_gradients:
            grad_norm = torch.as_tensor(accelerator.clip_grad_norm_(model.parameters(), max_grad_norm))
            # fp16 overflows are the grad scaler's business (it skips the step); watch the loss only.
            watched = (
                loss.detach().float()
                if accelerator.scaler is not None
                else torch.stack([loss.detach().float(), grad_norm.to(loss.device, torch.float32)])
            )
            watched = accelerator.reduce(watched, reduction="sum")  # any process's NaN reaches every process
            if not torch.isfinite(watched).all():
                optimizer.zero_grad(set_to_none=True)
                raise NonFiniteLossError(f"loss {metrics['loss']}, gradient norm {grad_norm.item()}")
            metrics["grad_norm"] = grad_norm.item()
            metrics["lr"] = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return metrics


# --- in-context evaluation ---------------------------------------------------------------------------


def evaluate_in_context(model, episodes: int, seed: int) -> dict[str, float]:
    """Play `episodes` episodes on each held-out task of `model.config`, the model acting in context.

    The rollout of `hf_ad.rollout` (sampled actions, KV cache) with the weights as they are now; the
    model is put in eval mode for it and back in train mode after. Touches no global RNG.

    Returns:
        Mean return over the held-out tasks of the first episode, the last episode and all episodes.
    """
    from hf_ad import envs
    from hf_ad.rollout import rollout

    config = model.config
    env = envs.make_vector_env(
        config.env_id, [tuple(task) for task in config.test_tasks], **config.env_kwargs
    )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            returns, _ = rollout(model, env, num_episodes=episodes, seed=seed)  # (tasks, episodes)
    finally:
        env.close()
        model.train(was_training)
    return {
        "eval/return_first_episode": float(returns[:, 0].mean()),
        "eval/return_last_episode": float(returns[:, -1].mean()),
        "eval/return_mean": float(returns.mean()),
    }


# --- checkpoints ------------------------------------------------------------------------------------


def checkpoint_steps(output_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints under `output_dir/checkpoints`, oldest first.

    Only folders named by a step count are complete: a checkpoint is written as `.tmp-<step>` and
    renamed when every file is in place.
    """
    root = Path(output_dir) / constants.CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    return sorted(int(path.name) for path in root.iterdir() if path.is_dir() and path.name.isdigit())


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def save_checkpoint(accelerator, output_dir: Path, step: int, state: dict, keep: int) -> Path:
    """`accelerator.save_state` into `checkpoints/<step>/` through a temporary folder; keep the newest `keep`.

    Every process calls this (each saves its RNG state); the main process renames and prunes.
    """
    root = output_dir / constants.CHECKPOINTS_DIR
    tmp, final = root / f".tmp-{step}", root / str(step)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_json(tmp / constants.TRAINER_STATE, state)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoint_steps(output_dir)[:-keep]:
            shutil.rmtree(root / str(old))
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _check_resumable(cfg: TrainConfig, saved: dict) -> None:
    current = cfg.to_dict()
    differ = sorted(
        k for k in set(current) | set(saved) if k not in RESUMABLE_CHANGES and current.get(k) != saved.get(k)
    )
    if differ:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differ)
        raise ValueError(
            f"cannot resume {cfg.output_dir!r} with a different configuration ({details}); rerun with the "
            f"saved {constants.TRAIN_CONFIG} or use another --output-dir"
        )


# --- final model and its card -----------------------------------------------------------------------


def launch_program(num_processes: int, device: str) -> str:
    """The `accelerate launch` prefix that starts `num_processes` training processes on `device`."""
    if num_processes == 1:
        return "accelerate launch scripts/train.py"
    cpu = "ACCELERATE_USE_CPU=1 " if device == "cpu" else ""
    return f"{cpu}accelerate launch --multi_gpu --num_processes {num_processes} scripts/train.py"


def run_command(folder: str | Path) -> str:
    """The command line that trained a `final/` folder, rebuilt from its `train_config.json` and state."""
    folder = cards.check_final_folder(folder)
    train_config = TrainConfig(**json.loads((folder / constants.TRAIN_CONFIG).read_text()))
    state = json.loads((folder / constants.TRAINER_STATE).read_text())
    return train_config.command(launch_program(state.get("num_processes", 1), state.get("device", "cpu")))


def write_model_card(folder: str | Path, repo_id: str | None = None) -> str:
    """Render the model card of a `final/` folder into its `README.md` (`hf_ad.cards.write_model_card` with
    the run's command; what `hf-ad evaluate` wrote is kept).

    Args:
        folder: a `final/` folder written by `train`.
        repo_id: the hub repo id shown in the usage snippet; default: the folder as the run named it.

    Returns:
        The rendered card.
    """
    return cards.write_model_card(folder, run_command(folder), repo_id=repo_id)


def save_final(accelerator, model, cfg: TrainConfig, state: dict) -> Path:
    """Write `final/` (model, train config, trainer state, card) through a temporary folder."""
    output_dir = Path(cfg.output_dir)
    final = output_dir / constants.FINAL_DIR
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = output_dir / f".tmp-{constants.FINAL_DIR}"
        shutil.rmtree(tmp, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
        _write_json(tmp / constants.TRAIN_CONFIG, cfg.to_dict())
        _write_json(tmp / constants.TRAINER_STATE, state)
        write_model_card(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
    return final


# --- the run ----------------------------------------------------------------------------------------


def _non_finite_message(cfg: TrainConfig, step: int, values: str) -> str:
    kept = checkpoint_steps(cfg.output_dir)
    if kept:
        last_good = (
            f"the last good checkpoint is {Path(cfg.output_dir) / constants.CHECKPOINTS_DIR / str(kept[-1])}"
        )
    else:
        last_good = "no checkpoint was saved yet"
    return (
        f"non-finite training loss at step {step} ({values}); training stopped and {last_good}. Try a lower "
        f"--learning-rate (now {cfg.learning_rate}), a longer --warmup-ratio (now {cfg.warmup_ratio}), "
        f"--mixed-precision no (now {cfg.mixed_precision!r}), or check the dataset for NaN rewards or "
        f"observations; then rerun with --resume to continue from the last good checkpoint."
    )


def _tracker_config(cfg: TrainConfig, config: ADConfig, context: int) -> dict[str, Any]:
    """Flat scalar hyper-parameters for the trackers (TensorBoard hparams take no None or lists)."""
    values = {
        **cfg.to_dict(),
        **{f"model/{k}": getattr(config, k) for k in model_field_names()},
        "context": context,
    }
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in values.items()}


def train(cfg: TrainConfig) -> Path:
    """Train an AD model as `cfg` says; returns the `final/` folder.

    Raises:
        ValueError: bad configuration, a dataset that does not match the model config, an output folder
            that already holds checkpoints without `resume`, or a resumed run whose config differs.
        NonFiniteLossError: a NaN or infinite loss; the checkpoints on disk are untouched.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from hf_ad.data.windows import window_loader

    output_dir = Path(cfg.output_dir)
    final_state = output_dir / constants.FINAL_DIR / constants.TRAINER_STATE
    saved_config_path = output_dir / constants.TRAIN_CONFIG
    if cfg.resume and final_state.is_file() and saved_config_path.is_file():
        _check_resumable(cfg, json.loads(saved_config_path.read_text()))
        if json.loads(final_state.read_text())["step"] == cfg.max_steps:
            logger.info("--resume: %s already holds the finished run", output_dir)
            return final_state.parent
    checkpoints = checkpoint_steps(output_dir)
    if checkpoints and not cfg.resume:
        raise ValueError(
            f"{str(output_dir)!r} already holds checkpoints {checkpoints}; pass --resume to continue that "
            f"run or choose another --output-dir"
        )
    if cfg.resume and checkpoints and saved_config_path.is_file():
        _check_resumable(cfg, json.loads(saved_config_path.read_text()))

    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=cfg.trackers() or None,
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / constants.LOGS_DIR)
        ),
        step_scheduler_with_optimizer=False,  # stepped once per optimizer step, whatever the process count
    )
    set_seed(cfg.seed)  # same model init on every process

    model, windows = build_model_and_windows(cfg)
    model_config, context = model.config, windows.context
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        weight_decay=cfg.weight_decay,
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, num_warmup_steps=round(cfg.warmup_ratio * cfg.max_steps), num_training_steps=cfg.max_steps
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    set_seed(cfg.seed, device_specific=True)  # each process its own dropout and token masks

    start_step, wall_time, last_loss = 0, 0.0, math.nan
    last_eval: dict[str, float] | None = None
    if cfg.resume and checkpoints:
        start_step = checkpoints[-1]
        checkpoint = output_dir / constants.CHECKPOINTS_DIR / str(start_step)
        accelerator.load_state(str(checkpoint))
        saved_state = json.loads((checkpoint / constants.TRAINER_STATE).read_text())
        wall_time, last_loss, last_eval = saved_state["wall_time_s"], saved_state["loss"], saved_state["eval"]
        # accelerate does not restore its save counter; our folders are named by step, keep it in line anyway.
        accelerator.project_configuration.iteration = start_step // cfg.save_steps if cfg.save_steps else 0
        logger.info("resuming from %s at step %d", checkpoint, start_step)
    elif cfg.resume:
        logger.info("--resume: no checkpoint in %s, starting afresh", output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_json(saved_config_path, cfg.to_dict())
    if cfg.trackers():
        accelerator.init_trackers(
            cfg.run_name or output_dir.resolve().name, config=_tracker_config(cfg, model_config, context)
        )

    loader = window_loader(
        windows,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        rank=accelerator.process_index,
        start_batch=start_step * cfg.gradient_accumulation_steps,
        num_workers=cfg.num_workers,
        pin_memory=accelerator.device.type == "cuda",
    )
    batches = iter(loader)
    progress = tqdm(
        total=cfg.max_steps,
        initial=start_step,
        desc="train",
        unit="step",
        disable=not accelerator.is_main_process,
    )
    window_losses: list[float] = []
    transitions_per_step = (
        cfg.batch_size * cfg.gradient_accumulation_steps * accelerator.num_processes * context
    )
    step = start_step
    started = time.perf_counter()

    def trainer_state() -> dict[str, Any]:
        return {
            "step": step,
            "max_steps": cfg.max_steps,
            "wall_time_s": round(wall_time + time.perf_counter() - started, 3),
            "loss": last_loss,
            "num_processes": accelerator.num_processes,
            "device": accelerator.device.type,
            "transitions_seen": step * transitions_per_step,
            "context": context,
            "eval": last_eval,
        }

    try:
        while step < cfg.max_steps:
            for _ in range(cfg.gradient_accumulation_steps):
                batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in next(batches).items()}
                try:
                    metrics = train_step(model, batch, optimizer, scheduler, accelerator, cfg.max_grad_norm)
                except NonFiniteLossError as err:
                    raise NonFiniteLossError(_non_finite_message(cfg, step + 1, str(err))) from err
                window_losses.append(metrics["loss"])
            step += 1
            progress.update(1)
            if step % cfg.logging_steps == 0 or step == cfg.max_steps:
                mean_loss = torch.tensor(sum(window_losses) / len(window_losses), device=accelerator.device)
                last_loss = accelerator.reduce(mean_loss, reduction="mean").item()
                window_losses.clear()
                accelerator.log(
                    {
                        "train/loss": last_loss,
                        "train/lr": metrics["lr"],
                        "train/grad_norm": metrics["grad_norm"],
                    },
                    step=step,
                )
                progress.set_postfix(loss=f"{last_loss:.4f}", lr=f"{metrics['lr']:.2e}")
            if cfg.eval_steps and (step % cfg.eval_steps == 0 or step == cfg.max_steps):
                if accelerator.is_main_process:
                    evaluation = evaluate_in_context(
                        accelerator.unwrap_model(model), cfg.eval_episodes, cfg.eval_seed
                    )
                    accelerator.log(evaluation, step=step)
                    last_eval = {"step": step, **evaluation}
                accelerator.wait_for_everyone()
            if cfg.save_steps and step % cfg.save_steps == 0 and step < cfg.max_steps:
                save_checkpoint(accelerator, output_dir, step, trainer_state(), keep=cfg.save_total_limit)
        final = save_final(accelerator, model, cfg, trainer_state())
    finally:
        progress.close()
        accelerator.end_training()
    return final


__all__ = [
    "NonFiniteLossError",
    "TrainConfig",
    "build_model_and_windows",
    "build_model_config",
    "checkpoint_steps",
    "save_checkpoint",
    "train",
    "train_step",
    "run_command",
    "write_model_card",
]
