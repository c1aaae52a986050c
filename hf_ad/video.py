"""Replay videos: watch a checkpoint learn in context, its first episode next to its last.

`hf-ad evaluate` writes `<out>/replay.mp4` (and, when it updates the model cards, copies it into the AD
checkpoint's folder, whose card embeds it); `hf-ad video` makes the same file on its own; `hf-ad demo`
writes `runs/demo/replay.mp4`. The steps, one function each:

1. `record_replay`: one stream of the checkpoint on one held-out task for `episodes` episodes, from an
   empty context with frozen weights (`InContextRLPipeline(..., return_trajectories=True)`);
2. `episode_frames`: that stream replayed step by step in the env made with `render_mode="rgb_array"`
   (every observation is checked against the recording), keeping the frames of the episodes shown; an env
   whose observations are RGB images (Pixel Watermaze) shows each one, what the agent saw, scaled up
   beside the env's render (`view_beside_render`);
3. `compose_frames`: those episodes side by side, each under its title, step and running return;
4. `encode_video`: H.264 mp4 through PyAV (its wheels bundle FFmpeg), or a GIF through Pillow where
   PyAV or its H.264 encoder is missing.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hf_ad import constants
from hf_ad.cards import embed_replay, portable_command
from hf_ad.command_line import command_line
from hf_ad.files import atomic_path
from hf_ad.images import in_a_row, upscale
from hf_ad.rollout import InContextRLPipeline, Trajectories

logger = logging.getLogger(__name__)

H264_ENCODER = "libx264"  # plays in every browser, so on the Hub, as yuv420p
CRF = "18"  # x264 quality (lower is better): flat colours and text stay sharp at a few tens of kB
SCALE = 2  # each env pixel becomes SCALE x SCALE pixels
MARGIN = 8  # pixels around and between the panels
FONT_SIZE = 18
CAPTION_HEIGHT = 2 * (FONT_SIZE + 8)  # two lines of text above each panel
BACKGROUND = (20, 20, 26)
TEXT_COLOR = (235, 235, 235)
HOLD_SECONDS = 1.5  # the last frame stays on screen this long, so the final returns can be read
DEFAULT_FPS = 4  # for envs whose metadata has no render_fps
VIEW_TITLE = "   (its view | the map)"  # after "episode k" when the frames show the agent's view


@dataclass
class VideoConfig:
    """`hf-ad video`: one held-out task, episode 1 next to the last episode, as `<out>/replay.mp4`."""

    model: str = field(metadata={"help": "AD checkpoint: a folder or a hub repo id."})
    out: str = field(metadata={"help": "Folder for replay.mp4 (replay.gif where PyAV has no H.264 encoder)."})
    episodes: int = field(
        default=1000, metadata={"help": "Episodes played; the video shows the first and the last one."}
    )
    task_index: int = field(
        default=0, metadata={"help": "The held-out task played: an index into the config's test_tasks."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the env and the action sampling."})
    greedy: bool = field(
        default=False, metadata={"help": "Greedy actions instead of sampling (not the paper's)."}
    )
    device: str | None = field(
        default=None, metadata={"help": "Torch device of the model (default: GPU if any)."}
    )
    update_card: bool = field(
        default=False,
        metadata={"help": "Also copy the video into the (local) model folder and embed it in its card."},
    )

    def __post_init__(self):
        for name, least in (("episodes", 1), ("task_index", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if self.update_card and not Path(self.model).is_dir():
            raise ValueError(
                f"update_card needs a local model folder, got {self.model!r}: pass a folder, or leave out "
                "--update-card (the card of a hub repo is changed by publishing the folder)"
            )


@dataclass
class Replay:
    """One stream of a checkpoint on one task, every transition recorded.

    Args:
        env_id: the checkpoint's env id.
        env_kwargs: its keyword arguments (`config.env_kwargs`).
        task: the task played.
        seed: the rollout's seed (the env reset and the action sampling).
        sample: actions were sampled (`False`: greedy).
        returns: `(episodes,)` the return of every episode.
        trajectories: the stream's transitions (`Trajectories` of batch size 1).
    """

    env_id: str
    env_kwargs: dict
    task: tuple
    seed: int
    sample: bool
    returns: np.ndarray
    trajectories: Trajectories

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape of one observation."""
        return tuple(self.trajectories.observations.shape[2:])

    def episode_rewards(self, episode: int) -> np.ndarray:
        """`(steps,)` the rewards of `episode` (0-based), in time order."""
        return self.trajectories.rewards[0, self.trajectories.episodes[0] == episode]


