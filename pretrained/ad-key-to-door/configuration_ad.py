"""Configuration of the Algorithm Distillation model (Laskin et al., ICLR 2023).

Copied next to the weights by `save_pretrained`, so that `AutoConfig.from_pretrained(folder,
trust_remote_code=True)` works where `hf_ad` is not installed: it imports only `.constants`, relatively
(transformers fetches relatively imported files with it).
"""

from __future__ import annotations

import math
import sys
from dataclasses import field
from typing import Any

from transformers import PreTrainedConfig

from .constants import PIPELINE_TASK

OBSERVATION_TYPES = ("discrete", "multi_discrete", "vector", "image")
DISCRETE_OBSERVATION_TYPES = ("discrete", "multi_discrete")


def _pipeline_installed() -> bool:
    """Whether this process has the `in-context-rl` pipeline task registered (hf_ad is imported)."""
    pipelines = sys.modules.get("transformers.pipelines")  # not imported yet: nothing is registered
    return pipelines is not None and PIPELINE_TASK in pipelines.PIPELINE_REGISTRY.get_supported_tasks()


def _plain(value: Any) -> Any:
    """A JSON-friendly copy: tuples and numpy arrays become lists, numpy scalars Python numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def plain_env_fields(config: PreTrainedConfig) -> None:
    """Make a config's env metadata (`env_kwargs`, `train_tasks`, `test_tasks`) JSON-friendly, in place."""
    config.env_kwargs = _plain(config.env_kwargs) if config.env_kwargs is not None else {}
    config.train_tasks = _plain(config.train_tasks) if config.train_tasks is not None else []
    config.test_tasks = _plain(config.test_tasks) if config.test_tasks is not None else []


def check_env_fields(config: PreTrainedConfig) -> None:
    """Raise a `ValueError` naming the first invalid env metadata field (`env_id`, `env_kwargs`, tasks)."""
    if config.env_id is not None and not isinstance(config.env_id, str):
        raise ValueError(f"env_id must be a string or None, got {config.env_id!r}")
    if not isinstance(config.env_kwargs, dict):
        raise ValueError(f"env_kwargs must be a dict, got {config.env_kwargs!r}")
    for name in ("train_tasks", "test_tasks"):
        tasks = getattr(config, name)
        if not isinstance(tasks, list) or not all(isinstance(task, list) for task in tasks):
            raise ValueError(f"{name} must be a list of tasks, each a list of numbers, got {tasks!r}")


def check_observation_spec(kind: str, nvec: list[int] | None, shape: list[int] | None) -> None:
    """Raise a `ValueError` unless `observation_type` `kind`, `observation_nvec` and `observation_shape`
    describe one observation space (see `ADConfig`'s arguments)."""
    if kind not in OBSERVATION_TYPES:
        raise ValueError(f"observation_type must be one of {OBSERVATION_TYPES}, got {kind!r}")
    if shape is None or not all(isinstance(size, int) and size >= 1 for size in shape):
        raise ValueError(f"observation_shape must be a list of positive integers, got {shape!r} for {kind!r}")
    if kind in DISCRETE_OBSERVATION_TYPES:
        if not nvec or not all(isinstance(size, int) and size >= 1 for size in nvec):
            raise ValueError(
                f"observation_nvec must be a non-empty list of positive integers for {kind!r} "
                f"observations, got {nvec!r}"
            )
        if kind == "discrete" and len(nvec) != 1:
            raise ValueError(f"observation_nvec must be [n] for 'discrete' observations, got {nvec!r}")
        expected = [] if kind == "discrete" else [len(nvec)]
        if shape != expected:
            raise ValueError(
                f"observation_shape must be {expected} for {kind!r} observations with observation_nvec "
                f"{nvec}, got {shape!r}"
            )
        return
    if nvec is not None:
        raise ValueError(
            f"observation_nvec applies to discrete and multi_discrete observations only, got {nvec!r} "
            f"with observation_type={kind!r} (pass observation_nvec=None)"
        )
    expected_rank = 1 if kind == "vector" else 3
    if len(shape) != expected_rank:
        layout = "[d]" if kind == "vector" else "[H, W, C]"
        raise ValueError(f"observation_shape must be {layout} for {kind!r} observations, got {shape!r}")


