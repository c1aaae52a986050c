"""In-context RL with a frozen Algorithm Distillation model: batched, KV-cached streaming rollouts.

`InContextRLPipeline` loads a checkpoint, rebuilds its environment from the config alone (env id,
env kwargs, held-out tasks) and lets the frozen model improve its policy *in context*, episode after
episode, on many tasks at once:

```python
import hf_ad

pipe = hf_ad.InContextRLPipeline.from_pretrained("runs/ad-darkroom/final")
result = pipe(num_episodes=100, seed=0)  # the checkpoint's held-out tasks
result.returns  # np.ndarray [num_tasks, num_episodes]
```

It is also the `"in-context-rl"` task of `transformers.pipeline` (registered on `import hf_ad`).

How a rollout runs (the paper's evaluation, section 4): one stream of transitions per task, one token
per transition (observation, previous action, previous reward). The stream runs on across episode
resets, so the first step of episode k carries the last action and reward of episode k-1, and the
model sees its own earlier episodes. Every env step is ONE model step on a `(B, 1)` batch of new
tokens; the sliding-window KV cache keeps at most `sliding_window` transitions per layer, so memory
stays constant however many episodes are played. Actions are sampled from the softmax by default:
greedy decoding in a deterministic env replays one episode forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from transformers import Pipeline

from hf_ad import constants

PROMPT_KEYS = ("observations", "actions", "rewards")


@dataclass
class Trajectories:
    """Every transition of a rollout, step-major (or a prompt, in the same layout).

    Args:
        observations: `(B, S, *obs_shape)` the observation each action was taken in.
        actions: `(B, S)` int64 actions.
        rewards: `(B, S)` float32 rewards.
        episodes: `(B, S)` int64 episode index of each step (0-based); -1 for steps an env played
            after its last requested episode (only when episodes have different lengths).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episodes: np.ndarray


@dataclass
class RolloutResult:
    """What `InContextRLPipeline.__call__` returns.

    Args:
        returns: `(num_tasks, num_episodes)` float64 return of every episode.
        optimal_returns: `(num_tasks,)` the oracle's return per task, when the env and tasks are known
            (rollouts on `tasks=`); `None` for user-provided envs.
        tasks: the tasks played (row order of `returns`), `None` for user-provided envs.
        seed: the seed the rollout ran with (drawn at random when none was given), so that any run can be
            repeated exactly.
        trajectories: every transition, when `return_trajectories=True`.
    """

    returns: np.ndarray
    optimal_returns: np.ndarray | None
    tasks: list[tuple] | None
    seed: int
    trajectories: Trajectories | None = None


# --- inputs -------------------------------------------------------------------------------------


def as_vector_env(envs: VectorEnv | Sequence[gym.Env]) -> VectorEnv:
    """Wrap a list of gymnasium envs as a same-step-autoreset vector env (a vector env passes through).

    Raises:
        ValueError: empty list, an entry that is not a `gymnasium.Env`, or a vector env whose autoreset
            mode is not `SAME_STEP` (the other modes drop or delay an action at every episode end).
    """
    if isinstance(envs, VectorEnv):
        mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"envs must reset in the same step an episode ends, got autoreset_mode={mode}; build the "
                "vector env with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP, or pass a list"
            )
        return envs
    envs = list(envs) if isinstance(envs, Sequence) else envs
    if not isinstance(envs, list) or not envs or not all(isinstance(env, gym.Env) for env in envs):
        raise ValueError(
            f"envs must be a gymnasium VectorEnv or a non-empty list of gymnasium.Env, got {envs!r}"
        )
    return SyncVectorEnv([lambda env=env: env for env in envs], autoreset_mode=AutoresetMode.SAME_STEP)


def _observation_dtype(config) -> torch.dtype | None:
    """int64 for (multi-)discrete observations; `None` means the model's float dtype."""
    return torch.long if config.observation_type in ("discrete", "multi_discrete") else None


