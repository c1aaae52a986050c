"""`hf-ad demo`: the shipped Dark Room checkpoint learning in context on goals it never saw.

Loads `pretrained/ad-darkroom` (and `pretrained/ed-darkroom`) with `InContextRLPipeline.from_pretrained`,
runs every held-out goal for `--episodes` episodes in one batch with frozen weights, runs the source
algorithm of its recipe (the explore-then-stay search, `hf_ad.sources.explorer`) from scratch on the same
goals, and prints the return by episode of AD, ED and the source next to the oracle. Then it draws one
goal's path in the room at the first and at the last episode, and writes a PNG of the learning curves (and
`results.json`) and the replay video of those two episodes (`replay.mp4`, `hf_ad.video`) to `--out`.

Offline-first: the shipped checkpoints travel with the package (a checkout's `pretrained/`, or
`share/hf_ad/pretrained/` of a `pip install` of the wheel); only where neither is present does the demo
load them by hub repo id (`PRETRAINED_REPO_IDS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hf_ad import constants
from hf_ad.envs import draw_path
from hf_ad.evaluation import EvaluateConfig, evaluate
from hf_ad.files import shipped_roots
from hf_ad.video import Replay, VideoConfig, make_video

PRETRAINED = "pretrained"  # the shipped checkpoints' folder under each of `files.shipped_roots()`
# Where the release is published (`hf-ad publish --model pretrained/NAME --repo-id ID`): the demo's
# fallback for an install that carries no local copy.
PRETRAINED_REPO_IDS = {
    name: f"hf-ad/{name}" for name in ("ad-darkroom", "ed-darkroom", "ad-darkroom-v1", "ed-darkroom-v1")
}
TABLE_EPISODES = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


def shipped_checkpoint(name: str) -> str:
    """The shipped checkpoint `name` (a key of `PRETRAINED_REPO_IDS`): its local folder, first match of
    `files.shipped_roots()` (relative to the working directory when inside it), else its hub repo id."""
    for root in shipped_roots():
        folder = root / PRETRAINED / name
        if (folder / constants.MODEL_CONFIG).is_file():
            return display_path(folder)
    return PRETRAINED_REPO_IDS[name]


def display_path(path: Path) -> str:
    """`path` relative to the working directory when inside it, else absolute."""
    path, cwd = path.resolve(), Path.cwd().resolve()
    return os.path.relpath(path, cwd) if path.is_relative_to(cwd) else str(path)


@dataclass
class DemoConfig:
    """Options of `hf-ad demo`."""

    model: str = field(
        default_factory=lambda: shipped_checkpoint("ad-darkroom"),
        metadata={"help": "AD checkpoint: a folder or a hub repo id (default: the shipped Dark Room model)."},
    )
    ed_model: str | None = field(
        default_factory=lambda: shipped_checkpoint("ed-darkroom"),
        metadata={"help": "ED checkpoint for comparison; 'none' skips it."},
    )
    source: str | None = field(
        default=None,
        metadata={
            "help": "Source algorithm run from scratch on the same goals (default: the source of the model's "
            "recipe, for the shipped model the explore-then-stay search); 'none' skips it."
        },
    )
    episodes: int = field(default=100, metadata={"help": "Episodes per held-out goal."})
    seed: int = field(default=0, metadata={"help": "Seed of the envs, the action sampling and the source."})
    out: str = field(
        default="runs/demo",
        metadata={"help": "Folder for returns.png (learning curves), results.json and replay.mp4."},
    )

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes!r}")
        if self.ed_model in ("none", ""):
            self.ed_model = None


def returns_table(results: dict) -> str:
    """Mean return over the held-out goals at a few episodes, one column per method."""
    methods = results["methods"]
    episodes = [e for e in TABLE_EPISODES if e <= results["episodes"]]
    if results["episodes"] not in episodes:
        episodes.append(results["episodes"])
    header = "| episode | " + " | ".join(stats["label"] for stats in methods.values()) + " | oracle |"
    lines = [header, "|---:|" + "---:|" * (len(methods) + 1)]
    for episode in episodes:
        cells = [f"{stats['mean'][episode - 1]:.2f}" for stats in methods.values()]
        lines.append(f"| {episode} | " + " | ".join(cells) + f" | {results['oracle']['mean']:.2f} |")
    return "\n".join(lines)


def side_by_side(blocks: list[str], captions: list[str], gap: int = 4) -> str:
    """Text blocks next to each other, each under its caption."""
    columns = [[caption, *block.splitlines()] for caption, block in zip(captions, blocks, strict=True)]
    width = max(len(line) for column in columns for line in column)
    return "\n".join(
        (" " * gap).join(line.ljust(width) for line in row).rstrip() for row in zip(*columns, strict=True)
    )


def episode_path(trajectories, episode: int) -> list[tuple[int, int]]:
    """The cells of stream 0 during `episode` (in time order)."""
    steps = trajectories.episodes[0] == episode  # (S,)
    return [tuple(int(v) for v in cell) for cell in trajectories.observations[0, steps]]


def draw_first_and_last(replay: Replay) -> str:
    """The replay's goal and path at the first and the last episode, side by side."""
    size = int(replay.env_kwargs.get("size", 9))
    blocks, captions = [], []
    for episode in (0, len(replay.returns) - 1):
        blocks.append(draw_path(size, episode_path(replay.trajectories, episode), {replay.task: "G"}))
        captions.append(f"episode {episode + 1}: return {replay.returns[episode]:.0f}")
    return side_by_side(blocks, captions)


def run_demo(config: DemoConfig, log=print) -> str:
    """Evaluate AD, ED and the source on the held-out goals; returns the text to print."""
    evaluation = EvaluateConfig(
        model=[config.model],
        ed_model=[config.ed_model] if config.ed_model else None,
        source=config.source,
        episodes=config.episodes,
        seeds=1,
        seed=config.seed,
        out=config.out,
        video=False,  # made below from the rollout the text drawing shows
    )
    results = evaluate(evaluation, log=log)
    video_config = VideoConfig(config.model, config.out, config.episodes, seed=config.seed, device="cpu")
    video, replay = make_video(video_config, log=lambda _: None)
    goal = replay.task
    ad_returns = np.asarray(results["methods"]["AD"]["mean"])
    lines = [
        f"{results['env_id']}: {len(results['tasks'])} held-out goals (never seen in training), "
        f"{config.episodes} episodes each, frozen weights, actions sampled; the agent sees only (x, y).",
        "Mean return over the goals:",
        "",
        returns_table(results),
        "",
        f"AD: first 10 episodes {ad_returns[:10].mean():.2f} -> "
        f"last 10 episodes {ad_returns[-10:].mean():.2f}",
        "",
        f"AD on goal {goal}: S start, A last cell, G goal, arrows: the move made from each cell (o: stayed)",
        draw_first_and_last(replay),
        "",
        f"learning curves: {Path(config.out) / constants.RESULTS_PNG}",
        f"video of these two episodes: {video}",
    ]
    return "\n".join(lines) + "\n"
