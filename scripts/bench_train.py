"""Benchmark of training: transitions/s of `hf_ad.training.train` on 2 cores, against an AD^eps-style loop.

Usage:
    OMP_NUM_THREADS=2 python scripts/bench.py train

Runs on 2 torch threads (`torch.set_num_threads(2)`: the 2 cores of the reference machine), for two model
sizes: the paper's (hidden 64, 4 layers, 4 heads, feed-forward 256) and the public AD^eps code's small
CPU config (hidden 128, 2 layers). Both trainers see the same Dark Room histories, batch and number of
transitions per training sequence (160 = twice the 80-transition attention window):
- hf_ad: the real `train()` (Accelerate, AdamW, clipping, schedule, `train_step`), one token per
  transition, SDPA sliding-window attention, windows gathered by numpy fancy indexing;
- baseline, measured in the same run: the same decoder (transformers' Phi-3 layers) trained the AD^eps
  way: three tokens per transition (o_t, a_t, r_t; the action predicted from the o_t token), full causal
  eager attention over the 480-token sequence, windows sliced per sample in Python by a map-style
  `Dataset` and the `DataLoader`'s default collate, a plain torch AdamW loop.
Throughput is transitions per second at the median time from the start of one optimizer step to the
next (data, forward, backward, clipping, update and the loop's own work; the median resists the load of a
shared machine). Achieved FLOP/s are the model FLOPs (3x the forward's matmul and in-window attention
FLOPs) over a `torch.matmul` peak of the same precision measured in the same process.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_model import MATMUL_SIZE, best_seconds, forward_flops_per_transition, synchronized
from torch import nn
from torch.nn import functional as F

from hf_ad import constants
from hf_ad.configuration_ad import ADConfig
from hf_ad.data.generate import GenerateConfig, generate_histories
from hf_ad.data.histories import load_histories
from hf_ad.data.windows import HistoryWindows, dataset_columns
from hf_ad.modeling_ad import decoder_config
from hf_ad.sources import SOURCES
from hf_ad.training import TrainConfig, train

THREADS = 2
CPU = torch.device("cpu")
BATCH, CONTEXT = 64, 160
HF_AD_STEPS, BASELINE_STEPS = 9, 5
REFERENCE = 4_700  # transitions/s of the public AD^eps code's small CPU config here (14,000 tokens/s / 3)
EPS_SMALL = "AD^eps small (hidden 128, 2 layers, 4 heads, ff 512)"
MODELS = {
    "paper (hidden 64, 4 layers, 4 heads, ff 256)": {
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 256,
    },
    EPS_SMALL: {
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 512,
    },
}


def make_dataset(folder: Path) -> Path:
    """Dark Room Q-learning histories: one per training goal, every 10th of 500 episodes (1,000 steps)."""
    _, config_cls = SOURCES["q_learning"]
    source = config_cls(histories_per_task=1, episodes=500, keep_every=10)
    return generate_histories(GenerateConfig(out=str(folder / "histories")), source, progress=False)


def training_data(folder: Path) -> tuple[Path, dict[str, np.ndarray], np.ndarray]:
    """The Dark Room dataset both trainers read, its columns in RAM and the baseline's window starts."""
    dataset = make_dataset(folder)
    histories, metadata = load_histories(dataset)
    # In RAM, as the AD^eps code holds its data (hf_ad's own `train()` reads the columns in place).
    columns = {name: column.to_numpy() for name, column in dataset_columns(histories).items()}
    windows = HistoryWindows(columns, CONTEXT, num_actions=5, tasks=metadata["task_split"]["train"])
    # The baseline's windows: the same kind (inside one history), in a random order.
    starts = windows.window_starts(np.random.default_rng(0).permutation(windows.num_windows))
    return dataset, columns, starts


