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

It is also the `"in-context-rl"` task of `transformers.pipeline` (registered on `import hf_ad`). Every
checkpoint ships this file (with `agent.py`, `spaces.py`, `constants.py`) and names it in its config's
`custom_pipelines`, so `transformers.pipeline("in-context-rl", model=repo, trust_remote_code=True)` also
runs where hf_ad is not installed; there the envs come from the caller (`envs=`), not from `tasks=`.
The pipeline and `rollout` are loops around `hf_ad.agent.InContextAgent`, which owns the context; use
the agent directly to drive your own env loop.

How a rollout runs (the paper's evaluation, section 4): one stream of transitions per task, one token
per transition (observation, previous action, previous reward). The stream runs on across episode
resets, so the first step of episode k carries the last action and reward of episode k-1, and the
model sees its own earlier episodes. Every env step is ONE model step on a `(B, 1)` batch of new
tokens; the sliding-window KV cache keeps at most `sliding_window` transitions per layer, so memory
stays constant however many episodes are played. Actions are sampled from the softmax by default:
greedy decoding in a deterministic env replays one episode forever.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from tqdm.auto import tqdm
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

# Relative imports only (and hf_ad.envs as an option): this file also ships with every checkpoint as the
# remote code of `transformers.pipeline("in-context-rl", model=repo, trust_remote_code=True)`, which
# fetches the files it imports relatively and runs where hf_ad is not installed.
from .agent import PROMPT_KEYS, InContextAgent, check_prompt, load_model
from .constants import ACTION, EPISODE, HISTORY_ID, OBSERVATION, PIPELINE_TASK, REWARD
from .spaces import check_spaces

try:  # building envs from tasks: hf_ad's envs, absent where only the remote code runs (then: envs=[...])
    from hf_ad.envs import make_vector_env, optimal_return
except ImportError:
    make_vector_env = optimal_return = None


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


def autoreset_mode(env: VectorEnv) -> AutoresetMode:
    """The autoreset mode of a vector env (gymnasium's default, `NEXT_STEP`, when its metadata has none)."""
    return env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)


def as_vector_env(envs: VectorEnv | Sequence[gym.Env]) -> VectorEnv:
    """Wrap a list of gymnasium envs as a same-step-autoreset vector env (a vector env passes through).

    A vector env may reset its sub-envs in the same step an episode ends (`SAME_STEP`, e.g. hf_ad's
    native envs) or on the next step (`NEXT_STEP`, gymnasium's default, e.g.
    `gymnasium.make_vec(env_id, num_envs=N, vectorization_mode="sync")`): `rollout` plays the reset step
    of the latter outside the agent's context (see `play_reset_step`).

    Raises:
        ValueError: empty list, an entry that is not a `gymnasium.Env`, the same env object twice (its
            sub-envs would step one env in turn and never end their episodes together), or a vector env
            whose autoreset mode is `DISABLED` (nothing would start the next episodes).
    """
    if isinstance(envs, VectorEnv):
        mode = autoreset_mode(envs)
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
            raise ValueError(
                f"envs must reset their episodes themselves, got autoreset_mode={mode}; build the vector env "
                "with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP, or pass a list of envs"
            )
        return envs
    envs = list(envs) if isinstance(envs, Sequence) else envs
    if not isinstance(envs, list) or not envs or not all(isinstance(env, gym.Env) for env in envs):
        raise ValueError(
            f"envs must be a gymnasium VectorEnv or a non-empty list of gymnasium.Env, got {envs!r}"
        )
    if len({id(env) for env in envs}) < len(envs):
        raise ValueError(
            "envs holds the same env object more than once; pass one env object per stream, e.g. "
            "[gymnasium.make(env_id, ...) for _ in range(n)]"
        )
    return SyncVectorEnv([lambda env=env: env for env in envs], autoreset_mode=AutoresetMode.SAME_STEP)


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
    column_ids = table[HISTORY_ID][:]  # (rows,) numpy
    column_episodes = table[EPISODE][:]
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
                "observations": np.asarray(selected[OBSERVATION][:]),
                "actions": np.asarray(selected[ACTION][:], dtype=np.int64),
                "rewards": np.asarray(selected[REWARD][:], dtype=np.float32),
            }
        )
    lengths = {len(part["actions"]) for part in parts}
    if len(lengths) != 1:
        raise ValueError(f"per-task prompts must have the same length, got lengths {sorted(lengths)}")
    if single:
        return parts[0]
    return {key: np.stack([part[key] for part in parts]) for key in PROMPT_KEYS}


# --- the rollout loop ---------------------------------------------------------------------------