@dataclass
class Panel:
    """One episode on screen: its frames (the first observation's, then one after each step) and rewards."""

    title: str
    frames: list[np.ndarray]
    rewards: np.ndarray  # (steps,)

    def caption(self, index: int) -> str:
        """The step and the return so far at frame `index`."""
        step = min(index, len(self.rewards))
        return f"step {step}/{len(self.rewards)}   return {float(self.rewards[:step].sum()):g}"


# --- playing and rendering ---------------------------------------------------------------------------


def shows_view(observation_shape: Sequence[int]) -> bool:
    """Whether observations of this shape are RGB images `(H, W, 3)`, shown in the video beside the render."""
    return len(observation_shape) == 3 and observation_shape[-1] == 3


def view_beside_render(view: np.ndarray, render: np.ndarray) -> np.ndarray:
    """The agent's view (its `(h, w, 3)` observation) scaled up by nearest neighbour to about the render's
    height, left of the `(H, W, 3)` render: what the agent saw next to where it was."""
    factor = max(1, render.shape[0] // view.shape[0])  # a whole number: every view pixel stays square
    return in_a_row([upscale(view, factor), render], gap=MARGIN // SCALE, background=BACKGROUND)


def held_out_task(model_config, task_index: int, model: str) -> tuple:
    """The held-out task `task_index` of a checkpoint's config.

    Raises:
        ValueError: the config has fewer held-out tasks.
    """
    tasks = [tuple(task) for task in model_config.test_tasks or []]
    if task_index >= len(tasks):
        raise ValueError(
            f"task_index {task_index} is out of range: {model!r} has {len(tasks)} held-out tasks "
            f"(config.test_tasks); pass --task-index 0..{len(tasks) - 1}"
        )
    return tasks[task_index]


def record_replay(
    pipe: InContextRLPipeline, task: tuple, episodes: int, seed: int, sample: bool = True
) -> Replay:
    """Play `episodes` episodes of one stream on `task` with `pipe`, recording every transition."""
    result = pipe(tasks=[task], num_episodes=episodes, seed=seed, sample=sample, return_trajectories=True)
    config = pipe.model.config
    return Replay(
        env_id=config.env_id,
        env_kwargs=dict(config.env_kwargs),
        task=tuple(task),
        seed=result.seed,
        sample=sample,
        returns=result.returns[0],
        trajectories=result.trajectories,
    )


def episode_frames(env: gym.Env, replay: Replay, episodes: Sequence[int]) -> list[list[np.ndarray]]:
    """Replay the stream step by step in `env` (made with `render_mode="rgb_array"`); frames of `episodes`.

    The env is reset like the rollout's (`seed`, then the task) and steps through the recorded actions,
    resetting where an episode ends; each episode of `episodes` gives its first observation's frame and one
    frame after every step: the env's render, with the observation beside it where observations are RGB
    images (`shows_view`, `view_beside_render`).

    Raises:
        RuntimeError: the env does not reproduce the recorded observations or rewards (its episodes are
            not a function of the seed, the task and the actions).
    """
    trajectories = replay.trajectories
    wanted: dict[int, list[np.ndarray]] = {episode: [] for episode in episodes}
    last = max(episodes)
    with_view = shows_view(env.observation_space.shape or ())

    def frame(observation: np.ndarray) -> np.ndarray:
        render = env.render()
        return view_beside_render(observation, render) if with_view else render

    observation, _ = env.reset(seed=replay.seed, options={"task": replay.task})
    episode = 0
    for step in range(trajectories.actions.shape[1]):
        if episode > last:
            break
        recorded = trajectories.observations[0, step]
        if trajectories.episodes[0, step] != episode or not np.array_equal(observation, recorded):
            raise_not_replayed(replay, step, f"observation {observation.tolist()}", recorded.tolist())
        frames = wanted.get(episode)
        if frames is not None and not frames:
            frames.append(frame(observation))
        observation, reward, terminated, truncated, _ = env.step(int(trajectories.actions[0, step]))
        if np.float32(reward) != trajectories.rewards[0, step]:
            raise_not_replayed(replay, step, f"reward {reward}", trajectories.rewards[0, step])
        if frames is not None:
            frames.append(frame(observation))
        if terminated or truncated:
            observation, _ = env.reset()
            episode += 1
    return [wanted[episode] for episode in episodes]


def raise_not_replayed(replay: Replay, step: int, got: str, recorded: object) -> None:
    """Raise the `RuntimeError` of a replay whose env went another way than the rollout at `step`."""
    raise RuntimeError(
        f"replaying the rollout in {replay.env_id} gave {got} at step {step}, the rollout had {recorded}: a "
        "replay video needs an env whose episodes are a function of the seed, the task and the actions"
    )


# --- composing ---------------------------------------------------------------------------------------


def panel_image(panel: Panel, index: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> np.ndarray:
    """Frame `index` of `panel` (its last one once it has ended), scaled up, under its title and caption."""
    frame = panel.frames[min(index, len(panel.frames) - 1)]  # (H, W, 3) uint8
    frame = upscale(frame, SCALE)  # (SCALE * H, SCALE * W, 3)
    image = Image.new("RGB", (frame.shape[1], CAPTION_HEIGHT + frame.shape[0]), BACKGROUND)
    image.paste(Image.fromarray(frame), (0, CAPTION_HEIGHT))
    draw = ImageDraw.Draw(image)
    draw.text((2, 2), panel.title, fill=TEXT_COLOR, font=font)
    draw.text((2, 2 + CAPTION_HEIGHT // 2), panel.caption(index), fill=TEXT_COLOR, font=font)
    return np.asarray(image)  # (CAPTION_HEIGHT + SCALE * H, SCALE * W, 3)


def side_by_side(images: Sequence[np.ndarray]) -> np.ndarray:
    """`images` in a row with `MARGIN` around and between them; width and height even (H.264 needs it)."""
    return in_a_row(images, gap=MARGIN, border=MARGIN, background=BACKGROUND, even=True)


def compose_frames(panels: Sequence[Panel], hold: int = 0) -> list[np.ndarray]:
    """The video's frames: `panels` side by side, played in step, the last frame repeated `hold` times."""
    font = ImageFont.load_default(size=FONT_SIZE)  # Pillow's own font: nothing to download
    length = max(len(panel.frames) for panel in panels)
    frames = [side_by_side([panel_image(panel, i, font) for panel in panels]) for i in range(length)]
    return frames + [frames[-1]] * hold


# --- encoding ----------------------------------------------------------------------------------------


def h264_available() -> bool:
    """Whether PyAV is installed with an H.264 encoder (its wheels bundle FFmpeg with libx264)."""
    try:
        import av  # optional at run time: without it the video is a GIF
    except ImportError:
        return False
    return H264_ENCODER in av.codecs_available


def write_mp4(frames: Sequence[np.ndarray], path: Path, fps: int) -> None:
    """Encode `(H, W, 3)` uint8 frames (even H and W) as H.264 yuv420p mp4 at `path`, atomically."""
    import av

    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        # One encoder thread: the bytes then do not depend on the machine's number of cores.
        stream = container.add_stream(H264_ENCODER, rate=fps, options={"crf": CRF, "threads": "1"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder


def write_gif(frames: Sequence[np.ndarray], path: Path, fps: int) -> None:
    """Write `(H, W, 3)` uint8 frames as a looping GIF at `path` with Pillow, atomically."""
    images = [Image.fromarray(frame) for frame in frames]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
        )


def encode_video(frames: Sequence[np.ndarray], path: str | Path, fps: int) -> Path:
    """Write `frames` as an mp4 at `path`, or as a GIF beside it (`.gif`) where `h264_available()` is false.

    Returns:
        The file written.
    """
    path = Path(path)
    if h264_available():
        write_mp4(frames, path, fps)
        return path
    logger.warning("PyAV with an H.264 encoder is not installed: writing a GIF instead (pip install av)")
    gif = path.with_suffix(".gif")
    write_gif(frames, gif, fps)
    return gif


# --- the replay video --------------------------------------------------------------------------------


def write_replay(replay: Replay, path: str | Path) -> Path:
    """The video of `replay`: episode 1 next to the last episode, at the env's `render_fps`.

    Returns:
        The file written: `path` (mp4), or the same name with `.gif` (see `encode_video`).
    """
    episodes = sorted({0, len(replay.returns) - 1})
    env = gym.make(replay.env_id, render_mode="rgb_array", **replay.env_kwargs)
    try:
        frames = episode_frames(env, replay, episodes)
        fps = int(env.metadata.get("render_fps") or DEFAULT_FPS)
    finally:
        env.close()
    subtitle = VIEW_TITLE if shows_view(replay.observation_shape) else ""
    panels = [
        Panel(f"episode {episode + 1}{subtitle}", shown, replay.episode_rewards(episode))
        for episode, shown in zip(episodes, frames, strict=True)
    ]
    return encode_video(compose_frames(panels, hold=round(HOLD_SECONDS * fps)), path, fps)


def replay_caption(replay: Replay, command: str) -> str:
    """What the video shows, for the model card (Markdown), with the command that made it."""
    last = len(replay.returns)
    how = "sampled" if replay.sample else "greedy"
    view = (
        " Each episode shows the agent's own view, the image it acts on (scaled up), left of a top-down map "
        "it never sees, with the hidden goal (green)."
        if shows_view(replay.observation_shape)
        else ""
    )
    return (
        f"The agent on the held-out task `{tuple(replay.task)}` of `{replay.env_id}`, never seen in "
        f"training: episode 1 (left, return {replay.returns[0]:g}) next to episode {last} (right, return "
        f"{replay.returns[-1]:g}) of one stream, frozen weights, the context filled by the agent itself, "
        f"{how} actions, seed {replay.seed}; the trail marks the cells visited in the episode.{view} Made "
        f"by:\n\n"
        f"```\n{portable_command(command)}\n```"
    )


def make_video(config: VideoConfig, log: Callable[[str], None] = logger.info) -> tuple[Path, Replay]:
    """Play the checkpoint on one held-out task and write its replay video into `config.out`.

    With `update_card`, the video is also copied into the model folder (same name) and embedded in its
    card (`hf_ad.cards.embed_replay`).

    Returns:
        The video written and the replay it shows.
    """
    pipe = InContextRLPipeline.from_pretrained(config.model, device=config.device)
    task = held_out_task(pipe.model.config, config.task_index, config.model)
    replay = record_replay(pipe, task, config.episodes, config.seed, sample=not config.greedy)
    video = write_replay(replay, Path(config.out) / constants.REPLAY_MP4)
    log(f"wrote {video}")
    if config.update_card:
        copy_into(video, Path(config.model))
        embed_replay(config.model, video.name, replay_caption(replay, command_line(config, "hf-ad video")))
        log(f"added {video.name} to the model card of {config.model}")
    return video, replay


def copy_into(file: Path, folder: Path) -> None:
    """Copy `file` into `folder` under its own name, atomically (nothing to do if it is already there)."""
    target = folder / file.name
    if target.resolve() != file.resolve():
        with atomic_path(target) as tmp:
            shutil.copyfile(file, tmp)


__all__ = [
    "Panel",
    "Replay",
    "VideoConfig",
    "compose_frames",
    "encode_video",
    "episode_frames",
    "h264_available",
    "make_video",
    "record_replay",
    "shows_view",
    "view_beside_render",
    "write_replay",
]
