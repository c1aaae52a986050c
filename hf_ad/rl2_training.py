"""Training the RL² baseline (`hf-ad train-rl2`): recurrent PPO across trials of many episodes on one task.

RL² (Duan et al. 2016) meta-learns an RL algorithm into a recurrent policy's state: each *trial* is one task
(a Dark Room goal) played for `episodes_per_trial` episodes, the GRU state kept across the episode resets and
zeroed only at the trial's start, and the objective is the return of the whole trial, so exploring in early
episodes pays off in later ones. Every update plays `rollout_steps` steps of `num_envs` trials at once in one
batched env (`hf_ad.envs.make_vector_env`), each trial on a training goal drawn at random.

Optimiser: PPO (clipped surrogate, GAE), the recurrent variant of cleanrl's `ppo_atari_lstm`: each update's
segment is replayed `update_epochs` times from the GRU state it started with, minibatches being whole trials
(sequences), backpropagated through the `rollout_steps` steps of the segment. PPO rather than A2C because
one segment costs as much to play (a GRU step per env step) as to learn from, and PPO's clipped ratio lets
each segment be reused for several gradient steps safely, where A2C uses it once. The discount runs across
episode ends (they are inputs, not terminations); only the trial's end stops it.

Determinism and resuming: trial k's goals, the action sampling and the minibatch order come from generators
seeded with `(seed, k)`, and the env is reset with seed `(seed, k)` at each trial's start, so a checkpoint
(saved at trial ends: weights and Adam state as safetensors, the counters as JSON) resumes to exactly the
weights of an uninterrupted run. A NaN/inf loss or gradient stops the run before the optimizer step, with the
last checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import ModelCardData
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from hf_ad import constants
from hf_ad.cards import carry_evaluation, check_final_folder, render_card
from hf_ad.command_line import command_line
from hf_ad.configuration_rl2 import RL2Config
from hf_ad.envs import all_tasks, make_vector_env, task_split
from hf_ad.files import atomic_write_json, atomic_write_text, replace_folder, temporary_name
from hf_ad.modeling_rl2 import RL2Model, RL2State
from hf_ad.spaces import config_kwargs_from_spaces
from hf_ad.training import NonFiniteLossError, check_output_dir, remove_run

logger = logging.getLogger(__name__)

PROGRAM = "hf-ad train-rl2"
OPTIMIZER_WEIGHTS = "optimizer.safetensors"
CARD_TEMPLATE = "model_cards/rl2.md"
KEEP_CHECKPOINTS = 2
CARD_TAGS = ("reinforcement-learning", "meta-rl", "rl2", "in-context-rl")


@dataclass
class RL2TrainConfig:
    """`hf-ad train-rl2`: the RL² baseline on an env's training tasks (recurrent PPO across trials)."""

    output_dir: str = field(metadata={"help": "Run folder: train_config.json, checkpoints/<trial>/, final/."})
    env: str = field(default=constants.DARK_ROOM, metadata={"help": "Gymnasium id of an hf_ad env."})
    env_kwargs: str = field(
        default="{}",
        metadata={
            "help": "JSON keyword arguments of the env, e.g. '{\"size\": 3}'; the tasks are the env's "
            "train/test split (hf_ad.envs.task_split) restricted to the tasks these allow."
        },
    )
    total_trials: int = field(
        default=240,
        metadata={
            "help": "Rounds of --num-envs trials played at once: the budget (240 rounds of 256 trials of "
            "1000 steps = 61M steps, planned for 90 minutes on 2 CPU cores: docs/RL2.md)."
        },
    )
    num_envs: int = field(default=256, metadata={"help": "Trials played at once (one batched env)."})
    episodes_per_trial: int = field(
        default=50, metadata={"help": "Episodes of one task per trial; the GRU state runs across them."}
    )
    rollout_steps: int = field(
        default=100,
        metadata={"help": "Steps per update (a segment of each trial); must divide the trial's steps."},
    )
    update_epochs: int = field(default=2, metadata={"help": "PPO passes over each segment."})
    num_minibatches: int = field(default=2, metadata={"help": "Minibatches (of whole trials) per pass."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate (constant)."})
    gamma: float = field(default=0.99, metadata={"help": "Discount, across episode ends within a trial."})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda."})
    clip_coef: float = field(default=0.2, metadata={"help": "PPO ratio clip."})
    entropy_coef: float = field(default=0.01, metadata={"help": "Entropy bonus."})
    value_coef: float = field(default=0.5, metadata={"help": "Weight of the value loss."})
    max_grad_norm: float = field(default=0.5, metadata={"help": "Gradient clipping norm."})
    hidden_size: int = field(default=128, metadata={"help": "GRU state width."})
    embedding_size: int = field(default=64, metadata={"help": "Transition embedding width."})
    seed: int = field(
        default=0, metadata={"help": "Seeds the weights, the tasks, the envs and the sampling."}
    )
    save_every: int = field(default=10, metadata={"help": "Checkpoint every N trials (and at the end)."})
    resume: bool = field(default=False, metadata={"help": "Continue the run in --output-dir."})
    overwrite: bool = field(
        default=False, metadata={"help": "Remove the run in --output-dir and start over."}
    )
    progress: bool = field(default=True, metadata={"help": "Show a progress bar over the env steps."})

    def __post_init__(self):
        for name in (
            "total_trials",
            "num_envs",
            "episodes_per_trial",
            "rollout_steps",
            "update_epochs",
            "num_minibatches",
            "hidden_size",
            "embedding_size",
            "save_every",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.num_envs % self.num_minibatches:
            raise ValueError(
                f"--num-minibatches {self.num_minibatches} must divide --num-envs {self.num_envs} "
                "(a minibatch is a set of whole trials)"
            )
        if self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run and --overwrite removes it: pass one of them")
        self.env_kwargs_dict()  # a bad JSON fails here, before anything runs

    def env_kwargs_dict(self) -> dict[str, Any]:
        try:
            kwargs = json.loads(self.env_kwargs)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"--env-kwargs must be a JSON object, got {self.env_kwargs!r}: {error}"
            ) from error
        if not isinstance(kwargs, dict):
            raise ValueError(f"--env-kwargs must be a JSON object, got {self.env_kwargs!r}")
        return kwargs

    def command(self) -> str:
        return command_line(self, PROGRAM)


@dataclass
class Segment:
    """`rollout_steps` steps of `num_envs` trials, as the PPO update reads them (all `(N, T, ...)`)."""

    start_state: torch.Tensor | None  # (1, N, H) the GRU state the segment began with; None = zeros
    observations: torch.Tensor  # (N, T, *obs)
    prev_actions: torch.Tensor  # (N, T)
    prev_rewards: torch.Tensor  # (N, T)
    prev_dones: torch.Tensor  # (N, T)
    actions: torch.Tensor  # (N, T)
    log_probs: torch.Tensor  # (N, T)
    advantages: torch.Tensor  # (N, T)
    returns: torch.Tensor  # (N, T) value targets


class TrialRunner:
    """Plays trials in one batched env: the previous action, reward and done flag and the GRU state of every
    trial, carried from one segment to the next and zeroed at each trial's start."""

    def __init__(self, model: RL2Model, cfg: RL2TrainConfig, env_kwargs: dict, train_tasks: list[tuple]):
        self.model, self.cfg, self.train_tasks = model, cfg, train_tasks
        self.env = make_vector_env(cfg.env, [train_tasks[0]] * cfg.num_envs, **env_kwargs)
        episode_steps = env_kwargs.get("max_episode_steps") or self.env.spec.max_episode_steps
        self.steps_per_trial = cfg.episodes_per_trial * episode_steps
        if self.steps_per_trial % cfg.rollout_steps:
            raise ValueError(
                f"--rollout-steps {cfg.rollout_steps} must divide a trial's {self.steps_per_trial} steps "
                f"({cfg.episodes_per_trial} episodes of {episode_steps})"
            )

    def start_trial(self, trial: int) -> np.ndarray:
        """New goals, envs reset and zero states for trial `trial`; returns the first observations."""
        rng = np.random.default_rng([self.cfg.seed, trial])
        tasks = [self.train_tasks[i] for i in rng.integers(len(self.train_tasks), size=self.cfg.num_envs)]
        self.env.set_tasks(tasks)
        self.observations, _ = self.env.reset(seed=int(rng.integers(2**31)))
        n = self.cfg.num_envs
        self.state = RL2State()
        self.prev_action = torch.full((n, 1), self.model.config.num_actions, dtype=torch.long)
        self.prev_reward = torch.zeros(n, 1)
        self.prev_done = torch.zeros(n, 1)
        self.episode_returns = np.zeros(n)
        self.finished_returns: list[np.ndarray] = []  # (n,) per finished episode, in order
        return self.observations

    @torch.no_grad()
    def play(self, steps: int, generator: torch.Generator, last_segment: bool) -> Segment:
        """Play `steps` steps of every trial and return them with GAE advantages (no bootstrap after the
        trial's last segment)."""
        cfg, model = self.cfg, self.model
        start_state = None if self.state.hidden is None else self.state.hidden.clone()
        columns: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "pa", "pr", "pd", "a", "lp", "v", "r")
        }
        for _ in range(steps):
            observation = torch.as_tensor(self.observations).unsqueeze(1)  # (N, 1, *obs)
            out = model(
                observation, self.prev_action, self.prev_reward, self.prev_done, past_key_values=self.state
            )
            log_probs = torch.log_softmax(out.logits[:, 0].float(), dim=-1)  # (N, A)
            action = torch.multinomial(log_probs.exp(), 1, generator=generator)  # (N, 1)
            self.observations, reward, terminated, truncated, _ = self.env.step(action.view(-1).numpy())
            done = np.logical_or(terminated, truncated)
            for key, value in (
                ("obs", observation),
                ("pa", self.prev_action),
                ("pr", self.prev_reward),
                ("pd", self.prev_done),
                ("a", action),
                ("lp", log_probs.gather(1, action)),
                ("v", out.values),
            ):
                columns[key].append(value)
            self.prev_action = action
            self.prev_reward = torch.as_tensor(reward, dtype=torch.float32).view(-1, 1)  # (N, 1)
            self.prev_done = torch.as_tensor(done, dtype=torch.float32).view(-1, 1)  # (N, 1)
            columns["r"].append(self.prev_reward)
            self.episode_returns += reward
            if done.any():
                self.finished_returns.append(self.episode_returns.copy())
                self.episode_returns[done] = 0.0
        stacked = {key: torch.cat(values, dim=1) for key, values in columns.items()}  # each (N, T, ...)
        if last_segment:
            next_value = torch.zeros(cfg.num_envs)  # the trial ends: nothing follows
        else:
            observation = torch.as_tensor(self.observations).unsqueeze(1)
            probe = RL2State(self.state.hidden.clone())
            next_value = model(
                observation, self.prev_action, self.prev_reward, self.prev_done, past_key_values=probe
            )
            next_value = next_value.values[:, 0]  # (N,)
        advantages = generalised_advantages(stacked["r"], stacked["v"], next_value, cfg.gamma, cfg.gae_lambda)
        return Segment(
            start_state=start_state,
            observations=stacked["obs"],
            prev_actions=stacked["pa"],
            prev_rewards=stacked["pr"],
            prev_dones=stacked["pd"],
            actions=stacked["a"],
            log_probs=stacked["lp"],
            advantages=advantages,
            returns=advantages + stacked["v"],
        )


