"""The Algorithm Distillation model (Laskin et al., ICLR 2023) as a transformers model.

One token per transition: token_t = embed(o_t) + embed(a_{t-1}) + embed(r_{t-1}); a causal decoder with
rotary positions and sliding-window attention (transformers' own Phi-3 decoder stack, fed with
`inputs_embeds`) turns the tokens into logits for a_t, the source algorithm's next action.

Remote code: `save_pretrained` copies this file, `configuration_ad.py` and `constants.py` next to the
weights, so `AutoModel.from_pretrained(folder, trust_remote_code=True)` works where `hf_ad` is not
installed; the only project imports are relative (`.configuration_ad`, `.constants`). It also copies the
in-context RL pipeline's files (`constants.PIPELINE_CODE`) and names the pipeline in config.json
(`custom_pipelines`), for `transformers.pipeline("in-context-rl", model=folder, trust_remote_code=True)`.

Streaming: the attention of every layer sees the last `config.sliding_window` transitions, in training
and at test time alike, so a stream fed one transition at a time through the KV cache of
[`ADModel.new_cache`] (which keeps at most that many transitions per layer) gives the same logits as one
forward over the whole stream, in memory that does not grow with the number of episodes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Phi3Config, Phi3Model, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, DynamicSlidingWindowLayer
from transformers.utils import ModelOutput

from .attention import ATTENTION_NAME, FastDropout, sliding_window_bias
from .configuration_ad import ADConfig
from .constants import CUSTOM_PIPELINES, PIPELINE_CODE

IGNORE_INDEX = -100
INDEX_DTYPES = (torch.int64, torch.int32)
FRAME_HASH_MULTIPLIER = 0x9E3779B97F4A7C15 - 2**64  # 2^64 / golden ratio, as a signed int64


@dataclass
class ADOutput(ModelOutput):
    """Output of [`ADModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Cross-entropy of `labels` under `logits` (with the config's label smoothing), given `labels`.
        logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, num_actions)`):
            Unnormalised scores of the next action a_t at every transition.
        past_key_values (`Cache`, *optional*):
            The KV cache, updated with this call's transitions, when `use_cache` is on.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            With `output_attentions=True`: one tensor per layer, `(batch_size, num_heads, sequence_length,
            num_keys)`, the attention probabilities after the softmax; keys in time order (the cached
            transitions first, then this call's).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    past_key_values: Cache | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class RingBufferSlidingWindowLayer(DynamicSlidingWindowLayer):
    """One layer's KV cache holding the last `sliding_window` transitions in a preallocated ring buffer.

    The state at stream position p lives in slot `p % sliding_window`. A one-transition step writes one slot
    in place and attends over the whole buffer (at most `sliding_window` states, all of them inside the
    window, so their order does not matter to the single query), instead of copying the cache every step as
    transformers' `DynamicSlidingWindowLayer` does. Calls with several transitions (prompt prefill) attend in
    time order and then store the last `sliding_window` states. Meant for inference: the in-place writes
    do not support backpropagating through earlier steps.
    """

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        batch, heads = key_states.shape[:2]
        self.keys = key_states.new_zeros(batch, heads, self.sliding_window, key_states.shape[-1])
        self.values = value_states.new_zeros(batch, heads, self.sliding_window, value_states.shape[-1])
        self._sliding_window_tensor = self._sliding_window_tensor.to(self.device)
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        window, past, steps = self.sliding_window, self.cumulative_length, key_states.shape[-2]
        self.cumulative_length = past + steps
        if steps == 1:  # the streaming step: write one slot, no copy of the cache
            slot = past % window
            self.keys[:, :, slot : slot + 1].copy_(key_states)
            self.values[:, :, slot : slot + 1].copy_(value_states)
            if past + 1 >= window:
                return self.keys, self.values  # (B, H, window, d)
            return self.keys[:, :, : past + 1], self.values[:, :, : past + 1]  # (B, H, past + 1, d)
        past_keys, past_values = self._in_time_order(past)  # (B, H, min(past, window), d)
        full_keys = torch.cat((past_keys, key_states), dim=-2)  # (B, H, stored + T, d)
        full_values = torch.cat((past_values, value_states), dim=-2)
        keep = min(full_keys.shape[-2], window)
        slots = torch.arange(past + steps - keep, past + steps, device=self.device) % window
        self.keys.index_copy_(2, slots, full_keys[:, :, -keep:])
        self.values.index_copy_(2, slots, full_values[:, :, -keep:])
        return full_keys, full_values

    def _in_time_order(self, past: int) -> tuple[torch.Tensor, torch.Tensor]:
        if past < self.sliding_window:  # not wrapped yet: slot == position
            return self.keys[:, :, :past], self.values[:, :, :past]
        start = past % self.sliding_window  # slot of the oldest state
        keys = torch.cat((self.keys[:, :, start:], self.keys[:, :, :start]), dim=-2)
        values = torch.cat((self.values[:, :, start:], self.values[:, :, :start]), dim=-2)
        return keys, values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        """(kv_length, kv_offset) of the states `update` returns for `query_length` new transitions."""
        past, window = self.cumulative_length, self.sliding_window
        if query_length == 1 and past + 1 >= window:
            return window, past + 1 - window
        stored = min(past, window)
        return stored + query_length, past - stored

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError(
            "a ring-buffer cache cannot be cropped; start a new one with model.new_cache()"
        )


class SlidingWindowCache(DynamicCache):
    """KV cache of an [`ADModel`] stream batch: one [`RingBufferSlidingWindowLayer`] per decoder layer, so it
    never holds more than `sliding_window` transitions per layer, however long the stream."""

    def __init__(self, num_layers: int, sliding_window: int):
        Cache.__init__(self, layers=[RingBufferSlidingWindowLayer(sliding_window) for _ in range(num_layers)])
        self.stream_decoder: Phi3Model | None = None  # the decoder that `stream_step` last stepped
        self.stream_weights: StreamWeights | None = None  # its weights, gathered on that first step


class Norm(NamedTuple):
    """An RMSNorm's weight and epsilon, as `torch.rms_norm` takes them."""

    shape: tuple[int, ...]
    weight: nn.Parameter  # (D,)
    eps: float


class StreamLayer(NamedTuple):
    """One decoder layer's weights as `stream_step` reads them: gathered once per cache, not per step."""

    input_norm: Norm
    qkv: nn.Parameter  # (3D, D)
    output: nn.Parameter  # (D, D)
    post_attention_norm: Norm
    gate_up: nn.Parameter  # (2F, D)
    down: nn.Parameter  # (D, F)
    activation: Callable[[torch.Tensor], torch.Tensor]
    scaling: float


class StreamWeights(NamedTuple):
    """Everything `stream_step` reads of a decoder, by reference: in-place updates and `.to()` are seen."""

    layers: list[StreamLayer]
    final_norm: Norm
    heads: int
    inv_freq: torch.Tensor  # (d / 2,) float32: the rotary frequencies
    rotary_scaling: float
    # rotate_half(x) * sin == x.roll(d / 2) * (sin * signs) exactly: the sign moves from x's half onto sin
    signed_scaling: torch.Tensor  # (d,) float32: -scaling on the first half, +scaling on the second


def norm_of(module: nn.Module) -> Norm:
    return Norm(tuple(module.weight.shape), module.weight, module.variance_epsilon)


def stream_weights(decoder: Phi3Model) -> StreamWeights:
    """What `stream_step` reads of `decoder`: the parameters themselves, gathered once per cache."""
    layers = [
        StreamLayer(
            norm_of(layer.input_layernorm),
            layer.self_attn.qkv_proj.weight,
            layer.self_attn.o_proj.weight,
            norm_of(layer.post_attention_layernorm),
            layer.mlp.gate_up_proj.weight,
            layer.mlp.down_proj.weight,
            # nn.SiLU's forward is F.silu: the same numbers without a module call per step
            F.silu if type(layer.mlp.activation_fn) is nn.SiLU else layer.mlp.activation_fn,
            layer.self_attn.scaling,
        )
        for layer in decoder.layers
    ]
    inv_freq = decoder.rotary_emb.inv_freq  # (d / 2,)
    scaling = decoder.rotary_emb.attention_scaling
    signs = torch.ones(2, inv_freq.shape[0], device=inv_freq.device)  # (2, d / 2)
    signs[0] = -1.0
    return StreamWeights(
        layers,
        norm_of(decoder.norm),
        decoder.config.num_attention_heads,
        inv_freq,
        scaling,
        signs.flatten() * scaling,
    )


def stream_step(decoder: Phi3Model, tokens: torch.Tensor, cache: SlidingWindowCache) -> torch.Tensor:
    """One transition per stream through `decoder` in evaluation, `(B, 1, D)` tokens -> `(B, 1, D)` states.

    The decoder's own layers, weights and ring-buffer cache, without the machinery of a general forward
    (mask building, attention dispatch, output capture, module calls): with one transition per stream, that
    machinery cost more than the arithmetic. The single query attends to every state the cache returns (the
    last `sliding_window` transitions, itself included), so no mask is needed. The same operations on the
    same numbers as `decoder(inputs_embeds=tokens, past_key_values=cache)`, so the same logits bit for bit
    (tests/test_modeling_ad.py): sampled actions, and the shipped evaluations, do not change. The decoder's
    weights are gathered on the cache's first step (`stream_weights`) and kept with it: the parameters
    themselves, so changes in place reach later steps; a parameter replaced by a new one needs a new cache.
    """
    if cache.stream_decoder is not decoder:  # the cache's first step (or another model's cache)
        cache.stream_decoder, cache.stream_weights = decoder, stream_weights(decoder)
    weights = cache.stream_weights
    batch, heads = tokens.shape[0], weights.heads
    cos, signed_sin = rotary_cos_sin(weights, cache.layers[0].cumulative_length, tokens.dtype)  # (d,) each
    half = cos.shape[-1] // 2
    hidden = tokens.view(batch, -1)  # (B, D): 2-D operands spare the linear layers a reshape
    for layer, layer_cache in zip(weights.layers, cache.layers, strict=True):
        qkv = F.linear(torch.rms_norm(hidden, *layer.input_norm), layer.qkv)  # (B, 3D)
        qkv = qkv.view(batch, 3 * heads, 1, -1)  # (B, 3H, 1, d): queries, keys, values by head
        query_keys = qkv[:, : 2 * heads]  # (B, 2H, 1, d)
        rotated = query_keys * cos + query_keys.roll(half, dims=-1) * signed_sin  # (B, 2H, 1, d)
        keys, values = layer_cache.update(rotated[:, heads:], qkv[:, 2 * heads :])  # (B, H, S, d) each
        out = F.scaled_dot_product_attention(rotated[:, :heads], keys, values, scale=layer.scaling)
        hidden = hidden + F.linear(out.view(batch, -1), layer.output)  # (B, D)
        normed = torch.rms_norm(hidden, *layer.post_attention_norm)  # (B, D)
        gate, up = F.linear(normed, layer.gate_up).chunk(2, dim=-1)  # (B, F) each
        hidden = hidden + F.linear(up * layer.activation(gate), layer.down)  # (B, D)
    return torch.rms_norm(hidden, *weights.final_norm).view(batch, 1, -1)  # (B, 1, D)


def rotary_cos_sin(
    weights: StreamWeights, position: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(cos, signed_sin)`, `(d,)` each, of the decoder's default rotary embedding at `position` for
    states of `dtype`: `rotary(x, position_ids=[[position]])`'s numbers (the sine's first half negated, see
    `StreamWeights`) without the module call's wrappers, in five operations instead of thirteen."""
    freqs = weights.inv_freq * float(position)  # (d / 2,): the decoder's position x frequency products
    angles = torch.cat((freqs, freqs))  # (d,)
    cos = angles.cos() * weights.rotary_scaling
    return cos.to(dtype), (angles.sin() * weights.signed_scaling).to(dtype)


