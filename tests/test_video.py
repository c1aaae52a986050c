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
from hf_ad.envs.pixel_watermaze import draw_watermaze, pose_index, pose_of, pose_tables
from hf_ad.images import upscale
from hf_ad.rollout import InContextRLPipeline, Trajectories
from hf_ad.spaces import config_kwargs_from_spaces
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
    replay_caption,
    write_mp4,
    write_replay,
)

TASKS = [(0, 0), (2, 7)]
EPISODE_STEPS = 20  # hf_ad/DarkRoom-v0's time limit
HOLD_FRAMES = 6  # 1.5 s at the envs' 4 frames per second


def _expected_frame_shape(size: int = 9) -> tuple[int, int, int]:
    """Two Dark Room panels, scaled, under their captions, with margins (rounded up to even sizes)."""
    side = (size + 2) * grid.CELL_PIXELS * SCALE
    return _two_panels(side, side)


def _two_panels(panel_height: int, panel_width: int) -> tuple[int, int, int]:
    """The frame shape of two scaled panels side by side under their captions (rounded up to even sizes)."""
    height, width = CAPTION_HEIGHT + panel_height + 2 * MARGIN, 2 * panel_width + 3 * MARGIN
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


def test_cli_video_updates_the_card_and_keeps_one_replay(tmp_path, capsys, monkeypatch):
    model = save_tiny_checkpoint(tmp_path / "ad", TASKS)
    table = "| a | b |\n|---|---|\n"
    card = f"# ad\n\n{CARD_SECTION[0]}\n## Evaluation\n\n{table}{CARD_SECTION[1]}\n\n## Citation\n"
    (tmp_path / "ad" / constants.MODEL_CARD).write_text(card)
    argv = ["video", "--model", model, "--out", str(tmp_path / "eval"), "--episodes", "2", "--update_card"]
    encoded = []  # the frames each run hands to the encoder

    def keep_and_write(frames, *args):
        encoded.append(frames)
        write_mp4(frames, *args)

    monkeypatch.setattr("hf_ad.video.write_mp4", keep_and_write)
    for _ in range(2):  # a second run replaces the first one's block
        assert main(argv) == 0
    # The same run gives the same frames. (Not asserted: the same bytes. x264 is deterministic on one
    # machine, yet CI once saw the first frame encoded one byte longer in a second run.)
    assert len(encoded) == 2 and np.array_equal(np.stack(encoded[0]), np.stack(encoded[1]))
    with av.open(str(tmp_path / "eval" / constants.REPLAY_MP4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(encoded[1])
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


# Pixel Watermaze: the agent's view (28 x 28, scaled x6 to 168 by nearest neighbour) left of the 176 x 176
# top-down map, 4 pixels apart; each panel then scaled x2 like the grid envs'.
VIEW_FACTOR, VIEW_SIDE, MAP_SIDE, VIEW_GAP = 6, 168, 176, MARGIN // SCALE
PIXEL_EPISODE_STEPS = 50
SHOWN_STEP = 10  # the frame whose view panels are checked against the recorded observations


def _pixel_checkpoint(tmp_path) -> str:
    env = gym.make(constants.PIXEL_WATERMAZE)
    spec = config_kwargs_from_spaces(env.observation_space, env.action_space)
    return save_tiny_checkpoint(tmp_path / "ad", TASKS, env_id=constants.PIXEL_WATERMAZE, **spec)


def _poses_and_trails(replay: Replay, episode: int) -> tuple[list[tuple], list[set]]:
    """The pose and the cells visited so far at each frame of `episode`, from the recorded actions and
    MiniGrid's moves (`PoseTables`), independently of the env's own stepping."""
    tables = pose_tables(9, 4)
    pose = tables.start
    poses, trails = [pose_of(pose, 9)], [{pose_of(pose, 9)[:2]}]
    for action in replay.trajectories.actions[0, replay.trajectories.episodes[0] == episode]:
        pose = int(tables.next_pose[pose, action])
        poses.append(pose_of(pose, 9))
        trails.append(trails[-1] | {poses[-1][:2]})
    return poses, trails


def _closest_view(region: np.ndarray) -> np.ndarray:
    """Of all the room's views, the one closest to a decoded view panel (its block centres, where the lossy
    H.264 colours bleed least; mean absolute error)."""
    block = VIEW_FACTOR * SCALE  # screen pixels per view pixel
    centres = region[block // 2 :: block, block // 2 :: block].astype(np.int16)  # (28, 28, 3)
    views = pose_tables(9, 4).views  # (P, 28, 28, 3)
    errors = np.abs(views.astype(np.int16) - centres).mean(axis=(1, 2, 3))  # (P,)
    return views[errors.argmin()]


def test_pixel_frames_are_the_agents_view_beside_the_map_with_goal_and_trail(tmp_path):
    pipe = InContextRLPipeline.from_pretrained(_pixel_checkpoint(tmp_path), device="cpu")
    replay = record_replay(pipe, TASKS[1], 2, seed=4)
    env = gym.make(constants.PIXEL_WATERMAZE, render_mode="rgb_array")
    first, last = episode_frames(env, replay, [0, 1])
    for episode, frames in enumerate((first, last)):
        observations = replay.trajectories.observations[0, replay.trajectories.episodes[0] == episode]
        poses, trails = _poses_and_trails(replay, episode)
        assert len(frames) == PIXEL_EPISODE_STEPS + 1
        for step, frame in enumerate(frames[:-1]):  # the last frame's view is the episode's final one
            assert frame.shape == (MAP_SIDE, VIEW_SIDE + VIEW_GAP + MAP_SIDE, 3)
            assert np.array_equal(frame[:VIEW_SIDE, :VIEW_SIDE], upscale(observations[step], VIEW_FACTOR))
            expected_map = draw_watermaze("rgb_array", 9, TASKS[1], poses[step], trails[step])
            assert np.array_equal(frame[:, VIEW_SIDE + VIEW_GAP :], expected_map)
    assert any(len(trail) > 1 for trail in _poses_and_trails(replay, 1)[1])  # the agent moved: a trail


def test_pixel_video_decodes_to_the_view_and_map_layout(tmp_path):
    model = _pixel_checkpoint(tmp_path)
    video, replay = make_video(VideoConfig(model=model, out=str(tmp_path), episodes=3, seed=1))
    frames = _decode_mp4(video)
    panel_width = (VIEW_SIDE + VIEW_GAP + MAP_SIDE) * SCALE
    assert len(frames) == PIXEL_EPISODE_STEPS + 1 + HOLD_FRAMES
    assert {frame.shape for frame in frames} == {_two_panels(MAP_SIDE * SCALE, panel_width)}
    top = MARGIN + CAPTION_HEIGHT
    tables = pose_tables(9, 4)
    for episode, left in ((0, MARGIN), (2, 2 * MARGIN + panel_width)):  # episode 1, then the last one
        region = frames[SHOWN_STEP][top : top + VIEW_SIDE * SCALE, left : left + VIEW_SIDE * SCALE]
        poses, _ = _poses_and_trails(replay, episode)
        observation = replay.trajectories.observations[0, replay.trajectories.episodes[0] == episode][
            SHOWN_STEP
        ]
        assert np.array_equal(observation, tables.views[pose_index(*poses[SHOWN_STEP], 9)])
        assert np.array_equal(_closest_view(region), observation), episode  # the view the agent had
    assert "the agent's own view" in replay_caption(replay, "hf-ad video")