def generalised_advantages(
    rewards: torch.Tensor, values: torch.Tensor, next_value: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """GAE (Schulman et al. 2016) of `rewards`, `values` `(N, T)` given the value after the last step `(N,)`;
    episode ends inside a trial do not cut it (RL² maximises the return of the whole trial)."""
    advantages = torch.zeros_like(rewards)  # (N, T)
    running = torch.zeros_like(next_value)  # (N,)
    for t in reversed(range(rewards.shape[1])):
        following = next_value if t == rewards.shape[1] - 1 else values[:, t + 1]
        delta = rewards[:, t] + gamma * following - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages


def ppo_update(
    model: RL2Model, optimizer: torch.optim.Optimizer, segment: Segment, cfg: RL2TrainConfig, generator
) -> dict[str, float]:
    """`update_epochs` passes of clipped PPO over `segment`, in minibatches of whole trials replayed from the
    segment's start state. A NaN/inf loss or gradient norm raises `NonFiniteLossError` before its step."""
    metrics: dict[str, list[float]] = {"loss": [], "policy_loss": [], "value_loss": [], "entropy": []}
    size = cfg.num_envs // cfg.num_minibatches
    for _ in range(cfg.update_epochs):
        order = torch.randperm(cfg.num_envs, generator=generator)
        for start in range(0, cfg.num_envs, size):
            rows = order[start : start + size]
            hidden = None if segment.start_state is None else segment.start_state[:, rows]  # (1, n, H)
            out = model(
                segment.observations[rows],
                segment.prev_actions[rows],
                segment.prev_rewards[rows],
                segment.prev_dones[rows],
                past_key_values=RL2State(hidden),
            )
            log_probs = torch.log_softmax(out.logits.float(), dim=-1)  # (n, T, A)
            new_log_prob = log_probs.gather(-1, segment.actions[rows].unsqueeze(-1)).squeeze(-1)  # (n, T)
            ratio = (new_log_prob - segment.log_probs[rows]).exp()  # (n, T)
            advantages = segment.advantages[rows]
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            clipped = ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
            policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()
            value_loss = 0.5 * (out.values - segment.returns[rows]).pow(2).mean()
            entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
            loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                optimizer.zero_grad(set_to_none=True)
                raise NonFiniteLossError(f"loss {loss.item()}, gradient norm {grad_norm.item()}")
            optimizer.step()
            for key, value in (
                ("loss", loss),
                ("policy_loss", policy_loss),
                ("value_loss", value_loss),
                ("entropy", entropy),
            ):
                metrics[key].append(value.item())
    return {key: float(np.mean(values)) for key, values in metrics.items()}


# --- tasks, model, checkpoints -------------------------------------------------------------------------


def split_for(env_id: str, env_kwargs: dict) -> tuple[list[tuple], list[tuple]]:
    """The env's train/test split (`task_split`), restricted to the tasks `env_kwargs` allow (e.g. the goals
    of a smaller room). Raises `ValueError` when either side is then empty."""
    train, test = task_split(env_id)
    if env_kwargs:
        allowed = set(all_tasks(env_id, **env_kwargs))
        train, test = [t for t in train if t in allowed], [t for t in test if t in allowed]
    if not train or not test:
        raise ValueError(
            f"{env_id} with {env_kwargs} leaves {len(train)} training and {len(test)} held-out tasks of its "
            "split; both must be non-empty: choose other --env-kwargs"
        )
    return train, test


def build_model(cfg: RL2TrainConfig, env_kwargs: dict, split: tuple[list, list]) -> RL2Model:
    """A new RL2Model for `cfg.env` (its spaces, env metadata and split), weights seeded with `cfg.seed`."""
    env = make_vector_env(cfg.env, [split[0][0]], **env_kwargs)
    spec = config_kwargs_from_spaces(env.single_observation_space, env.single_action_space)
    env.close()
    config = RL2Config(
        hidden_size=cfg.hidden_size,
        embedding_size=cfg.embedding_size,
        env_id=cfg.env,
        env_kwargs=env_kwargs,
        train_tasks=[list(t) for t in split[0]],
        test_tasks=[list(t) for t in split[1]],
        **spec,
    )
    torch.manual_seed(cfg.seed)
    return RL2Model(config)


def checkpoint_trials(output_dir: Path) -> list[int]:
    """Trials of the complete checkpoints (`checkpoints/<trial>/` with its trainer state), oldest first."""
    folder = output_dir / constants.CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    return sorted(
        int(path.name)
        for path in folder.iterdir()
        if path.name.isdigit() and (path / constants.TRAINER_STATE).is_file()
    )


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam's per-parameter state as flat named tensors (`state.<index>.<name>`), for safetensors."""
    return {
        f"state.{index}.{name}": value.detach().clone().contiguous()
        for index, state in optimizer.state_dict()["state"].items()
        for name, value in state.items()
    }


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Restore `optimizer_tensors`' output into `optimizer` (same parameters and hyperparameters)."""
    state_dict = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)


