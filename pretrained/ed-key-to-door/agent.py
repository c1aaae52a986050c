"""`InContextAgent`: a frozen Algorithm Distillation model as an agent you drive from your own env loop.

The agent owns the context of its streams (one stream per env): the sliding-window KV cache, the last
action and the last reward. As in the paper's evaluation (section 4), the context runs on across episode
resets, so the first step of episode k carries the last action and reward of episode k-1 and the model
sees its own earlier episodes; memory stays constant however many episodes are played.

```python
import gymnasium as gym
import hf_ad

agent = hf_ad.InContextAgent.from_pretrained("pretrained/ad-darkroom", seed=0)
env = gym.make("hf_ad/DarkRoom-v0", goal=(1, 7))  # a held-out goal
agent.reset(num_streams=1)
obs, _ = env.reset(seed=0)
for _ in range(100 * 20):  # 100 episodes of 20 steps
    action = agent.act(obs[None])[0]
    obs, reward, terminated, truncated, _ = env.step(action)
    agent.observe([reward], [terminated or truncated])
    if terminated or truncated:
        obs, _ = env.reset()
```

One call of `act` is one `(B, 1)` model step over all streams; `observe` must follow each `act` before
the next (the pair is one transition of the stream).

A recurrent model (`hf_ad.modeling_rl2.RL2Model`, the RL² baseline) plays through the same agent: its
`new_cache()` is its recurrent state, and, as it says with `reads_episode_ends = True`, each step also gets
`prev_dones`, which of the streams' previous steps ended an episode (from `observe(..., episode_ended)`).
An AD model trained with `mark_episode_starts` needs those episode ends too: the first step of each
episode then carries "no previous action", as in its training windows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars
from transformers import AutoModel, PreTrainedModel
from transformers.utils import logging as transformers_logging

PROMPT_KEYS = ("observations", "actions", "rewards")


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """transformers' progress bars (and the hub's, which it switches with them) off inside the block,
    each restored as it was after it: hf_ad's own `from_pretrained` calls print no "Loading weights" bar,
    while the user's own calls keep theirs."""
    if not transformers_logging.is_progress_bar_enabled():
        yield
        return
    hub_bars_were_disabled = are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.enable_progress_bar()
        if hub_bars_were_disabled:
            disable_progress_bars()


def load_model(path_or_repo_id: str | Path, **kwargs) -> PreTrainedModel:
    """`AutoModel.from_pretrained(path_or_repo_id, **kwargs)` without its progress bar."""
    with quiet_progress_bars():
        return AutoModel.from_pretrained(str(path_or_repo_id), **kwargs)


def check_finite(name: str, values: np.ndarray | torch.Tensor, fix: str) -> None:
    """Raise a `ValueError` naming `name` if a float array holds NaN or inf."""
    if isinstance(values, torch.Tensor):
        bad = values.is_floating_point() and not bool(torch.isfinite(values).all())
    else:
        values = np.asarray(values)
        bad = np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all()
    if bad:
        raise ValueError(f"{name} must be finite, got NaN or inf; {fix}")


