r"""Train an Algorithm Distillation model on a histories dataset with Accelerate.

One code path for one CPU process, several CPU processes or many GPUs:

    hf-ad train --dataset data/darkroom-histories --output-dir runs/ad-darkroom     # one process
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no -m hf_ad train \
        --dataset data/darkroom-histories --output-dir runs/ad-darkroom             # two CPU processes

What a run writes under `--output-dir`:

    train_config.json           the `TrainConfig` of the run
    logs/                       tracker logs (TensorBoard by default)
    checkpoints/<step>/         model.safetensors and optimizer.bin (`Accelerator.save_state`),
                                random_states_<rank>.safetensors, train_config.json, trainer_state.json;
                                the newest `save_total_limit`
    final/                      `save_pretrained` of the model (safetensors + remote code),
                                train_config.json, trainer_state.json and the model card README.md

A folder that already holds a run is refused unless `--resume` continues it or `--overwrite` starts
it over (removing that run's files, and only from a folder that has a train_config.json).

Data: every process draws its own batches of across-episode windows (`hf_ad.data.windows`) from the
training tasks of the dataset; batch b of rank r is a pure function of `(seed, r, b)`, so ranks see
different data and a resumed run draws exactly the batches the uninterrupted run would have drawn.
The global batch is `batch_size * gradient_accumulation_steps * num_processes` windows.

Checkpoints are written into a temporary folder and renamed into place, so a run killed mid-save
leaves the previous checkpoint intact. `--resume` continues from the newest checkpoint that is
complete (a damaged one is named in a warning and the one before is used) with the same step,
window stream, optimizer state and random states, so with unchanged settings on the same machine it
ends with the weights of the uninterrupted run; the learning-rate schedule is a function of the
step. A checkpoint that cannot be resumed exactly raises `ValueError` naming the file. The
optimisation settings in `RESUME_OVERRIDES` may change on `--resume` (e.g. a lower learning rate
after a NaN loss); `trainer_state.json` records each such change under `resumed_with_changes`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import (
    OPTIMIZER_NAME,
    RNG_STATE_NAME,
    SAFE_WEIGHTS_NAME,
    ProjectConfiguration,
    is_trackio_available,
    set_seed,
)
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError, safe_open
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from hf_ad import cards, constants, envs
from hf_ad.agent import quiet_progress_bars
from hf_ad.command_line import command_line
from hf_ad.configuration_ad import ADConfig
from hf_ad.data.histories import dataset_metadata, load_histories
from hf_ad.data.windows import HistoryWindows, window_loader
from hf_ad.files import TEMP_SUFFIX, atomic_write_json, replace_folder, temporary_name
from hf_ad.modeling_ad import ADModel
from hf_ad.random_states import RandomStates, random_states_name
from hf_ad.recipes import TrainingRecipe, training_values
from hf_ad.rollout import rollout
from hf_ad.spaces import check_spaces, config_kwargs_from_spaces

logger = logging.getLogger(__name__)

MIXED_PRECISION = ("no", "fp16", "bf16")
TRAIN_PROGRAM = "hf-ad train"  # a one-process run's command (see `launch_program`)
TRACKERS = ("tensorboard", "trackio")
# Fields that may differ between a run and its resumption: they do not change what is computed.
# Fields that never stop a resume: logging, saving, evaluation, and where the run folder lives (a run
# folder moved or copied elsewhere resumes as the same run).
RESUMABLE_CHANGES = frozenset(
    {"resume", "overwrite", "report_to", "logging_steps", "save_steps", "save_total_limit", "num_workers"}
    | {"run_name", "eval_steps", "eval_episodes", "eval_seed", "output_dir", "hub_dataset_id"}
)
# Optimisation settings a resumed run may change; they apply from the checkpoint's step on (the
# learning-rate schedule is rebuilt from the step, the clipping norm and precision are read each step).
RESUME_OVERRIDES = frozenset({"learning_rate", "warmup_ratio", "max_grad_norm", "mixed_precision"})
# Fields naming a local folder (or a hub id): the same if they resolve to the same path.
PATH_FIELDS = ("dataset", "output_dir", "init_from")
# Files at the top of a model folder (final/) or a checkpoint, never of a run folder.
MODEL_FOLDER_FILES = (constants.TRAINER_STATE, "config.json", SAFE_WEIGHTS_NAME)
# Help text of the flags whose default is the env's recipe (`hf_ad.recipes`).
RECIPE_DEFAULT = "Default: the recipe of the dataset's env (hf_ad.recipes)."
RECIPE_OPTIMISATION = ("max_steps", "batch_size", "learning_rate")  # the recipe's settings beside the model
# TrainConfig's defaults before the recipes: a run recorded then (no recipe value resolved) left them out of
# its command, and its card's command must not change.
PRE_RECIPE_DEFAULTS = {"learning_rate": 3e-4}
# What a run writes in its --output-dir, all that --overwrite removes.
RUN_ENTRIES = (constants.TRAIN_CONFIG, constants.LOGS_DIR, constants.CHECKPOINTS_DIR, constants.FINAL_DIR)
OPTIMIZER_FILE = f"{OPTIMIZER_NAME}.bin"


def _flags(names) -> str:
    """`--flag-name, ...` for some TrainConfig fields, sorted."""
    return ", ".join("--" + name.replace("_", "-") for name in sorted(names))


def _model_field(name: str, help: str) -> Any:
    """A TrainConfig field for the ADConfig field `name`: `None` keeps ADConfig's default."""
    if name in TrainingRecipe.__dataclass_fields__:
        return field(default=None, metadata={"help": f"{help} {RECIPE_DEFAULT}"})
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
    num_train_tasks: int | None = field(
        default=None,
        metadata={
            "help": "Train on this many of the dataset's training tasks only: the first N of them in the "
            "fixed order of hf_ad.envs.subset_tasks (so a smaller N is a subset of a larger one); the "
            "model records them as its train_tasks. Default: all of them."
        },
    )
    hub_dataset_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub id of the dataset, named in the model card's `datasets:`, when --dataset is a local "
            "folder (e.g. the repo it was published to); a hub --dataset is recorded as such by itself."
        },
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
    mark_episode_starts: bool | None = _model_field(
        "mark_episode_starts",
        "Give each episode's first transition the 'no previous action' index (true or false).",
    )
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
            "help": "Transitions per training segment (the recipes: 2 * sliding_window, so that most "
            "positions see a full attention window as in a streaming rollout; see hf_ad.data.windows). "
            f"{RECIPE_DEFAULT}"
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
    max_steps: int | None = field(default=None, metadata={"help": f"Optimizer steps. {RECIPE_DEFAULT}"})
    batch_size: int | None = field(
        default=None, metadata={"help": f"Windows per micro-batch, per process. {RECIPE_DEFAULT}"}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches per optimizer step."}
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": f"Peak learning rate (the paper: 3e-4). {RECIPE_DEFAULT}"}
    )
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
            "help": "Continue the run in --output-dir from its newest complete checkpoint (start afresh if "
            "there is none). The other flags must be the run's, but for logging, saving and eval flags and "
            f"the optimisation settings {_flags(RESUME_OVERRIDES)}, which apply from the checkpoint's step "
            "on (e.g. a lower learning rate after a NaN loss)."
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "Start over in an --output-dir that holds a run: remove its train_config.json, logs/, "
            "checkpoints/ and final/ (nothing else) first. Without it such a folder is refused."
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
            if value is None and name in TrainingRecipe.__dataclass_fields__:
                continue  # the recipe's, filled in by `with_recipe`
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.eval_episodes, int) or self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be a positive integer, got {self.eval_episodes!r}")
        for name in ("save_steps", "num_workers", "loss_lead_in", "eval_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.num_train_tasks is not None and (
            isinstance(self.num_train_tasks, bool)
            or not isinstance(self.num_train_tasks, int)
            or self.num_train_tasks < 1
        ):
            raise ValueError(
                f"num_train_tasks must be a positive integer or None, got {self.num_train_tasks!r}"
            )
        if self.context is not None and (not isinstance(self.context, int) or self.context < 1):
            raise ValueError(f"context must be a positive integer or None, got {self.context!r}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive, got {self.max_grad_norm!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}"
            )
        if self.hub_dataset_id is not None:
            try:
                validate_repo_id(self.hub_dataset_id)
            except HFValidationError as error:
                raise ValueError(
                    f"hub_dataset_id {self.hub_dataset_id!r} is not a hub dataset id ({error}); give "
                    "'org/name' (the model card names it), or leave it out for a local dataset"
                ) from None
        if self.resume and self.overwrite:
            raise ValueError("pass --resume to continue a run or --overwrite to start it over, not both")
        self.trackers()  # validates report_to

    def trackers(self) -> list[str]:
        """The Accelerate trackers `report_to` asks for."""
        if self.report_to == "none":
            return []
        if self.report_to == "auto":
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

    def command(self, program: str = TRAIN_PROGRAM) -> str:
        """The command line that reproduces this run (flags that differ from the defaults)."""
        recorded = ("hub_dataset_id",) if self.hub_dataset_id == self.dataset else ()  # by `with_dataset_id`
        if self.init_from is None and self.sliding_window is None:  # recorded before the recipes
            recorded += tuple(
                name for name, value in PRE_RECIPE_DEFAULTS.items() if getattr(self, name) == value
            )
        return command_line(self, program, skip=("resume", "overwrite", *recorded))

    def with_recipe(self, env_id: str, recipe: TrainingRecipe | None = None) -> TrainConfig:
        """This config with every recipe setting left `None` (not given) taken from `env_id`'s recipe, or
        from `recipe` where given (with `init_from`, only the optimisation settings: the model is the
        checkpoint's; with a given `sliding_window`, the context stays twice that window unless given).

        Raises:
            ValueError: no recipe for `env_id` while a setting is left to it.
        """
        # With --init-from the model (and so the context) is the checkpoint's: only optimisation is left.
        settings = RECIPE_OPTIMISATION if self.init_from is not None else TrainingRecipe.__dataclass_fields__
        if self.sliding_window is not None:
            settings = [
                name for name in settings if name != "context"
            ]  # 2 * the given window (resolve_context)
        missing = [name for name in settings if getattr(self, name) is None]
        if not missing:
            return self
        values = training_values(env_id) if recipe is None else dataclasses.asdict(recipe)
        return dataclasses.replace(self, **{name: values[name] for name in missing})

    def with_dataset_id(self) -> TrainConfig:
        """This config with `hub_dataset_id` recorded for the model card: `--dataset` itself when it names no
        local folder (a hub repo, as `load_histories` reads it). Only at train time is it known which one
        `--dataset` was; a card rendered later, elsewhere, must not take a local path for a hub id."""
        if self.hub_dataset_id is not None or Path(self.dataset).is_dir():
            return self
        return dataclasses.replace(self, hub_dataset_id=self.dataset)