def save_checkpoint(output_dir: Path, model, optimizer, trainer_state: dict) -> Path:
    """Write `checkpoints/<trial>/` (weights, Adam state, trainer state) under a temporary name and move it
    into place; keep the newest `KEEP_CHECKPOINTS`."""
    folder = output_dir / constants.CHECKPOINTS_DIR / str(trainer_state["trial"])
    tmp = temporary_name(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / constants.MODEL_WEIGHTS)
    save_file(optimizer_tensors(optimizer), tmp / OPTIMIZER_WEIGHTS)
    atomic_write_json(tmp / constants.TRAINER_STATE, trainer_state)
    if folder.exists():
        shutil.rmtree(folder)
    replace_folder(tmp, folder)
    for old in checkpoint_trials(output_dir)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(output_dir / constants.CHECKPOINTS_DIR / str(old))
    return folder


def load_checkpoint(folder: Path, model, optimizer) -> dict:
    """Load a checkpoint's weights and Adam state (safetensors only); return its trainer state."""
    try:
        model.load_state_dict(load_file(folder / constants.MODEL_WEIGHTS))
        load_optimizer_tensors(optimizer, load_file(folder / OPTIMIZER_WEIGHTS))
        return json.loads((folder / constants.TRAINER_STATE).read_text())
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        raise ValueError(
            f"checkpoint {str(folder)!r} cannot be loaded ({error}); remove it to resume from an older one, "
            "or start over with --overwrite"
        ) from error


