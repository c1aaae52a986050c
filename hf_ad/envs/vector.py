"""Native numpy-batched versions of the envs: N tasks stepped at once, one array operation per step.

Each batched env follows gymnasium's `VectorEnv` API with same-step autoreset
(`metadata["autoreset_mode"] == AutoresetMode.SAME_STEP`): on the step where a sub-env's episode
ends, the observation it returns is already the first observation of its next episode, and the
last observation of the ended episode is in `info["final_obs"]` (an array shaped like the batch of
observations, meaningful where the mask `info["_final_obs"]` is True), with the info of that last
step in `info["final_info"]` (mask `info["_final_info"]`); these keys are present only on steps
where episodes end. No action is ever dropped, which keeps learning histories intact.

Sub-envs run in lock-step: they all start at `reset` and every episode of these envs has the same
length (grid envs never terminate and are truncated at `max_episode_steps`; a bandit episode is one
pull), so all episodes end on the same step and the masks are all True. One clock and one read
position serve every sub-env, which keeps a step to about a dozen array operations.

Randomness and seeding: sub-env `i` owns one generator, seeded exactly like a single env whose
`reset(seed=...)` got the same seed, and reads its uniforms in blocks (numpy's `random(k)` returns
the same numbers as `k` calls of `random()`). `reset(seed=s)` seeds sub-env `i` with `s + i` (as
gymnasium's `SyncVectorEnv` does) and `reset(seed=[s_0, s_1, ...])` with the given seeds, so a
batched env matches N single envs from `gymnasium.make` step for step: same observations, rewards,
terminations, truncations and infos. Episode lengths come from `max_episode_steps` (the
registration's value by default), truncating exactly like the `TimeLimit` that `gymnasium.make`
adds.

`reset(options={"tasks": [...]})` sets one new task per sub-env (`num_envs` tasks).

Tasks default to the env's held-out split (`hf_ad.envs.draw_test_tasks`: a fixed shuffle by `task_seed`,
default 0, repeated to fill `num_envs`), the tasks an AD model is evaluated on, so that
`gymnasium.make_vec("hf_ad/DarkRoom-v0", num_envs=16)` is the 16 held-out goals and any `num_envs`
gives the same tasks every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from hf_ad.constants import BANDIT, DARK_KEY_TO_DOOR, DARK_ROOM, DARK_ROOM_HARD, PIXEL_WATERMAZE
from hf_ad.envs import grid
from hf_ad.envs.bandit import BanditEnv, draw_bandit
from hf_ad.envs.dark_room import DarkRoomEnv, draw_dark_room
from hf_ad.envs.key_to_door import DarkKeyToDoorEnv, draw_key_to_door
from hf_ad.envs.pixel_watermaze import PixelWatermazeEnv, PoseTables, draw_watermaze, pose_of
from hf_ad.envs.registration import env_spec
from hf_ad.envs.task_env import STATE_INFO
from hf_ad.envs.tasks import draw_test_tasks


class UniformStreams:
    """One random generator per sub-env, read in lock-step in blocks of uniforms in [0, 1).

    Every draw takes the next uniform of every sub-env. Sub-env `i`'s uniforms are exactly those of
    successive `rng.random()` calls on a generator made by `gymnasium.utils.seeding.np_random(seeds[i])`,
    as in a single env. Generators are created on the first draw, so envs that never draw pay
    nothing for seeding.

    Args:
        num_envs: number of sub-envs.
        block: uniforms drawn per generator call (default: 2**20 in all, 64 to 4096 per sub-env).
    """

    def __init__(self, num_envs: int, block: int | None = None):
        self.num_envs = num_envs
        self.block = block or min(max(2**20 // num_envs, 64), 4096)
        self.seeds: list[int | None] | None = None
        self._generators: list[np.random.Generator] | None = None
        self._buffer = np.empty((self.block, num_envs))  # (block, N): row k = every sub-env's k-th uniform
        self._position = self.block  # next unread row

    @property
    def seeded(self) -> bool:
        return self.seeds is not None

    def seed(self, seeds: Sequence[int | None]) -> None:
        """Restart every stream; a `None` seed draws fresh entropy."""
        self.seeds = list(seeds)
        self._generators = None
        self._position = self.block

    def next(self) -> np.ndarray:
        """`(N,)` float64: the next uniform of every sub-env."""
        if self._position == self.block:
            if self._generators is None:
                self._generators = [seeding.np_random(seed)[0] for seed in self.seeds]
            for env, generator in enumerate(self._generators):
                self._buffer[:, env] = generator.random(self.block)
            self._position = 0
        self._position += 1
        return self._buffer[self._position - 1].copy()


class _BatchedEnv(VectorEnv):
    """Shared machinery: tasks, seeding, time limit, same-step autoreset, infos and rendering.

    Sub-envs run in lock-step (see the module docstring). A subclass keeps its state in arrays and
    implements `_load_tasks`, `_reset_all`, `_transition` (returning one `terminated` flag for
    all), `_observations`, `_info` and `_render_one`.
    """

    metadata = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
    }

    def __init__(
        self,
        template: gym.Env,
        tasks: Sequence,
        num_envs: int | None,
        max_episode_steps: int | None,
        render_mode: str | None,
    ):
        self._template = template  # a single env: spaces and task validation
        tasks = list(tasks)
        if not tasks:
            raise ValueError("tasks must hold at least one task (one per sub-env)")
        if num_envs is not None and num_envs != len(tasks):
            raise ValueError(
                f"num_envs={num_envs!r} does not match the {len(tasks)} tasks: pass one task per sub-env"
            )
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}"
            )
        self.num_envs = len(tasks)
        self.max_episode_steps = max_episode_steps
        self.render_mode = grid.check_render_mode(render_mode, self.metadata["render_modes"])
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._num_actions = int(self.single_action_space.n)
        self._streams = UniformStreams(self.num_envs)
        self._elapsed = 0  # steps into the current episode, the same for every sub-env
        self.set_tasks(tasks)

    def set_tasks(self, tasks: Sequence) -> None:
        """Validate and load one task per sub-env (takes effect from the next reset)."""
        tasks = list(tasks)
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks (one per sub-env), got {len(tasks)}")
        self.tasks = [self._template.check_task(task) for task in tasks]
        self._load_tasks(np.array(self.tasks))

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed if isinstance(seed, int) else None)
        options = dict(options or {})
        tasks = options.pop("tasks", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only option is 'tasks'")
        if seed is not None:
            self._streams.seed(self._sub_env_seeds(seed))
        elif not self._streams.seeded:
            self._streams.seed([None] * self.num_envs)
        if tasks is not None:
            self.set_tasks(tasks)
        self._elapsed = 0
        self._reset_all()
        return self._observations(), self._info()

    def step(self, actions):
        actions = grid.check_actions(actions, self.num_envs, self._num_actions)  # (N,)
        rewards, terminated = self._transition(actions)  # (N,) float32, one bool for all
        self._elapsed += 1
        # as gymnasium's TimeLimit: truncated once the limit is reached, even when also terminated
        truncated = self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps
        terminations = (np.ones if terminated else np.zeros)(self.num_envs, dtype=bool)
        truncations = (np.ones if truncated else np.zeros)(self.num_envs, dtype=bool)
        if not (terminated or truncated):
            return self._observations(), rewards, terminations, truncations, self._info()
        final_observations, final_info = self._observations(), self._info()
        self._elapsed = 0
        self._reset_all()
        ended = np.ones(self.num_envs, dtype=bool)
        info = self._info()
        info.update(final_obs=final_observations, _final_obs=ended, final_info=final_info, _final_info=ended)
        return self._observations(), rewards, terminations, truncations, info

    def render(self) -> tuple | None:
        """One frame per sub-env (text for `"ansi"`, an image for `"rgb_array"`)."""
        if self.render_mode is None:
            return None
        return tuple(self._render_one(i) for i in range(self.num_envs))

    def _sub_env_seeds(self, seed: int | Sequence[int]) -> list[int]:
        if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(
                f"seed must be an int or {self.num_envs} ints (one per sub-env), got {len(seeds)}"
            )
        return [int(s) for s in seeds]

    # Implemented by each env.
    def _load_tasks(self, tasks: np.ndarray) -> None:
        raise NotImplementedError

    def _reset_all(self) -> None:
        raise NotImplementedError

    def _transition(self, actions: np.ndarray) -> tuple[np.ndarray, bool]:
        raise NotImplementedError

    def _observations(self) -> np.ndarray:
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        return {}

    def _render_one(self, env: int):
        raise NotImplementedError


class _GridBatchedEnv(_BatchedEnv):
    """Agents on flat cell indices; one table lookup per step moves all of them."""

    def __init__(self, template, tasks, num_envs, max_episode_steps, render_mode):
        self.size = template.size
        self._next_cell = grid.next_cell_table(self.size).reshape(-1)  # (n * A,) flat [cell, action]
        self._coordinates = grid.cell_coordinates(self.size)  # (n, 2)
        self._cell = np.zeros(len(tasks), dtype=np.int64)  # (N,) flat index y * size + x
        super().__init__(template, tasks, num_envs, max_episode_steps, render_mode)

    def _move(self, actions: np.ndarray) -> np.ndarray:
        self._cell = self._next_cell.take(self._cell * grid.NUM_ACTIONS + actions)  # (N,)
        return self._cell

    def _observations(self) -> np.ndarray:
        return self._coordinates.take(self._cell, axis=0)  # (N, 2) int64 (x, y)

    def _agent(self, env: int) -> tuple[int, int]:
        return tuple(int(v) for v in self._coordinates[self._cell[env]])


class DarkRoomVectorEnv(_GridBatchedEnv):
    """N Dark Rooms (one goal each) stepped at once; the batched `hf_ad.envs.DarkRoomEnv`.

    Args:
        tasks: one goal `(x, y)` per sub-env.
        size: side of the room (default 9).
        reward_once: reward only the first arrival per episode (Dark Room Hard).
        reward_prob: probability in (0, 1] that a step on the goal pays (one uniform per sub-env and
            step when below 1, as in the single env).
        max_episode_steps: episode length (default 20, the registration's).
        render_mode: `"ansi"`, `"rgb_array"` or None.
        num_envs: optional; must equal `len(tasks)` (for `gymnasium.make_vec`).
    """

    def __init__(
        self,
        tasks: Sequence[tuple[int, int]],
        size: int = 9,
        reward_once: bool = False,
        reward_prob: float = 1.0,
        max_episode_steps: int | None = 20,
        render_mode: str | None = None,
        num_envs: int | None = None,
    ):
        template = DarkRoomEnv(size=size, reward_once=reward_once, reward_prob=reward_prob)
        self.reward_once = template.reward_once
        self.reward_prob = template.reward_prob
        self._start_cell = template.start[1] * template.size + template.start[0]
        self._rewarded = np.zeros(len(tasks), dtype=bool)  # (N,) goal reached this episode
        super().__init__(template, tasks, num_envs, max_episode_steps, render_mode)

    @property
    def tables(self) -> PoseTables:
        """The room's views, moves and cells per pose (shared, read-only), e.g. for an oracle policy."""
        return self._tables

    def _load_tasks(self, tasks: np.ndarray) -> None:
        self._goal_cell = tasks[:, 1] * self.size + tasks[:, 0]  # (N,)

    def _reset_all(self) -> None:
        self._cell = np.full(self.num_envs, self._start_cell, dtype=np.int64)
        self._rewarded[:] = False

    def _transition(self, actions):
        on_goal = self._move(actions) == self._goal_cell  # (N,)
        if self.reward_prob < 1.0:
            on_goal &= self._streams.next() < self.reward_prob  # (N,) paid steps
        if self.reward_once:
            rewards = on_goal & ~self._rewarded
            self._rewarded |= on_goal
        else:
            rewards = on_goal
        return rewards.astype(np.float32), False

    def _render_one(self, env: int):
        return draw_dark_room(self.render_mode, self.size, self.tasks[env], self._agent(env))


class DarkKeyToDoorVectorEnv(_GridBatchedEnv):
    """N Key-to-Door rooms stepped at once; the batched `hf_ad.envs.DarkKeyToDoorEnv`.

    `info["has_key"]` is an `(N,)` bool array for the returned observations (False for a sub-env
    whose new episode just started; the value at the end of its last episode is in
    `info["final_info"]["has_key"]`).

    Args:
        tasks: one `(key_x, key_y, door_x, door_y)` per sub-env.
        size: side of the room (default 9).
        max_episode_steps: episode length (default 50, the registration's).
        render_mode: `"ansi"`, `"rgb_array"` or None.
        num_envs: optional; must equal `len(tasks)` (for `gymnasium.make_vec`).
    """

    def __init__(
        self,
        tasks: Sequence[tuple[int, int, int, int]],
        size: int = 9,
        max_episode_steps: int | None = 50,
        render_mode: str | None = None,
        num_envs: int | None = None,
    ):
        template = DarkKeyToDoorEnv(size=size)
        self._has_key = np.zeros(len(tasks), dtype=bool)  # (N,)
        self._door_opened = np.zeros(len(tasks), dtype=bool)  # (N,)
        super().__init__(template, tasks, num_envs, max_episode_steps, render_mode)

    def _load_tasks(self, tasks: np.ndarray) -> None:
        self._key_cell = tasks[:, 1] * self.size + tasks[:, 0]  # (N,)
        self._door_cell = tasks[:, 3] * self.size + tasks[:, 2]  # (N,)

    def _reset_all(self) -> None:
        # Same draw as the single env: cell floor(u * size**2) for one uniform per episode.
        self._cell = (self._streams.next() * (self.size * self.size)).astype(np.int64)
        self._has_key[:] = False
        self._door_opened[:] = False

    def _transition(self, actions):
        cell = self._move(actions)
        got_key = ~self._has_key & (cell == self._key_cell)  # (N,)
        opened = self._has_key & ~self._door_opened & (cell == self._door_cell)  # (N,) key held before
        self._has_key |= got_key
        self._door_opened |= opened
        return (got_key | opened).astype(np.float32), False

    def _info(self) -> dict[str, Any]:
        return {"has_key": self._has_key.copy()}

    def _render_one(self, env: int):
        return draw_key_to_door(
            self.render_mode, self.size, self.tasks[env], self._agent(env), bool(self._has_key[env])
        )


class BanditVectorEnv(_BatchedEnv):
    """N bandits pulled at once; the batched `hf_ad.envs.BanditEnv` (every step ends every episode).

    Args:
        tasks: one tuple of arm means per sub-env.
        num_arms: number of arms (default 10).
        max_episode_steps: ignored unless given (episodes are one pull long); kept for `make_vec`.
        render_mode: `"ansi"`, `"rgb_array"` or None.
        num_envs: optional; must equal `len(tasks)` (for `gymnasium.make_vec`).
    """

    def __init__(
        self,
        tasks: Sequence[Sequence[float]],
        num_arms: int = 10,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        num_envs: int | None = None,
    ):
        template = BanditEnv(num_arms=num_arms)
        self.num_arms = template.num_arms
        self._last_pull = [None] * len(tasks)
        super().__init__(template, tasks, num_envs, max_episode_steps, render_mode)
        self._row_offsets = np.arange(self.num_envs) * self.num_arms  # (N,)

    def _load_tasks(self, tasks: np.ndarray) -> None:
        self._means = tasks.astype(np.float64).reshape(-1)  # (N * K,) flat [env, arm]

    def _reset_all(self) -> None:
        pass  # a bandit has no state; `_last_pull` is kept so that `render` after a step shows it

    def _transition(self, actions):
        means = self._means.take(self._row_offsets + actions)  # (N,) mean of each pulled arm
        rewards = (self._streams.next() < means).astype(np.float32)  # (N,) Bernoulli
        if self.render_mode is not None:
            self._last_pull = list(zip(actions.tolist(), rewards.tolist(), strict=True))
        return rewards, True

    def _observations(self) -> np.ndarray:
        return np.zeros(self.num_envs, dtype=np.int64)  # (N,) a bandit has no state

    def _render_one(self, env: int):
        return draw_bandit(self.render_mode, self.tasks[env], self._last_pull[env])


class PixelWatermazeVectorEnv(_BatchedEnv):
    """N Pixel Watermazes stepped and rendered at once; the batched `hf_ad.envs.PixelWatermazeEnv`.

    Poses live in one `(N,)` array: a step is one lookup in MiniGrid's next-pose table and the batch of
    views one `take` from the table of views MiniGrid drew once per pose
    (`hf_ad.envs.pixel_watermaze.PoseTables`), pixel-identical to `RGBImgPartialObsWrapper`'s.
    `info["state"]` is the `(N,)` int64 pose index of the returned observations (the next episode's
    start on the step an episode ends; the last pose is in `info["final_info"]["state"]`).

    Args:
        tasks: one goal `(x, y)` per sub-env.
        size: side of the free area (default 9).
        tile_size: pixels per tile of the view (default 4).
        observation: `"view"` (default) or `"pose"`, as `hf_ad.envs.PixelWatermazeEnv`'s.
        max_episode_steps: episode length (default 50, the registration's).
        render_mode: `"ansi"`, `"rgb_array"` (top-down maps) or None.
        num_envs: optional; must equal `len(tasks)` (for `gymnasium.make_vec`).
    """

    def __init__(
        self,
        tasks: Sequence[tuple[int, int]],
        size: int = 9,
        tile_size: int = 4,
        observation: str = "view",
        max_episode_steps: int | None = 50,
        render_mode: str | None = None,
        num_envs: int | None = None,
    ):
        template = PixelWatermazeEnv(size=size, tile_size=tile_size, observation=observation)
        self._observed = template.observed  # (P, ...) the observation of each pose
        self.size = template.size
        self._tables = template.tables
        self.single_state_space = gym.spaces.Discrete(self._tables.num_poses)  # info["state"], privileged
        self._next_pose = self._tables.next_pose.reshape(-1)  # (P * A,) flat [pose, action]
        self._pose = np.zeros(len(tasks), dtype=np.int64)  # (N,)
        super().__init__(template, tasks, num_envs, max_episode_steps, render_mode)

    @property
    def tables(self) -> PoseTables:
        """The room's views, moves and cells per pose (shared, read-only), e.g. for an oracle policy."""
        return self._tables

    def _load_tasks(self, tasks: np.ndarray) -> None:
        self._goal_cell = tasks[:, 1] * self.size + tasks[:, 0]  # (N,)

    def _reset_all(self) -> None:
        self._pose = np.full(self.num_envs, self._tables.start, dtype=np.int64)

    def _transition(self, actions):
        self._pose = self._next_pose.take(self._pose * self._num_actions + actions)  # (N,)
        on_goal = self._tables.cell.take(self._pose) == self._goal_cell  # (N,)
        return on_goal.astype(np.float32), False

    def _observations(self) -> np.ndarray:
        return self._observed.take(self._pose, axis=0)  # (N, H, W, 3) uint8 views or (N, 3) poses

    def _info(self) -> dict[str, Any]:
        return {STATE_INFO: self._pose.copy()}

    def _render_one(self, env: int):
        pose = pose_of(self._pose[env], self.size)
        return draw_watermaze(self.render_mode, self.size, self.tasks[env], pose)


VECTOR_ENVS: dict[str, type[_BatchedEnv]] = {
    DARK_ROOM: DarkRoomVectorEnv,
    DARK_ROOM_HARD: DarkRoomVectorEnv,
    DARK_KEY_TO_DOOR: DarkKeyToDoorVectorEnv,
    BANDIT: BanditVectorEnv,
    PIXEL_WATERMAZE: PixelWatermazeVectorEnv,
}


def make_vector_env(
    env_id: str,
    tasks: Sequence | None = None,
    *,
    num_envs: int | None = None,
    task_seed: int = 0,
    **env_kwargs,
) -> VectorEnv:
    """The native batched env of `env_id` with one sub-env per task (also `gymnasium.make_vec(env_id, ...)`).

    Args:
        env_id: one of `hf_ad.constants.ENV_IDS`.
        tasks: one task per sub-env (repeats allowed). Default: `num_envs` held-out tasks of `env_id`
            (`draw_test_tasks(env_id, num_envs, task_seed)`; all of them when `num_envs` is `None` too).
        num_envs: the number of sub-envs; must equal `len(tasks)` when both are given.
        task_seed: the shuffle of the held-out split that default tasks come from.
        env_kwargs: override the registration's keyword arguments (e.g. `size`, `max_episode_steps`,
            `render_mode`).

    Raises:
        ValueError: an unknown id, `task=`/`goal=` (one task per sub-env goes in `tasks`), a `num_envs`
            that does not match `tasks`, or default tasks that the changed `env_kwargs` do not allow.

    Example:
        >>> env = make_vector_env("hf_ad/DarkRoom-v0", [(0, 0), (8, 8)])
        >>> observations, info = env.reset(seed=0)  # (2, 2) int64: both agents at the centre
    """
    spec = env_spec(env_id)
    kwargs = {**spec.kwargs, **env_kwargs}
    if "task" in kwargs or "goal" in kwargs:
        raise ValueError("make_vector_env takes one task per sub-env in `tasks`, not `task=`/`goal=`")
    kwargs.setdefault("max_episode_steps", spec.max_episode_steps)
    default_tasks = tasks is None
    if default_tasks:
        tasks = draw_test_tasks(env_id, num_envs, task_seed)
    try:
        env = VECTOR_ENVS[env_id](tasks=tasks, num_envs=num_envs, **kwargs)
    except ValueError as error:
        if not default_tasks:
            raise
        raise ValueError(
            f"the held-out tasks of {env_id} do not fit {env_kwargs}: pass tasks=[...] ({error})"
        ) from error
    env.spec = replace(
        spec, kwargs={key: value for key, value in kwargs.items() if key != "max_episode_steps"}
    )
    return env


# `gymnasium.make_vec` entry points (the registrations' `vector_entry_point`): `make_vector_env` of one id.
make_dark_room = partial(make_vector_env, DARK_ROOM)
make_dark_room_hard = partial(make_vector_env, DARK_ROOM_HARD)
make_dark_key_to_door = partial(make_vector_env, DARK_KEY_TO_DOOR)
make_bandit = partial(make_vector_env, BANDIT)
make_pixel_watermaze = partial(make_vector_env, PIXEL_WATERMAZE)