def model_field_names() -> tuple[str, ...]:
    """ADConfig's own fields that `TrainConfig` exposes: all of them but the env metadata."""
    env_metadata = {"env_id", "env_kwargs", "train_tasks", "test_tasks"}
    return tuple(name for name in ADConfig.__annotations__ if name not in env_metadata)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient norm; the optimizer step was not taken."""


# --- the model config from the dataset ------------------------------------------------------------


def dataset_spaces(metadata: dict):
    """`(observation_space, action_space)` of the env a histories dataset was generated on."""
    tasks = metadata["task_split"]["train"] or metadata["task_split"]["test"]
    env = envs.make_vector_env(metadata["env_id"], [tuple(tasks[0])], **metadata.get("env_kwargs", {}))
    try:
        return env.single_observation_space, env.single_action_space
    finally:
        env.close()


def training_tasks(cfg: TrainConfig, metadata: dict) -> list:
    """The dataset's training tasks the run trains on: all, or `num_train_tasks` of them (`subset_tasks`).

    Raises:
        ValueError: `num_train_tasks` is more than the dataset's training tasks.
    """
    tasks = metadata["task_split"]["train"]
    if cfg.num_train_tasks is None:
        return tasks
    if cfg.num_train_tasks > len(tasks):
        raise ValueError(
            f"--num-train-tasks {cfg.num_train_tasks} exceeds the {len(tasks)} training tasks of dataset "
            f"{cfg.dataset!r}; pass at most {len(tasks)}"
        )
    return [list(task) for task in envs.subset_tasks(tasks, cfg.num_train_tasks)]


def build_model_config(cfg: TrainConfig, metadata: dict) -> ADConfig:
    """The model config for a dataset: the env's spec and task split, plus the command line's fields.

    With `init_from`, the checkpoint's config (with the command line's fields applied on top) must
    describe the dataset's observation and action spaces.

    Raises:
        ValueError: the config's observation/action spec does not match the dataset's env, naming both.
    """
    observation_space, action_space = dataset_spaces(metadata)
    env_metadata = {
        "env_id": metadata["env_id"],
        "env_kwargs": metadata.get("env_kwargs", {}),
        "train_tasks": training_tasks(cfg, metadata),
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
    dataset, metadata = load_histories(cfg.dataset, split=cfg.dataset_split)
    model_config = build_model_config(cfg, metadata)
    windows = HistoryWindows.from_dataset(
        dataset,
        context=resolve_context(cfg, model_config),
        num_actions=model_config.num_actions,
        tasks=training_tasks(cfg, metadata),
        loss_lead_in=cfg.loss_lead_in,
        mark_episode_starts=model_config.mark_episode_starts,
    )
    if windows.observation_shape != tuple(model_config.observation_shape):
        raise ValueError(
            f"dataset {cfg.dataset!r} stores observations of shape {windows.observation_shape}, the model "
            f"config expects {tuple(model_config.observation_shape)}"
        )
    if cfg.init_from is not None:
        with quiet_progress_bars():
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

    `hf_ad.rollout.rollout`, a loop around an `InContextAgent` (sampled actions, KV cache), with the
    weights as they are now; the model is put in eval mode for it and back in train mode after. Touches
    no global RNG.

    Returns:
        Mean return over the held-out tasks of the first episode, the last episode and all episodes.
    """
    config = model.config
    env = envs.make_vector_env(
        config.env_id, [tuple(task) for task in config.test_tasks], **config.env_kwargs
    )
    was_training = model.training
    model.eval()
    try:
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
    """Steps of the checkpoints under `output_dir/checkpoints`, oldest first.

    Only folders named by a step count are checkpoints: one is written under a temporary name
    (`files.temporary_name`) and renamed when every file is in place. A crash or a damaged disk may
    still leave one unusable; `newest_usable_checkpoint` checks.
    """
    root = Path(output_dir) / constants.CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    return sorted(int(path.name) for path in root.iterdir() if path.is_dir() and path.name.isdigit())