def warn_if_other_env(env: VectorEnv, config) -> None:
    """Warn when user envs are registered under another id than the model's env (their spaces match)."""
    ids = {spec.id for spec in (getattr(sub, "spec", None) for sub in getattr(env, "envs", [env])) if spec}
    others = sorted(ids - {config.env_id})
    if config.env_id is not None and others:
        warnings.warn(
            f"the model was trained on {config.env_id!r} but plays {others}: the spaces match, but "
            "in-context learning is only measured on the training env family",
            stacklevel=4,
        )


def episode_step_limit(env: VectorEnv, config) -> int | None:
    """The most steps an episode of `env` can last: its spec's `max_episode_steps` (a vector env's, or the
    longest of its sub-envs'), else the one the model's env is registered with; `None` if neither is known."""
    specs = [getattr(env, "spec", None)] + [getattr(sub, "spec", None) for sub in getattr(env, "envs", ())]
    limits = [spec.max_episode_steps for spec in specs if spec is not None and spec.max_episode_steps]
    if limits:
        return max(limits)
    if config.env_id is None:
        return None
    return config.env_kwargs.get("max_episode_steps") or gym.spec(config.env_id).max_episode_steps


def check_episodes_end(steps_in_episode: np.ndarray, limit: int) -> None:
    """Raise if a stream has played more than `limit` steps without its env ending the episode."""
    stuck = np.flatnonzero(steps_in_episode > limit)
    if stuck.size:
        raise RuntimeError(
            f"env {int(stuck[0])} has played {int(steps_in_episode[stuck[0]])} steps without ending an "
            f"episode, more than max_episode_steps={limit}: the rollout would never finish. Build each env "
            "with a time limit (gymnasium.make(env_id, max_episode_steps=N) or "
            "gymnasium.wrappers.TimeLimit), pass distinct env objects, or pass max_episode_steps= if its "
            "episodes are longer"
        )


