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

Dark Room, Dark Room Hard and Dark Key-to-Door (`hf_ad/DarkRoom-v0`, `hf_ad/DarkRoomHard-v0`,
`hf_ad/DarkKeyToDoor-v0`, any `size`): the search knows the room's moves (see `hf_ad.baselines`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from hf_ad import constants
from hf_ad.baselines import ExploreThenStay, KeyThenDoorSearch
from hf_ad.envs import make_vector_env
from hf_ad.envs.grid import NUM_ACTIONS
from hf_ad.sources.base import EpisodeBlock, SourceConfig, check_lock_step

SEARCHES = {
    constants.DARK_ROOM: ExploreThenStay,
    constants.DARK_ROOM_HARD: ExploreThenStay,
    constants.DARK_KEY_TO_DOOR: KeyThenDoorSearch,
}
EXPLORER_ENVS = tuple(SEARCHES)


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
    search = SEARCHES[env_id](size=env.size, seed=int(rng.integers(2**31)))
    search.reset(num_streams=len(tasks))
    observations, _ = env.reset(seed=int(rng.integers(2**31)))
    try:
        for episode in range(config.episodes):
            steps = []
            ended = False
            while not ended:
                actions = search.act(observations)  # (N,)
                epsilon = np.where(search.searching, config.epsilon, config.exploit_epsilon)  # (N,)
                explore = rng.random(len(tasks)) < epsilon  # (N,)
                actions[explore] = rng.integers(NUM_ACTIONS, size=int(explore.sum()))
                next_observations, rewards, terminated, truncated, _ = env.step(actions)
                steps.append((observations, actions, rewards, terminated, truncated))
                ended = check_lock_step(terminated, truncated, len(steps))
                search.observe(rewards, terminated | truncated, actions)
                observations = next_observations
            yield EpisodeBlock.from_steps(episode, steps)
    finally:
        env.close()
