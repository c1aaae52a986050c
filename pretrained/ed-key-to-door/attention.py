"""Dropout at training speed: the decoder's attention function and dropout layers.

The paper trains with dropout 0.5 on the attention probabilities and 0.1 on the residual branches. PyTorch
draws a dropout mask one float per element (`bernoulli_`); on a CPU that sampling took a quarter of an
AD training step, and SDPA with `dropout_p > 0` leaves its fused kernel for the unfused math path. Here a
mask costs 16 random bits per element, drawn as 64-bit words (30x fewer calls to the generator), and the
attention with dropout is written out in a few large operations:

- [`kept`]: the mask; each element is dropped independently with probability `p` rounded to 1/65536;
- [`FastDropout`]: `nn.Dropout` with that mask (same `p`, same scaling by `1 / (1 - p)` of what is kept);
- [`dropout_attention`]: transformers' `sdpa_attention_forward` whenever no dropout applies (evaluation,
  streaming, or `attention_dropout=0`) or the tensors are not on the CPU, else softmax attention whose
  probabilities are masked with [`kept`]; registered with transformers' attention and mask interfaces
  as `ATTENTION_NAME`.

Both keep the distribution of the original: a kept element is scaled by `1 / (1 - p)`, a dropped one is 0.

A sliding window leaves most of a long sequence's (T, T) scores masked (a training segment is twice the
window: 5/8 of them), and neither SDPA's CPU kernel nor the dropout path skips masked blocks. On the CPU,
a sequence of at least twice the window is attended in blocks of `window / 2` queries, each over the keys
its window reaches ([`banded_attention`]): 9/16 of the dense work at twice the window, the same result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION_NAME = "hf_ad_sdpa"  # SDPA in evaluation, the fast-dropout attention in training
MASK_BITS = 16


def kept(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A bool tensor of `shape`, False where an element is dropped: independently, with probability `p`
    rounded to a multiple of 1/65536 (16 random bits per element, drawn 64 at a time from torch's
    generator, so `torch.manual_seed` fixes it)."""
    if p >= 1.0:  # a threshold of 2^15 would not fit the 16 bits
        return torch.zeros(shape, dtype=torch.bool, device=device)
    count = math.prod(shape)
    words = torch.empty(-(-count // 4), dtype=torch.int64, device=device).random_(-(2**63), None)
    bits = words.view(torch.int16)[:count].view(shape)  # uniform in [-2^15, 2^15)
    return bits >= round(p * 2**MASK_BITS) - 2 ** (MASK_BITS - 1)


class FastDropout(nn.Dropout):
    """`nn.Dropout` whose mask comes from [`kept`]: the same `p` and scaling, several times faster on CPU."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        if self.p == 1.0:
            return inputs * 0.0
        # One product with the scaled mask (0 or 1 / (1 - p)): faster than masked_fill on CPU, and its
        # backward is one product too.
        return inputs * (kept(inputs.shape, self.p, inputs.device) * (1.0 / (1.0 - self.p)))


def dropout_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Softmax attention with dropout on its probabilities; `sdpa_attention_forward` when `dropout` is 0 or
    the tensors live on an accelerator; on the CPU in query blocks ([`banded_attention`]) when a sliding
    window masks most of the scores.

    `query` is `(B, H, T, d)`, `key` and `value` `(B, H, S, d)` (as many heads: the AD decoder has no grouped
    heads), `attention_mask` a bool `(B, 1, T, S)` from transformers' SDPA mask (True = attend) or None (plain
    causal), `sliding_window` the keys each query reaches (transformers passes the config's). Returns the
    output as `(B, T, H, d)` and no weights, as SDPA does.
    """
    if dropout == 0.0 or query.device.type != "cpu":  # on a GPU, SDPA's fused kernels drop out themselves

        def attend(query, key, value, mask):
            output, _ = sdpa_attention_forward(
                module, query, key, value, mask, dropout=dropout, scaling=scaling, **kwargs
            )
            return output

    else:

        def attend(query, key, value, mask):
            return softmax_dropout_attention(query, key, value, mask, dropout, scaling)

    if query.device.type == "cpu" and banded(query, key, attention_mask, sliding_window):
        return banded_attention(attend, query, key, value, attention_mask, sliding_window), None
    return attend(query, key, value, attention_mask), None


def banded(
    query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None, sliding_window: int | None
) -> bool:
    """Whether [`banded_attention`] applies and pays: queries and keys are the same positions (no cache), a
    mask confines them to a sliding window, and the sequence is at least twice that window."""
    steps = query.shape[-2]
    return (
        sliding_window is not None
        and attention_mask is not None
        and key.shape[-2] == steps
        and steps >= 2 * sliding_window
    )


def banded_attention(
    attend: Callable[..., torch.Tensor],
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor,
    window: int,
) -> torch.Tensor:
    """`attend(query, key, value, attention_mask)` computed in blocks of `ceil(window / 2)` queries, each over
    the keys from `window - 1` before its first query to its last: the same output wherever the mask allows
    no key outside the window (transformers' sliding-window mask: query t sees keys t - window < s <= t).

    `query`, `key`, `value` are `(B, H, T, d)` at the same T positions, `attention_mask` `(B or 1, 1, T, T)`
    (bool, or additive as [`sliding_window_bias`]); `attend` returns `(B, t, H, d)` for a block of t queries.
    Returns `(B, T, H, d)`.
    """
    steps, block = query.shape[-2], -(-window // 2)
    outputs = []
    for start in range(0, steps, block):
        stop = min(start + block, steps)
        first = max(0, start - window + 1)  # the first key the block's first query reaches
        outputs.append(
            attend(
                query[:, :, start:stop],  # (B, H, t, d)
                key[:, :, first:stop],  # (B, H, s, d)
                value[:, :, first:stop],  # (B, H, s, d)
                attention_mask[..., start:stop, first:stop],  # (B or 1, 1, t, s)
            )
        )
    return torch.cat(outputs, dim=1)  # (B, T, H, d)


def softmax_dropout_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scaling: float | None,
) -> torch.Tensor:
    """Softmax attention whose probabilities are dropped out with [`kept`]; shapes as [`dropout_attention`]'s
    (a None mask is causal, the last query at the last key). Returns `(B, T, H, d)`."""
    queries, keys = query.shape[-2], key.shape[-2]
    if attention_mask is None:  # causal, the last query at the last key
        attention_mask = torch.ones(queries, keys, dtype=torch.bool, device=query.device).tril(keys - queries)
    if attention_mask.dtype == torch.bool:
        # Added to the scores: 0 where a query attends, else the smallest finite value (as transformers' eager
        # attention: a query with no key gets uniform weights rather than NaN).
        bias = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device)  # (B or 1, 1, T, S)
        bias = bias.masked_fill_(~attention_mask, torch.finfo(query.dtype).min)
    else:  # already additive ([`sliding_window_bias`])
        bias = attention_mask
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scale).add_(bias)  # (B, H, T, S)
    probabilities = torch.softmax(scores.float(), dim=-1).to(query.dtype)  # (B, H, T, S), summed in float32
    probabilities = probabilities * kept(probabilities.shape, dropout, query.device)  # (B, H, T, S)
    output = torch.matmul(probabilities, value) * (1.0 / (1.0 - dropout))  # (B, H, T, d)
    return output.transpose(1, 2).contiguous()  # (B, T, H, d)


def sliding_window_bias(steps: int, window: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The additive `(1, 1, T, T)` mask of causal attention over `window` keys (transformers' sliding window:
    query t sees keys t - window < s <= t): 0 where a query attends, -inf elsewhere.

    One such mask serves every layer and every stream of a batch; transformers' own is a `(B, 1, T, T)` bool
    that SDPA converts to this form again in every layer.
    """
    positions = torch.arange(steps, device=device)
    behind = positions[:, None] - positions[None, :]  # (T, T): how far key s lies behind query t
    bias = torch.zeros(steps, steps, dtype=dtype, device=device)
    return bias.masked_fill_((behind < 0) | (behind >= window), float("-inf"))[None, None]  # (1, 1, T, T)


AttentionInterface.register(ATTENTION_NAME, dropout_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