def decoder_config(config: ADConfig) -> Phi3Config:
    """The Phi-3 decoder config equivalent to `config`: rotary positions, sliding-window attention, dropout
    on the attention probabilities and on both residual branches of every layer."""
    # Note: the paper's GPT is post-norm with a GELU MLP; this decoder is pre-norm (RMSNorm) with a gated
    # SiLU MLP, which trains stably without warm-up tricks and is what transformers ships with a
    # sliding-window KV cache.
    return Phi3Config(
        vocab_size=1,  # token embedding unused (fed with inputs_embeds) and removed in ADModel
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        resid_pdrop=config.hidden_dropout,
        embd_pdrop=0.0,
        attention_dropout=config.attention_dropout,
        hidden_act="silu",
        max_position_embeddings=config.max_context,
        original_max_position_embeddings=config.max_context,
        initializer_range=config.initializer_range,
        rms_norm_eps=config.rms_norm_eps,
        use_cache=True,
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
        sliding_window=config.sliding_window,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        attn_implementation=decoder_attention(config._attn_implementation),
    )


def decoder_attention(attn_implementation: str) -> str:
    """The decoder's attention function: SDPA with the attention dropout of training done fast
    (`hf_ad.attention`) for "sdpa", any other choice ("eager", "flash_attention_2", ...) as it is."""
    return ATTENTION_NAME if attn_implementation == "sdpa" else attn_implementation


