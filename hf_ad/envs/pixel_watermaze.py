"""Pixel Watermaze: find an invisible goal from first-person images (the paper's DMLab Watermaze role).

The room is a MiniGrid room (Farama's `minigrid`): its walls, landmarks, dynamics and first-person
view are MiniGrid's own. The room is static (the goal is invisible, the landmarks never move), so
what the agent sees depends on its pose alone: every pose's view is drawn ONCE by MiniGrid's
renderer (`MiniGridEnv.get_frame(agent_pov=True)`, exactly what `RGBImgPartialObsWrapper` returns)
into a table, and every MiniGrid action's next pose once by MiniGrid's own `step`. The single and
the batched env then step and render by table lookup (`PoseTables`): a batch of frames is one numpy
`take` (see BENCHMARKS.md).

A pose is `(x, y, direction)` with `(x, y)` the free cell (`(0, 0)` top-left, y downwards, as in
Dark Room; MiniGrid's own coordinates are one more, counting the outer wall) and `direction`
MiniGrid's: 0 east (x + 1), 1 south (y + 1), 2 west, 3 north. Its index is
`(y * size + x) * 4 + direction`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Box, Floor, Goal, Key, WorldObj
from minigrid.minigrid_env import MiniGridEnv

from hf_ad.envs import grid
from hf_ad.envs.task_env import STATE_INFO, GoalEnv

# MiniGrid's navigation actions, with MiniGrid's own indices (`minigrid.core.actions.Actions`).
TURN_LEFT, TURN_RIGHT, FORWARD = range(3)
NUM_ACTIONS = 3
ACTION_NAMES = ("turn left", "turn right", "forward")
EAST, SOUTH, WEST, NORTH = range(4)  # MiniGrid's `agent_dir`
NUM_DIRECTIONS = 4
VIEW_TILES = 7  # MiniGrid's default `agent_view_size`: 7 x 7 tiles, the agent at the bottom centre
DEFAULT_TILE_SIZE = 4  # pixels per tile: a 28 x 28 RGB view
MAP_TILE_SIZE = 16  # pixels per tile of the top-down `rgb_array` render
DIRECTION_ARROWS = ">v<^"  # ansi render of the agent, per direction
TRAIL_COLOR = "blue"  # MiniGrid colour of the floor tiles marking the visited cells on the map

# The landmarks, fixed and all different (type and colour), in place of wall cells: two on each wall, at
# a quarter and three quarters of its length (no grey: the walls' colour). (wall, 0 or 1: the first or
# the second quarter mark, counted along x or y) -> (MiniGrid object class, colour).
LANDMARKS: dict[tuple[str, int], tuple[type[WorldObj], str]] = {
    ("north", 0): (Ball, "red"),
    ("north", 1): (Box, "green"),
    ("east", 0): (Key, "blue"),
    ("east", 1): (Ball, "yellow"),
    ("south", 0): (Box, "purple"),
    ("south", 1): (Key, "red"),
    ("west", 0): (Ball, "green"),
    ("west", 1): (Box, "blue"),
}


def _mission() -> str:
    return "find the hidden goal"


class WatermazeRoom(MiniGridEnv):
    """The MiniGrid room itself: a `size` x `size` free area, walls around, landmarks in the walls.

    Used to draw the views and derive the moves once (`PoseTables`), to draw the top-down map, and by
    the tests as the reference (wrapped in `minigrid.wrappers.RGBImgPartialObsWrapper`). Every reset
    puts the agent on the start pose: the free area's centre, facing north.

    Args:
        size: side of the free area (>= 3).
        tile_size: pixels per tile of the first-person view.
    """

    def __init__(self, size: int = 9, tile_size: int = DEFAULT_TILE_SIZE):
        self.size = size
        super().__init__(
            mission_space=MissionSpace(mission_func=_mission),
            grid_size=size + 2,
            max_steps=10**9,  # episodes are cut by hf_ad's TimeLimit, never by MiniGrid
            see_through_walls=False,
            agent_view_size=VIEW_TILES,
            tile_size=tile_size,
        )

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        for (x, y), obj in landmark_cells(self.size).items():
            self.grid.set(x + 1, y + 1, obj)
        start_x, start_y, start_direction = start_pose(self.size)
        self.agent_pos, self.agent_dir = (start_x + 1, start_y + 1), start_direction

    def set_pose(self, x: int, y: int, direction: int) -> None:
        """Put the agent on free cell `(x, y)` (hf_ad coordinates), facing `direction`."""
        self.agent_pos, self.agent_dir = (x + 1, y + 1), direction

    def pose(self) -> tuple[int, int, int]:
        """The agent's `(x, y, direction)` in hf_ad coordinates."""
        return int(self.agent_pos[0]) - 1, int(self.agent_pos[1]) - 1, int(self.agent_dir)


