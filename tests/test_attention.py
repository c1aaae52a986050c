"""The fast dropout of training (hf_ad.attention): the same distribution and attention as PyTorch's."""

import pytest
import torch
from torch.nn import functional as F

from hf_ad.attention import (
    FastDropout,
    banded,
    banded_attention,
    dropout_attention,
    kept,
    sliding_window_bias,
)
from hf_ad.configuration_ad import ADConfig
from hf_ad.modeling_ad import ADModel

COUNT = 2**20


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_each_element_is_dropped_with_probability_p(p):
    torch.manual_seed(0)
    keep = kept((COUNT,), p)
    sigma = (p * (1 - p) / COUNT) ** 0.5
    assert abs((~keep).float().mean().item() - p) < 5 * sigma
    # Neighbours come from the same 64-bit word: they must still be independent.
    both = (~keep[:-1] & ~keep[1:]).float().mean().item()
    assert abs(both - p * p) < 5 * (p * p * (1 - p * p) / COUNT) ** 0.5


def test_masks_follow_torch_seed_and_edge_probabilities():
    torch.manual_seed(3)
    first = kept((7, 5, 3), 0.5)
    torch.manual_seed(3)
    assert torch.equal(kept((7, 5, 3), 0.5), first)
    assert not torch.equal(kept((7, 5, 3), 0.5), first)
    assert kept((1000,), 0.0).all()
    assert not kept((1000,), 1.0).any()


def test_fast_dropout_scales_what_it_keeps_and_is_identity_in_eval():
    torch.manual_seed(0)
    inputs = torch.rand(256, 1024) + 1.0
    dropout = FastDropout(0.25)
    out = dropout(inputs)
    zero = out == 0
    assert abs(zero.float().mean().item() - 0.25) < 0.01
    torch.testing.assert_close(out[~zero], inputs[~zero] / 0.75)
    assert torch.equal(dropout.eval()(inputs), inputs)
    assert torch.equal(FastDropout(0.0).train()(inputs), inputs)
    assert torch.equal(FastDropout(1.0).train()(inputs), torch.zeros_like(inputs))


def sliding_window_mask(batch: int, queries: int, window: int, padded: int) -> torch.Tensor:
    """(B, 1, T, T) bool: causal, at most `window` keys back; the first `padded` keys of stream 0 masked."""
    positions = torch.arange(queries)
    causal = (positions[None, :] <= positions[:, None]) & (positions[:, None] - positions[None, :] < window)
    mask = causal.expand(batch, 1, queries, queries).clone()
    mask[0, :, :, :padded] = False  # left padding: stream 0's first queries see no key at all
    return mask


def test_attention_without_drops_is_sdpa_and_with_drops_uses_the_seeded_mask():
    torch.manual_seed(0)
    batch, heads, steps, dim, p = 3, 2, 12, 8, 0.5
    query, key, value = (torch.randn(batch, heads, steps, dim) for _ in range(3))
    mask = sliding_window_mask(batch, steps, window=5, padded=0)
    module = torch.nn.Module()
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)  # (B, H, T, d)
    expected = expected.transpose(1, 2)  # (B, T, H, d), as the attention functions return it
    # A probability below 1/65536 rounds to "drop nothing", through the dropout path.
    output, weights = dropout_attention(module, query, key, value, mask, dropout=1e-9)
    assert weights is None
    torch.testing.assert_close(output, expected)
    sdpa, _ = dropout_attention(module, query, key, value, mask, dropout=0.0)
    torch.testing.assert_close(sdpa, expected)

    torch.manual_seed(7)
    output, _ = dropout_attention(module, query, key, value, mask, dropout=p)
    torch.manual_seed(7)
    keep = kept((batch, heads, steps, steps), p)
    scores = (query @ key.transpose(-1, -2) / dim**0.5).masked_fill(~mask, float("-inf"))
    reference = (scores.softmax(-1) * keep / (1 - p)) @ value  # (B, H, T, d)
    torch.testing.assert_close(output, reference.transpose(1, 2))


def test_attention_without_a_mask_is_causal_and_a_query_without_keys_gives_no_nan():
    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 2, 6, 4) for _ in range(3))
    module = torch.nn.Module()
    causal, _ = dropout_attention(module, query, key, value, None, dropout=1e-9)
    expected = F.scaled_dot_product_attention(query, key, value, is_causal=True).transpose(1, 2)
    torch.testing.assert_close(causal, expected)
    padded, _ = dropout_attention(module, query, key, value, sliding_window_mask(2, 6, 6, 3), dropout=0.5)
    assert torch.isfinite(padded).all()