class CoordinateEmbedding(nn.Module):
    """Discrete and multi-discrete observations: the sum of one embedding per coordinate.

    A Dark Room position (x, y) becomes Emb_x(x) + Emb_y(y), never one table entry per cell: a per-cell
    table cannot generalise to goals whose cells it never saw, the per-coordinate sum does (measured on
    held-out goals). All coordinates share one table, each at its own offset.
    """

    def __init__(self, nvec: list[int], hidden_size: int):
        super().__init__()
        self.nvec_list = list(nvec)
        self.table = nn.Embedding(sum(self.nvec_list), hidden_size)
        self.offsets = nn.Buffer(self.expected_offsets(), persistent=False)  # (K,)
        self.nvec = nn.Buffer(torch.tensor(self.nvec_list), persistent=False)  # (K,)

    def expected_offsets(self) -> torch.Tensor:
        return torch.tensor([0, *self.nvec_list[:-1]]).cumsum(0)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if observations.ndim == 2:  # discrete: (B, T) -> (B, T, 1)
            observations = observations.unsqueeze(-1)
        return self.table(observations + self.offsets).sum(dim=-2)  # (B, T, K, D) -> (B, T, D)


class VectorEncoder(nn.Module):
    """Vector observations `(B, T, d)`: a two-layer MLP."""

    def __init__(self, dim: int, hidden_size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations.to(self.net[0].weight.dtype))  # (B, T, d) -> (B, T, D)


