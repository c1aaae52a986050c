"""Pixel Watermaze: MiniGrid's own views and moves, the spec, the oracles and the batched renderer."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from minigrid.core.world_object import Wall
from minigrid.wrappers import RGBImgPartialObsWrapper

from hf_ad.constants import PIXEL_WATERMAZE
from hf_ad.envs import STATE_INFO, make_vector_env, optimal_return, random_return, task_split
from hf_ad.envs.pixel_watermaze import (
    FORWARD,
    MAP_TILE_SIZE,
    NORTH,
    TURN_LEFT,
    TURN_RIGHT,
    WEST,
    WatermazeRoom,
    draw_watermaze,
    landmark_cells,
    pose_index,
    pose_of,
    pose_tables,
    start_pose,
)

SIZE, TILE = 9, 4


def minigrid_view(size=SIZE, tile_size=TILE):
    """MiniGrid's reference: the room wrapped in `RGBImgPartialObsWrapper`, stepped by MiniGrid's `step`."""
    env = RGBImgPartialObsWrapper(WatermazeRoom(size, tile_size), tile_size=tile_size)
    env.reset(seed=0)
    return env


def test_every_pose_and_move_is_minigrids():
    """Exhaustive: every pose's view and every action's next pose, against MiniGrid's wrapper and step."""
    tables = pose_tables(SIZE, TILE)
    reference = minigrid_view()
    room = reference.unwrapped
    for pose in range(tables.num_poses):
        room.set_pose(*pose_of(pose, SIZE))
        assert np.array_equal(tables.views[pose], reference.observation({})["image"]), pose_of(pose, SIZE)
        for action in (TURN_LEFT, TURN_RIGHT, FORWARD):
            room.set_pose(*pose_of(pose, SIZE))
            observation, *_ = reference.step(action)
            following = tables.next_pose[pose, action]
            assert room.pose() == pose_of(following, SIZE)
            assert np.array_equal(tables.views[following], observation["image"])


@pytest.mark.parametrize("tile_size", [4, 3])
def test_batched_frames_are_pixel_identical_to_minigrids_over_random_steps(tile_size):
    goals = [(2, 7), (4, 4), (0, 0), (8, 3)]
    vector = make_vector_env(PIXEL_WATERMAZE, goals, tile_size=tile_size)
    references = [minigrid_view(tile_size=tile_size) for _ in goals]
    observations, _ = vector.reset(seed=0)
    assert np.array_equal(observations, [env.observation({})["image"] for env in references])
    # forward-heavy random actions, so the walk reaches the walls and faces the landmarks
    actions = np.random.default_rng(1).choice(3, size=(300, len(goals)), p=[0.25, 0.25, 0.5])
    poses, bumps = set(), 0
    for step, step_actions in enumerate(actions):
        observations, _, _, truncated, info = vector.step(step_actions)
        frames = []
        for env, action in zip(references, step_actions, strict=True):
            before = env.unwrapped.pose()
            frames.append(env.step(int(action))[0]["image"])
            bumps += action == FORWARD and env.unwrapped.pose() == before
            poses.add(env.unwrapped.pose())
        if (step + 1) % 50 == 0:  # the episode ended: compare its last frames, then restart MiniGrid's
            assert truncated.all()
            assert np.array_equal(info["final_obs"], frames)
            frames = [env.reset(seed=0)[0]["image"] for env in references]
        assert np.array_equal(observations, frames), step
    assert len(poses) > 150 and bumps > 20  # most poses seen, walls and landmarks run into


