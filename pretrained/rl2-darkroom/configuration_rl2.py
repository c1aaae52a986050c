"""Configuration of the RL² agent (Duan et al. 2016; Wang et al. 2016): the paper's meta-RL upper bound.

Copied next to the weights by `save_pretrained`, so `AutoConfig.from_pretrained(folder,
trust_remote_code=True)` works where hf_ad is not installed; it imports only `.configuration_ad` (the shared
field checks) and, through it, `.constants`, relatively.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any

from transformers import PreTrainedConfig

from .configuration_ad import _plain, check_env_fields, check_observation_spec, plain_env_fields

RL2_OBSERVATION_TYPES = ("discrete", "multi_discrete", "vector")


class RL2Config(PreTrainedConfig):
    r"""
    Configuration of an [`RL2Model`]: a recurrent actor-critic that reads one token per transition
    (observation, previous action, previous reward, whether the previous step ended an episode) and keeps
    its GRU state across the episodes of a trial, so that it learns to explore and exploit a new task
    within the trial (RL², Duan et al. 2016). The paper's RL² is an LSTM trained for 1B steps; this one is a
    GRU trained on 2 CPU cores (`hf-ad train-rl2`).

    The observation, action and env fields mean what they mean in [`ADConfig`], so the same rollouts,
    `InContextAgent` and `hf-ad evaluate` play it.

    Args:
        hidden_size (`int`, *optional*, defaults to 128):
            Width of the GRU state (the agent's whole memory of the trial).
        embedding_size (`int`, *optional*, defaults to 64):
            Width of the transition embedding fed to the GRU.
        max_context (`int`, *optional*, defaults to 2048):
            Longest sequence, in transitions, accepted by one forward call; longer streams are fed in pieces
            through the recurrent state (`RL2Model.new_cache`).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of the linear layers' weights.
        observation_type (`str`, *optional*, defaults to `"multi_discrete"`):
            `"discrete"`, `"multi_discrete"` (one one-hot per coordinate) or `"vector"` (floats as given).
        observation_nvec (`list[int]`, *optional*, defaults to `[9, 9]`):
            Discrete observations: `[n]`; multi-discrete: the size of each coordinate; `None` for vectors.
        observation_shape (`list[int]`, *optional*):
            `[d]` for vectors; derived for (multi-)discrete observations when left `None`.
        num_actions (`int`, *optional*, defaults to 5):
            Size of the discrete action space; the previous-action one-hot has `num_actions + 1` entries
            (index `num_actions`: no previous action, the first step of a trial).
        reward_scale (`float`, *optional*, defaults to 1.0):
            The previous reward enters as `reward * reward_scale`.
        env_id, env_kwargs, train_tasks, test_tasks:
            The environment the agent was trained for, as in [`ADConfig`].
    """

    model_type = "rl2"

    hidden_size: int = 128
    embedding_size: int = 64
    max_context: int = 2048
    initializer_range: float = 0.02
    observation_type: str = "multi_discrete"
    observation_nvec: list[int] | None = field(default_factory=lambda: [9, 9])
    observation_shape: list[int] | None = None
    num_actions: int = 5
    reward_scale: float = 1.0
    env_id: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    train_tasks: list[list[Any]] = field(default_factory=list)
    test_tasks: list[list[Any]] = field(default_factory=list)

    def __post_init__(self, **kwargs):
        self.observation_nvec = _plain(self.observation_nvec)
        self.observation_shape = _plain(self.observation_shape)
        plain_env_fields(self)
        if self.observation_shape is None and self.observation_type in ("discrete", "multi_discrete"):
            nvec = self.observation_nvec or []
            self.observation_shape = [] if self.observation_type == "discrete" else [len(nvec)]
        super().__post_init__(**kwargs)
        self.check()

    @property
    def input_size(self) -> int:
        """Width of one transition's features: observation one-hots (or vector), action one-hot, reward,
        done flag."""
        if self.observation_type == "vector":
            observation = self.observation_shape[0]
        else:
            observation = sum(self.observation_nvec)
        return observation + (self.num_actions + 1) + 2

    def check(self) -> None:
        """Raise a `ValueError` naming the first invalid field and its value."""
        for name in ("hidden_size", "embedding_size", "max_context", "num_actions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.initializer_range, (int, float)) or not self.initializer_range > 0:
            raise ValueError(f"initializer_range must be a positive number, got {self.initializer_range!r}")
        if not isinstance(self.reward_scale, (int, float)) or not math.isfinite(self.reward_scale):
            raise ValueError(f"reward_scale must be a finite number, got {self.reward_scale!r}")
        if self.observation_type not in RL2_OBSERVATION_TYPES:
            raise ValueError(
                f"observation_type must be one of {RL2_OBSERVATION_TYPES} for RL², got "
                f"{self.observation_type!r} (images need a convolutional encoder RL2Model does not have)"
            )
        check_observation_spec(self.observation_type, self.observation_nvec, self.observation_shape)
        check_env_fields(self)


RL2Config.register_for_auto_class()

__all__ = ["RL2Config"]