def reset_accelerate() -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def hf_ad_transitions_per_second(
    dataset: Path, output_dir: Path, model: dict, mixed_precision: str, batch: int = BATCH
) -> float:
    """The real `train()`, timed step by step: transitions/s at the median time from one `train_step` call to
    the next (data, step and the loop's own work; a median resists the load of a shared machine). It runs
    where Accelerate puts it: the GPU if there is one."""
    import hf_ad.training as training

    reset_accelerate()
    cfg = TrainConfig(
        dataset=str(dataset),
        output_dir=str(output_dir),
        max_steps=HF_AD_STEPS,
        batch_size=batch,
        context=CONTEXT,
        save_steps=0,
        report_to="none",
        mixed_precision=mixed_precision,
        **model,
    )
    starts, train_step = [], training.train_step

    def timed_train_step(*args, **kwargs):
        starts.append(time.perf_counter())
        return train_step(*args, **kwargs)

    training.train_step = timed_train_step
    try:
        final = train(cfg)
    finally:
        training.train_step = train_step
    state = json.loads((final / constants.TRAINER_STATE).read_text())
    seconds = float(np.median(np.diff(starts)))  # from one step's start to the next: data + step + loop
    return state["transitions_seen"] / state["step"] / seconds


class PerSampleWindows(torch.utils.data.Dataset):
    """AD^eps-style data: one window sliced per `__getitem__`, batched by the default collate."""

    def __init__(self, columns: dict[str, np.ndarray], starts: np.ndarray, context: int):
        self.columns, self.starts, self.context = columns, starts, context

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        start = int(self.starts[index])
        end = start + self.context
        return {
            "observations": self.columns[constants.OBSERVATION][start:end],
            "actions": self.columns[constants.ACTION][start:end],
            "rewards": self.columns[constants.REWARD][start:end],
        }


class ThreeTokenAD(nn.Module):
    """The AD^eps sequence model on the same decoder: tokens o_0, a_0, r_0, o_1, ...; a_t read off o_t."""

    def __init__(self, config: ADConfig):
        super().__init__()
        hidden = config.hidden_size
        self.observation_embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in config.observation_nvec)
        self.action_embedding = nn.Embedding(config.num_actions, hidden)
        self.reward_embedding = nn.Linear(1, hidden)
        from transformers import Phi3Model

        decoder = decoder_config(config)
        decoder._attn_implementation = "eager"
        self.decoder = Phi3Model(decoder)
        self.decoder.embed_tokens = None
        self.head = nn.Linear(hidden, config.num_actions)

    def forward(self, observations, actions, rewards) -> torch.Tensor:
        batch, steps = actions.shape
        obs = sum(
            embed(observations[..., i]) for i, embed in enumerate(self.observation_embeddings)
        )  # (B, T, D)
        tokens = torch.stack(
            [obs, self.action_embedding(actions), self.reward_embedding(rewards.unsqueeze(-1))], dim=2
        ).reshape(batch, 3 * steps, -1)  # (B, 3T, D)
        hidden = self.decoder(inputs_embeds=tokens).last_hidden_state[:, 0::3]  # (B, T, D): the o_t tokens
        return F.cross_entropy(self.head(hidden).flatten(0, 1), actions.flatten())


def baseline_transitions_per_second(
    columns: dict[str, np.ndarray],
    starts: np.ndarray,
    model: dict,
    device: torch.device = CPU,
    batch_size: int = BATCH,
) -> float:
    torch.manual_seed(0)
    # Full causal attention over the whole 3 x CONTEXT token sequence, as AD^eps does.
    config = ADConfig(**model, sliding_window=3 * CONTEXT, max_context=3 * CONTEXT)
    network = ThreeTokenAD(config).to(device).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-4, betas=(0.9, 0.99), weight_decay=0.0)
    loader = torch.utils.data.DataLoader(PerSampleWindows(columns, starts, CONTEXT), batch_size=batch_size)
    batches = iter(loader)
    starts = []
    for _ in range(BASELINE_STEPS + 1):
        starts.append(time.perf_counter())
        batch = {key: value.to(device) for key, value in next(batches).items()}
        loss = network(batch["observations"], batch["actions"], batch["rewards"])
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # wait for the step, as hf_ad's loop does when it checks the loss
    return batch_size * CONTEXT / float(np.median(np.diff(starts)))


