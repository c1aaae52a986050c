"""The explore-then-stay search as a source: histories of a near-best explorer of the dark grid rooms.

Dark Room: each learner is one stream of `hf_ad.baselines.ExploreThenStay`: it walks to the nearest cell it
has not stood on in this task (random ties), and from the first reward on walks straight to the cell that
paid and stays there. It learns one thing, where the goal is, and learns it about as fast as anything can
in the dark: a median of 3 episodes on Dark Room's held-out goals (docs/EVIDENCE.md, section 1), where tabular
Q-learning from scratch is still at 9.0 of the optimal 16.25 over episodes 41-50. A history of it is a
short search followed by the optimum, so an AD model trained on it has a fast exploration strategy to
distil (docs/RECIPE_SEARCH.md).

`epsilon`: while a learner searches (Dark Room: before its first reward), the probability of a uniformly
random action at each step instead of the search's, so that the histories show searches from varied cells
and the search recovering from a wrong step (an AD model samples its actions, and a sampled action is
sometimes a wrong one). A random move onto an untested cell tests it like any other. Once the goal is found
the learner walks to it and stays, with random actions at `exploit_epsilon` (default 0: what AD imitates there
is the optimum; above 0 the histories also show the way back to the goal after a wrong step).

Dark Key-to-Door: each learner is one stream of `hf_ad.baselines.KeyThenDoorSearch`, the same search run
twice an episode: for the key (cells moved onto without it that paid nothing are ruled out), then for the
door (likewise, with the key in hand); once both have paid it walks key -> door in every episode. "Searching"
(for `epsilon`) lasts until both are found.

Dark Room Hard (the goal pays once an episode): the same `ExploreThenStay`, its one reward telling it where
the goal is. In its 17 x 17 room of 20-step episodes the search is long: with 10% random steps, every one of
2 histories per training goal had found it by episode 27 (`hf-ad generate --env hf_ad/DarkRoomHard-v0
--source explorer --histories-per-task 2 --episodes 80 --keep-every 1 --epsilon 0.1`, its learning curve).

Pixel Watermaze (privileged, like its Q-learning source): `PoseExploreThenStay`, the same search on the
env's hidden pose (`info["state"]`: cell and direction) with MiniGrid's moves (turn left, turn right,
forward), while the dataset stores the first-person views AD sees. It walks to the untested cell the fewest
moves away (a turn on the spot tests the cell it stands on), then from the first reward on to the goal and
keeps turning there (reward on every step on the goal).

Dark Room, Dark Room Hard, Dark Key-to-Door and Pixel Watermaze (any `size`): the search knows the room's
moves (see `hf_ad.baselines`, `hf_ad.envs.pixel_watermaze.PoseTables`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from hf_ad import constants
from hf_ad.baselines import ExploreThenStay, KeyThenDoorSearch
from hf_ad.envs import STATE_INFO, make_vector_env
from hf_ad.sources.base import EpisodeBlock, SourceConfig, check_lock_step
from hf_ad.sources.experts import pose_actions


class PoseExploreThenStay:
    """`hf_ad.baselines.ExploreThenStay` on `num_streams` Pixel Watermazes at once, acting on the hidden
    pose: the untested cell nearest in moves until a reward appears, then the goal for good.

    Args:
        tables: the room's `hf_ad.envs.pixel_watermaze.PoseTables` (moves and the cell of each pose).
        seed: seeds the tie-breaks between equally near cells and equally good moves.
    """

    def __init__(self, tables, seed: int | None = None):
        self.tables = tables
        self.rng = np.random.default_rng(seed)
        num_cells = tables.size**2
        self.moves_to = np.stack([tables.distances_to(cell) for cell in range(num_cells)])  # (n, P)
        self.num_streams = 0

    def reset(self, num_streams: int = 1, seed: int | None = None) -> None:
        """Start `num_streams` new tasks: nothing tested, no goal known."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.num_streams = int(num_streams)
        self.tested = np.zeros((self.num_streams, len(self.moves_to)), dtype=bool)  # (B, n)
        self.goal = np.full(self.num_streams, -1, dtype=np.int64)  # (B,) flat goal cell, -1 = unknown
        self._poses: np.ndarray | None = None  # (B,) the poses of the last act
        self._actions: np.ndarray | None = None  # (B,) its actions

    @property
    def searching(self) -> np.ndarray:
        """`(B,)` bool: the stream has not found the goal yet."""
        return self.goal < 0

    def act(self, poses) -> np.ndarray:
        """`(B,)` int64 actions for the hidden poses `(B,)`."""
        self._poses = np.asarray(poses, dtype=np.int64).reshape(self.num_streams)
        self.tested[self.tested.all(axis=1)] = False  # tested everything without a reward: again
        moves = self.moves_to[:, self._poses].T  # (B, n) moves from each pose to each cell
        noise = self.rng.random(moves.shape)  # (B, n) in [0, 1): breaks ties only
        nearest = np.where(self.tested, np.inf, moves + noise).argmin(axis=1)  # (B,)
        target = np.where(self.goal >= 0, self.goal, nearest)  # (B,)
        self._actions = pose_actions(self.tables.next_pose, self.moves_to[target], self._poses, self.rng)
        return self._actions.copy()

    def observe(self, rewards, episode_ended=None, actions=None) -> None:
        """The rewards `(B,)` of the last act; `actions` `(B,)`: the actions actually taken, where a caller
        replaced some of `act`'s (default `act`'s own), as in `hf_ad.baselines.ExploreThenStay.observe`."""
        taken = self._actions if actions is None else np.asarray(actions, dtype=np.int64)  # (B,)
        landed = self.tables.cell[self.tables.next_pose[self._poses, taken]]  # (B,)
        paid = np.asarray(rewards).reshape(-1) > 0  # (B,)
        self.tested[np.arange(self.num_streams), landed] = True
        self.goal = np.where(paid & (self.goal < 0), landed, self.goal)