def test_model_trains_through_the_fast_attention_and_matches_eager_without_dropout():
    torch.manual_seed(0)
    config = ADConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = ADModel(config)
    assert model.decoder.config._attn_implementation == "hf_ad_sdpa"
    observations = torch.randint(0, 9, (2, 200, 2))  # longer than the 80-transition window
    actions, rewards = torch.randint(0, 5, (2, 200)), torch.rand(2, 200)
    out = model.train()(observations, actions, rewards, labels=torch.randint(0, 5, (2, 200)))
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(
        parameter.grad is not None for parameter in model.parameters() if parameter.requires_grad
    )
    eager = ADModel(ADConfig(**config.to_diff_dict(), attn_implementation="eager"))
    eager.load_state_dict(model.state_dict())
    logits = model.eval()(observations, actions, rewards).logits
    torch.testing.assert_close(logits, eager.eval()(observations, actions, rewards).logits)


def test_off_the_cpu_sdpa_drops_out_itself(monkeypatch):
    """On an accelerator the attention dropout is SDPA's own (its fused kernels); it must not be lost."""
    from hf_ad import attention

    seen = []
    monkeypatch.setattr(
        attention, "sdpa_attention_forward", lambda *args, **kwargs: (seen.append(kwargs), None)
    )
    query = torch.empty(1, 2, 4, 8, device="meta")
    dropout_attention(torch.nn.Module(), query, query, query, None, dropout=0.5, scaling=0.3)
    assert seen[0]["dropout"] == 0.5 and seen[0]["scaling"] == 0.3


@pytest.mark.parametrize(("steps", "window"), [(10, 5), (13, 5), (24, 6), (7, 1)])
def test_banded_attention_equals_the_dense_masked_attention_and_its_gradients(steps, window):
    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 3, steps, 4, requires_grad=True) for _ in range(3))
    mask = sliding_window_mask(2, steps, window, padded=0)
    mask[1, :, :, 2] = False  # a padded key inside the window of the second stream

    def attend(query, key, value, mask):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask).transpose(1, 2)

    dense = attend(query, key, value, mask)  # (B, T, H, d)
    dense_grads = torch.autograd.grad(dense.square().sum(), (query, key, value))
    blocked = banded_attention(attend, query, key, value, mask, window)
    torch.testing.assert_close(blocked, dense)
    blocked_grads = torch.autograd.grad(blocked.square().sum(), (query, key, value))
    for got, expected in zip(blocked_grads, dense_grads, strict=True):
        torch.testing.assert_close(got, expected)


def test_attention_is_banded_only_for_a_masked_uncached_sequence_of_twice_the_window():
    query, mask = torch.zeros(1, 1, 10, 4), torch.ones(1, 1, 10, 10, dtype=torch.bool)
    assert banded(query, query, mask, 5)
    assert not banded(query, query, mask, 6)  # shorter than twice the window: dense
    assert not banded(query, query, mask, None)  # no sliding window
    assert not banded(query, query, None, 5)  # no mask: plain causal
    assert not banded(query[:, :, :1], query, mask[:, :, :1], 5)  # one query over a cache


@pytest.mark.parametrize("dropout", [0.0, 1e-9])
def test_dropout_attention_over_a_sliding_window_is_banded_with_the_same_output(dropout):
    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 2, 30, 8) for _ in range(3))
    mask = sliding_window_mask(2, 30, 7, padded=0)
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask).transpose(1, 2)
    output, _ = dropout_attention(torch.nn.Module(), query, key, value, mask, dropout, sliding_window=7)
    torch.testing.assert_close(output, expected)


def test_sliding_window_bias_is_zero_exactly_where_the_sliding_window_attends():
    bias = sliding_window_bias(9, 4, torch.float32, torch.device("cpu"))
    assert bias.shape == (1, 1, 9, 9)
    assert torch.equal(bias == 0, sliding_window_mask(1, 9, 4, padded=0))
    assert torch.isneginf(bias[bias != 0]).all()


@pytest.mark.parametrize("attention_dropout", [0.0, 0.5])
def test_training_with_one_additive_mask_equals_transformers_mask(monkeypatch, attention_dropout):
    """The model hands the decoder `sliding_window_bias` for long unpadded sequences: the same loss and
    gradients as transformers' own (B, 1, T, T) bool mask, dropout masks drawn alike."""
    config = ADConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        sliding_window=20, max_context=60, attention_dropout=attention_dropout,
    )  # fmt: skip
    torch.manual_seed(0)
    model = ADModel(config).train()
    observations = torch.randint(0, 9, (3, 60, 2))
    actions, rewards = torch.randint(0, 5, (3, 60)), torch.rand(3, 60)

    def loss_and_grads():
        torch.manual_seed(1)
        loss = model(observations, actions, rewards, labels=actions).loss
        return loss, torch.autograd.grad(loss, list(model.parameters()))

    loss, grads = loss_and_grads()
    monkeypatch.setattr(ADModel, "_decoder_mask", lambda self, tokens, mask, cache: mask)
    expected_loss, expected_grads = loss_and_grads()
    torch.testing.assert_close(loss, expected_loss)
    for got, expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, expected)
