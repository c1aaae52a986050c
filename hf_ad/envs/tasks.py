"""Task sets, train/test splits and the exact return oracles used to normalise scores.

Splits are deterministic and stable across versions: they depend only on the seed through
`numpy.random.default_rng(seed).random(...)` (a PCG64 stream numpy keeps fixed), never on Python's
`hash`, and are returned sorted. Sizes with `seed=0` (or any seed):

| env | tasks | train | test (held out) |
|---|---|---|---|
| `hf_ad/DarkRoom-v0` | 81 goals | 65 | 16 (20%) |
| `hf_ad/DarkRoomHard-v0` | 289 goals | 231 | 58 (20%) |
| `hf_ad/DarkKeyToDoor-v0` | 6480 (key != door) | 1800 | 4680 (the paper: "< 2k seen in training") |
| `hf_ad/Bandit-v0` | continuous | 1000 from `odd` | 200 from `even` |
| `hf_ad/PixelWatermaze-v0` | 81 goals | 65 | 16 (20%; the same goals as Dark Room's split) |

The bandit split follows the paper's adversarial bandit: train on the `odd` distribution, test on
`even`; the third condition, `uniform`, comes from `sample_bandit_tasks("uniform", ...)`.

`kind="regions"` (Dark Room and Dark Room Hard only; not the paper's) is the out-of-distribution split:
the *training region* is the left two thirds of the columns (`x < 2 * size // 3`: x 0-5 of 9, 0-10 of
17), the *test region* the right third. The training goals are the training region's goals less a
held-out fifth of them (drawn by `seed` as above); the held-out goals are that fifth (*in-region*: goals
never trained on, in the part of the room the training goals cover) followed by every goal of the test
region (*out-of-region*). On Dark Room: 43 training goals, 11 in-region and 27 out-of-region held-out
goals. `in_training_region(env_id, task)` tells them apart. The agent starts at the centre, inside the
training region; the out-of-region goals are 2 to 8 steps from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.registration import load_env_creator

from hf_ad.constants import BANDIT, DARK_KEY_TO_DOOR, DARK_ROOM, DARK_ROOM_HARD, PIXEL_WATERMAZE
from hf_ad.envs import grid
from hf_ad.envs.bandit import sample_arm_means
from hf_ad.envs.registration import env_spec

TEST_FRACTION = {DARK_ROOM: 0.2, DARK_ROOM_HARD: 0.2, PIXEL_WATERMAZE: 0.2}
TASK_SPLIT_KINDS = ("random", "regions")
REGION_ENVS = (DARK_ROOM, DARK_ROOM_HARD)  # the envs whose tasks are goal cells a region can hold
KEY_TO_DOOR_TRAIN_TASKS = 1800
BANDIT_TRAIN_TASKS, BANDIT_TEST_TASKS = 1000, 200


def _resolve(env_id: str, env_kwargs: dict[str, Any]):
    """An env built from the registration's kwargs updated with `env_kwargs`, and its episode length."""
    spec = env_spec(env_id)
    kwargs = {**spec.kwargs, **env_kwargs}
    kwargs.pop("render_mode", None)
    max_episode_steps = kwargs.pop("max_episode_steps", spec.max_episode_steps)
    return load_env_creator(spec.entry_point)(**kwargs), max_episode_steps


def all_tasks(env_id: str, **env_kwargs) -> list[tuple]:
    """Every task of a grid env, sorted: all goals, or all (key, door) pairs with key != door."""
    env, _ = _resolve(env_id, env_kwargs)
    if env_id == BANDIT:
        raise ValueError(f"{env_id} has continuous tasks; draw them with sample_bandit_tasks(...)")
    cells = [tuple(int(v) for v in xy) for xy in grid.cell_coordinates(env.size)]
    if env_id == DARK_KEY_TO_DOOR:
        return sorted((*key, *door) for key in cells for door in cells if key != door)
    return sorted(cells)