def check_resume(cfg: RL2TrainConfig, output_dir: Path) -> None:
    """A resumed run must have been started with the same settings, but for the budget (`total_trials`),
    `save_every`, `progress` and where the run folder lives."""
    path = output_dir / constants.TRAIN_CONFIG
    if not path.is_file():
        raise ValueError(f"--resume: {str(output_dir)!r} holds no {constants.TRAIN_CONFIG}; drop --resume")
    recorded = json.loads(path.read_text())
    ignored = {"resume", "overwrite", "progress", "output_dir", "total_trials", "save_every"}
    changed = {
        k: (recorded.get(k), v)
        for k, v in dataclasses.asdict(cfg).items()
        if k not in ignored and recorded.get(k) != v
    }
    if changed:
        raise ValueError(
            f"--resume with other settings than the run's ({changed}: recorded, given); resume with the "
            "recorded flags or start over with --overwrite"
        )


def render_model_card(final: str | Path, repo_id: str | None = None) -> str:
    """The RL² card of a `final/` folder, from its config, `train_config.json` and `trainer_state.json`.

    Args:
        final: the `final/` folder written by `hf-ad train-rl2`.
        repo_id: the hub repo id (or relative folder) the card names; default: the run folder's name.

    The evaluation section and results of the folder's card, if any (`hf-ad evaluate --update-card`), are
    carried over, so a card can be re-rendered for a repo id without losing what was measured.
    """
    final = check_final_folder(final)
    cfg = RL2TrainConfig(**json.loads((final / constants.TRAIN_CONFIG).read_text()))
    config = RL2Config.from_pretrained(final)
    model_name = repo_id or Path(cfg.output_dir).name
    card_data = ModelCardData(
        library_name="transformers", tags=[*CARD_TAGS, config.env_id], model_name=model_name
    )
    text = render_card(
        CARD_TEMPLATE,
        card_data=card_data.to_yaml(),
        model_name=model_name,
        config=config,
        cfg=cfg,
        state=json.loads((final / constants.TRAINER_STATE).read_text()),
        command=cfg.command(),
        num_parameters=sum(p.numel() for p in RL2Model(config).parameters()),
        hf_ad_version=constants.VERSION,
    )
    previous = final / constants.MODEL_CARD
    return carry_evaluation(previous.read_text(), text) if previous.is_file() else text