def matmul_peak(dtype: torch.dtype, device: torch.device = CPU, size: int = MATMUL_SIZE) -> float:
    """FLOP/s of a large square matmul in `dtype` on `device` (on the CPU: this process's threads)."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    product = synchronized(lambda: torch.matmul(a, b), device)
    return 2 * size**3 / best_seconds(product, repeats=10, warmup=2)


def run() -> str:
    load_before = os.getloadavg()[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            dataset, columns, starts = training_data(Path(tmp))
            peaks = {"no": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
            rows, achieved = [], {}
            for index, (label, model) in enumerate(MODELS.items()):
                baseline = baseline_transitions_per_second(columns, starts, model)
                model_flops = 3 * forward_flops_per_transition(ADConfig(**model), CONTEXT)
                for precision, name in (("no", "float32"), ("bf16", "bf16 autocast")):
                    run_dir = Path(tmp) / f"run{index}-{precision}"
                    ours = hf_ad_transitions_per_second(dataset, run_dir, model, precision)
                    flops = model_flops * ours
                    if precision == "no":
                        achieved[label] = ours
                    fraction = flops / peaks[precision]
                    rows.append(
                        f"| {label} | {name} | {ours:,.0f} | {flops / 1e9:.2f} GFLOP/s ({fraction:.0%}) "
                        f"| {baseline:,.0f} | {ours / baseline:.1f}x | {ours / REFERENCE:.1f}x |"
                    )
    finally:
        torch.set_num_threads(threads)
    # What the goal needs of the float32 peak, against what the hf_ad float32 run reached.
    goal, reached = 5 * REFERENCE, achieved[EPS_SMALL]
    needed = goal * 3 * forward_flops_per_transition(ADConfig(**MODELS[EPS_SMALL]), CONTEXT)
    verdict = (
        f"Goal at equal model size ({EPS_SMALL}, float32): {goal:,} transitions/s needs {needed / 1e9:.1f} "
        f"GFLOP/s, {needed / peaks['no']:.0%} of this run's float32 matmul peak; hf_ad reached "
        f"{reached:,.0f} transitions/s ({reached / goal:.0%} of the goal): "
        + ("**met**." if reached >= goal else "**not met**.")
    )
    intro = (
        f"Training throughput on {THREADS} torch threads (`torch.set_num_threads({THREADS})`), batch "
        f"{BATCH} x {CONTEXT} transitions of Dark Room histories, median step of {HF_AD_STEPS} optimizer "
        f"steps of the real `train()` (`--mixed-precision no` and `bf16`) and of {BASELINE_STEPS} of the "
        "float32 baseline (an AD^eps-style trainer on the same decoder: 3 tokens per transition, eager "
        "full attention, per-sample Python windows). Matmul peaks in this run: float32 "
        f"{peaks['no'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s (each row's fraction is of "
        f"its own precision's peak). Goal: >= 5x the public AD^eps code's ~{REFERENCE:,} transitions/s "
        "(14,000 tokens/s with 3 tokens per transition, measured outside this run) at equal model size. "
        f"Machine load (1-minute average) before and after: {load_before:.1f}, {os.getloadavg()[0]:.1f}; "
        "other jobs on the 2 cores slow these many-small-kernel steps far more than the baseline's few "
        "large ones, so compare rows of one run."
    )
    return "\n".join(
        [
            intro,
            "",
            "| model | precision | hf_ad transitions/s | model FLOP/s (of matmul peak) "
            f"| baseline transitions/s | ratio | vs {REFERENCE:,} |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            verdict,
        ]
    )


if __name__ == "__main__":
    print(run())