def sample_bandit_tasks(
    distribution: str, num_tasks: int, seed: int = 0, num_arms: int = 10
) -> list[tuple[float, ...]]:
    """Draw bandit tasks (tuples of arm means) from `"odd"`, `"even"` or `"uniform"`.

    See `hf_ad.envs.bandit.sample_arm_means` for the distributions (the best arm has the preferred
    parity 95% of the time; arm indices are 0-based).
    """
    return _bandit_tasks(np.random.default_rng(seed), distribution, num_tasks, num_arms)


def _bandit_tasks(rng: np.random.Generator, distribution: str, num_tasks: int, num_arms: int = 10):
    return [tuple(row) for row in sample_arm_means(rng, distribution, num_tasks, num_arms).tolist()]


def task_split(env_id: str, seed: int = 0, kind: str = "random") -> tuple[list[tuple], list[tuple]]:
    """Deterministic, disjoint `(train_tasks, test_tasks)` for one env id (sizes in the module docstring).

    `kind` is `"random"` (the default: held-out tasks drawn uniformly) or `"regions"` (Dark Room and Dark
    Room Hard: training goals in the left two thirds of the room, held-out goals in it and in the right
    third; see the module docstring). `"regions"` returns the training goals sorted and the held-out goals
    in-region first, each part sorted.

    Raises:
        ValueError: an unknown `kind`, or `"regions"` for an env without goal cells.
    """
    if kind not in TASK_SPLIT_KINDS:
        raise ValueError(f"task split kind must be one of {TASK_SPLIT_KINDS}, got {kind!r}")
    if kind == "regions":
        return _region_split(env_id, seed)
    if env_id == BANDIT:
        train = _bandit_tasks(np.random.default_rng([seed, 0]), "odd", BANDIT_TRAIN_TASKS)
        test = _bandit_tasks(np.random.default_rng([seed, 1]), "even", BANDIT_TEST_TASKS)
        seen = set(train)
        return train, [task for task in test if task not in seen]
    tasks = all_tasks(env_id)
    if env_id == DARK_KEY_TO_DOOR:
        num_train = KEY_TO_DOOR_TRAIN_TASKS
    else:
        num_train = len(tasks) - round(TEST_FRACTION[env_id] * len(tasks))
    order = np.argsort(np.random.default_rng(seed).random(len(tasks)), kind="stable")
    train = sorted(tasks[i] for i in order[:num_train])
    test = sorted(tasks[i] for i in order[num_train:])
    return train, test


def in_training_region(env_id: str, task) -> bool:
    """Whether a goal lies in the training region of `task_split(env_id, kind="regions")` (the left two
    thirds of the columns).

    Raises:
        ValueError: an env without goal cells (`REGION_ENVS`).
    """
    return int(task[0]) < _region_boundary(env_id)


def _region_boundary(env_id: str) -> int:
    """The first column of the test region: `2 * size // 3`."""
    if env_id not in REGION_ENVS:
        raise ValueError(
            f"the regions task split needs one of {REGION_ENVS}, got {env_id!r}; use kind='random'"
        )
    env, _ = _resolve(env_id, {})
    return 2 * env.size // 3


def _region_split(env_id: str, seed: int) -> tuple[list[tuple], list[tuple]]:
    """Training: the training region less a held-out fifth; held out: that fifth, then the test region."""
    boundary = _region_boundary(env_id)
    region = [task for task in all_tasks(env_id) if task[0] < boundary]
    outside = [task for task in all_tasks(env_id) if task[0] >= boundary]
    num_train = len(region) - round(TEST_FRACTION[env_id] * len(region))
    order = np.argsort(np.random.default_rng(seed).random(len(region)), kind="stable")
    train = sorted(region[i] for i in order[:num_train])
    in_region = sorted(region[i] for i in order[num_train:])
    return train, in_region + outside