def distinct_frames(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`(distinct (U, ...), index (N,))` with `frames == distinct[index]` exactly, or None when no frame
    repeats. Frames are grouped by a hash of their bytes (int64 arithmetic, wrapping) and every frame is
    then compared with its group's first, so a hash collision cannot merge different frames: it only
    costs the saving (None)."""
    count = frames.shape[0]
    flat = frames.reshape(count, -1)  # (N, H*W*C) uint8
    flat = F.pad(flat, (0, -flat.shape[1] % 8)).contiguous()  # whole int64 words
    words = flat.view(torch.int64)  # (N, H*W*C / 8)
    multipliers = torch.arange(1, 2 * words.shape[1], 2, dtype=torch.int64, device=frames.device)  # odd
    hashes = (words * (multipliers * FRAME_HASH_MULTIPLIER)).sum(dim=1)  # (N,) wraps around
    keys, index = torch.unique(hashes, return_inverse=True)  # (U,), (N,)
    if len(keys) == count:
        return None
    first = torch.full((len(keys),), count, dtype=torch.int64, device=frames.device)
    first = first.scatter_reduce(0, index, torch.arange(count, device=frames.device), "amin")  # (U,)
    if not torch.equal(flat, flat[first[index]]):  # a hash collision: encode every frame
        return None
    return frames[first], index


class ImageEncoder(nn.Module):
    """Image observations `(B, T, H, W, C)`: a small convolutional encoder.

    uint8 images are scaled to [0, 1]; floating images are used as given. A batch of uint8 images encodes
    each distinct frame once (`distinct_frames`): an agent's views repeat a lot (Pixel Watermaze has 324
    poses, so a training batch of 32 x 400 frames holds at most 324 distinct ones), and the convolutions
    would otherwise cost more than the transformer. The result is the same up to float rounding.
    """

    # Note: the paper (Watermaze, 72x96x3) does not list its encoder's layers; this is three 3x3 stride-2
    # convolutions (32, 64, 64 channels) and a linear projection, which accepts images of any size.
    def __init__(self, shape: list[int], hidden_size: int):
        super().__init__()
        height, width, channels = shape
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        for _ in range(3):
            height, width = (height + 1) // 2, (width + 1) // 2
        self.proj = nn.Linear(64 * height * width, hidden_size)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """`(N, H, W, C)` frames -> `(N, D)` embeddings."""
        dtype = self.proj.weight.dtype
        images = frames.permute(0, 3, 1, 2)  # (N, C, H, W)
        images = images.to(dtype) / 255.0 if images.dtype == torch.uint8 else images.to(dtype)
        return self.proj(self.convs(images))  # (N, D)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        batch, steps = observations.shape[:2]
        frames = observations.flatten(0, 1)  # (B*T, H, W, C)
        distinct = distinct_frames(frames) if frames.dtype == torch.uint8 else None
        if distinct is None:
            return self.encode(frames).view(batch, steps, -1)  # (B, T, D)
        unique, index = distinct  # (U, H, W, C), (B*T,)
        return self.encode(unique)[index].view(batch, steps, -1)  # (U, D) -> (B, T, D)


def observation_encoder(config: ADConfig) -> nn.Module:
    if config.observation_type in ("discrete", "multi_discrete"):
        return CoordinateEmbedding(config.observation_nvec, config.hidden_size)
    if config.observation_type == "vector":
        return VectorEncoder(config.observation_shape[0], config.hidden_size)
    return ImageEncoder(config.observation_shape, config.hidden_size)


class ADPreTrainedModel(PreTrainedModel):
    config_class = ADConfig
    config: ADConfig
    base_model_prefix = "ad"
    main_input_name = "observations"
    _no_split_modules = ["Phi3DecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, CoordinateEmbedding):
            init.copy_(module.offsets, module.expected_offsets())
            init.copy_(module.nvec, torch.tensor(module.nvec_list))
        elif isinstance(module, ADModel) and module.mask_embedding is not None:
            init.normal_(module.mask_embedding, mean=0.0, std=self.config.initializer_range)


class ADModel(ADPreTrainedModel):
    """The Algorithm Distillation transformer: a stream of transitions in, next-action logits out.

    Example:

    ```python
    >>> import torch
    >>> from hf_ad import ADConfig, ADModel
    >>> model = ADModel(ADConfig()).eval()  # Dark Room: (x, y) observations, 5 actions
    >>> cache = model.new_cache()
    >>> obs, prev_action, prev_reward = torch.tensor([[[4, 4]]]), torch.tensor([[5]]), torch.zeros(1, 1)
    >>> out = model(obs, prev_action, prev_reward, past_key_values=cache)  # first step: "no previous action"
    >>> out.logits.shape
    torch.Size([1, 1, 5])
    ```
    """

    def __init__(self, config: ADConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.observation_encoder = observation_encoder(config)
        # Index num_actions = "no previous action": the first transition of a stream.
        self.action_embedding = nn.Embedding(config.num_actions + 1, hidden)
        self.reward_embedding = nn.Linear(1, hidden)
        # Created only when masking is on, so that training leaves no parameter unused (DDP refuses those).
        self.mask_embedding = nn.Parameter(torch.empty(hidden)) if config.token_mask_prob > 0 else None
        self.input_dropout = FastDropout(config.hidden_dropout)
        self.decoder = Phi3Model(decoder_config(config))
        for layer in self.decoder.layers:  # the same dropout, its mask drawn faster (hf_ad.attention)
            layer.resid_attn_dropout = FastDropout(config.hidden_dropout)
            layer.resid_mlp_dropout = FastDropout(config.hidden_dropout)
        # The decoder is driven by inputs_embeds: drop its token table (an unused parameter breaks DDP).
        self.decoder.embed_tokens = None
        self.action_head = nn.Linear(hidden, config.num_actions)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.action_embedding

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the in-context RL pipeline as remote code.

        The pipeline's files (`PIPELINE_CODE`, found next to this file: hf_ad's own) are copied into the
        folder and named in config.json's `custom_pipelines`, so `transformers.pipeline("in-context-rl",
        model=folder_or_repo, trust_remote_code=True)` runs where hf_ad is not installed. A remote copy of
        this file without them saves the model alone.
        """
        code = [Path(__file__).with_name(name) for name in PIPELINE_CODE]
        if not all(path.is_file() for path in code):
            return super().save_pretrained(save_directory, *args, **kwargs)
        os.makedirs(save_directory, exist_ok=True)
        for path in code:
            shutil.copyfile(path, Path(save_directory) / path.name)
        self.config.custom_pipelines = CUSTOM_PIPELINES  # for config.json only: a config loaded where
        try:  # hf_ad is installed drops it (see ADConfig.__post_init__), and so does the model in memory
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            del self.config.custom_pipelines

    def new_cache(self) -> SlidingWindowCache:
        """An empty KV cache for streaming; it holds at most `config.sliding_window` transitions per layer.

        The batch size, dtype and device are taken from the first forward call it is passed to; use one cache
        per batch of streams.
        """
        return SlidingWindowCache(self.config.num_hidden_layers, self.config.sliding_window)

    def embed_transitions(
        self, observations: torch.Tensor, prev_actions: torch.Tensor, prev_rewards: torch.Tensor
    ) -> torch.Tensor:
        """token_t = embed(o_t) + embed(a_{t-1}) + embed(r_{t-1}), shape `(B, T, hidden_size)`."""
        dtype = self.reward_embedding.weight.dtype
        rewards = (prev_rewards.to(dtype) * self.config.reward_scale).unsqueeze(-1)  # (B, T, 1)
        return (
            self.observation_encoder(observations)  # (B, T, D)
            + self.action_embedding(prev_actions)  # (B, T, D)
            + self.reward_embedding(rewards)  # (B, T, D)
        )

    def forward(
        self,
        observations: torch.Tensor,
        prev_actions: torch.LongTensor,
        prev_rewards: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
    ) -> ADOutput:
        r"""
        Predict the next action at every transition of a batch of streams.

        Args:
            observations (`torch.Tensor`):
                o_t. Discrete: `(B, T)` int64 in `[0, n)`; multi-discrete: `(B, T, K)` int64, coordinate k in
                `[0, observation_nvec[k])`; vector: `(B, T, d)` float; image: `(B, T, H, W, C)` uint8
                (scaled to [0, 1]) or float.
            prev_actions (`torch.LongTensor` of shape `(B, T)`):
                a_{t-1} in `[0, num_actions]`. The value `num_actions` means "no previous action" and belongs
                only to the first transition of a stream; the stream runs across episode resets, so the first
                step of episode k carries the last action and reward of episode k-1.
            prev_rewards (`torch.Tensor` of shape `(B, T)`):
                r_{t-1}, float; 0 at the start of a stream.
            attention_mask (`torch.Tensor` of shape `(B, T)`, *optional*):
                1 for real transitions, 0 for padding (transformers' convention). Right padding needs no mask:
                causal attention never looks ahead. Not accepted with a cache from [`ADModel.new_cache`].
            labels (`torch.LongTensor` of shape `(B, T)`, *optional*):
                a_t, the source's actions in `[0, num_actions)`; -100 is ignored by the loss.
            past_key_values (`Cache`, *optional*):
                A cache from [`ADModel.new_cache`] (or a previous output): the new transitions continue the
                streams it holds. Any `T` up to `max_context` works, so a prompt can be prefilled in one call.
            use_cache (`bool`, *optional*):
                Whether to return the updated cache. Defaults to `True` when `past_key_values` is given, else
                `False` (training). `use_cache=True` without a cache starts a new one.
            output_attentions (`bool`, *optional*):
                Also return every layer's attention probabilities (`ADOutput.attentions`). Needs a model
                loaded with `attn_implementation="eager"` (SDPA and flash attention never form them); the
                logits are the same.

        Returns:
            [`ADOutput`] with `logits` of shape `(B, T, num_actions)`, `loss` when `labels` are given, and
            `past_key_values` when `use_cache` is on.
        """
        if use_cache is None:
            use_cache = past_key_values is not None
        self._check_inputs(observations, prev_actions, prev_rewards, attention_mask, labels)
        if past_key_values is not None:
            if not use_cache:
                raise ValueError(
                    "use_cache=False contradicts past_key_values: the cache would be updated anyway"
                )
            self._check_cache(past_key_values, batch_size=prev_actions.shape[0])
            if attention_mask is not None and isinstance(past_key_values, SlidingWindowCache):
                raise ValueError(
                    "attention_mask is for padded training batches; streams fed through model.new_cache() "
                    "must not be padded (start shorter streams in a separate cache)"
                )
        elif use_cache:
            past_key_values = self.new_cache()
        if output_attentions and self.config._attn_implementation != "eager":
            raise ValueError(
                f"output_attentions needs the eager attention, got {self.config._attn_implementation!r}: "
                "load the model with from_pretrained(..., attn_implementation='eager')"
            )
        tokens = self.embed_transitions(observations, prev_actions, prev_rewards)  # (B, T, D)
        if self.training and self.mask_embedding is not None:
            keep = torch.rand(tokens.shape[:2], device=tokens.device) >= self.config.token_mask_prob  # (B, T)
            tokens = torch.where(keep.unsqueeze(-1), tokens, self.mask_embedding.to(tokens.dtype))
        tokens = self.input_dropout(tokens)
        attentions = None
        if self._streams_one_step(tokens, past_key_values, output_attentions):
            states = stream_step(self.decoder, tokens, past_key_values)  # (B, 1, D)
        else:
            decoded = self.decoder(
                inputs_embeds=tokens,
                attention_mask=self._decoder_mask(tokens, attention_mask, past_key_values),
                past_key_values=past_key_values,
                use_cache=use_cache,
                **({"output_attentions": True} if output_attentions else {}),
            )
            states, past_key_values = decoded.last_hidden_state, decoded.past_key_values  # (B, T, D)
            if output_attentions:
                attentions = decoded.attentions  # per layer (B, H, T, keys)
        logits = self.action_head(states)  # (B, T, A)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(),
                labels.flatten(),
                ignore_index=IGNORE_INDEX,
                label_smoothing=self.config.label_smoothing,
            )
        return ADOutput(loss=loss, logits=logits, past_key_values=past_key_values, attentions=attentions)

    def _decoder_mask(
        self, tokens: torch.Tensor, attention_mask: torch.Tensor | None, cache: Cache | None
    ) -> torch.Tensor | None:
        """The mask handed to the decoder: for unpadded, uncached sequences longer than the window on hf_ad's
        attention, one additive `(1, 1, T, T)` mask for all layers (`sliding_window_bias`); else the
        caller's `attention_mask`, from which transformers builds its own (None for plain causal ones)."""
        steps, window = tokens.shape[1], self.config.sliding_window
        if (
            attention_mask is None
            and cache is None
            and steps > window
            and self.decoder.config._attn_implementation == ATTENTION_NAME
        ):
            return sliding_window_bias(steps, window, tokens.dtype, tokens.device)
        return attention_mask

    def _streams_one_step(self, tokens: torch.Tensor, cache: Cache | None, output_attentions: bool) -> bool:
        """Whether this call is a streaming step that [`stream_step`] computes: one transition per stream into
        a cache of [`new_cache`], in evaluation, with SDPA (`decoder_config` rotates every head dimension)."""
        return (
            isinstance(cache, SlidingWindowCache)
            and tokens.shape[1] == 1
            and not self.training
            and not output_attentions
            and self.decoder.config._attn_implementation in (ATTENTION_NAME, "sdpa")
        )

    def _check_inputs(
        self,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor | None,
    ) -> None:
        """Raise a `ValueError` naming expected and got for inputs that do not fit the config."""
        config = self.config
        if prev_actions.ndim != 2:
            raise ValueError(f"prev_actions must have shape (B, T), got {tuple(prev_actions.shape)}")
        batch, steps = prev_actions.shape
        if not 1 <= steps <= config.max_context:
            raise ValueError(
                f"sequence length must be in [1, max_context={config.max_context}] transitions, got {steps}; "
                "feed longer streams in pieces through the KV cache"
            )
        expected = (batch, steps, *config.observation_shape)
        if tuple(observations.shape) != expected:
            raise ValueError(
                f"observations must have shape {expected} (B, T, *observation_shape) for "
                f"{config.observation_type!r} observations, got {tuple(observations.shape)}"
            )
        kind = config.observation_type
        if kind in ("discrete", "multi_discrete"):
            if observations.dtype not in INDEX_DTYPES:
                raise ValueError(f"{kind} observations must be int64, got dtype {observations.dtype}")
            nvec = self.observation_encoder.nvec
            if ((observations < 0) | (observations >= nvec)).any():
                bad = observations[(observations < 0) | (observations >= nvec)][0].item()
                raise ValueError(
                    f"observations out of range: got {bad}, expected coordinate k in "
                    f"[0, observation_nvec[k]) "
                    f"with observation_nvec={config.observation_nvec}"
                )
        elif not (
            observations.is_floating_point() or (kind == "image" and observations.dtype == torch.uint8)
        ):
            allowed = "float or uint8" if kind == "image" else "float"
            raise ValueError(f"{kind} observations must be {allowed}, got dtype {observations.dtype}")
        if prev_actions.dtype not in INDEX_DTYPES:
            raise ValueError(f"prev_actions must be int64, got dtype {prev_actions.dtype}")
        if ((prev_actions < 0) | (prev_actions > config.num_actions)).any():
            bad = prev_actions[(prev_actions < 0) | (prev_actions > config.num_actions)][0].item()
            raise ValueError(
                f"prev_actions out of range: got {bad}, expected [0, {config.num_actions}] "
                f"({config.num_actions} = no previous action)"
            )
        if tuple(prev_rewards.shape) != (batch, steps) or not prev_rewards.is_floating_point():
            raise ValueError(
                f"prev_rewards must be a float tensor of shape {(batch, steps)}, "
                f"got {prev_rewards.dtype} of shape {tuple(prev_rewards.shape)}"
            )
        if not torch.isfinite(prev_rewards).all():
            raise ValueError(
                "prev_rewards must be finite, got NaN or inf; check the rewards of the env or dataset "
                "(hf_ad.data.histories.validate_histories checks a dataset)"
            )
        if observations.is_floating_point() and not torch.isfinite(observations).all():
            raise ValueError(
                f"{kind} observations must be finite, got NaN or inf; check the observations of the env "
                "or dataset"
            )
        if attention_mask is not None and (attention_mask.ndim != 2 or attention_mask.shape[0] != batch):
            raise ValueError(
                f"attention_mask must have shape (B={batch}, past + T), got {tuple(attention_mask.shape)}"
            )
        if labels is not None:
            if tuple(labels.shape) != (batch, steps) or labels.dtype not in INDEX_DTYPES:
                raise ValueError(
                    f"labels must be an int64 tensor of shape {(batch, steps)}, "
                    f"got {labels.dtype} of shape {tuple(labels.shape)}"
                )
            invalid = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= config.num_actions))
            if invalid.any():
                raise ValueError(
                    f"labels out of range: got {labels[invalid][0].item()}, expected actions in "
                    f"[0, {config.num_actions}) or {IGNORE_INDEX} (ignored)"
                )

    def _check_cache(self, cache: Cache, batch_size: int) -> None:
        """Only a cache bounded by the window keeps memory constant, for the batch it began with."""
        window, layers = self.config.sliding_window, getattr(cache, "layers", [])
        bounded = len(layers) == self.config.num_hidden_layers and all(
            getattr(layer, "is_sliding", False) and 0 < layer.get_max_length() <= window for layer in layers
        )
        if not bounded:
            got = ", ".join(type(layer).__name__ for layer in layers) or "no layers yet"
            raise ValueError(
                f"past_key_values must keep at most sliding_window={window} transitions per layer in "
                f"{self.config.num_hidden_layers} layers, got {type(cache).__name__} ({got}); "
                "create it with model.new_cache()"
            )
        started = [layer.keys.shape[0] for layer in layers if getattr(layer, "is_initialized", False)]
        if started and started[0] != batch_size:
            raise ValueError(
                f"past_key_values holds {started[0]} streams, got a batch of {batch_size}; a cache serves "
                "the batch it started with: create one per batch with model.new_cache()"
            )


ADModel.register_for_auto_class("AutoModel")

__all__ = ["ADModel", "ADOutput", "ADPreTrainedModel", "SlidingWindowCache"]
