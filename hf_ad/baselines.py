"""Scripted in-context baselines: plain algorithms, no learning, driven like `hf_ad.InContextAgent`.

`ExploreThenStay` is the critique's heuristic for Dark Room: "walk around until a reward appears, then go
back to it". If an AD model on small grid tasks were only this, it would do no better than this script.
It knows what AD learns in context only from its data: the room's size and moves (a move into a wall stays
put), that the agent restarts each episode at the same cell, and that the goal is one cell that pays when
stood on. It never sees the goal.

Per stream:
- *exploring*: it remembers every cell it has moved onto in this task (across episodes: the goal is
  invisible and pays when moved onto, so such a cell that paid nothing is ruled out; the start cell is
  tested by a no-op) and walks to the nearest untested cell
  (Manhattan distance, which is the path length in an open room; ties broken at random by the seeded
  generator), along x first, then y (`hf_ad.envs.greedy_action`). Once every cell is visited without a
  reward (possible only with stochastic rewards) it forgets them and sweeps again;
- *exploiting*: from the first reward on, it walks straight to the cell that paid and stays there (no-op)
  for the rest of the stream.

What it does when the goal moves (`reexplore`): by default nothing: it keeps returning to the cell that
paid once, forever (the literal heuristic, which is the critique's point). With `reexplore=True`, an
episode that ends without any reward while it exploits makes it forget the goal and every visited cell and
explore afresh: a goal switch then costs a new search, but so does one unlucky episode under stochastic
rewards.

```python
import hf_ad
from hf_ad.baselines import ExploreThenStay

env = hf_ad.envs.make_vector_env("hf_ad/DarkRoom-v0", [(1, 7), (8, 5)])
agent = ExploreThenStay(size=9, seed=0)
agent.reset(num_streams=2)
observations, _ = env.reset(seed=0)
for _ in range(10 * 20):
    actions = agent.act(observations)
    observations, rewards, terminated, truncated, _ = env.step(actions)
    agent.observe(rewards, terminated | truncated)
```
"""

from __future__ import annotations

import numpy as np

from hf_ad.envs import grid