def check_prompt(prompt: Mapping | Trajectories, config, num_tasks: int) -> dict[str, np.ndarray]:
    """Validate a prompt and return it per task: observations `(B, P, *obs)`, actions and rewards `(B, P)`.

    Args:
        prompt: a mapping (or an object such as `Trajectories`) with `observations`, `actions` and
            `rewards`, either shared by all tasks (`(P, *obs_shape)`, `(P,)`, `(P,)`) or one per task
            (`(num_tasks, P, *obs_shape)`, `(num_tasks, P)`, `(num_tasks, P)`).
        config: the model's `ADConfig`.
        num_tasks: how many tasks the rollout plays.

    Raises:
        ValueError: a missing key, inconsistent shapes, an empty prompt or an action out of range.
    """
    get = prompt.get if isinstance(prompt, Mapping) else lambda key: getattr(prompt, key, None)
    arrays = {key: get(key) for key in PROMPT_KEYS}
    missing = [key for key, value in arrays.items() if value is None]
    if missing:
        raise ValueError(f"prompt must have {list(PROMPT_KEYS)}, missing {missing}")
    observations, actions, rewards = (np.asarray(arrays[key]) for key in PROMPT_KEYS)
    obs_shape = tuple(config.observation_shape)
    if actions.ndim == 1:  # shared by all tasks
        observations, actions, rewards = (
            np.broadcast_to(a, (num_tasks, *a.shape)) for a in (observations, actions, rewards)
        )
    expected = {
        "observations": (num_tasks, actions.shape[-1], *obs_shape),
        "actions": (num_tasks, actions.shape[-1]),
        "rewards": (num_tasks, actions.shape[-1]),
    }
    for key, array in zip(PROMPT_KEYS, (observations, actions, rewards), strict=True):
        if array.shape != expected[key]:
            raise ValueError(
                f"prompt {key} must have shape {expected[key][1:]} (shared) or {expected[key]} (per task), "
                f"got {array.shape}"
            )
    if actions.shape[1] == 0:
        raise ValueError("prompt must hold at least one transition, got 0")
    if (
        not np.issubdtype(actions.dtype, np.integer)
        or actions.min() < 0
        or actions.max() >= config.num_actions
    ):
        raise ValueError(
            f"prompt actions must be integers in 0..{config.num_actions - 1}, got {np.unique(actions)}"
        )
    return {"observations": observations, "actions": actions, "rewards": rewards}


def prompt_from_histories(histories, history_ids: int | Sequence[int], episodes: Sequence[int] | None = None):
    """Take a prompt from a learning-histories dataset (the paper's "partial demonstrations").

    Args:
        histories: a `datasets.Dataset` with the columns of `hf_ad.constants.HISTORY_COLUMNS`, rows of a
            history in time order (e.g. from `hf_ad.data.histories.load_histories`).
        history_ids: one history id (a prompt shared by all tasks) or one per task.
        episodes: the episodes of each history to keep, e.g. `range(90, 100)`; `None` keeps them all.

    Returns:
        A dict `observations`, `actions`, `rewards` for `InContextRLPipeline.__call__(prompt=...)`.

    Raises:
        ValueError: a history id that is not in the dataset, or per-task prompts of different lengths.
    """
    single = np.ndim(history_ids) == 0
    ids = [int(history_ids)] if single else [int(i) for i in history_ids]
    table = histories.with_format("numpy")
    column_ids = table[constants.HISTORY_ID][:]  # (rows,) numpy
    column_episodes = table[constants.EPISODE][:]
    keep_episode = (
        np.ones(len(column_ids), bool) if episodes is None else np.isin(column_episodes, list(episodes))
    )
    parts = []
    for history_id in ids:
        rows = np.flatnonzero((column_ids == history_id) & keep_episode)
        if rows.size == 0:
            raise ValueError(
                f"history {history_id} (episodes {episodes}) has no rows; ids range over "
                f"{int(column_ids.min())}..{int(column_ids.max())}"
            )
        selected = table.select(rows)
        parts.append(
            {
                "observations": np.asarray(selected[constants.OBSERVATION][:]),
                "actions": np.asarray(selected[constants.ACTION][:], dtype=np.int64),
                "rewards": np.asarray(selected[constants.REWARD][:], dtype=np.float32),
            }
        )
    lengths = {len(part["actions"]) for part in parts}
    if len(lengths) != 1:
        raise ValueError(f"per-task prompts must have the same length, got lengths {sorted(lengths)}")
    if single:
        return parts[0]
    return {key: np.stack([part[key] for part in parts]) for key in PROMPT_KEYS}


# --- the rollout loop ---------------------------------------------------------------------------


