"""Batched bandit algorithms: UCB1 (the paper's bandit source) and Thompson sampling.

N independent learners, one per task, pull arms in lock-step; each pull is one one-step episode of
`hf_ad/Bandit-v0`, so a history of `episodes` pulls is the paper's `episodes` trials. Every learner
keeps two `(N, K)` arrays, pull counts and reward sums, and one pull of all learners is a handful of
numpy operations.

Ties (several arms with the same score, e.g. the untried arms at the start) are broken uniformly at
random, so learners on the same task do not all replay one sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import gymnasium as gym
import numpy as np

from hf_ad.envs import make_vector_env
from hf_ad.sources.base import EpisodeBlock, SourceConfig, check_lock_step

LIKELIHOODS = ("bernoulli", "gaussian")


@dataclass
class UCBConfig(SourceConfig):
    """UCB1 (Auer et al., 2002): pull every arm once, then the arm with the largest upper bound
    `mean_k + exploration * sqrt(2 ln t / n_k)` after `t` pulls, `n_k` of them of arm `k`."""

    exploration: float = field(
        default=1.0, metadata={"help": "Multiplier of UCB1's exploration bonus (1.0 is UCB1)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.exploration >= 0:
            raise ValueError(f"exploration must be >= 0, got {self.exploration!r}")


@dataclass
class ThompsonConfig(SourceConfig):
    """Thompson sampling: pull the arm whose mean, drawn from its posterior, is the largest.

    `hf_ad/Bandit-v0` pays Bernoulli rewards, so the default is the Beta-Bernoulli model with a
    uniform Beta(1, 1) prior; `gaussian` is a Normal model with known reward noise for envs whose
    rewards are not in [0, 1].
    """

    likelihood: Literal["bernoulli", "gaussian"] = field(
        default="bernoulli",
        metadata={
            "help": "'bernoulli': Beta(1, 1) prior, rewards in [0, 1] (a reward r counts as r "
            "successes); 'gaussian': Normal(0, prior_std^2) prior, Normal(mean, noise_std^2) rewards."
        },
    )
    prior_std: float = field(
        default=1.0, metadata={"help": "Gaussian model only: standard deviation of the prior on each mean."}
    )
    noise_std: float = field(
        default=1.0, metadata={"help": "Gaussian model only: assumed standard deviation of a reward."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        for name in ("prior_std", "noise_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


def argmax_random_ties(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`(N, K)` scores -> `(N,)` int64 index of each row's maximum, ties broken uniformly at random."""
    keys = rng.random(scores.shape)  # (N, K)
    keys[scores < scores.max(axis=1, keepdims=True)] = -1.0
    return keys.argmax(axis=1)


def ucb_scores(counts: np.ndarray, sums: np.ndarray, exploration: float) -> np.ndarray:
    """`(N, K)` UCB1 upper bounds; `inf` for arms never pulled (so every arm is tried once first)."""
    pulls = counts.sum(axis=1, keepdims=True)  # (N, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums / counts
        bonus = exploration * np.sqrt(2.0 * np.log(np.maximum(pulls, 1)) / counts)
    return np.where(counts > 0, means + bonus, np.inf)


def beta_thompson_scores(counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`(N, K)` draws from each arm's Beta(1 + successes, 1 + failures) posterior."""
    return rng.beta(1.0 + sums, 1.0 + counts - sums)


def gaussian_thompson_scores(
    counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator, prior_std: float, noise_std: float
) -> np.ndarray:
    """`(N, K)` draws from each arm's Normal posterior (prior Normal(0, prior_std^2), known noise)."""
    precision = 1.0 / prior_std**2 + counts / noise_std**2  # (N, K)
    mean = sums / noise_std**2 / precision  # (N, K)
    return mean + rng.standard_normal(counts.shape) / np.sqrt(precision)


def learn_ucb(
    env_id: str, tasks: list[tuple], config: UCBConfig, env_kwargs: dict | None = None
) -> Iterator[EpisodeBlock]:
    """Run one UCB1 learner per task in lock-step; yield every pull as a one-step episode.

    Args:
        env_id: a registered env whose episodes are one pull long (`hf_ad/Bandit-v0`).
        tasks: one task (tuple of arm means) per learner; repeats are independent learners.
        config: `exploration` and the shared `episodes` (pulls per history), `seed`.
        env_kwargs: extra keyword arguments for `hf_ad.envs.make_vector_env`.
    """
    yield from _play(
        env_id, tasks, config, env_kwargs, lambda c, s, rng: ucb_scores(c, s, config.exploration)
    )


def learn_thompson(
    env_id: str, tasks: list[tuple], config: ThompsonConfig, env_kwargs: dict | None = None
) -> Iterator[EpisodeBlock]:
    """Run one Thompson-sampling learner per task in lock-step; yield every pull as a one-step episode.

    Args:
        env_id: a registered env whose episodes are one pull long (`hf_ad/Bandit-v0`).
        tasks: one task (tuple of arm means) per learner; repeats are independent learners.
        config: the posterior model and the shared `episodes` (pulls per history), `seed`.
        env_kwargs: extra keyword arguments for `hf_ad.envs.make_vector_env`.

    Raises:
        ValueError: with the Bernoulli model, a reward outside [0, 1].
    """
    bernoulli = config.likelihood == "bernoulli"
    scores = (
        beta_thompson_scores
        if bernoulli
        else partial(gaussian_thompson_scores, prior_std=config.prior_std, noise_std=config.noise_std)
    )
    yield from _play(env_id, tasks, config, env_kwargs, scores, rewards_in_unit_interval=bernoulli)


def _play(
    env_id: str,
    tasks: list[tuple],
    config: SourceConfig,
    env_kwargs: dict | None,
    scores: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray],
    rewards_in_unit_interval: bool = False,
) -> Iterator[EpisodeBlock]:
    """The shared loop: pull the best-scoring arm of every learner, record the pull, update the stats."""
    if not tasks:
        raise ValueError("tasks must hold at least one task")
    env = make_vector_env(env_id, tasks, **(env_kwargs or {}))
    try:
        if not isinstance(env.single_action_space, gym.spaces.Discrete):
            raise ValueError(f"bandit sources need Discrete actions (arms), got {env.single_action_space}")
        num_learners, num_arms = env.num_envs, int(env.single_action_space.n)
        arm_start = int(env.single_action_space.start)
        rng = np.random.default_rng(config.seed)
        counts = np.zeros((num_learners, num_arms))  # (N, K) pulls of each arm
        sums = np.zeros((num_learners, num_arms))  # (N, K) rewards of each arm
        rows = np.arange(num_learners)
        observations, _ = env.reset(seed=int(rng.integers(2**31)))
        for episode in range(config.episodes):
            arms = argmax_random_ties(scores(counts, sums, rng), rng)  # (N,)
            next_observations, rewards, terminated, truncated, _ = env.step(arms + arm_start)
            if not check_lock_step(terminated, truncated, 1):
                raise ValueError(f"bandit sources need one-pull episodes, but {env_id} episodes are longer")
            if rewards_in_unit_interval and ((rewards < 0) | (rewards > 1)).any():
                bad = rewards[(rewards < 0) | (rewards > 1)][0]
                raise ValueError(
                    f"the Bernoulli model needs rewards in [0, 1], got {bad}; use likelihood='gaussian'"
                )
            counts[rows, arms] += 1
            sums[rows, arms] += rewards
            yield EpisodeBlock.from_steps(
                episode, [(observations, arms + arm_start, rewards, terminated, truncated)]
            )
            observations = next_observations
    finally:
        env.close()