def check_prompt(prompt: Mapping | Any, config, num_streams: int) -> dict[str, np.ndarray]:
    """Validate a prompt and return it per stream: observations `(B, P, *obs)`, actions and rewards `(B, P)`.

    Args:
        prompt: a mapping (or an object such as `hf_ad.rollout.Trajectories`) with `observations`,
            `actions` and `rewards`, either shared by all streams (`(P, *obs_shape)`, `(P,)`, `(P,)`) or one
            per stream (`(num_streams, P, *obs_shape)`, `(num_streams, P)`, `(num_streams, P)`).
        config: the model's `ADConfig`.
        num_streams: how many streams the prompt feeds.

    Raises:
        ValueError: a missing key, inconsistent shapes, an empty prompt, an action out of range, or NaN/inf
            rewards or observations.
    """
    get = prompt.get if isinstance(prompt, Mapping) else lambda key: getattr(prompt, key, None)
    arrays = {key: get(key) for key in PROMPT_KEYS}
    missing = [key for key, value in arrays.items() if value is None]
    if missing:
        raise ValueError(f"prompt must have {list(PROMPT_KEYS)}, missing {missing}")
    observations, actions, rewards = (np.asarray(arrays[key]) for key in PROMPT_KEYS)
    obs_shape = tuple(config.observation_shape)
    if actions.ndim == 1:  # shared by all streams
        observations, actions, rewards = (
            np.broadcast_to(a, (num_streams, *a.shape)) for a in (observations, actions, rewards)
        )
    expected = {
        "observations": (num_streams, actions.shape[-1], *obs_shape),
        "actions": (num_streams, actions.shape[-1]),
        "rewards": (num_streams, actions.shape[-1]),
    }
    for key, array in zip(PROMPT_KEYS, (observations, actions, rewards), strict=True):
        if array.shape != expected[key]:
            raise ValueError(
                f"prompt {key} must have shape {expected[key][1:]} (shared) or {expected[key]} "
                f"(per task/stream), got {array.shape}"
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
    fix = "take the prompt from a dataset that passes hf_ad.data.histories.validate_histories"
    check_finite("prompt rewards", rewards, fix)
    check_finite("prompt observations", observations, fix)
    return {"observations": observations, "actions": actions, "rewards": rewards}


class RecomputedContext:
    """The baseline without a KV cache: the last `length` transitions (or all), recomputed every step."""

    def __init__(self, length: int | None):
        self.length = length
        self.tokens: list[torch.Tensor] | None = None  # the model's step inputs, each (B, T, ...)

    def append(self, *tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Add `(B, T, ...)` tokens and return the context to recompute, oldest first."""
        if self.tokens is None:
            self.tokens = [token.clone() for token in tokens]
        else:
            self.tokens = [torch.cat([old, new], dim=1) for old, new in zip(self.tokens, tokens, strict=True)]
        if self.length is not None:
            self.tokens = [token[:, -self.length :] for token in self.tokens]
        return tuple(self.tokens)


class InContextAgent:
    """A frozen AD model acting in context on many streams at once: `reset`, `prefill`, `act`, `observe`.

    Args:
        model: an `ADModel` (put in eval mode here; the weights are never changed).
        seed: seeds the action sampling (`reset(seed=...)` re-seeds it); `None` draws a seed.
        greedy: take the most likely action instead of sampling (`act(greedy=...)` overrides it). Sampling
            is the default: greedy decoding in a deterministic env replays one episode forever.
        use_cache: `True`: one cached `(B, 1)` model step per `act`. `False` (a baseline for benchmarks
            and tests): recompute the last `context_length` transitions (`None`: the whole stream).
        context_length: only with `use_cache=False`.

    Raises:
        ValueError: `context_length` with `use_cache=True`, or not a positive integer.
    """

    def __init__(
        self,
        model,
        *,
        seed: int | None = None,
        greedy: bool = False,
        use_cache: bool = True,
        context_length: int | None = None,
    ):
        if context_length is not None and (use_cache or context_length < 1):
            raise ValueError(
                f"context_length applies to use_cache=False only, a positive integer, got {context_length!r}"
            )
        self.model = model.eval()
        self.config = model.config
        # A recurrent model (RL²) also reads which previous steps ended an episode (`prev_dones`).
        self.reads_episode_ends = bool(getattr(model, "reads_episode_ends", False))
        # An AD model trained with marked episode starts ("no previous action" at each episode's first step).
        self.marks_episode_starts = bool(getattr(self.config, "mark_episode_starts", False))
        self.greedy = greedy
        self.use_cache = use_cache
        self.context_length = context_length
        self.generator = torch.Generator(device=model.device)
        self.generator.manual_seed(
            int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else seed
        )
        self.num_streams = 0
        self._pending_action: torch.Tensor | None = None

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path,
        *,
        seed: int | None = None,
        greedy: bool = False,
        device: str | torch.device | None = None,
        **kwargs,
    ) -> InContextAgent:
        """Load a checkpoint (local folder or hub repo id) with `AutoModel.from_pretrained` (no progress
        bar: `load_model`) and wrap it.

        Args:
            path_or_repo_id: what `AutoModel.from_pretrained` accepts.
            seed, greedy: as in the constructor.
            device: where the model runs (default: where `from_pretrained` put it, the CPU).
            **kwargs: passed to `AutoModel.from_pretrained` (`revision`, `dtype`, `token`, ...).
        """
        model = load_model(path_or_repo_id, **kwargs)
        if device is not None:
            model = model.to(device)
        return cls(model, seed=seed, greedy=greedy)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def _observation_dtype(self) -> torch.dtype:
        """int64 for (multi-)discrete observations, uint8 for images (as the model trained on them: its
        encoder scales uint8 to [0, 1] and takes floating images as given), else the model's float dtype."""
        if self.config.observation_type in ("discrete", "multi_discrete"):
            return torch.long
        return torch.uint8 if self.config.observation_type == "image" else self.model.dtype

    def reset(
        self,
        num_streams: int = 1,
        seed: int | None = None,
        first_stream: int = 0,
        total_streams: int | None = None,
    ) -> None:
        """Start `num_streams` empty contexts (a new task or a new run); `seed` re-seeds the sampling.

        Not called between episodes of one run: the context runs on across episode resets.

        `first_stream`, `total_streams`: these are streams `[first_stream, first_stream + num_streams)` of a
        run of `total_streams` whose other streams another process plays (`hf-ad evaluate` under
        `accelerate launch`). The sampling then draws for the whole run and keeps these streams' draws, so
        each stream acts exactly as in one process playing them all (on the CPU, where a row's logits and
        its draw do not depend on the other rows: `tests/test_evaluation.py` checks it).
        """
        if isinstance(num_streams, bool) or not isinstance(num_streams, int | np.integer) or num_streams < 1:
            raise ValueError(f"num_streams must be a positive integer, got {num_streams!r}")
        total_streams = num_streams if total_streams is None else total_streams
        if first_stream < 0 or first_stream + num_streams > total_streams:
            raise ValueError(
                f"streams [{first_stream}, {first_stream + num_streams}) are not part of a run of "
                f"{total_streams} streams: pass 0 <= first_stream <= total_streams - num_streams"
            )
        if seed is not None:
            self.generator.manual_seed(seed)
        self.first_stream, self.total_streams = int(first_stream), int(total_streams)
        self.num_streams = int(num_streams)
        self.episodes = np.zeros(self.num_streams, dtype=np.int64)  # episodes ended per stream
        self.cache = self.model.new_cache() if self.use_cache else None
        self.context = None if self.use_cache else RecomputedContext(self.context_length)
        # (B, 1) inputs of the next step: each stream's previous action ("none": num_actions) and reward.
        self.prev_action = torch.full(
            (self.num_streams, 1), self.config.num_actions, dtype=torch.long, device=self.device
        )
        self.prev_reward = torch.zeros((self.num_streams, 1), dtype=self.model.dtype, device=self.device)
        self.prev_done = torch.zeros((self.num_streams, 1), dtype=self.model.dtype, device=self.device)
        self._pending_action = None

    @torch.inference_mode()
    def prefill(self, prompt: Mapping | Any) -> None:
        """Feed transitions into the context, as if the agent had played them (the paper's prompting).

        Args:
            prompt: `observations`, `actions`, `rewards`, shared by all streams or one per stream (see
                `check_prompt`); fed through the cache in pieces of `config.max_context`. The next `act`
                carries the prompt's last action and reward.
        """
        self._check_started("prefill")
        if self._pending_action is not None:
            raise RuntimeError(
                "prefill() after act() without observe(): observe the last actions' rewards first"
            )
        if self.reads_episode_ends:
            raise ValueError(
                f"{type(self.model).__name__} reads episode ends, which a prompt does not carry: prompting "
                "is for AD and ED models; play the recurrent model from an empty state"
            )
        if self.marks_episode_starts:
            raise ValueError(
                "this model marks episode starts (config.mark_episode_starts), which a prompt does not "
                "carry: play it from an empty context, or prompt a model trained without them"
            )
        prompt = check_prompt(prompt, self.config, self.num_streams)
        observations = self._tensor(prompt["observations"], self._observation_dtype)  # (B, P, *obs)
        actions = self._tensor(prompt["actions"], torch.long)  # (B, P)
        rewards = self._tensor(prompt["rewards"], self.model.dtype)  # (B, P)
        prev_actions = torch.cat([self.prev_action, actions[:, :-1]], dim=1)  # (B, P)
        prev_rewards = torch.cat([self.prev_reward, rewards[:, :-1]], dim=1)  # (B, P)
        if self.use_cache:
            for start in range(0, actions.shape[1], self.config.max_context):
                piece = slice(start, start + self.config.max_context)
                self.model(
                    observations[:, piece],
                    prev_actions[:, piece],
                    prev_rewards[:, piece],
                    past_key_values=self.cache,
                    use_cache=True,
                )
        else:
            self.context.append(observations, prev_actions, prev_rewards)
        self.prev_action = actions[:, -1:].clone()
        self.prev_reward = rewards[:, -1:].clone()

    @torch.inference_mode()
    def act(self, observations, greedy: bool | None = None) -> np.ndarray:
        """The next action of every stream, given its current observation.

        Args:
            observations: `(num_streams, *observation_shape)`, e.g. a vector env's batch or `obs[None]`.
            greedy: overrides the constructor's choice for this step.

        Returns:
            `(num_streams,)` int64 actions.
        """
        self._check_started("act")
        if self._pending_action is not None:
            raise RuntimeError(
                "act() twice without observe(): pass the rewards of the last actions to observe()"
            )
        expected = (self.num_streams, *self.config.observation_shape)
        observation = torch.as_tensor(np.asarray(observations), device=self.device)
        if tuple(observation.shape) != expected:
            raise ValueError(
                f"observations must have shape {expected} (num_streams, *observation_shape), "
                f"got {tuple(observation.shape)}"
            )
        observation = observation.reshape(self.num_streams, 1, *self.config.observation_shape)
        observation = observation.to(self._observation_dtype)  # (B, 1, *obs)
        inputs = self._step_inputs(observation)
        if self.use_cache:
            output = self.model(**inputs, past_key_values=self.cache, use_cache=True)
        else:
            tokens = self.context.append(*inputs.values())
            output = self.model(**dict(zip(inputs, tokens, strict=True)), use_cache=False)
        logits = output.logits[:, -1]  # (B, A)
        if self.greedy if greedy is None else greedy:
            action = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            probs = torch.softmax(logits.float(), dim=-1)  # (B, A)
            action = self._sample(probs)  # (B, 1)
        self._pending_action = action
        return action.view(-1).cpu().numpy()

    def _step_inputs(self, observation: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's inputs for one `(B, 1)` step: the observation, previous action and reward (and, for a
        model that reads them, which previous steps ended an episode)."""
        inputs = {
            "observations": observation,
            "prev_actions": self.prev_action,
            "prev_rewards": self.prev_reward,
        }
        if self.reads_episode_ends:
            inputs["prev_dones"] = self.prev_done  # (B, 1)
        return inputs

    def _sample(self, probs: torch.Tensor) -> torch.Tensor:
        """One action per stream from `probs (B, A)`, drawn as in a run of `total_streams` streams (the other
        processes' streams get uniform rows, whose draws are thrown away): `(B, 1)`."""
        if self.total_streams == self.num_streams:
            return torch.multinomial(probs, 1, generator=self.generator)  # (B, 1)
        run_probs = torch.full(
            (self.total_streams, probs.shape[1]), 1 / probs.shape[1], dtype=probs.dtype, device=probs.device
        )  # (total, A)
        these = slice(self.first_stream, self.first_stream + self.num_streams)
        run_probs[these] = probs
        return torch.multinomial(run_probs, 1, generator=self.generator)[these]  # (B, 1)

    def observe(self, rewards, episode_ended=None) -> None:
        """Record the outcome of the last `act`: the reward of every stream, and which episodes ended.

        The transition (observation, action, reward) becomes part of the context; the context does NOT
        restart at an episode end (the paper's protocol). `episode_ended` (`(num_streams,)` bool) counts
        episodes, in `self.episodes`; a model that reads episode ends (RL²) also gets it with the next step,
        so for such a model it is required.
        """
        if self._pending_action is None:
            raise RuntimeError("observe() without act(): call act(observations) first")
        rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
        if rewards.shape != (self.num_streams,):
            raise ValueError(f"rewards must have shape ({self.num_streams},), got {rewards.shape}")
        check_finite(
            "rewards", rewards, "the env returned NaN or inf rewards; check the env's reward function"
        )
        if episode_ended is None and (self.reads_episode_ends or self.marks_episode_starts):
            raise ValueError(
                f"{type(self.model).__name__} reads episode ends"
                + (" (config.mark_episode_starts)" if self.marks_episode_starts else "")
                + ": pass observe(rewards, episode_ended) with terminated | truncated of every stream"
            )
        ended = np.zeros(self.num_streams, dtype=bool)
        if episode_ended is not None:
            ended = np.asarray(episode_ended, dtype=bool).reshape(-1)
            if ended.shape != (self.num_streams,):
                raise ValueError(f"episode_ended must have shape ({self.num_streams},), got {ended.shape}")
            self.episodes += ended
        self.prev_done = torch.from_numpy(ended).to(self.device, self.model.dtype).reshape(-1, 1)
        self.prev_action = self._pending_action
        if self.marks_episode_starts and ended.any():  # the next step starts an episode: "no previous action"
            self.prev_action = self.prev_action.masked_fill(
                torch.from_numpy(ended).to(self.device).reshape(-1, 1), self.config.num_actions
            )  # (B, 1)
        self.prev_reward = torch.from_numpy(rewards).to(self.device, self.model.dtype).reshape(-1, 1)
        self._pending_action = None

    def _tensor(self, array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), device=self.device).to(dtype)

    def _check_started(self, method: str) -> None:
        if self.num_streams == 0:
            raise RuntimeError(f"{method}() before reset(): call agent.reset(num_streams) first")


__all__ = ["InContextAgent", "PROMPT_KEYS", "RecomputedContext", "check_finite", "check_prompt"]
