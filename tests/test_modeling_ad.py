import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, DynamicCache

from hf_ad import ADConfig, ADModel, ADOutput, constants, modeling_ad
from hf_ad.modeling_ad import SlidingWindowCache, distinct_frames

WINDOW = 4
TINY = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "sliding_window": WINDOW,
    "max_context": 32,
}
OBSERVATION_SPECS = {
    "discrete": {"observation_type": "discrete", "observation_nvec": [6]},
    "multi_discrete": {"observation_type": "multi_discrete", "observation_nvec": [3, 7]},
    "vector": {"observation_type": "vector", "observation_nvec": None, "observation_shape": [3]},
    "image": {"observation_type": "image", "observation_nvec": None, "observation_shape": [9, 7, 3]},
}


def tiny_model(kind: str = "multi_discrete", **overrides) -> ADModel:
    torch.manual_seed(0)
    return ADModel(ADConfig(**{**TINY, **OBSERVATION_SPECS[kind], **overrides})).eval()


def random_stream(config: ADConfig, batch: int, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of streams that start with "no previous action", as the rollout feeds them."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, steps, *config.observation_shape)
    if config.observation_type in ("discrete", "multi_discrete"):
        nvec = torch.tensor(config.observation_nvec)
        observations = (torch.rand(shape, generator=generator) * nvec).long()
    elif config.observation_type == "image":
        observations = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    else:
        observations = torch.randn(shape, generator=generator)
    actions = torch.randint(0, config.num_actions, (batch, steps), generator=generator)
    prev_actions = torch.cat([torch.full((batch, 1), config.num_actions), actions[:, :-1]], dim=1)
    rewards = torch.rand((batch, steps), generator=generator).round()
    prev_rewards = torch.cat([torch.zeros(batch, 1), rewards[:, :-1]], dim=1)
    return {
        "observations": observations,
        "prev_actions": prev_actions,
        "prev_rewards": prev_rewards,
        "labels": actions,
    }


def inputs(
    stream: dict[str, torch.Tensor], start: int = 0, stop: int | None = None
) -> dict[str, torch.Tensor]:
    keys = ("observations", "prev_actions", "prev_rewards")
    return {key: stream[key][:, start:stop] for key in keys}


def test_forward_signature_is_the_contract():
    names = list(inspect.signature(ADModel.forward).parameters)
    assert names == [
        "self",
        "observations",
        "prev_actions",
        "prev_rewards",
        "attention_mask",
        "labels",
        "past_key_values",
        "use_cache",
        "output_attentions",
    ]


@pytest.mark.parametrize("kind", list(OBSERVATION_SPECS))
def test_shapes_for_every_observation_kind(kind):
    model = tiny_model(kind)
    stream = random_stream(model.config, batch=3, steps=10)
    output = model(**stream)
    assert isinstance(output, ADOutput)
    assert output.logits.shape == (3, 10, model.config.num_actions)
    assert output.loss.shape == () and torch.isfinite(output.loss)
    assert output.past_key_values is None


def test_float_images_are_accepted():
    model = tiny_model("image")
    stream = inputs(random_stream(model.config, batch=2, steps=3))
    scaled = model(**stream).logits
    stream["observations"] = stream["observations"].float() / 255.0
    torch.testing.assert_close(model(**stream).logits, scaled)


@pytest.mark.parametrize("token_mask_prob", [0.0, 0.5])
def test_no_token_table_and_every_parameter_trains(token_mask_prob):
    model = tiny_model(token_mask_prob=token_mask_prob).train()
    assert not any("embed_tokens" in name for name in model.state_dict())
    model(**random_stream(model.config, batch=4, steps=12)).loss.backward()
    unused = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert unused == []


def stream_step_by_step(model: ADModel, stream: dict, cache, sizes=None) -> torch.Tensor:
    steps = stream["prev_actions"].shape[1]
    sizes = sizes or [1] * steps
    logits, start = [], 0
    for size in sizes:
        output = model(**inputs(stream, start, start + size), past_key_values=cache)
        assert output.past_key_values is cache
        for layer in cache.layers:
            assert layer.keys.shape[-2] <= model.config.sliding_window
            assert layer.values.shape[-2] <= model.config.sliding_window
        logits.append(output.logits)
        start += size
    assert start == steps
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize(
    ("kind", "batch"),
    [("multi_discrete", 3), ("vector", 3), ("multi_discrete", 12)],
)
@torch.no_grad()
def test_streaming_matches_the_full_forward(kind, batch):
    model = tiny_model(kind)
    stream = random_stream(model.config, batch=batch, steps=5 * WINDOW + 1)
    full = model(**inputs(stream)).logits
    streamed = stream_step_by_step(model, stream, model.new_cache())
    assert (streamed - full).abs().max() <= 1e-5


@torch.no_grad()
def test_one_transition_steps_take_the_lean_path_and_others_the_decoders(monkeypatch):
    """The streaming tests above compare it with the full forward; this checks they exercise it."""
    calls, lean_step = [], modeling_ad.stream_step

    def counted(decoder, tokens, cache):
        calls.append(tokens.shape[1])
        return lean_step(decoder, tokens, cache)

    monkeypatch.setattr(modeling_ad, "stream_step", counted)
    model = tiny_model()
    stream = random_stream(model.config, batch=2, steps=12)
    stream_step_by_step(model, stream, model.new_cache(), sizes=[4, 1, 1, 3, 1, 2])
    assert calls == [1, 1, 1]  # the prefill pieces go through the decoder
    stream_step_by_step(tiny_model(attn_implementation="eager"), stream, model.new_cache())
    stream_step_by_step(model, stream, DynamicCache(config=model.decoder.config))
    assert calls == [1, 1, 1]  # eager attention and transformers' own caches too


@torch.no_grad()
def test_the_lean_step_gives_the_decoders_logits_bit_for_bit(monkeypatch):
    """Bit for bit, not only within rounding: sampled actions, so the shipped evaluations, stay the same."""
    model = tiny_model()
    stream = random_stream(model.config, batch=5, steps=3 * WINDOW)
    lean = stream_step_by_step(model, stream, model.new_cache())
    monkeypatch.setattr(ADModel, "_streams_one_step", lambda *args: False)
    assert torch.equal(stream_step_by_step(model, stream, model.new_cache()), lean)


@torch.no_grad()
def test_the_lean_step_follows_the_models_weights(monkeypatch):
    """The layers' weights gathered on a cache's first step are the model's parameters: a change in place
    (an optimizer step) reaches the next step, as it reaches the decoder; another model's steps gather its
    own."""
    model = tiny_model()
    stream = random_stream(model.config, batch=2, steps=6)
    lean_cache, decoder_cache = model.new_cache(), model.new_cache()

    def step_both(position: int, stepping: ADModel = model) -> None:  # the lean step and the decoder's
        step = inputs(stream, position, position + 1)
        lean = stepping(**step, past_key_values=lean_cache).logits
        with monkeypatch.context() as patch:
            patch.setattr(ADModel, "_streams_one_step", lambda *args: False)
            decoder = stepping(**step, past_key_values=decoder_cache).logits
        assert torch.equal(lean, decoder), position

    for position in range(3):
        step_both(position)
    attention = model.decoder.layers[0].self_attn
    attention.o_proj.weight.mul_(2.0)  # in place, as an optimizer does
    model.decoder.layers[-1].mlp.down_proj.weight.mul_(-1.0)
    step_both(3)
    other = tiny_model()
    other.load_state_dict(model.state_dict())
    other.decoder.layers[1].mlp.gate_up_proj.weight.mul_(0.5)
    step_both(4, other)


@torch.no_grad()
def test_the_lean_steps_rotary_angles_are_the_decoders():
    """Exact at every position, the far ones too (a stream of 1000 Dark Room episodes reaches 20,000)."""
    decoder = tiny_model().decoder
    weights, rotary = modeling_ad.stream_weights(decoder), decoder.rotary_emb
    states = torch.zeros(1, 1, 1, decoder.config.hidden_size // decoder.config.num_attention_heads)
    for position in [*range(300), 4_099, 20_000, 65_537, 1_000_003, 16_777_215]:
        cos, sin = rotary(states, torch.tensor([[position]]))  # (1, 1, d) each
        half = sin.shape[-1] // 2
        signed_sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
        lean_cos, lean_signed_sin = modeling_ad.rotary_cos_sin(weights, position, torch.float32)
        assert torch.equal(lean_cos, cos.flatten()) and torch.equal(lean_signed_sin, signed_sin.flatten())


@torch.no_grad()
def test_torch_compile_traces_the_streaming_step_and_the_full_forward():
    """`torch.compile(model)` runs both paths with the same numbers (dynamo's `eager` backend: no C++
    compiler needed); the streaming step used to break it by reading a field of a bare `ModelOutput`."""
    model = tiny_model()
    stream = random_stream(model.config, batch=2, steps=2 * WINDOW)
    compiled = torch.compile(model, backend="eager")
    streamed = stream_step_by_step(model, stream, model.new_cache())
    assert torch.equal(stream_step_by_step(compiled, stream, model.new_cache()), streamed)
    full = model(**inputs(stream), labels=stream["labels"])
    compiled_full = compiled(**inputs(stream), labels=stream["labels"])
    assert torch.equal(compiled_full.logits, full.logits) and torch.equal(compiled_full.loss, full.loss)


@torch.no_grad()
def test_prefill_in_pieces_matches_the_full_forward():
    model = tiny_model()
    stream = random_stream(model.config, batch=2, steps=27)
    full = model(**inputs(stream)).logits
    streamed = stream_step_by_step(model, stream, model.new_cache(), sizes=[6, 1, 1, 9, 1, 3, 2, 1, 3])
    assert (streamed - full).abs().max() <= 1e-5


@torch.no_grad()
def test_cache_holds_at_most_the_window():
    model = tiny_model()
    stream = random_stream(model.config, batch=2, steps=4 * WINDOW)
    cache = model.new_cache()
    assert isinstance(cache, SlidingWindowCache)
    stream_step_by_step(model, stream, cache)
    assert cache.get_seq_length() == 4 * WINDOW  # positions keep counting ...
    assert all(layer.keys.shape == (2, 2, WINDOW, 8) for layer in cache.layers)  # ... memory does not


@torch.no_grad()
def test_use_cache_without_a_cache_starts_a_bounded_one():
    model = tiny_model()
    stream = random_stream(model.config, batch=1, steps=10)
    output = model(**inputs(stream), use_cache=True)
    assert isinstance(output.past_key_values, SlidingWindowCache)
    assert output.past_key_values.get_seq_length() == 10


@torch.no_grad()
def test_transformers_sliding_cache_is_accepted_and_agrees():
    model = tiny_model()
    stream = random_stream(model.config, batch=2, steps=3 * WINDOW)
    full = model(**inputs(stream)).logits
    streamed = stream_step_by_step(model, stream, DynamicCache(config=model.decoder.config))
    assert (streamed - full).abs().max() <= 1e-5


def test_an_unbounded_cache_is_refused():
    model = tiny_model()
    stream = random_stream(model.config, batch=1, steps=2)
    with pytest.raises(ValueError, match="at most sliding_window=4 transitions per layer"):
        model(**inputs(stream), past_key_values=DynamicCache())


@torch.no_grad()
def test_the_full_forward_attends_only_within_the_window():
    model = tiny_model()
    wide = ADModel(ADConfig(**{**model.config.to_dict(), "sliding_window": 32})).eval()
    wide.load_state_dict(model.state_dict())
    stream = inputs(random_stream(model.config, batch=2, steps=3 * WINDOW))
    narrow_logits, wide_logits = model(**stream).logits, wide(**stream).logits
    torch.testing.assert_close(narrow_logits[:, :WINDOW], wide_logits[:, :WINDOW])
    assert (narrow_logits[:, WINDOW:] - wide_logits[:, WINDOW:]).abs().amax(dim=-1).min() > 1e-4


def test_save_load_round_trip_is_exact(tmp_path):
    model = tiny_model(env_id="hf_ad/DarkRoom-v0", train_tasks=[[0, 1]], test_tasks=[[2, 3]])
    model.save_pretrained(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["config.json", "model.safetensors", *constants.REMOTE_CODE]
    )
    assert (
        json.loads((tmp_path / "config.json").read_text())["custom_pipelines"] == constants.CUSTOM_PIPELINES
    )
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is ADModel
    assert loaded.config.to_diff_dict() | {"_name_or_path": ""} == model.config.to_diff_dict() | {
        "_name_or_path": ""
    }
    expected, got = model.state_dict(), loaded.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=0, rtol=0)
    stream = inputs(random_stream(model.config, batch=2, steps=9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(**stream).logits, model(**stream).logits, atol=0, rtol=0)


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockHfAd(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_ad" or name.startswith("hf_ad."):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, BlockHfAd())
    try:
        import hf_ad
    except ImportError:
        pass
    else:
        raise SystemExit("hf_ad was importable")

    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained("checkpoint", trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    stream = torch.load("stream.pt")
    with torch.no_grad():
        logits = model(**stream).logits
    torch.testing.assert_close(logits, torch.load("logits.pt"), atol=0, rtol=0)
    print("remote code ok:", type(model).__name__)
    """
)


def test_remote_code_loads_where_hf_ad_cannot_be_imported(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "checkpoint")
    stream = inputs(random_stream(model.config, batch=2, steps=6))
    torch.save(stream, tmp_path / "stream.pt")
    with torch.no_grad():
        torch.save(model(**stream).logits, tmp_path / "logits.pt")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-I", "-c", REMOTE_CODE_SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote code ok: ADModel" in result.stdout


def test_token_masking_replaces_whole_tokens_in_training_only():
    model = tiny_model(token_mask_prob=0.5, hidden_dropout=0.0, attention_dropout=0.0)
    captured = []
    model.decoder.register_forward_pre_hook(
        lambda module, args, kwargs: captured.append(kwargs["inputs_embeds"]), with_kwargs=True
    )
    stream = inputs(random_stream(model.config, batch=8, steps=32))
    model.train()
    model(**stream)
    model.eval()
    model(**stream)
    masked = (captured[0] == model.mask_embedding).all(dim=-1)  # (B, T)
    assert 0.35 < masked.float().mean() < 0.65
    unmasked_tokens = model.embed_transitions(**stream)
    torch.testing.assert_close(captured[0][~masked], unmasked_tokens[~masked])
    torch.testing.assert_close(captured[1], unmasked_tokens)  # eval: nothing masked


def test_masking_changes_the_loss_and_is_the_only_train_eval_difference_without_dropout():
    stream = random_stream(ADConfig(**TINY, **OBSERVATION_SPECS["multi_discrete"]), batch=4, steps=16)
    no_mask = tiny_model(token_mask_prob=0.0, hidden_dropout=0.0, attention_dropout=0.0)
    torch.testing.assert_close(no_mask.train()(**stream).loss, no_mask.eval()(**stream).loss)
    masked = tiny_model(token_mask_prob=0.5, hidden_dropout=0.0, attention_dropout=0.0)
    eval_loss = masked.eval()(**stream).loss
    torch.testing.assert_close(eval_loss, no_mask.eval()(**stream).loss)
    assert not torch.isclose(masked.train()(**stream).loss, eval_loss)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_loss_is_cross_entropy_with_label_smoothing_ignoring_minus_100(smoothing):
    model = tiny_model(label_smoothing=smoothing)
    stream = random_stream(model.config, batch=2, steps=8)
    stream["labels"][:, :3] = -100
    output = model(**stream)
    logits, labels = output.logits[:, 3:].reshape(-1, 5), stream["labels"][:, 3:].reshape(-1)
    log_probs = logits.log_softmax(-1)
    nll = -log_probs.gather(1, labels[:, None]).squeeze(1)
    expected = ((1 - smoothing) * nll - smoothing * log_probs.mean(-1)).mean()
    torch.testing.assert_close(output.loss, expected)
    if smoothing:
        assert not torch.isclose(output.loss, F.cross_entropy(logits, labels))


def bad_input_cases():
    config = ADConfig(**TINY, **OBSERVATION_SPECS["multi_discrete"])
    good = random_stream(config, batch=2, steps=5)
    cases = {
        "observation shape": (
            {"observations": good["observations"][..., :1]},
            r"shape \(2, 5, 2\).*got \(2, 5, 1\)",
        ),
        "observation dtype": (
            {"observations": good["observations"].float()},
            "must be int64, got dtype torch.float32",
        ),
        "observation range": ({"observations": good["observations"] + 7}, r"out of range: got \d+.*\[3, 7\]"),
        "negative action": (
            {"prev_actions": good["prev_actions"] - 10},
            r"prev_actions out of range: got -\d+",
        ),
        "action too large": ({"prev_actions": torch.full((2, 5), 6)}, r"got 6, expected \[0, 5\]"),
        "action shape": ({"prev_actions": good["prev_actions"][0]}, r"prev_actions must have shape \(B, T\)"),
        "action dtype": ({"prev_actions": good["prev_actions"].float()}, "prev_actions must be int64"),
        "reward dtype": (
            {"prev_rewards": good["prev_rewards"].long()},
            "prev_rewards must be a float tensor",
        ),
        "reward shape": ({"prev_rewards": good["prev_rewards"][:, :4]}, r"shape \(2, 5\), got .* \(2, 4\)"),
        "label range": ({"labels": torch.full((2, 5), 5)}, r"labels out of range: got 5"),
        "NaN reward": (
            {"prev_rewards": good["prev_rewards"].index_fill(1, torch.tensor([2]), float("nan"))},
            "prev_rewards must be finite, got NaN or inf",
        ),
        "inf reward": (
            {"prev_rewards": good["prev_rewards"].index_fill(1, torch.tensor([0]), float("inf"))},
            "prev_rewards must be finite",
        ),
        "attention mask": ({"attention_mask": torch.ones(3, 5)}, r"attention_mask must have shape \(B=2"),
    }
    for name, (change, message) in cases.items():
        yield pytest.param({**good, **change}, message, id=name)


@pytest.mark.parametrize(("stream", "message"), list(bad_input_cases()))
def test_bad_inputs_raise_naming_expected_and_got(stream, message):
    with pytest.raises(ValueError, match=message):
        tiny_model()(**stream)


def test_too_long_a_sequence_is_refused():
    model = tiny_model()
    stream = random_stream(model.config, batch=1, steps=33)
    with pytest.raises(ValueError, match=r"\[1, max_context=32\] transitions, got 33"):
        model(**stream)


def test_vector_observations_must_be_float():
    model = tiny_model("vector")
    stream = random_stream(model.config, batch=1, steps=2)
    stream["observations"] = stream["observations"].long()
    with pytest.raises(ValueError, match="vector observations must be float, got dtype torch.int64"):
        model(**stream)


def test_use_cache_false_with_a_cache_is_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="use_cache=False contradicts past_key_values"):
        model(**inputs(random_stream(model.config, 1, 2)), past_key_values=model.new_cache(), use_cache=False)


def test_padding_mask_with_a_streaming_cache_is_refused():
    model = tiny_model()
    stream = inputs(random_stream(model.config, 1, 2))
    with pytest.raises(ValueError, match="must not be padded"):
        model(**stream, attention_mask=torch.ones(1, 2), past_key_values=model.new_cache())


@torch.no_grad()
def test_left_padding_mask_hides_the_padded_transitions():
    model = tiny_model()
    stream = inputs(random_stream(model.config, batch=1, steps=3))
    padded = {
        key: torch.cat([value[:, :1], value], dim=1) for key, value in stream.items()
    }  # one pad in front
    mask = torch.tensor([[0, 1, 1, 1]])
    logits = model(**padded, attention_mask=mask).logits[:, 1:]
    torch.testing.assert_close(logits, model(**stream).logits, atol=1e-5, rtol=0)


@torch.no_grad()
def test_eager_attention_streams_like_sdpa():
    sdpa = tiny_model()
    eager = tiny_model(attn_implementation="eager")
    assert eager.decoder.config._attn_implementation == "eager"
    stream = random_stream(sdpa.config, batch=2, steps=3 * WINDOW)
    full = sdpa(**inputs(stream)).logits
    assert (eager(**inputs(stream)).logits - full).abs().max() <= 1e-5
    assert (stream_step_by_step(eager, stream, eager.new_cache()) - full).abs().max() <= 1e-5


@torch.no_grad()
def test_output_attentions_gives_each_layers_window_in_time_order_and_the_same_logits():
    eager = tiny_model(attn_implementation="eager")
    stream = random_stream(eager.config, batch=2, steps=3 * WINDOW)
    plain = eager(**inputs(stream))
    full = eager(**inputs(stream), output_attentions=True)
    assert plain.attentions is None and torch.equal(full.logits, plain.logits)
    assert len(full.attentions) == TINY["num_hidden_layers"]
    steps = 3 * WINDOW
    assert full.attentions[-1].shape == (2, TINY["num_attention_heads"], steps, steps)
    assert torch.allclose(full.attentions[-1].sum(-1), torch.ones(2, 2, steps))
    # Streaming: the cached window first, then the piece's own transitions; each query sees WINDOW keys.
    cache = eager.new_cache()
    eager(**inputs(stream, 0, 2 * WINDOW), past_key_values=cache)
    piece = eager(**inputs(stream, 2 * WINDOW), past_key_values=cache, output_attentions=True)
    weights = piece.attentions[-1]  # (B, H, WINDOW, 2 * WINDOW): keys at positions WINDOW .. 3 * WINDOW - 1
    assert weights.shape == (2, 2, WINDOW, 2 * WINDOW)
    assert torch.allclose(weights, full.attentions[-1][:, :, 2 * WINDOW :, WINDOW:], atol=1e-6)
    with pytest.raises(ValueError, match="output_attentions needs the eager attention, got 'sdpa'"):
        tiny_model()(**inputs(stream), output_attentions=True)


@pytest.mark.parametrize("kind", ["vector", "image"])
@torch.no_grad()
def test_bfloat16_weights_accept_float32_inputs(kind):
    model = tiny_model(kind).to(torch.bfloat16)
    stream = random_stream(model.config, batch=2, steps=5)
    logits = stream_step_by_step(model, stream, model.new_cache())
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_nan_vector_observations_are_refused():
    model = tiny_model("vector")
    stream = random_stream(model.config, batch=1, steps=2)
    stream["observations"][0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="vector observations must be finite"):
        model(**stream)


def test_a_cache_reused_with_another_batch_size_is_refused():
    model = tiny_model()
    cache = model.new_cache()
    with torch.no_grad():
        model(**inputs(random_stream(model.config, batch=3, steps=4)), past_key_values=cache)
        with pytest.raises(ValueError, match="holds 3 streams, got a batch of 2.*model.new_cache"):
            model(**inputs(random_stream(model.config, batch=2, steps=1)), past_key_values=cache)


def test_image_encoder_encodes_each_distinct_frame_once_with_the_same_result():
    model = tiny_model("image")
    encoder = model.observation_encoder
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (5, 9, 7, 3), generator=generator, dtype=torch.uint8)  # 189 bytes each
    stream = frames[torch.tensor([[0, 1, 0, 2, 2, 4], [3, 3, 1, 0, 4, 4]])]  # (2, 6, 9, 7, 3)
    distinct, index = distinct_frames(stream.flatten(0, 1))
    assert len(distinct) == 5 and torch.equal(distinct[index], stream.flatten(0, 1))
    assert distinct_frames(frames) is None  # nothing repeats: every frame is encoded as it is
    with torch.no_grad():
        every_frame = encoder.encode(stream.flatten(0, 1)).view(2, 6, -1)  # (B, T, D)
        assert torch.allclose(encoder(stream), every_frame, atol=1e-6)


def test_a_frame_hash_collision_falls_back_to_every_frame(monkeypatch):
    frames = torch.randint(
        0, 256, (4, 8, 8, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    monkeypatch.setattr(modeling_ad, "FRAME_HASH_MULTIPLIER", 0)  # every frame hashes alike
    assert distinct_frames(frames) is None
    assert distinct_frames(frames[torch.tensor([0, 0, 0])])[0].shape == (1, 8, 8, 3)