def subset_tasks(tasks, num_tasks: int, seed: int = 0) -> list[tuple]:
    """`num_tasks` of `tasks`, sorted: the first ones of `tasks` shuffled by `seed`, so that the subsets of
    one list are nested (the 5 of a 5-task subset are among the 10 of the 10-task one).

    Raises:
        ValueError: `num_tasks` not in `1..len(tasks)`.
    """
    if (
        isinstance(num_tasks, bool)
        or not isinstance(num_tasks, int | np.integer)
        or not 1 <= num_tasks <= len(tasks)
    ):
        raise ValueError(f"num_tasks must be an integer in 1..{len(tasks)}, got {num_tasks!r}")
    order = np.random.default_rng(seed).permutation(len(tasks))  # (len(tasks),)
    return sorted(tuple(tasks[i]) for i in order[:num_tasks])


def draw_test_tasks(env_id: str, num_tasks: int | None = None, seed: int = 0) -> list[tuple]:
    """`num_tasks` held-out tasks of `env_id` (`task_split(env_id)[1]`), the default tasks of its vector env.

    `None` gives the whole held-out split, sorted. Otherwise the split is shuffled by `seed` and repeated as
    often as needed: the same `(num_tasks, seed)` always gives the same tasks, and `num_tasks` equal to the
    split's size gives every held-out task once (16 Dark Room goals).

    Raises:
        ValueError: `num_tasks` not a positive integer.
    """
    _, test = task_split(env_id)
    if num_tasks is None:
        return test
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int | np.integer) or num_tasks < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_tasks!r}")
    order = np.random.default_rng(seed).permutation(len(test))  # (len(test),)
    return [test[order[i % len(test)]] for i in range(num_tasks)]


def optimal_return(env_id: str, task, **env_kwargs) -> float:
    """The exact best expected return of one episode of `task`.

    Dark Room: `T - max(d, 1) + 1` for a goal at Manhattan distance `d` from the start (T = 20:
    21 - d, and 20 for the centre goal); with `reward_once`, 1 if the goal is reachable in T steps;
    with `reward_prob=p`, the expected `p * (T - max(d, 1) + 1)` (`reward_once`: `1 - (1 - p) ** (...)`).
    Key-to-Door: the average over the uniformly drawn start cells of 1 per reachable reward (key
    first, then door) on shortest paths; 2 for every 9 x 9 task. Bandit: the largest arm mean
    (one pull per episode). In an open room the Manhattan distance is the BFS distance. Pixel
    Watermaze: Dark Room's formula with `d` the fewest actions (turns included) from the start pose
    to the goal, by breadth-first search over cell x direction.

    Args:
        env_id: one of `hf_ad.constants.ENV_IDS`.
        task: a task of that env.
        env_kwargs: override the registration (e.g. `size`, `max_episode_steps`).
    """
    env, task, horizon = _prepare(env_id, task, env_kwargs)
    if env_id == BANDIT:
        return float(max(task))
    if env_id in (DARK_ROOM, DARK_ROOM_HARD):
        steps = max(_manhattan(env.start, task), 1)  # standing on the goal pays from step 1
        if steps > horizon:
            return 0.0
        steps_on_goal, paid = horizon - steps + 1, env.reward_prob
        return float(1 - (1 - paid) ** steps_on_goal if env.reward_once else paid * steps_on_goal)
    if env_id == PIXEL_WATERMAZE:
        steps = max(env.tables.steps_to(task[1] * env.size + task[0]), 1)
        return float(max(horizon - steps + 1, 0))
    key, door = task[:2], task[2:]
    total = 0.0
    for start in grid.cell_coordinates(env.size).tolist():
        to_key = max(_manhattan(start, key), 1)
        total += (to_key <= horizon) + (to_key + _manhattan(key, door) <= horizon)
    return total / env.size**2


