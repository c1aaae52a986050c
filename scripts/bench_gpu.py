"""Benchmark on a CUDA GPU: training and acting speed, and a short real training (`make bench-gpu`).

Usage:
    python scripts/bench.py gpu        # needs a CUDA GPU; writes the gpu section of BENCHMARKS.md

Nothing in hf_ad needs a GPU; this section records what one gives. Every ratio is against a baseline
measured in the same run, on the same GPU:
- matmul peaks (float32 without TF32, bf16) for the fraction of peak each training row reaches;
- training: transitions/s of the real `train()` (one process; Accelerate puts it on the GPU; float32 and
  bf16 autocast; hf_ad's SDPA attention) at the CPU bench's batch (64 x 160 transitions) and at a
  GPU-sized one (1024 x 160), against bench_train's AD^eps-style loop (3 tokens per transition, eager
  full attention) at the same batch;
- acting: bench_model's table, a cached `(B, 1)` step against recomputing the 80-transition window;
- rollout: env-steps/s of `InContextRLPipeline` with the model on the GPU (the env on the CPU);
- a short training: the Dark Room recipe (its steps and global batch, in one process, bf16) on the shipped
  `pretrained/darkroom-histories`, and the held-out returns of that model and of the shipped
  `pretrained/ad-darkroom` (trained on 2 CPU processes), evaluated the same way in this run.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
from bench_model import bench_acting, forward_flops_per_transition
from bench_rollout import TASK_COUNTS, measure, paper_size_pipeline
from bench_train import (
    BATCH,
    CONTEXT,
    MODELS,
    baseline_transitions_per_second,
    hf_ad_transitions_per_second,
    matmul_peak,
    reset_accelerate,
    training_data,
)

from hf_ad import ADConfig, ADModel, constants
from hf_ad.evaluation import EvaluateConfig, curve_stats, evaluate_checkpoint, held_out_tasks
from hf_ad.recipes import DARK_ROOM_RECIPE
from hf_ad.training import TrainConfig, train

GPU_BATCH = 1024  # training segments per step that give a GPU enough work per kernel
PEAK_SIZE = 8192  # square matmul of the peaks
PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"
SHORT_TRAINING_DATASET = PRETRAINED / "darkroom-histories"
SHIPPED_MODEL = PRETRAINED / "ad-darkroom"
# The recipe's global batch (its processes x their batch), in one process.
SHORT_TRAINING_BATCH = DARK_ROOM_RECIPE.training.batch_size * DARK_ROOM_RECIPE.num_processes
EVAL_SEEDS, EVAL_EPISODES = 5, 100
EVAL_RANGES = ("episodes 1-10", "episodes 41-50", "episodes 91-100")


def progress(text: str) -> None:
    """Each row as it is measured, on stderr: a run cut short by a time limit still shows what it got."""
    print(text, file=sys.stderr, flush=True)


def gpu() -> torch.device:
    if not torch.cuda.is_available():
        raise SystemExit(
            "bench gpu needs a CUDA GPU and a CUDA build of torch (torch.cuda.is_available() is False); "
            "the other sections run on the CPU: python scripts/bench.py all"
        )
    return torch.device("cuda")


def training_rows(device: torch.device, tmp: Path, peaks: dict[str, float]) -> list[str]:
    dataset, columns, starts = training_data(tmp)
    rows = []
    for index, (label, model) in enumerate(MODELS.items()):
        model_flops = 3 * forward_flops_per_transition(ADConfig(**model), CONTEXT)
        for batch in (BATCH, GPU_BATCH):
            baseline = baseline_transitions_per_second(columns, starts, model, device, batch)
            for precision, name in (("no", "float32"), ("bf16", "bf16 autocast")):
                run_dir = tmp / f"run{index}-{batch}-{precision}"
                ours = hf_ad_transitions_per_second(dataset, run_dir, model, precision, batch)
                fraction = model_flops * ours / peaks[precision]
                rows.append(
                    f"| {label} | {batch} | {name} | {ours:,.0f} | {fraction:.2%} | {baseline:,.0f} "
                    f"| {ours / baseline:.1f}x |"
                )
                progress(rows[-1])
    return rows


def rollout_rows(device: torch.device) -> list[str]:
    pipe = paper_size_pipeline(device=str(device))
    rows = []
    for num_tasks in TASK_COUNTS:
        figures = measure(pipe, num_tasks)
        rows.append(
            f"| {num_tasks} | {figures['cached_wall']:,.0f} | {figures['recompute_wall']:,.0f} "
            f"| {figures['ratio_wall']:,.0f}x |"
        )
        progress(rows[-1])
    return rows


def held_out_summary(path: Path, tmp: Path) -> dict[str, dict[str, float]]:
    """Mean ± std over the runs of `path` on all its held-out tasks, `EVAL_SEEDS` x `EVAL_EPISODES`."""
    config = EvaluateConfig(
        model=[str(path)], out=str(tmp / "evaluation"), episodes=EVAL_EPISODES, seeds=EVAL_SEEDS
    )
    tasks = held_out_tasks(str(path), ADConfig.from_pretrained(path))
    return curve_stats(evaluate_checkpoint(str(path), tasks, config))["summary"]


def short_training(tmp: Path) -> list[str]:
    reset_accelerate()
    cfg = TrainConfig(
        dataset=str(SHORT_TRAINING_DATASET),
        output_dir=str(tmp / "gpu-darkroom"),
        batch_size=SHORT_TRAINING_BATCH,
        mixed_precision="bf16",
        save_steps=0,
        report_to="none",
    )
    final = train(cfg)
    shipped_processes = json.loads((SHIPPED_MODEL / constants.TRAINER_STATE).read_text())["num_processes"]
    rows = []
    for name, path in (
        ("this run: 1 GPU, bf16", final),
        (f"shipped `ad-darkroom`: {shipped_processes} CPU processes", SHIPPED_MODEL),
    ):
        state = json.loads((path / constants.TRAINER_STATE).read_text())
        summary = held_out_summary(path, tmp)
        returns = " | ".join(f"{summary[key]['mean']:.2f} ± {summary[key]['std']:.2f}" for key in EVAL_RANGES)
        rows.append(
            f"| {name} | {state['step']} | {state['wall_time_s']:,.0f} s | {state['loss']:.4f} | {returns} |"
        )
        progress(rows[-1])
    return rows


def run() -> str:
    device = gpu()
    properties = torch.cuda.get_device_properties(device)
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 rows are float32, not TF32
    peaks = {
        "no": matmul_peak(torch.float32, device, PEAK_SIZE),
        "bf16": matmul_peak(torch.bfloat16, device, PEAK_SIZE),
    }
    progress(f"matmul peaks (TFLOP/s): float32 {peaks['no'] / 1e12:.1f}, bf16 {peaks['bf16'] / 1e12:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        train_rows = training_rows(device, tmp, peaks)
        torch.manual_seed(0)
        acting = bench_acting(ADModel(ADConfig()).to(device))
        progress(acting)
        rollout = rollout_rows(device)
        short = short_training(tmp)
    training = DARK_ROOM_RECIPE.training
    return "\n".join(
        [
            f"GPU: {properties.name}, {properties.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}. Matmul peaks ({PEAK_SIZE}^3) in this run: float32 "
            f"{peaks['no'] / 1e12:.1f} TFLOP/s, bf16 {peaks['bf16'] / 1e12:.1f} TFLOP/s.",
            "",
            f"Training: the real `train()` in one process on the GPU, {CONTEXT}-transition segments, "
            "median step (bench_train's method); baseline: bench_train's AD^eps-style loop on the same GPU, "
            "float32, same batch. Model FLOPs as a fraction of the peak of the row's precision.",
            "",
            "| model | batch | precision | hf_ad transitions/s | of matmul peak | baseline transitions/s "
            "| ratio |",
            "|---|---|---|---|---|---|---|",
            *train_rows,
            "",
            acting,
            "",
            "Rollout: `InContextRLPipeline` with a random-init paper-size model on the GPU, env on the CPU, "
            "bench_rollout's protocol; wall-clock env-steps/s.",
            "",
            "| tasks | cached | recompute | cached / recompute |",
            "|---:|---:|---:|---:|",
            *rollout,
            "",
            f"Short training: the Dark Room recipe ({training.max_steps} steps, global batch "
            f"{SHORT_TRAINING_BATCH} x {training.context} transitions) on "
            "`pretrained/darkroom-histories` in bf16, then both models on all held-out goals, "
            f"{EVAL_SEEDS} seeds x {EVAL_EPISODES} episodes, actions sampled, on the GPU (mean ± std over "
            "the runs; the shipped card's 20-seed, 1000-episode numbers are in its card).",
            "",
            "| model | steps | training wall time | final loss | episodes 1-10 | 41-50 | 91-100 |",
            "|---|---|---|---|---|---|---|",
            *short,
        ]
    )


if __name__ == "__main__":
    print(run())