class _RecomputedContext:
    """The baseline without a KV cache: the last `length` tokens (or all), recomputed every step."""

    def __init__(self, length: int | None):
        self.length = length
        self.tokens: list[torch.Tensor] | None = None  # observations, prev_actions, prev_rewards: (B, T, ...)

    def append(self, *tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.tokens is None:
            self.tokens = [token.clone() for token in tokens]
        else:
            self.tokens = [torch.cat([old, new], dim=1) for old, new in zip(self.tokens, tokens, strict=True)]
        if self.length is not None:
            self.tokens = [token[:, -self.length :] for token in self.tokens]
        return tuple(self.tokens)


def _new_cache(model):
    """An empty sliding-window KV cache that never holds more than `config.sliding_window` transitions."""
    return model.new_cache()


def _forward_in_chunks(model, observations, prev_actions, prev_rewards, cache):
    """Feed a long stream (a prompt) through the cache in pieces of at most `config.max_context`."""
    for start in range(0, prev_actions.shape[1], model.config.max_context):
        piece = slice(start, start + model.config.max_context)
        output = model(
            observations[:, piece],
            prev_actions[:, piece],
            prev_rewards[:, piece],
            past_key_values=cache,
            use_cache=True,
        )
        cache = output.past_key_values
    return cache


@torch.inference_mode()
def rollout(
    model,
    env: VectorEnv,
    num_episodes: int,
    seed: int,
    sample: bool = True,
    prompt: dict[str, np.ndarray] | None = None,
    use_cache: bool = True,
    context_length: int | None = None,
    return_trajectories: bool = False,
) -> tuple[np.ndarray, Trajectories | None]:
    """Play `num_episodes` episodes in every sub-env of `env`, the model acting in context.

    Args:
        model: a frozen `ADModel` (eval mode).
        env: a same-step-autoreset vector env whose spaces match the model's config.
        num_episodes: episodes per sub-env.
        seed: seeds the env reset and the action sampling.
        sample: sample actions from the softmax (`False`: greedy).
        prompt: per-task transitions (see `check_prompt`) fed in one cached forward before the first step.
        use_cache: `True`: one cached `(B, 1)` model step per env step. `False` (baseline): recompute the
            last `context_length` transitions (`None`: the whole stream) from scratch every step.
        context_length: only with `use_cache=False`.
        return_trajectories: also return every transition.

    Returns:
        `(returns, trajectories)`: `(B, num_episodes)` float64 returns and the trajectories or `None`.
    """
    config = model.config
    device, float_dtype = model.device, model.dtype
    num_envs = env.num_envs
    obs_dtype = _observation_dtype(config) or float_dtype
    generator = torch.Generator(device=device).manual_seed(seed)

    # Preallocated (B, 1) step inputs, updated in place: no per-step allocation but the model's own.
    observation = torch.zeros((num_envs, 1, *config.observation_shape), dtype=obs_dtype, device=device)
    prev_action = torch.full((num_envs, 1), config.num_actions, dtype=torch.long, device=device)
    prev_reward = torch.zeros((num_envs, 1), dtype=float_dtype, device=device)
    cache = _new_cache(model) if use_cache else None
    context = None if use_cache else _RecomputedContext(context_length)

    if prompt is not None:
        prompt_obs = torch.as_tensor(np.ascontiguousarray(prompt["observations"]), device=device).to(
            obs_dtype
        )
        prompt_actions = torch.as_tensor(np.ascontiguousarray(prompt["actions"]), device=device).long()
        prompt_rewards = torch.as_tensor(np.ascontiguousarray(prompt["rewards"]), device=device).to(
            float_dtype
        )
        prompt_prev_actions = torch.cat([prev_action, prompt_actions[:, :-1]], dim=1)  # (B, P)
        prompt_prev_rewards = torch.cat([prev_reward, prompt_rewards[:, :-1]], dim=1)  # (B, P)
        if use_cache:
            cache = _forward_in_chunks(model, prompt_obs, prompt_prev_actions, prompt_prev_rewards, cache)
        else:
            context.append(prompt_obs, prompt_prev_actions, prompt_prev_rewards)
        prev_action.copy_(prompt_actions[:, -1:])
        prev_reward.copy_(prompt_rewards[:, -1:])

    returns = np.zeros((num_envs, num_episodes))
    episode = np.zeros(num_envs, dtype=np.int64)
    running_return = np.zeros(num_envs)
    record: list[tuple[np.ndarray, ...]] = []

    obs, _ = env.reset(seed=seed)
    while episode.min() < num_episodes:
        observation.copy_(torch.from_numpy(np.asarray(obs)).reshape(observation.shape))
        if use_cache:
            output = model(observation, prev_action, prev_reward, past_key_values=cache, use_cache=True)
            cache = output.past_key_values
        else:
            output = model(*context.append(observation, prev_action, prev_reward), use_cache=False)
        logits = output.logits[:, -1]  # (B, A)
        if sample:
            action = torch.multinomial(
                torch.softmax(logits.float(), dim=-1), 1, generator=generator
            )  # (B, 1)
        else:
            action = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        action_np = action.view(-1).cpu().numpy()
        if return_trajectories:
            in_range = episode < num_episodes
            record.append((np.array(obs), action_np, np.where(in_range, episode, -1)))
        obs, reward, terminated, truncated, _ = env.step(action_np)
        reward = np.asarray(reward, dtype=np.float32)
        if return_trajectories:
            record[-1] += (reward,)
        running_return += reward
        done = np.flatnonzero(np.logical_or(terminated, truncated))
        if done.size:
            counted = done[episode[done] < num_episodes]
            returns[counted, episode[counted]] = running_return[counted]
            episode[done] += 1
            running_return[done] = 0.0
        prev_action.copy_(action)
        prev_reward.copy_(torch.from_numpy(reward).reshape(prev_reward.shape))

    trajectories = None
    if return_trajectories:
        observations, actions, episodes, rewards = (
            np.stack(column, axis=1) for column in zip(*record, strict=True)
        )
        trajectories = Trajectories(observations, actions.astype(np.int64), rewards, episodes)
    return returns, trajectories


# --- the pipeline -------------------------------------------------------------------------------


class InContextRLPipeline(Pipeline):
    """A frozen Algorithm Distillation model improving its policy in context, on many tasks at once.

    Build it from a checkpoint alone with `InContextRLPipeline.from_pretrained(path_or_repo_id)` or
    `transformers.pipeline("in-context-rl", model=path_or_repo_id)`, then call it:

    ```python
    result = pipe(tasks=None, envs=None, num_episodes=100, seed=0, sample=True, prompt=None)
    result.returns  # (num_tasks, num_episodes)
    ```

    Call arguments:
        tasks (`list[tuple]`, *optional*): tasks of the checkpoint's env (e.g. Dark Room goals), played
            in one native batched env. Defaults to the held-out tasks in the config.
        envs (*optional*): instead of `tasks`, a list of gymnasium envs or a gymnasium `VectorEnv`
            (same-step autoreset) whose observation and action spaces match the config.
        num_episodes (`int`, defaults to 10): episodes per task; memory does not grow with it.
        seed (`int`, *optional*): seeds the env resets and the action sampling; `None` draws one (kept in
            `result.seed`).
        sample (`bool`, defaults to `True`): sample actions from the softmax; `False` is greedy.
        prompt (*optional*): transitions that prefill the context (see `check_prompt`,
            `prompt_from_histories`), fed in one cached forward before the first step.
        return_trajectories (`bool`, defaults to `False`): also return every transition.
        use_cache (`bool`, defaults to `True`): `False` recomputes the context every step instead of
            streaming through the KV cache (a baseline for benchmarks and tests).
        context_length (`int`, *optional*): with `use_cache=False`, the transitions recomputed each step
            (`None`: the whole stream).

    Returns:
        `RolloutResult`.
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, model, **kwargs):
        super().__init__(model=model, **kwargs)
        self.model.eval()
        self.model.requires_grad_(False)

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | Path, device: int | str | torch.device | None = None, **kwargs
    ) -> InContextRLPipeline:
        """Load the model of a checkpoint (local folder or hub repo) and wrap it.

        Args:
            path_or_repo_id: what `AutoModel.from_pretrained` accepts.
            device: where the model runs (transformers' pipeline convention; default: the first GPU if
                any, else the CPU).
            **kwargs: passed to `AutoModel.from_pretrained` (`revision`, `dtype`, `token`, ...).
        """
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(path_or_repo_id), **kwargs)
        return cls(model=model, task=constants.PIPELINE_TASK, device=device)

    def __call__(self, tasks: Sequence | None = None, envs=None, **kwargs) -> RolloutResult:
        # One request, never a list: transformers' Pipeline treats a list input as a batch of requests.
        return super().__call__({"tasks": tasks, "envs": envs}, **kwargs)

    def _sanitize_parameters(
        self,
        num_episodes: int | None = None,
        seed: int | None = None,
        sample: bool | None = None,
        prompt: Any = None,
        return_trajectories: bool | None = None,
        use_cache: bool | None = None,
        context_length: int | None = None,
    ):
        preprocess, forward, postprocess = {}, {}, {}
        if prompt is not None:
            preprocess["prompt"] = prompt
        if seed is not None:
            preprocess["seed"] = seed
        for name, value in (
            ("num_episodes", num_episodes),
            ("sample", sample),
            ("return_trajectories", return_trajectories),
            ("use_cache", use_cache),
            ("context_length", context_length),
        ):
            if value is not None:
                forward[name] = value
        return preprocess, forward, postprocess

    def get_inference_context(self):
        return torch.inference_mode

    def preprocess(self, request: dict, prompt: Any = None, seed: int | None = None) -> dict:
        from hf_ad.envs import make_vector_env, optimal_return
        from hf_ad.spaces import check_spaces

        config = self.model.config
        tasks, envs = request["tasks"], request["envs"]
        if tasks is not None and envs is not None:
            raise ValueError("pass either tasks or envs, not both")
        optimal_returns = None
        if envs is None:
            if config.env_id is None:
                raise ValueError("the checkpoint's config has no env_id: pass envs=[...] to roll out")
            tasks = [tuple(task) for task in (config.test_tasks if tasks is None else tasks)]
            if not tasks:
                raise ValueError(
                    f"no tasks to play: pass tasks=[...]; the config of {config.env_id} has no test_tasks"
                )
            env = make_vector_env(config.env_id, tasks, **config.env_kwargs)
            optimal_returns = np.array(
                [optimal_return(config.env_id, task, **config.env_kwargs) for task in tasks]
            )
        else:
            env = as_vector_env(envs)
        check_spaces(config, env.single_observation_space, env.single_action_space)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if prompt is not None:
            prompt = check_prompt(prompt, config, env.num_envs)
        return {
            "env": env,
            "owns_env": envs is None,
            "tasks": tasks,
            "optimal_returns": optimal_returns,
            "seed": int(seed),
            "prompt": prompt,
        }

    def _forward(
        self,
        inputs: dict,
        num_episodes: int = 10,
        sample: bool = True,
        return_trajectories: bool = False,
        use_cache: bool = True,
        context_length: int | None = None,
    ) -> dict:
        if (
            isinstance(num_episodes, bool)
            or not isinstance(num_episodes, int | np.integer)
            or num_episodes < 1
        ):
            raise ValueError(f"num_episodes must be a positive integer, got {num_episodes!r}")
        if context_length is not None and (use_cache or context_length < 1):
            raise ValueError(
                f"context_length applies to use_cache=False only, a positive integer, got {context_length!r}"
            )
        env = inputs["env"]
        try:
            returns, trajectories = rollout(
                self.model,
                env,
                num_episodes=int(num_episodes),
                seed=inputs["seed"],
                sample=sample,
                prompt=inputs["prompt"],
                use_cache=use_cache,
                context_length=context_length,
                return_trajectories=return_trajectories,
            )
        finally:
            if inputs["owns_env"]:  # user-provided envs stay open: they are the user's
                env.close()
        return {**inputs, "returns": returns, "trajectories": trajectories}

    def postprocess(self, outputs: dict) -> RolloutResult:
        return RolloutResult(
            returns=outputs["returns"],
            optimal_returns=outputs["optimal_returns"],
            tasks=outputs["tasks"],
            seed=outputs["seed"],
            trajectories=outputs["trajectories"],
        )


def register_pipeline() -> None:
    """Register `InContextRLPipeline` as the transformers pipeline task `"in-context-rl"`."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if constants.PIPELINE_TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            constants.PIPELINE_TASK, pipeline_class=InContextRLPipeline, pt_model=AutoModel
        )


__all__ = [
    "InContextRLPipeline",
    "RolloutResult",
    "Trajectories",
    "as_vector_env",
    "check_prompt",
    "prompt_from_histories",
    "register_pipeline",
    "rollout",
]