def random_return(env_id: str, task, **env_kwargs) -> float:
    """The exact expected return of one episode of `task` under the uniformly random policy.

    Grid envs: dynamic programming over the distribution of the random walk's cell (moves into a
    wall stay put), with the goal absorbing for `reward_once` and a key-held phase for
    Key-to-Door (start cells uniform); over cell x direction (three actions) for Pixel Watermaze.
    Bandit: the mean of the arm means.

    Args:
        env_id: one of `hf_ad.constants.ENV_IDS`.
        task: a task of that env.
        env_kwargs: override the registration (e.g. `size`, `max_episode_steps`).
    """
    env, task, horizon = _prepare(env_id, task, env_kwargs)
    if env_id == BANDIT:
        return float(np.mean(task))
    if env_id == PIXEL_WATERMAZE:
        tables = env.tables
        start = np.zeros(tables.num_poses)
        start[tables.start] = 1.0
        on_goal = tables.cell == task[1] * env.size + task[0]  # (P,)
        return _expected_visits(tables.random_walk_matrix(), start, on_goal, horizon)
    walk = _random_walk_matrix(env.size)  # (n, n)
    size = env.size
    if env_id in (DARK_ROOM, DARK_ROOM_HARD):
        start = np.zeros(size * size)
        start[env.start[1] * size + env.start[0]] = 1.0
        on_goal = np.arange(size * size) == task[1] * size + task[0]  # (n,)
        return _expected_visits(walk, start, on_goal, horizon, once=env.reward_once, paid=env.reward_prob)
    key, door = task[1] * size + task[0], task[3] * size + task[2]
    no_key = np.full(size * size, 1.0 / size**2)  # probability of (cell, key not held)
    with_key = np.zeros(size * size)  # probability of (cell, key held, door not opened)
    total = 0.0
    for _ in range(horizon):
        no_key, with_key = no_key @ walk, with_key @ walk
        picked, opened = no_key[key], with_key[door]
        total += picked + opened
        with_key[door] = 0.0  # door opened: nothing more to earn
        with_key[key] += picked
        no_key[key] = 0.0
    return float(total)


def _expected_visits(
    walk: np.ndarray,
    start: np.ndarray,
    on_goal: np.ndarray,
    horizon: int,
    once: bool = False,
    paid: float = 1.0,
) -> float:
    """Expected number of steps 1..`horizon` on which a Markov chain is in `on_goal`.

    Args:
        walk: `(S, S)` transition matrix.
        start: `(S,)` distribution of the state at reset.
        on_goal: `(S,)` bool, the rewarded states.
        horizon: the number of steps.
        once: count only the first paid visit (the goal pays once per episode).
        paid: the probability that a visit pays (Dark Room's `reward_prob`).
    """
    state, total = start, 0.0
    for _ in range(horizon):
        state = state @ walk  # (S,)
        total += paid * state[on_goal].sum()
        if once:
            state = np.where(on_goal, (1 - paid) * state, state)  # paid once: stop counting this mass
    return float(total)


def _manhattan(a, b) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def _prepare(env_id: str, task, env_kwargs: dict[str, Any]):
    """The env, the validated task and the episode length (1 for the bandit: one pull per episode)."""
    env, horizon = _resolve(env_id, env_kwargs)
    task = env.check_task(task)
    if env_id == BANDIT:
        return env, task, 1
    if horizon is None or horizon < 1:
        raise ValueError(f"returns need a finite episode length; got max_episode_steps={horizon!r}")
    return env, task, int(horizon)


def _random_walk_matrix(size: int) -> np.ndarray:
    """`(n, n)` transition matrix of the uniformly random policy over the grid's flat cells."""
    next_cell = grid.next_cell_table(size)  # (n, A)
    walk = np.zeros((size * size, size * size))
    for action in range(grid.NUM_ACTIONS):
        np.add.at(walk, (np.arange(size * size), next_cell[:, action]), 1.0 / grid.NUM_ACTIONS)
    return walk