SEARCHES = {
    constants.DARK_ROOM: ExploreThenStay,
    constants.DARK_ROOM_HARD: ExploreThenStay,
    constants.DARK_KEY_TO_DOOR: KeyThenDoorSearch,
    constants.PIXEL_WATERMAZE: PoseExploreThenStay,
}
EXPLORER_ENVS = tuple(SEARCHES)
POSE_SEARCHES = (constants.PIXEL_WATERMAZE,)  # searches on the hidden pose, not the observation


@dataclass
class ExplorerConfig(SourceConfig):
    """The explore-then-stay search (no parameters learned), with random actions at a rate of their own
    while it searches and once it has found what pays."""

    epsilon: float = field(
        default=0.0,
        metadata={"help": "Probability of a uniformly random action at each step while searching."},
    )
    exploit_epsilon: float = field(
        default=0.0,
        metadata={"help": "Probability of a uniformly random action at each step once all is found."},
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("epsilon", "exploit_epsilon"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def learn(
    env_id: str, tasks: list[tuple], config: ExplorerConfig, env_kwargs: dict | None = None
) -> Iterator[EpisodeBlock]:
    """Run one explore-then-stay search per task; yield every episode (see `hf_ad.sources.base`)."""
    if env_id not in EXPLORER_ENVS:
        raise ValueError(f"the explorer source plays {EXPLORER_ENVS} only, got {env_id!r}")
    if not tasks:
        raise ValueError("tasks must hold at least one task")
    env = make_vector_env(env_id, tasks, **(env_kwargs or {}))
    rng = np.random.default_rng(config.seed)
    on_poses = env_id in POSE_SEARCHES
    room = {"tables": env.tables} if on_poses else {"size": env.size}
    search = SEARCHES[env_id](**room, seed=int(rng.integers(2**31)))
    search.reset(num_streams=len(tasks))
    num_actions = int(env.single_action_space.n)
    observations, info = env.reset(seed=int(rng.integers(2**31)))
    try:
        for episode in range(config.episodes):
            steps = []
            ended = False
            while not ended:
                actions = search.act(info[STATE_INFO] if on_poses else observations)  # (N,)
                epsilon = np.where(search.searching, config.epsilon, config.exploit_epsilon)  # (N,)
                explore = rng.random(len(tasks)) < epsilon  # (N,)
                actions[explore] = rng.integers(num_actions, size=int(explore.sum()))
                next_observations, rewards, terminated, truncated, info = env.step(actions)
                steps.append((observations, actions, rewards, terminated, truncated))
                ended = check_lock_step(terminated, truncated, len(steps))
                search.observe(rewards, terminated | truncated, actions)
                observations = next_observations
            yield EpisodeBlock.from_steps(episode, steps)
    finally:
        env.close()