class ADConfig(PreTrainedConfig):
    r"""
    Configuration of an [`ADModel`]: the causal transformer of Algorithm Distillation, which reads a
    stream of transitions (one token per transition: observation, previous action, previous reward)
    and predicts the next action of the source RL algorithm. The defaults are the paper's model
    (embedding 64, 4 layers, 4 heads, dropout 0.1, attention dropout 0.5, token masking 0.3) on Dark
    Room (9x9 grid, (x, y) observations, 5 actions, 4 episodes of 20 steps in the window).

    The config also carries the environment metadata (`env_id`, `env_kwargs`, `train_tasks`,
    `test_tasks`), so a checkpoint alone rebuilds the environment it was trained for.

    Args:
        hidden_size (`int`, *optional*, defaults to 64):
            Width of the token embeddings and of the transformer.
        num_hidden_layers (`int`, *optional*, defaults to 4):
            Number of decoder layers.
        num_attention_heads (`int`, *optional*, defaults to 4):
            Number of attention heads; must divide `hidden_size` into an even head size (rotary positions).
        intermediate_size (`int`, *optional*, defaults to 256):
            Width of the gated feed-forward block of each layer.
        hidden_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the input tokens and on each residual branch.
        attention_dropout (`float`, *optional*, defaults to 0.5):
            Dropout on the attention probabilities (the paper uses 0 for Dark Room Hard).
        token_mask_prob (`float`, *optional*, defaults to 0.3):
            Training only: the probability that a whole input token (observation, previous action and
            previous reward together) is replaced by a learned mask embedding. Labels are kept, so the
            model must predict the action of a masked step from the context alone. Off in eval mode.
        label_smoothing (`float`, *optional*, defaults to 0.0):
            Label smoothing of the cross-entropy loss (the paper uses 0.2 for Dark Room Hard only).
        mark_episode_starts (`bool`, *optional*, defaults to `False`):
            Whether the first transition of every episode takes the "no previous action" index (as the first
            transition of a stream does) instead of the previous episode's last action, so that the model
            sees where episodes begin. The previous reward is kept. Off, the stream runs on across episode
            resets and the model must infer the boundaries (easy where every episode starts in one cell, as in
            Dark Room; not where the start is random, as in Key-to-Door). On, streaming needs the episode
            ends (`InContextAgent.observe(rewards, episode_ended)`) and training reads the `step` column.
        sliding_window (`int`, *optional*, defaults to 80):
            Transitions each position attends to, itself included (80 = four Dark Room episodes). The
            streaming KV cache keeps at most this many transitions per layer.
        max_context (`int`, *optional*, defaults to 320):
            Longest sequence, in transitions, accepted by one forward call. Streams longer than this are
            fed in pieces through the KV cache.
        rope_theta (`float`, *optional*, defaults to 10000.0):
            Base period of the rotary position embedding.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal weight initialisation.
        rms_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the RMS normalisations.
        observation_type (`str`, *optional*, defaults to `"multi_discrete"`):
            One of `"discrete"` (an integer in `[0, n)`), `"multi_discrete"` (integer coordinates, embedded
            per coordinate), `"vector"` (a float vector) or `"image"` (an `H x W x C` array).
        observation_nvec (`list[int]`, *optional*, defaults to `[9, 9]`):
            Discrete observations: `[n]`; multi-discrete: the size of each coordinate. Must be `None` for
            vector and image observations.
        observation_shape (`list[int]`, *optional*):
            Shape of one observation: `[d]` for vectors, `[H, W, C]` for images. Derived for discrete (`[]`)
            and multi-discrete (`[len(observation_nvec)]`) observations when left `None`.
        num_actions (`int`, *optional*, defaults to 5):
            Size of the discrete action space. The previous-action embedding has `num_actions + 1` rows:
            index `num_actions` means "no previous action" (the first transition of a stream).
        reward_scale (`float`, *optional*, defaults to 1.0):
            Rewards are embedded linearly as `Linear(1, hidden_size)(reward * reward_scale)`, which suits both
            0/1 grid rewards and continuous bandit rewards; scale large rewards to about unit size.
        env_id (`str`, *optional*):
            Gymnasium id of the environment the model was trained on, e.g. `"hf_ad/DarkRoom-v0"`.
        env_kwargs (`dict`, *optional*, defaults to `{}`):
            Keyword arguments for `gymnasium.make(env_id, **env_kwargs)`, without the task.
        train_tasks (`list[list]`, *optional*, defaults to `[]`):
            Tasks seen in training (e.g. Dark Room goals `[x, y]`).
        test_tasks (`list[list]`, *optional*, defaults to `[]`):
            Held-out tasks for evaluation.

    Example:

    ```python
    >>> from hf_ad import ADConfig, ADModel
    >>> config = ADConfig(env_id="hf_ad/DarkRoom-v0", train_tasks=[[0, 0], [8, 8]], test_tasks=[[2, 7]])
    >>> model = ADModel(config)
    ```
    """

    model_type = "algorithm_distillation"
    keys_to_ignore_at_inference = ["past_key_values"]

    hidden_size: int = 64
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    # Note: the paper's feed-forward width is 2048 (a GELU MLP); 256 in a gated (SwiGLU) block is the
    # recipe measured to learn Dark Room in context on CPU, at about a fifth of the feed-forward cost.
    intermediate_size: int = 256
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.5
    token_mask_prob: float = 0.3
    label_smoothing: float = 0.0
    mark_episode_starts: bool = False
    sliding_window: int = 80
    max_context: int = 320
    rope_theta: float = 10000.0
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
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
        if _pipeline_installed():
            # config.json names the shipped pipeline (`custom_pipelines`) for users without hf_ad, but
            # `transformers.pipeline` then demands trust_remote_code=True even where the task is installed;
            # dropped here, the installed pipeline runs (ADModel.save_pretrained writes the entry again).
            kwargs.pop("custom_pipelines", None)
        self.observation_nvec = _plain(self.observation_nvec)
        self.observation_shape = _plain(self.observation_shape)
        plain_env_fields(self)
        if self.observation_shape is None and self.observation_type in DISCRETE_OBSERVATION_TYPES:
            nvec = self.observation_nvec or []
            self.observation_shape = [] if self.observation_type == "discrete" else [len(nvec)]
        super().__post_init__(**kwargs)
        self.check()

    def check(self) -> None:
        """Raise a `ValueError` naming the first invalid field and its value; all validation lives here."""
        for name in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "sliding_window",
            "max_context",
            "num_actions",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size must be a multiple of num_attention_heads, "
                f"got {self.num_attention_heads} heads for hidden_size {self.hidden_size}"
            )
        head_size = self.hidden_size // self.num_attention_heads
        if head_size % 2 != 0:
            raise ValueError(
                f"the head size hidden_size / num_attention_heads must be even for rotary positions, got "
                f"{self.hidden_size} / {self.num_attention_heads} = {head_size}"
            )
        for name in ("hidden_dropout", "attention_dropout", "token_mask_prob", "label_smoothing"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
        for name in ("rope_theta", "initializer_range", "rms_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not isinstance(self.mark_episode_starts, bool):
            raise ValueError(f"mark_episode_starts must be True or False, got {self.mark_episode_starts!r}")
        if not isinstance(self.reward_scale, (int, float)) or not math.isfinite(self.reward_scale):
            raise ValueError(f"reward_scale must be a finite number, got {self.reward_scale!r}")
        check_observation_spec(self.observation_type, self.observation_nvec, self.observation_shape)
        check_env_fields(self)


ADConfig.register_for_auto_class()

__all__ = ["ADConfig", "check_env_fields", "check_observation_spec", "plain_env_fields"]