def save_final(output_dir: Path, model: RL2Model, cfg: RL2TrainConfig, trainer_state: dict) -> Path:
    """`final/`: the model (`save_pretrained`: safetensors, config, remote code), the run config, the
    trainer state and the card, written under a temporary name and moved into place."""
    final = output_dir / constants.FINAL_DIR
    tmp = temporary_name(final)
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    atomic_write_json(tmp / constants.TRAIN_CONFIG, dataclasses.asdict(cfg))
    atomic_write_json(tmp / constants.TRAINER_STATE, trainer_state)
    atomic_write_text(tmp / constants.MODEL_CARD, render_model_card(tmp))
    if final.exists():
        shutil.rmtree(final)
    replace_folder(tmp, final)
    return final


# --- the run ---------------------------------------------------------------------------------------


def train_rl2(cfg: RL2TrainConfig) -> Path:
    """Train RL² as `cfg` says (resuming with `cfg.resume`); return the `final/` folder.

    Raises:
        ValueError: bad settings, a folder that holds another run, or an unreadable checkpoint.
        NonFiniteLossError: a NaN/inf loss or gradient (the last checkpoint is left as it was).
    """
    output_dir = Path(cfg.output_dir)
    final = output_dir / constants.FINAL_DIR
    if cfg.resume:
        check_resume(cfg, output_dir)
        finished = final / constants.TRAINER_STATE
        if finished.is_file() and json.loads(finished.read_text())["trial"] >= cfg.total_trials:
            return final  # done; a larger --total-trials continues from the newest checkpoint
    else:
        check_output_dir(cfg)
        remove_run(output_dir)
    env_kwargs = cfg.env_kwargs_dict()
    split = split_for(cfg.env, env_kwargs)
    model = build_model(cfg, env_kwargs, split).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=1e-5)
    runner = TrialRunner(model, cfg, env_kwargs, split[0])
    state = {"trial": 0, "env_steps": 0, "wall_time_s": 0.0, "curve": []}
    trials = checkpoint_trials(output_dir) if cfg.resume else []
    if trials:
        state = load_checkpoint(output_dir / constants.CHECKPOINTS_DIR / str(trials[-1]), model, optimizer)
        logger.info("resuming from trial %d", state["trial"])
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_dir / constants.TRAIN_CONFIG, dataclasses.asdict(cfg))

    segments = runner.steps_per_trial // cfg.rollout_steps
    total_steps = cfg.total_trials * runner.steps_per_trial * cfg.num_envs
    started = time.monotonic() - state["wall_time_s"]
    with tqdm(
        total=total_steps, initial=state["env_steps"], unit="step", desc="RL²", disable=not cfg.progress
    ) as bar:
        while state["trial"] < cfg.total_trials:
            trial = state["trial"]
            generator = torch.Generator().manual_seed(
                int(np.random.SeedSequence([cfg.seed, trial]).generate_state(1)[0])
            )
            runner.start_trial(trial)
            for index in range(segments):
                segment = runner.play(cfg.rollout_steps, generator, last_segment=index == segments - 1)
                try:
                    metrics = ppo_update(model, optimizer, segment, cfg, generator)
                except NonFiniteLossError as error:
                    raise NonFiniteLossError(
                        f"{error} in trial {trial}; the last checkpoint is intact: resume with "
                        f"`{cfg.command()} --resume` and a lower --learning-rate (after --overwrite)"
                    ) from error
                bar.update(cfg.rollout_steps * cfg.num_envs)
            returns = np.stack(runner.finished_returns).mean(axis=1)  # (episodes,) mean over trials
            state = {
                "trial": trial + 1,
                "env_steps": state["env_steps"] + runner.steps_per_trial * cfg.num_envs,
                "wall_time_s": time.monotonic() - started,
                "metrics": metrics,
                "curve": [
                    *state["curve"],
                    {
                        "trial": trial + 1,
                        "first_episode": float(returns[0]),
                        "last_episodes": float(returns[-5:].mean()),
                    },
                ],
            }
            bar.set_postfix(first=f"{returns[0]:.1f}", last=f"{returns[-5:].mean():.1f}")
            if state["trial"] % cfg.save_every == 0 or state["trial"] == cfg.total_trials:
                save_checkpoint(output_dir, model, optimizer, state)
    runner.env.close()
    return save_final(output_dir, model.eval(), cfg, state)


__all__ = ["RL2TrainConfig", "generalised_advantages", "ppo_update", "train_rl2"]
