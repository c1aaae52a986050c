"""Batched tabular Q-learning: N independent learners, one Q table each, updated in lock-step.

Each learner owns a table `Q[n]` of shape `(num_states, num_actions)`; all tables live in one numpy
array `(N, S, A)` and every step is a handful of vectorised gathers and one scatter, so the cost per
transition is a few nanoseconds once N is in the hundreds.

State: the observation's cell index (a Discrete observation, or a MultiDiscrete one flattened),
plus, in envs whose rewards are one-offs, how many rewards the learner has collected so far in the
episode (capped at `hf_ad.sources.base.REWARD_MEMORY[env_id]`). The observation alone is not Markov
there: in Dark Key-to-Door the first reward is the key, so "one reward collected" is exactly "holds
the key" (which the observation does not show), and "two" is "door opened, nothing left to earn"; in
Dark Room Hard "one" is "goal already paid". The learner counts its own rewards, so it needs no
privileged information from the env.

Privileged state: an env whose observation is not a cell (Pixel Watermaze's image) exposes its
hidden state in `info["state"]` (`hf_ad.envs.STATE_INFO`) and its size as the batched env's
`single_state_space` (`Discrete`); the learner then learns on that state (the pose), while the
histories still record the observations, i.e. what an AD model sees.

Exploration: epsilon-greedy with epsilon decaying per episode, plus optimistic initial values (the
tables start at `init_q` + a tiny per-learner noise, which also breaks ties between untried actions
at random instead of always in favour of action 0). Defaults are the recipe measured on Dark Room
(shared/PAPER.md): alpha 0.5, gamma 0.9, Q init 5, epsilon 0.1 decaying x0.99 per episode.

Episodes are cut by a time limit (never terminated in the grid envs), so the update bootstraps from
the final observation at truncation and only a true termination zeroes the bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from hf_ad.envs import STATE_INFO, make_vector_env
from hf_ad.sources.base import (
    EpisodeBlock,
    SourceConfig,
    check_lock_step,
    final_observations,
    reward_memory_for,
)


@dataclass
class QLearningConfig(SourceConfig):
    """Batched tabular Q-learning (epsilon-greedy, optimistic initial values)."""

    learning_rate: float = field(default=0.5, metadata={"help": "Step size alpha of the Q update."})
    gamma: float = field(default=0.9, metadata={"help": "Discount factor of the Q target."})
    init_q: float = field(default=5.0, metadata={"help": "Optimistic initial value of every Q entry."})
    epsilon: float = field(default=0.1, metadata={"help": "Exploration probability in episode 0."})
    epsilon_decay: float = field(
        default=0.99, metadata={"help": "Epsilon is multiplied by this after every episode."}
    )
    epsilon_min: float = field(default=0.0, metadata={"help": "Lower bound of epsilon."})

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.learning_rate <= 1.0:
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        for name in ("epsilon", "epsilon_decay", "epsilon_min"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    def epsilon_at(self, episode: int) -> float:
        return max(self.epsilon * self.epsilon_decay**episode, self.epsilon_min)


def state_encoder(observation_space: gym.Space):
    """`(num_cells, encode)`: `encode(observations (N, ...)) -> (N,) int64` cell indices."""
    if isinstance(observation_space, gym.spaces.Discrete):
        start = int(observation_space.start)
        return int(observation_space.n), lambda obs: np.asarray(obs, dtype=np.int64).reshape(-1) - start
    if isinstance(observation_space, gym.spaces.MultiDiscrete) and observation_space.nvec.ndim == 1:
        nvec = observation_space.nvec.astype(np.int64)
        strides = np.cumprod(np.concatenate([nvec[1:], [1]])[::-1])[::-1].copy()  # row-major strides
        return int(nvec.prod()), lambda obs: obs @ strides
    raise ValueError(
        f"tabular Q-learning needs a Discrete or 1-D MultiDiscrete observation space, got {observation_space}"
    )


def state_reader(env: gym.vector.VectorEnv):
    """`(num_cells, read)`: `read(observations (N, ...), info) -> (N,) int64` state indices.

    The env's privileged state (`info["state"]`) where it has a `single_state_space`, else the
    observation's cell (`state_encoder`).
    """
    state_space = getattr(env, "single_state_space", None)
    if state_space is not None:
        return int(state_space.n), lambda observations, info: np.asarray(info[STATE_INFO], dtype=np.int64)
    num_cells, encode = state_encoder(env.single_observation_space)
    return num_cells, lambda observations, info: encode(observations)


def learn(
    env_id: str, tasks: list[tuple], config: QLearningConfig, env_kwargs: dict | None = None
) -> Iterator[EpisodeBlock]:
    """Run one tabular Q-learner per task in lock-step; yield every episode (see `hf_ad.sources.base`)."""
    if not tasks:
        raise ValueError("tasks must hold at least one task")
    env_kwargs = dict(env_kwargs or {})
    env = make_vector_env(env_id, tasks, **env_kwargs)
    num_learners = len(tasks)
    num_actions = int(env.single_action_space.n)
    num_cells, read_state = state_reader(env)
    memory = reward_memory_for(env_id)
    num_states = num_cells * (memory + 1)

    rng = np.random.default_rng(config.seed)
    # (N, S, A) tables, flattened to (N * S, A) rows for single-gather reads and writes.
    q = config.init_q + rng.random((num_learners * num_states, num_actions)) * 1e-6
    row_offset = np.arange(num_learners, dtype=np.int64) * num_states  # (N,)

    observations, info = env.reset(seed=int(rng.integers(2**31)))
    try:
        for episode in range(config.episodes):
            epsilon = config.epsilon_at(episode)
            steps = []  # (observations, actions, rewards, terminated, truncated) per step
            collected = np.zeros(num_learners, dtype=np.int64)  # (N,) rewards so far, capped
            state = row_offset + read_state(observations, info)  # (N,) rows of q
            ended = False
            while not ended:
                # epsilon-greedy from one uniform per learner: u < epsilon explores, and then
                # u / epsilon is itself uniform on [0, 1), which picks the random action.
                u = rng.random(num_learners)
                explore = u < epsilon
                actions = q[state].argmax(axis=1)  # (N,)
                if explore.any():
                    actions[explore] = (u[explore] / epsilon * num_actions).astype(np.int64)
                next_observations, rewards, terminated, truncated, info = env.step(actions)
                steps.append((observations, actions, rewards, terminated, truncated))
                ended = check_lock_step(terminated, truncated, len(steps))

                if ended:
                    final, final_info = final_observations(info), info["final_info"]
                else:
                    final, final_info = next_observations, info
                if memory:
                    collected = np.minimum(collected + (rewards > 0), memory)
                next_state = row_offset + read_state(final, final_info) + collected * num_cells
                target = rewards + config.gamma * q[next_state].max(axis=1) * ~terminated  # (N,)
                q[state, actions] += config.learning_rate * (target - q[state, actions])
                state = next_state
                observations = next_observations
            yield EpisodeBlock.from_steps(episode, steps)
    finally:
        env.close()