def test_spec_start_pose_moves_and_landmarks():
    env = gym.make(PIXEL_WATERMAZE, goal=(4, 1))
    assert env.observation_space == gym.spaces.Box(0, 255, (28, 28, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(3) and env.spec.max_episode_steps == 50
    observation, info = env.reset(seed=0)
    assert env.unwrapped.pose == (4, 4, NORTH) and info[STATE_INFO] == pose_index(4, 4, NORTH, SIZE) == 163
    rewards = [env.step(FORWARD)[1] for _ in range(3)]  # (4, 1) is 3 cells north
    assert rewards == [0.0, 0.0, 1.0] and env.unwrapped.pose == (4, 1, NORTH)
    assert env.step(TURN_LEFT)[1] == 1.0 and env.unwrapped.pose == (4, 1, WEST)  # turning stays on it
    for _ in range(10):
        env.step(FORWARD)
    assert env.unwrapped.pose == (0, 1, WEST)  # the wall stops it
    truncated = [env.step(TURN_RIGHT)[3] for _ in range(36)]
    assert truncated == [False] * 35 + [True]  # 50 steps in all

    landmarks = landmark_cells(SIZE)
    assert len(landmarks) == 8 and len({(obj.type, obj.color) for obj in landmarks.values()}) == 8
    assert all(x in (-1, SIZE) or y in (-1, SIZE) for x, y in landmarks)  # in the walls
    assert not any(
        isinstance(obj, Wall) or obj.can_overlap() or obj.color == "grey" for obj in landmarks.values()
    )
    env.reset()
    env.step(TURN_LEFT), env.step(FORWARD), env.step(FORWARD), env.step(TURN_RIGHT)  # to (2, 4), north
    for _ in range(10):
        env.step(FORWARD)
    assert env.unwrapped.pose == (2, 0, NORTH) and (2, -1) in landmarks  # a landmark cannot be entered


def test_views_tell_poses_apart():
    """The landmarks make the view informative: few poses share a view (the centre's four do not)."""
    views = pose_tables(SIZE, TILE).views.reshape(4 * SIZE * SIZE, -1)
    distinct = len(np.unique(views, axis=0))
    assert distinct > 0.6 * len(views)
    centre = [pose_index(4, 4, direction, SIZE) for direction in range(4)]
    assert len(np.unique(views[centre], axis=0)) == 4


def test_oracles_are_exact():
    # fewest actions from the centre facing north: straight ahead, behind (turn twice), a corner
    assert optimal_return(PIXEL_WATERMAZE, (4, 4)) == 50  # pays from the first step
    assert optimal_return(PIXEL_WATERMAZE, (4, 0)) == 50 - 4 + 1
    assert optimal_return(PIXEL_WATERMAZE, (4, 5)) == 50 - 3 + 1
    assert optimal_return(PIXEL_WATERMAZE, (2, 7)) == 50 - 7 + 1  # left, 2 forward, left, 3 forward
    assert optimal_return(PIXEL_WATERMAZE, (0, 0), max_episode_steps=5) == 0  # 10 actions away

    goal, episodes = (3, 2), 4_000
    vector = make_vector_env(PIXEL_WATERMAZE, [goal] * episodes)
    vector.reset(seed=0)
    rng = np.random.default_rng(0)
    returns = sum(vector.step(rng.integers(0, 3, size=episodes))[1] for _ in range(50))  # (E,)
    expected = random_return(PIXEL_WATERMAZE, goal)
    assert 0 < expected < optimal_return(PIXEL_WATERMAZE, goal)
    assert abs(returns.mean() - expected) < 4 * returns.std() / np.sqrt(episodes)


def test_split_is_dark_rooms_goals():
    train, test = task_split(PIXEL_WATERMAZE)
    assert (len(train), len(test)) == (65, 16) and test == task_split("hf_ad/DarkRoom-v0")[1]


def _map_tile(image: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
    """The 16 x 16 tile of free cell `cell` on the top-down map (MiniGrid adds 1 for the wall)."""
    top, left = ((np.array(cell[::-1]) + 1) * MAP_TILE_SIZE).tolist()
    return image[top : top + MAP_TILE_SIZE, left : left + MAP_TILE_SIZE]


def test_renders_minigrids_top_down_map_with_the_goal_and_the_trail():
    env = gym.make(PIXEL_WATERMAZE, goal=(2, 7), render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (176, 176, 3)
    assert (_map_tile(image, (2, 7)) == (0, 255, 0)).all(axis=-1).mean() > 0.5  # MiniGrid's green goal tile
    for action in (FORWARD, FORWARD, TURN_LEFT, FORWARD):  # (4, 4) north to (4, 2), then west to (3, 2)
        env.step(action)
    trail = env.render()
    floor = _map_tile(trail, (6, 6))[8, 8]  # a cell never visited, outside the field of view
    for cell in ((4, 4), (4, 3), (3, 2)):
        assert (_map_tile(trail, cell) != _map_tile(image, cell)).any(), cell  # on the trail
    assert tuple(_map_tile(trail, (4, 4))[8, 8]) != tuple(floor)
    assert np.array_equal(_map_tile(trail, (6, 6)), _map_tile(image, (6, 6)))  # off it: unchanged
    env.reset()
    assert np.array_equal(env.render(), image)  # a new episode starts a new trail
    text = gym.make(PIXEL_WATERMAZE, goal=(2, 7), render_mode="ansi")
    text.reset()
    text.step(TURN_LEFT)
    assert text.render().splitlines()[5] == "# . . . . < . . . . #"
    vector = make_vector_env(PIXEL_WATERMAZE, [(2, 7), (0, 0)], render_mode="rgb_array")
    vector.reset(seed=0)
    frames = vector.render()  # the batched env draws no trail
    assert np.array_equal(frames[0], draw_watermaze("rgb_array", SIZE, (2, 7), start_pose(SIZE)))
    assert not np.array_equal(frames[1], frames[0])


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="tile_size must be a positive integer"):
        gym.make(PIXEL_WATERMAZE, tile_size=0)
    with pytest.raises(ValueError, match="size must be an integer >= 2"):
        gym.make(PIXEL_WATERMAZE, size=1)
    with pytest.raises(ValueError, match="outside the 9x9 grid"):
        gym.make(PIXEL_WATERMAZE, goal=(9, 0))
    with pytest.raises(ValueError, match=r"observation must be one of \('view', 'pose'\), got 'xyz'"):
        gym.make(PIXEL_WATERMAZE, observation="xyz")
    with pytest.raises(ValueError, match=r"action must be an integer in 0\.\.2, got 3"):
        env = gym.make(PIXEL_WATERMAZE, goal=(1, 1)).unwrapped
        env.reset(seed=0)
        env.step(3)


def test_pose_observation_is_the_hidden_pose_batched_and_single():
    """The diagnostic `observation="pose"`: the pose `(x, y, direction)` instead of the view."""
    tasks = [(2, 7), (1, 1)]
    batched = make_vector_env(PIXEL_WATERMAZE, tasks, observation="pose")
    singles = [gym.make(PIXEL_WATERMAZE, goal=task, observation="pose") for task in tasks]
    check_env(singles[0].unwrapped, skip_render_check=True)
    assert batched.single_observation_space == gym.spaces.MultiDiscrete([SIZE, SIZE, 4])
    observations, info = batched.reset(seed=0)
    for env in singles:
        env.reset(seed=0)
    actions = np.random.default_rng(0).integers(3, size=(49, len(tasks)))  # (steps, N) within one episode
    for step_actions in actions:
        np.testing.assert_array_equal(observations, [pose_of(pose, SIZE) for pose in info[STATE_INFO]])
        observations, rewards, _, _, info = batched.step(step_actions)
        outcomes = [env.step(int(action)) for env, action in zip(singles, step_actions, strict=True)]
        np.testing.assert_array_equal(observations, np.stack([outcome[0] for outcome in outcomes]))
        np.testing.assert_array_equal(rewards, [outcome[1] for outcome in outcomes])


def test_distances_to_a_goal_cell_follow_minigrids_moves():
    tables = pose_tables(9, 4)
    goal_cell = 7 * 9 + 2
    distances = tables.distances_to(goal_cell)  # (P,)
    assert (distances[tables.cell == goal_cell] == 0).all() and distances.min() == 0
    # One move closer is always possible off the goal, and no move ever gets more than one closer.
    after = distances[tables.next_pose]  # (P, A)
    off_goal = distances > 0
    assert (after.min(axis=1)[off_goal] == distances[off_goal] - 1).all()
    assert (after >= distances[:, None] - 1).all()
    assert tables.steps_to(goal_cell) == distances[tables.start] == 7
    with pytest.raises(ValueError, match="no free cell"):
        tables.distances_to(81)
