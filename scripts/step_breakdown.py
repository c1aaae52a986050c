"""Where the time of one streaming call goes: each part of `ADModel.forward`, inside the call and alone.

Usage:
    OMP_NUM_THREADS=1 python scripts/step_breakdown.py [--batch 1] [--calls 2000]

bench_model's acting table times the whole cached `(B, 1)` call against recomputing the window. This splits
that call into the parts `ADModel.forward` runs on the streaming path (input checks, cache check, embedding,
the lean decoder step, action head, output), the paper-size model on a full window as the rollout calls it:
- in the call: each part wrapped by a timer while the model is called `--calls` times (mean per call, in the
  round of calls with the least total); "the rest" is the forward's own lines and the timers themselves;
- alone: the same part on the same arguments in a loop of its own (best of several), which is what a
  micro-benchmark of that part reports.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import ExitStack
from unittest import mock

import torch
from bench_model import best_seconds, random_inputs

from hf_ad import ADConfig, ADModel, modeling_ad

ROUNDS = 5


class PartTimer:
    """Wraps callables so that each call adds its time, and keeps its last arguments to time it alone."""

    def __init__(self):
        self.nanoseconds: dict[str, int] = {}
        self.last_call: dict[str, tuple[Callable, tuple, dict]] = {}

    def wrap(self, name: str, function: Callable) -> Callable:
        self.nanoseconds[name] = 0

        def timed(*args, **kwargs):
            start = time.perf_counter_ns()
            result = function(*args, **kwargs)
            self.nanoseconds[name] += time.perf_counter_ns() - start
            self.last_call[name] = (function, args, kwargs)
            return result

        return timed


def streaming_parts(model: ADModel) -> dict[str, tuple[object, str]]:
    """Each part of the streaming call: the object it is looked up on and its attribute."""
    return {
        "input checks": (model, "_check_inputs"),
        "cache check": (model, "_check_cache"),
        "embedding": (model, "embed_transitions"),
        "path choice": (model, "_streams_one_step"),
        "decoder step (stream_step)": (modeling_ad, "stream_step"),
        "action head": (model.action_head, "forward"),
        "output (ADOutput)": (modeling_ad, "ADOutput"),
    }


@torch.inference_mode()
def breakdown(batch: int, calls: int) -> str:
    torch.manual_seed(0)
    model = ADModel(ADConfig()).eval()
    window = model.config.sliding_window
    stream = random_inputs(model.config, batch, window)
    cache = model.new_cache()
    model(**{key: value[:, :-1] for key, value in stream.items()}, past_key_values=cache)
    step = {key: value[:, -1:] for key, value in stream.items()}

    def call() -> None:
        model(**step, past_key_values=cache)

    recompute = best_seconds(lambda: model(**stream), repeats=20, warmup=2)
    whole = best_seconds(call, repeats=calls // 5, warmup=20)
    timer, rounds = PartTimer(), []
    with ExitStack() as patches:
        for name, (owner, attribute) in streaming_parts(model).items():
            patches.enter_context(
                mock.patch.object(owner, attribute, timer.wrap(name, getattr(owner, attribute)))
            )
        for _ in range(ROUNDS):
            timer.nanoseconds = dict.fromkeys(timer.nanoseconds, 0)
            start = time.perf_counter_ns()
            for _ in range(calls):
                call()
            total = time.perf_counter_ns() - start
            rounds.append((total, dict(timer.nanoseconds)))
    total, in_call = min(rounds, key=lambda figures: figures[0])
    rows = []
    for name, nanoseconds in in_call.items():
        function, args, kwargs = timer.last_call[name]
        alone = best_seconds(lambda f=function, a=args, k=kwargs: f(*a, **k), repeats=calls // 5, warmup=20)
        rows.append(f"| {name} | {nanoseconds / calls / 1e3:.1f} | {alone * 1e6:.1f} |")
    rest = (total - sum(in_call.values())) / calls / 1e3
    return "\n".join(
        [
            f"Streaming call at batch {batch}, window {window}, {torch.get_num_threads()} thread(s): "
            f"{whole * 1e6:.0f} us a call (best of {calls // 5}), {total / calls / 1e3:.0f} us with the "
            f"timers (mean of {calls}); recomputing the window: {recompute * 1e6:.0f} us "
            f"({recompute / whole:.1f}x the call).",
            "",
            "| part | in the call (us) | alone (us) |",
            "|---|---:|---:|",
            *rows,
            f"| the rest (forward's own lines, timers) | {rest:.1f} | |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=1, help="streams stepped together (default: 1)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (default: 2000)")
    args = parser.parse_args()
    print(breakdown(args.batch, args.calls))


if __name__ == "__main__":
    main()
