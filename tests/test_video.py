"""Replay videos: frames from the envs' rgb_array rendering, side by side, mp4 through PyAV or a GIF."""

from __future__ import annotations

import dataclasses
import sys

import av
import gymnasium as gym
import numpy as np
import pytest
from conftest import save_tiny_checkpoint
from PIL import Image, ImageSequence

from hf_ad import constants
from hf_ad.cards import CARD_SECTION, REPLAY_SECTION, embed_replay
from hf_ad.cli import main
from hf_ad.envs import grid
from hf_ad.rollout import InContextRLPipeline, Trajectories
from hf_ad.video import (
    CAPTION_HEIGHT,
    MARGIN,
    SCALE,
    Replay,
    VideoConfig,
    episode_frames,
    h264_available,
    make_video,
    record_replay,
    write_replay,
)

TASKS = [(0, 0), (2, 7)]
EPISODE_STEPS = 20  # hf_ad/DarkRoom-v0's time limit
HOLD_FRAMES = 6  # 1.5 s at the envs' 4 frames per second


def _expected_frame_shape(size: int = 9) -> tuple[int, int, int]:
    """Two Dark Room panels, scaled, under their captions, with margins (rounded up to even sizes)."""
    side = (size + 2) * grid.CELL_PIXELS * SCALE
    height, width = CAPTION_HEIGHT + side + 2 * MARGIN, 2 * side + 3 * MARGIN
    return height + height % 2, width + width % 2, 3