def landmark_cells(size: int) -> dict[tuple[int, int], WorldObj]:
    """The landmarks at their wall cells, in hf_ad coordinates (the walls are at -1 and `size`)."""
    along = (size // 4, size - 1 - size // 4)
    cells = {
        "north": lambda i: (along[i], -1),
        "east": lambda i: (size, along[i]),
        "south": lambda i: (along[i], size),
        "west": lambda i: (-1, along[i]),
    }
    return {cells[wall](i): kind(color) for (wall, i), (kind, color) in LANDMARKS.items()}


def start_pose(size: int) -> tuple[int, int, int]:
    """The fixed start pose: the centre cell, facing north."""
    return size // 2, size // 2, NORTH


def pose_index(x: int, y: int, direction: int, size: int) -> int:
    """The index `(y * size + x) * 4 + direction` of a pose."""
    return (y * size + x) * NUM_DIRECTIONS + direction


def pose_of(index: int, size: int) -> tuple[int, int, int]:
    """The `(x, y, direction)` of a pose index (the inverse of `pose_index`)."""
    cell, direction = divmod(int(index), NUM_DIRECTIONS)
    return cell % size, cell // size, direction


@dataclass(frozen=True)
class PoseTables:
    """Everything the env needs per pose, drawn and derived once by MiniGrid (read-only arrays).

    Attributes:
        size: side of the free area.
        views: `(P, H, W, 3)` uint8, MiniGrid's first-person view from each pose (P = size * size * 4).
        next_pose: `(P, 3)` int64, the pose each action leads to (MiniGrid's `step`).
        cell: `(P,)` int64, the flat cell `y * size + x` of each pose.
        start: index of the start pose.
    """

    size: int
    views: np.ndarray
    next_pose: np.ndarray
    cell: np.ndarray
    start: int

    @property
    def num_poses(self) -> int:
        return len(self.cell)

    def distances_to(self, goal_cell: int) -> np.ndarray:
        """`(P,)` int64: the fewest actions from each pose to any pose on `goal_cell` (0 on it, -1 where
        the cell cannot be reached), by breadth-first search backwards over the moves."""
        on_goal = self.cell == goal_cell  # (P,)
        if not on_goal.any():
            raise ValueError(f"cell {goal_cell} is no free cell of a {self.size} x {self.size} room")
        distance = np.where(on_goal, 0, -1)  # (P,)
        for steps in range(1, self.num_poses):
            frontier = distance == steps - 1  # (P,) poses reached last round
            reaches = frontier[self.next_pose].any(axis=1) & (distance < 0)  # (P,) one move from it
            if not reaches.any():
                break
            distance[reaches] = steps
        return distance

    def steps_to(self, goal_cell: int) -> int:
        """Fewest actions from the start pose to any pose on `goal_cell`."""
        steps = int(self.distances_to(goal_cell)[self.start])
        if steps < 0:
            raise ValueError(f"cell {goal_cell} cannot be reached from the start pose")
        return steps

    def random_walk_matrix(self) -> np.ndarray:
        """`(P, P)` transition matrix of the uniformly random policy over the poses."""
        walk = np.zeros((self.num_poses, self.num_poses))
        for action in range(NUM_ACTIONS):
            np.add.at(walk, (np.arange(self.num_poses), self.next_pose[:, action]), 1.0 / NUM_ACTIONS)
        return walk


@lru_cache(maxsize=8)
def pose_tables(size: int, tile_size: int) -> PoseTables:
    """The `PoseTables` of one room (about 1 s for 9 x 9; cached per process)."""
    room = WatermazeRoom(size, tile_size)
    room.reset(seed=0)  # builds the grid; the room draws nothing at random
    num_poses = size * size * NUM_DIRECTIONS
    side = VIEW_TILES * tile_size
    views = np.empty((num_poses, side, side, 3), dtype=np.uint8)  # (P, H, W, 3)
    next_pose = np.empty((num_poses, NUM_ACTIONS), dtype=np.int64)  # (P, A)
    for y in range(size):
        for x in range(size):
            for direction in range(NUM_DIRECTIONS):
                pose = pose_index(x, y, direction, size)
                room.set_pose(x, y, direction)
                views[pose] = room.get_frame(tile_size=tile_size, agent_pov=True)
                for action in range(NUM_ACTIONS):
                    room.set_pose(x, y, direction)
                    room.step(action)
                    next_pose[pose, action] = pose_index(*room.pose(), size)
    views.flags.writeable = next_pose.flags.writeable = False
    cell = np.arange(num_poses, dtype=np.int64) // NUM_DIRECTIONS  # (P,)
    cell.flags.writeable = False
    return PoseTables(size, views, next_pose, cell, pose_index(*start_pose(size), size))


OBSERVATIONS = ("view", "pose")  # what the agent observes: the first-person image, or the pose (diagnostic)


def observations_of(tables: PoseTables, observation: str) -> tuple[np.ndarray, gym.Space]:
    """`(table, space)`: the observation of each pose, `(P, H, W, 3)` uint8 views or `(P, 3)` int64 poses
    `(x, y, direction)`, and its observation space.

    Raises:
        ValueError: `observation` is not one of `OBSERVATIONS`.
    """
    if observation == "view":
        return tables.views, gym.spaces.Box(0, 255, tables.views.shape[1:], dtype=np.uint8)
    if observation == "pose":
        direction = np.arange(tables.num_poses) % NUM_DIRECTIONS  # (P,): pose index = cell * 4 + direction
        poses = np.stack((tables.cell % tables.size, tables.cell // tables.size, direction), axis=1)  # (P, 3)
        return poses, gym.spaces.MultiDiscrete([tables.size, tables.size, NUM_DIRECTIONS])
    raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")


@lru_cache(maxsize=4)
def _map_room(size: int) -> WatermazeRoom:
    room = WatermazeRoom(size)
    room.reset(seed=0)
    return room


def draw_watermaze(
    render_mode: str | None,
    size: int,
    goal: tuple[int, int] | None,
    pose: tuple[int, int, int],
    trail: Iterable[tuple[int, int]] = (),
) -> str | np.ndarray | None:
    """One top-down frame: text for `"ansi"`, MiniGrid's full view for `"rgb_array"`.

    Text: `#` walls, `G` the goal, the agent as an arrow of its direction (`> v < ^`), `@` on the goal.
    Image: `(size + 2) * 16` pixels square, MiniGrid's own drawing of the room, the landmarks, the agent
    and its field of view (highlighted), with the hidden goal drawn as MiniGrid's green goal tile and the
    `trail` of visited cells as MiniGrid's coloured floor tiles (`TRAIL_COLOR`) under the goal and the agent.
    """
    x, y, direction = pose
    if render_mode == "ansi":
        marks = {} if goal is None else {goal: "G"}
        marks[(x, y)] = "@" if (x, y) == goal else DIRECTION_ARROWS[direction]
        return grid.draw_text(size, marks)
    if render_mode != "rgb_array":
        return None
    room = _map_room(size)
    room.set_pose(x, y, direction)
    marks: dict[tuple[int, int], WorldObj] = {cell: Floor(TRAIL_COLOR) for cell in trail}
    if goal is not None:
        marks[tuple(goal)] = Goal()
    for (cell_x, cell_y), mark in marks.items():
        room.grid.set(cell_x + 1, cell_y + 1, mark)
    try:
        return room.get_frame(highlight=True, tile_size=MAP_TILE_SIZE, agent_pov=False)
    finally:
        for cell_x, cell_y in marks:
            room.grid.set(cell_x + 1, cell_y + 1, None)


class PixelWatermazeEnv(GoalEnv):
    """Find an invisible goal in a MiniGrid room with landmarks, seeing only a first-person image.

    ## Description
    The paper's Watermaze (DMLab: a first-person view, a hidden platform, visual cues on the walls)
    on Farama's MiniGrid. The room has `size` x `size` free cells (9 x 9 registered as
    `hf_ad/PixelWatermaze-v0`) inside a wall. Eight fixed landmarks, all different (a red ball and a
    green box in the north wall, a blue key and a yellow ball in the east wall, a purple box and a
    red key in the south wall, a green ball and a blue box in the west wall; `LANDMARKS`), stand in
    place of wall cells at a quarter and three quarters of each wall: the agent can never enter
    them, and they tell where it is and which way it faces. The task is the goal cell `(x, y)`,
    which is never drawn; the same goal stays for every episode until a new one is given, so an
    agent can learn it across episodes.

    Every episode starts on the same pose: the centre cell, facing north. A fixed start makes each
    episode's return depend only on what the agent knows of the goal, so the improvement from
    episode to episode measures in-context learning (as in Dark Room), and the optimal return is
    exact per task; the landmarks are still needed, since the agent sees only its view and must
    find its way back to a remembered cell by sight.

    Coordinates: `(0, 0)` is the top-left free cell, `x` grows to the right and `y` downwards
    (MiniGrid's own coordinates add 1 for the wall). Directions are MiniGrid's: 0 east, 1 south,
    2 west, 3 north.

    ## Action Space
    `Discrete(3)`, MiniGrid's navigation actions with MiniGrid's indices: 0 turn left, 1 turn right,
    2 forward. Forward into a wall or a landmark leaves the agent where it is. There is no no-op:
    turning keeps the agent on its cell, so it can stay on the goal. Any other action raises
    `ValueError`.

    ## Observation Space
    `Box(0, 255, (7 * tile_size, 7 * tile_size, 3), uint8)`: MiniGrid's egocentric partial view of
    7 x 7 tiles (the agent at the bottom centre, facing up; walls hide what is behind them), exactly
    the image `minigrid.wrappers.RGBImgPartialObsWrapper` returns, 28 x 28 x 3 with the default
    `tile_size=4`. The pose is not observed; `info["state"]` reports its index
    `(y * size + x) * 4 + direction` for privileged learners (tabular Q-learning), never for the agent.
    With `observation="pose"` (a diagnostic: is the view what limits an agent?) the observation is the
    pose itself instead, `MultiDiscrete([size, size, 4])` `(x, y, direction)`.

    ## Rewards
    After each action, 1 if the agent stands on the goal, else 0, on every such step (as Dark Room):
    a faster arrival earns more, so the return measures how well the agent knows where the goal is,
    not only whether it found it. The optimal return is `50 - max(d, 1) + 1` for a goal `d` actions
    from the start pose (breadth-first search over cell x direction); `hf_ad.envs.optimal_return`
    and `hf_ad.envs.random_return` are exact.

    ## Episode End
    The episode never terminates. It is truncated after 50 steps by the `TimeLimit` that
    `gymnasium.make` adds (`max_episode_steps=50` in the registration).

    ## Arguments
    - `goal` (or its alias `task`): the goal `(x, y)`, or `None` to draw one uniformly from
      `self.np_random` at the first `reset` and again at every `reset(seed=...)`; the goal is kept
      across other resets. `reset(options={"task": (x, y)})` sets a new goal.
    - `size`: side of the free area (default 9, at least 3).
    - `tile_size`: pixels per tile of the view (default 4).
    - `observation`: `"view"` (default, the first-person image) or `"pose"` (`(x, y, direction)`: the
      privileged pose as the observation, to measure what seeing costs).
    - `render_mode`: `"ansi"` (text: `#` walls, `G` goal, the agent as `> v < ^`, `@` on the goal) or
      `"rgb_array"` (MiniGrid's top-down drawing with the field of view, the goal and the cells visited
      since the episode began as a trail).

    ```python
    env = gym.make("hf_ad/PixelWatermaze-v0", goal=(2, 7))
    observation, info = env.reset(seed=0)  # (28, 28, 3) uint8; info["state"] == 163
    ```
    """

    def __init__(
        self,
        goal: tuple[int, int] | None = None,
        task: tuple[int, int] | None = None,
        size: int = 9,
        tile_size: int = DEFAULT_TILE_SIZE,
        observation: str = "view",
        render_mode: str | None = None,
    ):
        self.size = grid.check_size(size)
        if self.size < 3:
            raise ValueError(f"size must be at least 3 (a landmark on each wall), got {size!r}")
        if isinstance(tile_size, bool) or not isinstance(tile_size, int | np.integer) or tile_size < 1:
            raise ValueError(f"tile_size must be a positive integer (pixels per tile), got {tile_size!r}")
        self.tile_size = int(tile_size)
        self.tables = pose_tables(self.size, self.tile_size)
        # (P, ...) the observation of each pose, looked up at every step
        self.observed, self.observation_space = observations_of(self.tables, observation)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.render_mode = grid.check_render_mode(render_mode, self.metadata["render_modes"])
        super().__init__(goal, task)
        self._pose = self.tables.start
        self._trail = {self.pose[:2]}  # cells visited this episode (at most size * size)

    @property
    def pose(self) -> tuple[int, int, int]:
        """The agent's `(x, y, direction)`."""
        return pose_of(self._pose, self.size)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.reset_task(seed, options)
        self._pose = self.tables.start
        self._trail = {self.pose[:2]}
        return self._observation(), self._info()

    def step(self, action):
        action = grid.check_action(action, NUM_ACTIONS)
        self._pose = int(self.tables.next_pose[self._pose, action])
        self._trail.add(self.pose[:2])
        goal_x, goal_y = self.goal
        reward = float(self.tables.cell[self._pose] == goal_y * self.size + goal_x)
        return self._observation(), reward, False, False, self._info()

    def render(self):
        return draw_watermaze(self.render_mode, self.size, self.goal, self.pose, self._trail)

    def _observation(self) -> np.ndarray:
        return self.observed[self._pose].copy()  # (H, W, 3) uint8 or (3,) int64; the table is shared

    def _info(self) -> dict[str, Any]:
        return {STATE_INFO: self._pose}
