"""RL² (Duan et al. 2016, "RL²: Fast Reinforcement Learning via Slow Reinforcement Learning") as a
transformers model: the meta-RL baseline the AD paper reports as its upper bound.

One token per transition, as in AD, plus the flag RL² needs to see episode boundaries: token_t =
[onehot(o_t), onehot(a_{t-1}), r_{t-1}, done_{t-1}] -> Linear -> ReLU -> GRU -> policy logits and a value.
The GRU state runs on across the episodes of a trial, never reset at an episode end: it is the agent's
whole memory of the task, and it plays the role of AD's KV cache (`RL2Model.new_cache`), so
`hf_ad.agent.InContextAgent`, the pipeline and `hf-ad evaluate` play it exactly like AD.

Remote code: `save_pretrained` copies this file and `configuration_rl2.py` (with the `configuration_ad.py`
and `constants.py` it imports) next to the weights; the only project imports are relative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_rl2 import RL2Config

INDEX_DTYPES = (torch.int64, torch.int32)
POLICY_INIT_SCALE = 0.01  # a near-uniform first policy (the usual PPO initialisation of the policy head)


@dataclass
class RL2Output(ModelOutput):
    """Output of [`RL2Model.forward`].

    Args:
        logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, num_actions)`):
            Unnormalised scores of the next action a_t.
        values (`torch.FloatTensor` of shape `(batch_size, sequence_length)`):
            The critic's estimate of the discounted return from step t to the end of the trial.
        past_key_values (`RL2State`, *optional*):
            The recurrent state after this call's transitions, when `use_cache` is on.
    """

    logits: torch.FloatTensor | None = None
    values: torch.FloatTensor | None = None
    past_key_values: RL2State | None = None


class RL2State:
    """The GRU state of a batch of streams: RL²'s counterpart of AD's KV cache, of constant size.

    `hidden` is `(1, B, hidden_size)`, or `None` before the first step (a zero state). A forward call with
    this object as `past_key_values` continues its streams and stores the new state in it.
    """

    def __init__(self, hidden: torch.Tensor | None = None):
        self.hidden = hidden

    @property
    def batch_size(self) -> int | None:
        return None if self.hidden is None else self.hidden.shape[1]


class RL2PreTrainedModel(PreTrainedModel):
    config_class = RL2Config
    config: RL2Config
    base_model_prefix = "rl2"
    main_input_name = "observations"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            std = self.config.initializer_range
            if module is getattr(self, "policy_head", None):
                std = POLICY_INIT_SCALE
            init.normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.GRU):  # torch's own GRU initialisation
            bound = 1.0 / math.sqrt(module.hidden_size)
            for parameter in module.parameters():
                init.uniform_(parameter, -bound, bound)


class RL2Model(RL2PreTrainedModel):
    """A recurrent actor-critic whose GRU state runs across episodes: RL².

    Example:

    ```python
    >>> import torch
    >>> from hf_ad.configuration_rl2 import RL2Config
    >>> from hf_ad.modeling_rl2 import RL2Model
    >>> model = RL2Model(RL2Config()).eval()  # Dark Room: (x, y) observations, 5 actions
    >>> state = model.new_cache()
    >>> obs, prev_action, prev_reward = torch.tensor([[[4, 4]]]), torch.tensor([[5]]), torch.zeros(1, 1)
    >>> out = model(obs, prev_action, prev_reward, prev_dones=torch.zeros(1, 1), past_key_values=state)
    >>> out.logits.shape, out.values.shape
    (torch.Size([1, 1, 5]), torch.Size([1, 1]))
    ```
    """

    # `hf_ad.agent.InContextAgent` passes `prev_dones` (which steps ended an episode) to models that say so.
    reads_episode_ends = True

    def __init__(self, config: RL2Config):
        super().__init__(config)
        self.embedding = nn.Linear(config.input_size, config.embedding_size)
        self.gru = nn.GRU(config.embedding_size, config.hidden_size, batch_first=True)
        self.policy_head = nn.Linear(config.hidden_size, config.num_actions)
        self.value_head = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embedding

    def new_cache(self) -> RL2State:
        """An empty recurrent state (zeros on the first step); one per batch of streams."""
        return RL2State()

    def transition_features(
        self,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        prev_dones: torch.Tensor,
    ) -> torch.Tensor:
        """`(B, T, input_size)`: [onehot(o_t) per coordinate | onehot(a_{t-1}) | r_{t-1} | done_{t-1}]."""
        config, dtype = self.config, self.embedding.weight.dtype
        if config.observation_type == "vector":
            observation = observations.to(dtype)  # (B, T, d)
        else:
            coordinates = observations.unsqueeze(-1) if observations.ndim == 2 else observations  # (B, T, K)
            observation = torch.cat(
                [F.one_hot(coordinates[..., k], n) for k, n in enumerate(config.observation_nvec)], dim=-1
            ).to(dtype)  # (B, T, sum(nvec))
        action = F.one_hot(prev_actions, config.num_actions + 1).to(dtype)  # (B, T, A + 1)
        reward = (prev_rewards.to(dtype) * config.reward_scale).unsqueeze(-1)  # (B, T, 1)
        done = prev_dones.to(dtype).unsqueeze(-1)  # (B, T, 1)
        return torch.cat([observation, action, reward, done], dim=-1)  # (B, T, input_size)

    def forward(
        self,
        observations: torch.Tensor,
        prev_actions: torch.LongTensor,
        prev_rewards: torch.Tensor,
        prev_dones: torch.Tensor,
        past_key_values: RL2State | None = None,
        use_cache: bool | None = None,
    ) -> RL2Output:
        r"""
        Policy logits and values at every transition of a batch of streams.

        Args:
            observations (`torch.Tensor`):
                o_t: `(B, T)` int64 (discrete), `(B, T, K)` int64 (multi-discrete) or `(B, T, d)` float.
            prev_actions (`torch.LongTensor` of shape `(B, T)`):
                a_{t-1} in `[0, num_actions]`; `num_actions` = no previous action (the first step of a trial).
            prev_rewards (`torch.Tensor` of shape `(B, T)`):
                r_{t-1}; 0 at the start of a trial.
            prev_dones (`torch.Tensor` of shape `(B, T)`):
                1 where step t-1 ended an episode (so o_t starts a new one), else 0. The state is NOT reset
                there: remembering earlier episodes is what RL² learns.
            past_key_values (`RL2State`, *optional*):
                The recurrent state the new transitions continue (from [`RL2Model.new_cache`]); it is
                updated in place and returned. Without it the streams start from a zero state.
            use_cache (`bool`, *optional*):
                Whether to return the state. Defaults to `True` when `past_key_values` is given.

        Returns:
            [`RL2Output`] with `logits (B, T, num_actions)`, `values (B, T)` and the state when `use_cache`.
        """
        if use_cache is None:
            use_cache = past_key_values is not None
        self._check_inputs(observations, prev_actions, prev_rewards, prev_dones, past_key_values)
        if use_cache and past_key_values is None:
            past_key_values = self.new_cache()
        hidden = None if past_key_values is None else past_key_values.hidden  # (1, B, H) or None
        features = self.transition_features(observations, prev_actions, prev_rewards, prev_dones)
        tokens = F.relu(self.embedding(features))  # (B, T, E)
        outputs, last = self.gru(tokens, hidden)  # (B, T, H), (1, B, H)
        if past_key_values is not None:
            past_key_values.hidden = last
        return RL2Output(
            logits=self.policy_head(outputs),  # (B, T, A)
            values=self.value_head(outputs).squeeze(-1),  # (B, T)
            past_key_values=past_key_values if use_cache else None,
        )

    def _check_inputs(
        self,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        prev_dones: torch.Tensor,
        state: RL2State | None,
    ) -> None:
        """Raise a `ValueError` naming expected and got for inputs that do not fit the config."""
        config = self.config
        if prev_actions.ndim != 2 or prev_actions.dtype not in INDEX_DTYPES:
            raise ValueError(
                f"prev_actions must be an int64 tensor of shape (B, T), got {prev_actions.dtype} "
                f"{tuple(prev_actions.shape)}"
            )
        batch, steps = prev_actions.shape
        if not 1 <= steps <= config.max_context:
            raise ValueError(
                f"sequence length must be in [1, max_context={config.max_context}] transitions, got {steps}; "
                "feed longer streams in pieces through the state (model.new_cache())"
            )
        expected = (batch, steps, *config.observation_shape)
        if tuple(observations.shape) != expected:
            raise ValueError(
                f"observations must have shape {expected} (B, T, *observation_shape), "
                f"got {tuple(observations.shape)}"
            )
        if config.observation_type == "vector":
            if not observations.is_floating_point() or not torch.isfinite(observations).all():
                raise ValueError("vector observations must be finite floats, got NaN/inf or integers")
        else:
            if observations.dtype not in INDEX_DTYPES:
                raise ValueError(f"discrete observations must be int64, got dtype {observations.dtype}")
            nvec = torch.tensor(config.observation_nvec, device=observations.device)  # (K,)
            if ((observations < 0) | (observations >= nvec)).any():
                raise ValueError(
                    f"observations out of range: coordinate k must be in [0, observation_nvec[k]) with "
                    f"observation_nvec={config.observation_nvec}"
                )
        if ((prev_actions < 0) | (prev_actions > config.num_actions)).any():
            raise ValueError(
                f"prev_actions out of range: expected [0, {config.num_actions}] "
                f"({config.num_actions} = no previous action)"
            )
        for name, values in (("prev_rewards", prev_rewards), ("prev_dones", prev_dones)):
            if tuple(values.shape) != (batch, steps):
                raise ValueError(f"{name} must have shape {(batch, steps)}, got {tuple(values.shape)}")
        if not prev_rewards.is_floating_point() or not torch.isfinite(prev_rewards).all():
            raise ValueError("prev_rewards must be finite floats, got NaN/inf or integers; check the env")
        if state is not None and state.batch_size not in (None, batch):
            raise ValueError(
                f"past_key_values holds {state.batch_size} streams, got a batch of {batch}; a state serves "
                "the batch it started with: create one per batch with model.new_cache()"
            )


RL2Model.register_for_auto_class("AutoModel")

__all__ = ["RL2Model", "RL2Output", "RL2PreTrainedModel", "RL2State"]