def save_checkpoint(
    accelerator, output_dir: Path, step: int, state: dict, train_config: dict, keep: int
) -> Path:
    """Save what a resume needs into `checkpoints/<step>/` through a temporary folder; keep the newest `keep`.

    Every process calls this (each saves its own random states); the main process writes the JSON
    files, renames the folder into place and prunes.

    Args:
        accelerator: the run's `Accelerator`.
        output_dir: the run folder.
        step: optimizer steps taken.
        state: the trainer state (`trainer_state.json`).
        train_config: the `TrainConfig` as a dict, which a resume must match.
        keep: how many checkpoints to keep.
    """
    root = output_dir / constants.CHECKPOINTS_DIR
    folder = root / str(step)
    tmp = temporary_name(folder)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # model.safetensors, optimizer.bin, random_states_<rank>.pkl
    rank = accelerator.process_index
    # accelerate's random states are a pickle it skips silently when unreadable: ours replace them.
    (tmp / f"{RNG_STATE_NAME}_{rank}.pkl").unlink(missing_ok=True)
    RandomStates.capture().save(tmp / random_states_name(rank))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / constants.TRAINER_STATE, state, sort_keys=True)
        atomic_write_json(tmp / constants.TRAIN_CONFIG, train_config, sort_keys=True)
        if folder.exists():  # a damaged checkpoint the resume fell back from
            shutil.rmtree(folder)
        replace_folder(tmp, folder)
        for old in checkpoint_steps(output_dir)[:-keep]:
            shutil.rmtree(root / str(old))
        for stale in root.glob(f".*{TEMP_SUFFIX}"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def _read_json(path: Path) -> dict:
    """A JSON file's content, or `ValueError` naming the file when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ValueError(f"{str(path)!r} is missing") from err
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not readable JSON ({err})") from err


def _check_safetensors(path: Path) -> None:
    """Raise `ValueError` naming `path` unless it is a complete safetensors file (its header covers it)."""
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is missing")
    try:
        with safe_open(str(path), framework="np") as file:
            file.keys()
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{str(path)!r} is not a complete safetensors file ({err})") from err


def _check_torch_archive(path: Path) -> None:
    """Raise `ValueError` naming `path` unless it is an intact `torch.save` zip archive.

    The archive's CRCs are checked; nothing is unpickled.
    """
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is missing")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{str(path)!r} is not a complete torch archive ({err})") from err
    if damaged is not None:
        raise ValueError(f"{str(path)!r} is damaged (bad CRC in {damaged})")


def checkpoint_problem(folder: Path, num_processes: int) -> str | None:
    """Why `num_processes` processes cannot resume exactly from `folder` (naming the file), or `None`."""
    try:
        state = _read_json(folder / constants.TRAINER_STATE)
        _read_json(folder / constants.TRAIN_CONFIG)
        _check_safetensors(folder / SAFE_WEIGHTS_NAME)
        _check_torch_archive(folder / OPTIMIZER_FILE)
        if state.get("num_processes") != num_processes:
            return (
                f"{str(folder)!r} was written by {state.get('num_processes')} processes, this run has "
                f"{num_processes}: launch as many as the run was started with"
            )
        for rank in range(num_processes):
            if (folder / f"{RNG_STATE_NAME}_{rank}.pkl").is_file() and not (
                folder / random_states_name(rank)
            ).is_file():
                return (
                    f"{str(folder)!r} was written by an older hf_ad (pickled RNG states), which cannot be "
                    "resumed exactly: start the run over with --overwrite"
                )
            RandomStates.load(folder / random_states_name(rank))
    except ValueError as err:
        return str(err)
    return None


def newest_usable_checkpoint(output_dir: str | Path, num_processes: int) -> Path | None:
    """The newest checkpoint a run of `num_processes` processes can resume from; `None` when there is none.

    A damaged checkpoint (a missing or truncated file) is named in a warning and the one before it is tried.

    Raises:
        ValueError: there are checkpoints but none is usable, naming the problem of each and the remedies.
    """
    root = Path(output_dir) / constants.CHECKPOINTS_DIR
    problems = []
    for step in reversed(checkpoint_steps(output_dir)):
        problem = checkpoint_problem(root / str(step), num_processes)
        if problem is None:
            return root / str(step)
        logger.warning("cannot resume from checkpoint %s: %s; trying the one before", step, problem)
        problems.append(problem)
    if problems:
        raise ValueError(
            f"no checkpoint in {str(root)!r} can be resumed from: {'; '.join(problems)}. Restore the named "
            "files, or start the run over with --overwrite (or use another --output-dir)"
        )
    return None


def load_checkpoint(accelerator, folder: Path) -> None:
    """Load the model, optimizer and this process's random states from a checkpoint folder.

    Raises:
        ValueError: a file could not be loaded, naming the folder and the remedies.
    """
    try:
        accelerator.load_state(str(folder))
    except Exception as err:  # torch and accelerate raise many kinds on a damaged file
        raise ValueError(
            f"cannot load checkpoint {str(folder)!r} ({type(err).__name__}: {err}); restore it, remove it to "
            "resume from the one before, or start the run over with --overwrite"
        ) from err
    RandomStates.load(folder / random_states_name(accelerator.process_index)).restore(source=str(folder))


def _same_setting(name: str, saved: Any, current: Any) -> bool:
    """Whether a field has the same value in a saved and a current config (paths compared resolved)."""
    if saved == current:
        return True
    both_paths = name in PATH_FIELDS and saved is not None and current is not None
    return both_paths and Path(saved).resolve() == Path(current).resolve()


def settings_used(recorded: dict) -> dict:
    """A recorded `train_config.json` with the recipe settings it left to `None` (a run recorded before the
    recipes) replaced by what that run used: ADConfig's defaults and a context of twice the window. With
    `init_from` they stay `None` (the checkpoint's, as in a run recorded now)."""
    if recorded.get("init_from") is not None:
        return recorded
    used = {
        name: getattr(ADConfig, name)
        for name in model_field_names()
        if name in TrainingRecipe.__dataclass_fields__
    }
    used = {name: value for name, value in used.items() if recorded.get(name) is None}
    window = recorded.get("sliding_window") or ADConfig.sliding_window
    context = {"context": 2 * window} if recorded.get("context") is None else {}
    return {**recorded, **used, **context}


def resume_changes(
    cfg: TrainConfig, saved: dict, allowed: frozenset[str] = RESUME_OVERRIDES
) -> dict[str, list]:
    """The settings of `cfg` that differ from the `saved` config of the run it resumes: `{name: [old, new]}`.

    Fields in `RESUMABLE_CHANGES` are ignored; path fields are compared resolved; what an older run left to
    ADConfig counts as the value it used (`settings_used`).

    Raises:
        ValueError: a field outside `allowed` differs, naming each with both values and the remedies.
    """
    current, saved = settings_used(cfg.to_dict()), settings_used(saved)
    changes = {
        name: [saved.get(name), current.get(name)]
        for name in sorted(set(current) | set(saved))
        if name not in RESUMABLE_CHANGES and not _same_setting(name, saved.get(name), current.get(name))
    }
    refused = {name: values for name, values in changes.items() if name not in allowed}
    if refused:
        details = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in refused.items())
        raise ValueError(
            f"cannot resume {cfg.output_dir!r} with a different configuration ({details}); rerun with the "
            f"saved {constants.TRAIN_CONFIG}, start over with --overwrite, or use another --output-dir"
        )
    if changes.get("mixed_precision", [None, None])[1] == "fp16":
        raise ValueError(
            "cannot switch to --mixed-precision fp16 on --resume: the checkpoint holds no grad-scaler state"
        )
    return changes


# --- final model and its card -----------------------------------------------------------------------


def launch_program(num_processes: int, device: str, mixed_precision: str = "no") -> str:
    """The command before the flags that starts `num_processes` training processes on `device`.

    One process is `hf-ad train`; several are `accelerate launch ... -m hf_ad train` with every launcher
    value accelerate would otherwise fill in (and warn about) written out. Both run from an installed
    package: no checkout needed.
    """
    if num_processes == 1:
        return TRAIN_PROGRAM
    cpu = "ACCELERATE_USE_CPU=1 " if device == "cpu" else ""
    return (
        f"{cpu}accelerate launch --multi_gpu --num_processes {num_processes} --num_machines 1 "
        f"--mixed_precision {mixed_precision} --dynamo_backend no -m hf_ad train"
    )


def run_command(folder: str | Path) -> str:
    """The command line that trained a `final/` folder, rebuilt from its `train_config.json` and state."""
    folder = cards.check_final_folder(folder)
    train_config = TrainConfig(**json.loads((folder / constants.TRAIN_CONFIG).read_text()))
    state = json.loads((folder / constants.TRAINER_STATE).read_text())
    program = launch_program(
        state.get("num_processes", 1), state.get("device", "cpu"), train_config.mixed_precision
    )
    return train_config.command(program)


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
    final = Path(cfg.output_dir) / constants.FINAL_DIR
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = temporary_name(final)
        shutil.rmtree(tmp, ignore_errors=True)
        with quiet_progress_bars():  # no "Writing model shards" bar under the training bar
            accelerator.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
        atomic_write_json(tmp / constants.TRAIN_CONFIG, cfg.to_dict(), sort_keys=True)
        atomic_write_json(tmp / constants.TRAINER_STATE, state, sort_keys=True)
        write_model_card(tmp)
        replace_folder(tmp, final)  # there is no final/ yet: `train` refuses or returns before
    accelerator.wait_for_everyone()
    return final


# --- the run folder ---------------------------------------------------------------------------------


def check_output_dir(cfg: TrainConfig) -> None:
    """Refuse to start a run in a folder that holds one, unless `--overwrite` and it is a training run folder.

    Raises:
        ValueError: the folder holds a run's files, naming them and the flags that continue or replace it.
    """
    output_dir = Path(cfg.output_dir)
    found = [name for name in RUN_ENTRIES if (output_dir / name).exists()]
    if not found:
        return
    if not cfg.overwrite:
        raise ValueError(
            f"{str(output_dir)!r} already holds a training run ({', '.join(found)}); pass --resume to "
            "continue it, --overwrite to start it over, or choose another --output-dir"
        )
    if not (output_dir / constants.TRAIN_CONFIG).is_file():
        raise ValueError(
            f"--overwrite: {str(output_dir)!r} holds {', '.join(found)} but no {constants.TRAIN_CONFIG}, so "
            "it is not a training run folder; nothing was removed. Choose another --output-dir"
        )
    refuse_model_folder(output_dir, "--overwrite")


def refuse_model_folder(output_dir: Path, flag: str) -> None:
    """Refuse a model or checkpoint folder (a run's `final/` or `checkpoints/<step>/`) as a run folder."""
    model_files = [name for name in MODEL_FOLDER_FILES if (output_dir / name).exists()]
    if model_files:
        raise ValueError(
            f"{flag}: {str(output_dir)!r} holds {', '.join(model_files)}: it is a model or checkpoint folder "
            "(a run's final/ or checkpoints/<step>/), not a run folder; nothing was changed. Point "
            "--output-dir at the run folder above it, or choose another"
        )


def check_resumable_folder(cfg: TrainConfig) -> None:
    """With `--resume`, refuse a folder whose run cannot be continued by `cfg`, before any work.

    Raises:
        ValueError: the folder is a model or checkpoint folder, its saved `train_config.json` differs beyond
            `RESUME_OVERRIDES`, or it holds a `final/` that is not a finished run (it would be overwritten).
    """
    output_dir = Path(cfg.output_dir)
    refuse_model_folder(output_dir, "--resume")
    if (output_dir / constants.TRAIN_CONFIG).is_file():
        resume_changes(cfg, _read_json(output_dir / constants.TRAIN_CONFIG))
    if (output_dir / constants.FINAL_DIR).exists():
        raise ValueError(
            f"--resume: {str(output_dir / constants.FINAL_DIR)!r} exists but holds no finished run (no "
            f"{constants.TRAINER_STATE}); move it away, or start over with --overwrite"
        )


def remove_run(output_dir: Path) -> None:
    """Remove what a run wrote in `output_dir` (`RUN_ENTRIES`), nothing else."""
    for name in RUN_ENTRIES:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def finished_run(cfg: TrainConfig) -> Path | None:
    """With `--resume`: the `final/` folder of the run when it has finished, else `None`.

    Raises:
        ValueError: the finished run had other settings (optimisation overrides included: it is over).
    """
    final = Path(cfg.output_dir) / constants.FINAL_DIR
    if not (final / constants.TRAINER_STATE).is_file():
        return None
    resume_changes(cfg, _read_json(final / constants.TRAIN_CONFIG), allowed=frozenset())
    logger.info("--resume: %s already holds the finished run", final)
    return final


def learning_rate_schedule(optimizer, cfg: TrainConfig, step: int):
    """The warm-up + cosine schedule of `cfg`, positioned after `step` optimizer steps.

    A pure function of the step, so a resumed run computes the uninterrupted run's learning rates, or
    the new ones from its checkpoint on when `--learning-rate` or `--warmup-ratio` changed.
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = cfg.learning_rate
    return get_cosine_schedule_with_warmup(
        optimizer,
        num_warmup_steps=round(cfg.warmup_ratio * cfg.max_steps),
        num_training_steps=cfg.max_steps,
        last_epoch=step - 1,
    )


def _non_finite_message(cfg: TrainConfig, step: int, values: str, program: str) -> str:
    """What happened and the command that continues from the last good checkpoint with safer settings."""
    kept = checkpoint_steps(cfg.output_dir)
    if kept:
        last_good = (
            f"the last good checkpoint is {Path(cfg.output_dir) / constants.CHECKPOINTS_DIR / str(kept[-1])}"
        )
    else:
        last_good = "no checkpoint was saved yet"
    retry = dataclasses.replace(
        cfg,
        resume=True,
        overwrite=False,
        learning_rate=float(f"{cfg.learning_rate / 10:.3g}"),
        mixed_precision="no",
    )
    return (
        f"non-finite training loss at step {step} ({values}); training stopped and {last_good}. If the "
        "dataset holds NaN or infinite rewards or observations, fix it first. Otherwise continue with a 10x "
        f"lower learning rate in full precision ({_flags(RESUME_OVERRIDES)} may change on --resume):\n"
        f"    {command_line(retry, program)}"
    )


def _tracker_config(cfg: TrainConfig, config: ADConfig, context: int) -> dict[str, Any]:
    """Flat scalar hyper-parameters for the trackers (TensorBoard hparams take no None or lists)."""
    values = {
        **cfg.to_dict(),
        **{f"model/{k}": getattr(config, k) for k in model_field_names()},
        "context": context,
    }
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in values.items()}


def _resume(accelerator, cfg: TrainConfig, checkpoint: Path | None, changes: dict) -> dict[str, Any]:
    """Load `checkpoint` (none: a fresh start) and return the trainer state the run continues from.

    Args:
        changes: the settings changed since the checkpoint (`resume_changes`), recorded in the state.
    """
    if checkpoint is None:
        if cfg.resume:
            logger.info("--resume: no checkpoint in %s, starting afresh", cfg.output_dir)
        return {"step": 0, "wall_time_s": 0.0, "loss": math.nan, "eval": None, "resumed_with_changes": []}
    load_checkpoint(accelerator, checkpoint)
    state = _read_json(checkpoint / constants.TRAINER_STATE)
    state["resumed_with_changes"] = state.get("resumed_with_changes", [])
    if changes:
        state["resumed_with_changes"].append({"step": state["step"], **changes})
        logger.warning("resuming %s at step %d with changed settings %s", checkpoint, state["step"], changes)
    logger.info("resuming from %s at step %d", checkpoint, state["step"])
    return state


def train(cfg: TrainConfig) -> Path:
    """Train an AD model as `cfg` says; returns the `final/` folder.

    Raises:
        ValueError: bad configuration, a dataset that does not match the model config, an output folder
            that already holds a run without `resume` or `overwrite`, a resumed run whose config differs
            (beyond `RESUME_OVERRIDES`), or checkpoints none of which can be resumed exactly.
        NonFiniteLossError: a NaN or infinite loss; the checkpoints on disk are untouched, and the message
            gives the command that continues from the last good one.
    """
    cfg = cfg.with_dataset_id().with_recipe(dataset_metadata(cfg.dataset)["env_id"])
    output_dir = Path(cfg.output_dir)
    if cfg.resume:
        if (final := finished_run(cfg)) is not None:
            return final
        check_resumable_folder(cfg)
    else:
        check_output_dir(cfg)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=cfg.trackers() or None,
        project_config=ProjectConfiguration(logging_dir=str(output_dir / constants.LOGS_DIR)),
    )
    checkpoint = newest_usable_checkpoint(output_dir, accelerator.num_processes) if cfg.resume else None
    # Refused before the heavy work: settings that differ from the checkpoint's beyond RESUME_OVERRIDES.
    changes = resume_changes(cfg, _read_json(checkpoint / constants.TRAIN_CONFIG)) if checkpoint else {}
    set_seed(cfg.seed)  # same model init on every process

    model, windows = build_model_and_windows(cfg)
    model_config, context = model.config, windows.context
    if cfg.overwrite and accelerator.is_main_process:
        remove_run(output_dir)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        weight_decay=cfg.weight_decay,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    set_seed(cfg.seed, device_specific=True)  # each process its own dropout and token masks

    resumed = _resume(accelerator, cfg, checkpoint, changes)
    start_step = resumed["step"]
    scheduler = learning_rate_schedule(optimizer, cfg, start_step)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(output_dir / constants.TRAIN_CONFIG, cfg.to_dict(), sort_keys=True)
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
    step, last_loss, last_eval = start_step, resumed["loss"], resumed["eval"]
    started = time.perf_counter()

    def trainer_state() -> dict[str, Any]:
        return {
            "step": step,
            "max_steps": cfg.max_steps,
            "wall_time_s": round(resumed["wall_time_s"] + time.perf_counter() - started, 3),
            "loss": last_loss,
            "num_processes": accelerator.num_processes,
            "device": accelerator.device.type,
            "transitions_seen": step * transitions_per_step,
            "context": context,
            "eval": last_eval,
            "resumed_with_changes": resumed["resumed_with_changes"],
        }

    try:
        while step < cfg.max_steps:
            for _ in range(cfg.gradient_accumulation_steps):
                batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in next(batches).items()}
                try:
                    metrics = train_step(model, batch, optimizer, scheduler, accelerator, cfg.max_grad_norm)
                except NonFiniteLossError as err:
                    # The advised command continues in full precision.
                    program = launch_program(accelerator.num_processes, accelerator.device.type, "no")
                    raise NonFiniteLossError(_non_finite_message(cfg, step + 1, str(err), program)) from err
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
                save_checkpoint(
                    accelerator, output_dir, step, trainer_state(), cfg.to_dict(), keep=cfg.save_total_limit
                )
        final = save_final(accelerator, model, cfg, trainer_state())
    finally:
        progress.close()
        accelerator.end_training()
    return final


__all__ = [
    "NonFiniteLossError",
    "RESUME_OVERRIDES",
    "TrainConfig",
    "build_model_and_windows",
    "build_model_config",
    "checkpoint_problem",
    "checkpoint_steps",
    "load_checkpoint",
    "newest_usable_checkpoint",
    "resume_changes",
    "save_checkpoint",
    "train",
    "train_step",
    "run_command",
    "write_model_card",
]