def _decode_mp4(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _replay(tmp_path, episodes: int = 3, **checkpoint) -> Replay:
    model = save_tiny_checkpoint(tmp_path / "ad", TASKS, **checkpoint)
    pipe = InContextRLPipeline.from_pretrained(model, device="cpu")
    return record_replay(pipe, tuple(pipe.model.config.test_tasks[1]), episodes, seed=3)


def test_video_decodes_to_distinct_frames_of_the_expected_size(tmp_path):
    assert h264_available()  # the pinned PyAV wheel bundles libx264
    model = save_tiny_checkpoint(tmp_path / "ad", TASKS)
    video, replay = make_video(VideoConfig(model=model, out=str(tmp_path), episodes=4))
    assert video == tmp_path / constants.REPLAY_MP4 and not list(tmp_path.glob(".*.tmp"))
    assert replay.task == TASKS[0] and replay.returns.shape == (4,)
    frames = _decode_mp4(video)
    assert len(frames) == EPISODE_STEPS + 1 + HOLD_FRAMES  # first observation, one per step, held end
    assert {frame.shape for frame in frames} == {_expected_frame_shape()}
    assert len({frame.tobytes() for frame in frames}) >= EPISODE_STEPS  # the agents move on screen
    assert video.stat().st_size < 200_000


def test_gif_when_pyav_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    assert not h264_available()
    replay = _replay(tmp_path)
    written = write_replay(replay, tmp_path / constants.REPLAY_MP4)
    assert written == tmp_path / constants.REPLAY_GIF and not (tmp_path / constants.REPLAY_MP4).exists()
    with Image.open(written) as gif:
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
    assert len(frames) >= 2 and len({frame.tobytes() for frame in frames}) >= 2
    assert {frame.shape for frame in frames} == {_expected_frame_shape()}


@pytest.mark.parametrize("env_id", [constants.DARK_ROOM, constants.DARK_KEY_TO_DOOR])
def test_frames_show_the_recorded_agent_and_its_trail(tmp_path, env_id):
    """Each frame is the env's own rendering of the recorded step: the agent where the rollout had it."""
    tasks = TASKS if env_id == constants.DARK_ROOM else [(0, 0, 8, 8), (2, 7, 5, 1)]
    model = save_tiny_checkpoint(tmp_path / "ad", tasks, env_id=env_id)
    pipe = InContextRLPipeline.from_pretrained(model, device="cpu")
    replay = record_replay(pipe, tasks[1], 3, seed=5)  # Key-to-Door: random starts, from the seed
    env = gym.make(env_id, render_mode="rgb_array")
    first, last = episode_frames(env, replay, [0, 2])
    steps = replay.trajectories.episodes[0] == 2
    cells = [tuple(cell) for cell in replay.trajectories.observations[0, steps]]
    assert len(first) == len(last) == len(cells) + 1
    for cell, frame in zip(cells, last, strict=False):  # the frame before each action
        x, y = ((np.array(cell) + 1) * grid.CELL_PIXELS + grid.CELL_PIXELS // 2).tolist()
        assert tuple(frame[y, x]) == grid.COLORS["agent"]
        corner = frame[(cell[1] + 1) * grid.CELL_PIXELS, (cell[0] + 1) * grid.CELL_PIXELS]
        assert tuple(corner) != grid.COLORS["floor"]  # a visited cell is drawn (trail, goal, key or door)


def test_a_replay_the_env_does_not_reproduce_is_refused(tmp_path):
    replay = _replay(tmp_path)
    observations = replay.trajectories.observations.copy()
    observations[0, 5] = (observations[0, 5] + 1) % 9
    tampered = Trajectories(
        observations, replay.trajectories.actions, replay.trajectories.rewards, replay.trajectories.episodes
    )
    replay = dataclasses.replace(replay, trajectories=tampered)
    with pytest.raises(RuntimeError, match="at step 5, the rollout had"):
        write_replay(replay, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


def test_video_config_errors(tmp_path):
    with pytest.raises(ValueError, match="needs a local model folder, got 'org/ad'"):
        VideoConfig(model="org/ad", out=str(tmp_path), update_card=True)
    with pytest.raises(ValueError, match="episodes must be an integer >= 1, got 0"):
        VideoConfig(model="org/ad", out=str(tmp_path), episodes=0)
    model = save_tiny_checkpoint(tmp_path / "ad", TASKS)
    with pytest.raises(ValueError, match="task_index 2 is out of range: .* has 2 held-out tasks"):
        make_video(VideoConfig(model=model, out=str(tmp_path), task_index=2, episodes=1))


def test_cli_video_updates_the_card_and_keeps_one_replay(tmp_path, capsys):
    model = save_tiny_checkpoint(tmp_path / "ad", TASKS)
    table = "| a | b |\n|---|---|\n"
    card = f"# ad\n\n{CARD_SECTION[0]}\n## Evaluation\n\n{table}{CARD_SECTION[1]}\n\n## Citation\n"
    (tmp_path / "ad" / constants.MODEL_CARD).write_text(card)
    argv = ["video", "--model", model, "--out", str(tmp_path / "eval"), "--episodes", "2", "--update_card"]
    videos = []
    for _ in range(2):  # a second run replaces the first one's block
        assert main(argv) == 0
        videos.append((tmp_path / "eval" / constants.REPLAY_MP4).read_bytes())
    assert videos[0] == videos[1]  # the same run gives the same bytes
    assert "replay.mp4: episode 1 return" in capsys.readouterr().out
    assert (tmp_path / "ad" / constants.REPLAY_MP4).read_bytes() == (
        tmp_path / "eval" / constants.REPLAY_MP4
    ).read_bytes()
    text = (tmp_path / "ad" / constants.MODEL_CARD).read_text()
    assert text.count(REPLAY_SECTION[0]) == 1 and '<video src="replay.mp4"' in text
    assert text.index("|---|---|") < text.index(REPLAY_SECTION[0]) < text.index(CARD_SECTION[1])
    assert "hf-ad video --model" in text and str(tmp_path) not in text  # the command, no absolute path


def test_embed_replay_needs_the_file(tmp_path):
    with pytest.raises(ValueError, match="replay.gif' does not exist"):
        embed_replay(tmp_path, constants.REPLAY_GIF, "caption")
    (tmp_path / constants.REPLAY_GIF).write_bytes(b"GIF89a")
    embed_replay(tmp_path, constants.REPLAY_GIF, "caption")
    assert "![replay](replay.gif)" in (tmp_path / constants.MODEL_CARD).read_text()