def play_reset_step(env: VectorEnv, done: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Play the reset step of a `NEXT_STEP` vector env after its episodes ended; return the new episodes'
    first observations.

    Such an env returns the last observation of an episode when it ends, and starts the next episode on
    the following `step`, ignoring that step's action. The rollout plays that step here, outside the
    agent's context, so the stream holds exactly the transitions of a same-step-autoreset env.

    Raises:
        RuntimeError: only some sub-envs ended their episodes (the others would take a step the agent
            never chose).
    """
    if not done.all():
        raise RuntimeError(
            f"sub-envs {np.flatnonzero(done).tolist()} of {len(done)} ended an episode on their own: a "
            "vector env that resets on the next step (autoreset_mode=NEXT_STEP) works only when every "
            "episode ends on the same step for all sub-envs; pass the envs as a list, or build the vector "
            "env with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP"
        )
    observations, *_ = env.step(actions)  # the actions are ignored: every sub-env resets
    return observations


def rollout(
    model,
    env: VectorEnv,
    num_episodes: int,
    seed: int,
    sample: bool = True,
    prompt: Mapping | None = None,
    use_cache: bool = True,
    context_length: int | None = None,
    return_trajectories: bool = False,
    max_episode_steps: int | None = None,
    progress: bool = False,
    first_stream: int = 0,
    total_streams: int | None = None,
) -> tuple[np.ndarray, Trajectories | None]:
    """Play `num_episodes` episodes in every sub-env of `env`, an `InContextAgent` acting in context.

    Args:
        model: an `ADModel` (put in eval mode; the weights are not changed).
        env: a vector env whose spaces match the model's config, same-step or next-step autoreset
            (see `as_vector_env`).
        num_episodes: episodes per sub-env.
        seed: seeds the env reset and the action sampling.
        sample: sample actions from the softmax (`False`: greedy).
        prompt: transitions fed into the context before the first step (see `hf_ad.agent.check_prompt`).
        use_cache, context_length: see `InContextAgent` (`use_cache=False` is the recompute baseline).
        return_trajectories: also return every transition.
        max_episode_steps: the most steps an episode may last before the rollout stops with an error
            (an env that never ends an episode would run forever); default `episode_step_limit(env, config)`.
        progress: show a tqdm bar over the episodes (those every sub-env has finished).
        first_stream, total_streams: the sub-envs are streams `[first_stream, first_stream + B)` of a run of
            `total_streams` that other processes share: the env resets with `seed + first_stream` (sub-env i
            as stream `first_stream + i`) and the agent samples as for the whole run (`InContextAgent.reset`),
            so the returns are those rows of the whole run's.

    Returns:
        `(returns, trajectories)`: `(B, num_episodes)` float64 returns and the trajectories or `None`.
    """
    agent = InContextAgent(
        model, seed=seed, greedy=not sample, use_cache=use_cache, context_length=context_length
    )
    agent.reset(env.num_envs, first_stream=first_stream, total_streams=total_streams)
    if prompt is not None:
        agent.prefill(prompt)
    limit = max_episode_steps or episode_step_limit(env, model.config)
    returns = np.zeros((env.num_envs, num_episodes))
    running_return = np.zeros(env.num_envs)
    steps_in_episode = np.zeros(env.num_envs, dtype=np.int64)
    record: list[tuple[np.ndarray, ...]] = []

    next_step = autoreset_mode(env) == AutoresetMode.NEXT_STEP
    obs, _ = env.reset(seed=seed + first_stream)
    with tqdm(total=num_episodes, unit="episode", desc="in-context RL", disable=not progress) as bar:
        while agent.episodes.min() < num_episodes:
            episode = agent.episodes.copy()
            action = agent.act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            reward = np.asarray(reward, dtype=np.float32)
            done = np.logical_or(terminated, truncated)
            agent.observe(reward, done)
            if return_trajectories:
                record.append((np.array(obs), action, np.where(episode < num_episodes, episode, -1), reward))
            running_return += reward
            steps_in_episode += 1
            ended = np.flatnonzero(done)
            counted = ended[episode[ended] < num_episodes]
            returns[counted, episode[counted]] = running_return[counted]
            running_return[ended] = 0.0
            steps_in_episode[ended] = 0
            if limit is not None:
                check_episodes_end(steps_in_episode, limit)
            if next_step and ended.size:
                next_obs = play_reset_step(env, done, action)
            obs = next_obs
            bar.update(min(int(agent.episodes.min()), num_episodes) - bar.n)

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
            `prompt_from_histories`), fed through the cache before the first step.
        return_trajectories (`bool`, defaults to `False`): also return every transition.
        use_cache (`bool`, defaults to `True`): `False` recomputes the context every step instead of
            streaming through the KV cache (a baseline for benchmarks and tests).
        context_length (`int`, *optional*): with `use_cache=False`, the transitions recomputed each step
            (`None`: the whole stream).
        max_episode_steps (`int`, *optional*): the most steps an episode may last; a stream that plays
            more without its env ending the episode stops the rollout with an error (an env without a time
            limit would run forever). Default: the envs' `spec.max_episode_steps`, else the model's env's.
        progress (`bool`, defaults to `False`): show a tqdm bar over the episodes.
        first_stream, total_streams (`int`, *optional*): the tasks are streams `[first_stream, first_stream
            + len(tasks))` of a run of `total_streams` that several processes share (see `rollout`).

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
        model = load_model(path_or_repo_id, **kwargs)
        return cls(model=model, task=PIPELINE_TASK, device=device)

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
        max_episode_steps: int | None = None,
        progress: bool | None = None,
        first_stream: int | None = None,
        total_streams: int | None = None,
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
            ("max_episode_steps", max_episode_steps),
            ("progress", progress),
            ("first_stream", first_stream),
            ("total_streams", total_streams),
        ):
            if value is not None:
                forward[name] = value
        return preprocess, forward, postprocess

    def get_inference_context(self):
        return torch.inference_mode

    def preprocess(self, request: dict, prompt: Any = None, seed: int | None = None) -> dict:
        config = self.model.config
        tasks, envs = request["tasks"], request["envs"]
        if tasks is not None and envs is not None:
            raise ValueError("pass either tasks or envs, not both")
        optimal_returns = None
        if envs is None:
            if config.env_id is None:
                raise ValueError("the checkpoint's config has no env_id: pass envs=[...] to roll out")
            if make_vector_env is None:
                raise ValueError(
                    f"playing tasks of {config.env_id} needs hf_ad's envs, and hf_ad is not installed here: "
                    "pass envs=[gymnasium envs] (or a gymnasium VectorEnv), or `pip install hf_ad`"
                )
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
        if envs is not None:
            warn_if_other_env(env, config)
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
        max_episode_steps: int | None = None,
        progress: bool = False,
        first_stream: int = 0,
        total_streams: int | None = None,
    ) -> dict:
        if (
            isinstance(num_episodes, bool)
            or not isinstance(num_episodes, int | np.integer)
            or num_episodes < 1
        ):
            raise ValueError(f"num_episodes must be a positive integer, got {num_episodes!r}")
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
                max_episode_steps=max_episode_steps,
                progress=progress,
                first_stream=first_stream,
                total_streams=total_streams,
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
    if PIPELINE_TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            PIPELINE_TASK, pipeline_class=InContextRLPipeline, pt_model=AutoModel
        )


__all__ = [
    "InContextRLPipeline",
    "RolloutResult",
    "Trajectories",
    "as_vector_env",
    "autoreset_mode",
    "check_prompt",
    "episode_step_limit",
    "play_reset_step",
    "prompt_from_histories",
    "register_pipeline",
    "rollout",
]