class GridSearch:
    """What the scripted searches share: the room's tables, the seeded tie-break, and the checks of the
    `reset` / `act` / `observe` protocol. Subclasses keep their own memory of the task."""

    def __init__(self, size: int = 9, seed: int | None = None):
        self.size = grid.check_size(size)
        self.rng = np.random.default_rng(seed)
        self._next_cell = grid.next_cell_table(self.size)  # (n, A) flat cell after each action
        self._coordinates = grid.cell_coordinates(self.size)  # (n, 2) (x, y) per flat cell
        self.num_streams = 0

    def _start(self, num_streams: int, seed: int | None) -> None:
        """Check `num_streams`, re-seed, forget the last act."""
        if isinstance(num_streams, bool) or not isinstance(num_streams, int | np.integer) or num_streams < 1:
            raise ValueError(f"num_streams must be a positive integer, got {num_streams!r}")
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.num_streams = int(num_streams)
        self._cell: np.ndarray | None = None  # (B,) flat cell of the last act
        self._action: np.ndarray | None = None  # (B,) the last action, until observed

    def _checked_observations(self, observations) -> np.ndarray:
        """`(B, 2)` int64 observations of an `act`, whose flat cells it remembers."""
        if self.num_streams == 0:
            raise RuntimeError("act() before reset(): call reset(num_streams) first")
        if self._action is not None:
            raise RuntimeError("act() twice without observe(): pass the rewards of the last actions")
        observations = np.asarray(observations, dtype=np.int64)
        if observations.shape != (self.num_streams, 2):
            raise ValueError(
                f"observations must have shape ({self.num_streams}, 2) (x, y), got {observations.shape}"
            )
        self._cell = observations[:, 1] * self.size + observations[:, 0]  # (B,)
        return observations

    def _move(self, observations: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The shortest-path actions from `observations` `(B, 2)` to the flat cells `target` `(B,)`."""
        self._action = grid.greedy_actions(observations, self._coordinates[target])  # (B,)
        return self._action.copy()

    def _nearest_untested(self, observations: np.ndarray, tested: np.ndarray) -> np.ndarray:
        return nearest_untested(self._coordinates, observations, tested, self.rng)

    def _landed(self, rewards, actions) -> tuple[np.ndarray, np.ndarray]:
        """`(rewards (B,), landed (B,))` of an `observe`: the cells the actions actually taken led to
        (`actions`: where a caller replaced some of `act`'s; default `act`'s own). Ends the act."""
        if self._action is None:
            raise RuntimeError("observe() without act(): call act(observations) first")
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if rewards.shape != (self.num_streams,):
            raise ValueError(f"rewards must have shape ({self.num_streams},), got {rewards.shape}")
        if actions is not None:
            self._action = grid.check_actions(actions, self.num_streams)
        landed = self._next_cell[self._cell, self._action]  # (B,) the cell the move led to
        self._action = None
        return rewards, landed


class ExploreThenStay(GridSearch):
    """The explore-until-rewarded-then-stay heuristic on `num_streams` Dark Rooms at once.

    Args:
        size: side of the room (Dark Room: 9).
        seed: seeds the tie-breaking between equally near unvisited cells (`reset(seed=...)` re-seeds).
        reexplore: forget the goal after an episode without reward (see the module docstring).
    """

    def __init__(self, size: int = 9, seed: int | None = None, reexplore: bool = False):
        super().__init__(size, seed)
        self.reexplore = bool(reexplore)

    def reset(self, num_streams: int = 1, seed: int | None = None) -> None:
        """Start `num_streams` new tasks: nothing visited, no goal known."""
        self._start(num_streams, seed)
        self.visited = np.zeros((self.num_streams, self.size**2), dtype=bool)  # (B, n)
        self.goal = np.full(self.num_streams, -1, dtype=np.int64)  # (B,) flat goal cell, -1 = unknown
        self.rewarded_this_episode = np.zeros(self.num_streams, dtype=bool)  # (B,)

    @property
    def searching(self) -> np.ndarray:
        """`(B,)` bool: the stream has not found the goal yet."""
        return self.goal < 0

    def act(self, observations) -> np.ndarray:
        """`(B,)` int64 actions for observations `(B, 2)` (x, y)."""
        observations = self._checked_observations(observations)
        self.visited[self.visited.all(axis=1)] = False  # swept everything without a reward: sweep again
        target = np.where(
            self.goal >= 0, self.goal, self._nearest_untested(observations, self.visited)
        )  # (B,)
        return self._move(observations, target)

    def observe(self, rewards, episode_ended=None, actions=None) -> None:
        """The rewards of the last actions `(B,)`; `episode_ended` `(B,)` bool (for `reexplore`).

        `actions` `(B,)`: the actions actually taken, where a caller replaced some of `act`'s (a random
        step); the search then remembers the cells those led to. Default: `act`'s own.
        """
        rewards, landed = self._landed(rewards, actions)
        paid = rewards > 0
        self.visited[np.arange(self.num_streams), landed] = True
        self.goal = np.where(paid & (self.goal < 0), landed, self.goal)
        self.rewarded_this_episode |= paid
        if episode_ended is not None:
            ended = np.asarray(episode_ended, dtype=bool).reshape(-1)
            if self.reexplore:
                forget = ended & (self.goal >= 0) & ~self.rewarded_this_episode  # (B,)
                self.goal[forget] = -1
                self.visited[forget] = False
            self.rewarded_this_episode[ended] = False


class KeyThenDoorSearch(GridSearch):
    """The same search on `num_streams` Dark Key-to-Door rooms at once: find the key, then the door.

    An episode pays twice, in order: the key (the first reward of an episode), then the door (the second).
    Per stream, the search keeps one set of tested cells per reward: a cell moved onto without the key in
    hand that paid nothing is not the key; one moved onto with the key in hand that paid nothing is not the
    door (the door pays nothing before the key, so only these count). In each episode it walks to the key
    (the nearest cell not yet tested for the key until the key has paid once), then to the door (likewise),
    then stays on the door. It knows it holds the key from its own rewards, as the tabular learner does.
    Start cells are random in this room, so the search never relies on where an episode begins.

    Args:
        size: side of the room (Dark Key-to-Door: 9).
        seed: seeds the tie-breaking between equally near untested cells (`reset(seed=...)` re-seeds).
    """

    STAGES = 2  # the key, then the door

    def reset(self, num_streams: int = 1, seed: int | None = None) -> None:
        """Start `num_streams` new tasks: nothing tested, neither key nor door known."""
        self._start(num_streams, seed)
        n = self.size**2
        self.tested = np.zeros((self.num_streams, self.STAGES, n), dtype=bool)  # (B, 2, n) per reward
        self.found = np.full((self.num_streams, self.STAGES), -1, dtype=np.int64)  # (B, 2) flat, -1 unknown
        self.rewards_this_episode = np.zeros(self.num_streams, dtype=np.int64)  # (B,) 0, 1 (key held) or 2

    @property
    def searching(self) -> np.ndarray:
        """`(B,)` bool: the stream does not know both cells yet."""
        return (self.found < 0).any(axis=1)

    def act(self, observations) -> np.ndarray:
        """`(B,)` int64 actions for observations `(B, 2)` (x, y)."""
        observations = self._checked_observations(observations)
        streams = np.arange(self.num_streams)
        stage = np.minimum(self.rewards_this_episode, self.STAGES - 1)  # (B,) after the door: stay on it
        tested = self.tested[streams, stage]  # (B, n)
        tested[tested.all(axis=1)] = False  # everything tested without a reward: test again
        self.tested[streams, stage] = tested
        known = self.found[streams, stage]  # (B,)
        target = np.where(known >= 0, known, self._nearest_untested(observations, tested))  # (B,)
        return self._move(observations, target)

    def observe(self, rewards, episode_ended=None, actions=None) -> None:
        """The rewards of the last actions `(B,)`; `episode_ended` `(B,)` bool (required: each episode
        starts without the key); `actions` `(B,)` as in `ExploreThenStay.observe`."""
        rewards, landed = self._landed(rewards, actions)
        if episode_ended is None:
            raise ValueError("episode_ended is required: the key must be picked up again in every episode")
        streams = np.arange(self.num_streams)
        paid = rewards > 0
        searching = self.rewards_this_episode < self.STAGES  # (B,) after the door nothing is tested
        stage = np.minimum(self.rewards_this_episode, self.STAGES - 1)  # (B,)
        self.tested[streams[searching], stage[searching], landed[searching]] = True
        first = paid & searching & (self.found[streams, stage] < 0)  # (B,) a cell paid for the first time
        self.found[streams[first], stage[first]] = landed[first]
        self.rewards_this_episode += paid & searching
        self.rewards_this_episode[np.asarray(episode_ended, dtype=bool).reshape(-1)] = 0


def nearest_untested(
    coordinates: np.ndarray, positions: np.ndarray, tested: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """`(B,)` flat index of a cell not `tested` `(B, n)` nearest to each of `positions` `(B, 2)` (Manhattan
    distance, random ties); `coordinates` `(n, 2)` are the cells' `(x, y)`."""
    distance = np.abs(coordinates[None] - positions[:, None]).sum(axis=-1)  # (B, n)
    noise = rng.random(distance.shape)  # (B, n) in [0, 1): breaks ties only
    return np.where(tested, np.inf, distance + noise).argmin(axis=1)


__all__ = ["ExploreThenStay", "GridSearch", "KeyThenDoorSearch", "nearest_untested"]
