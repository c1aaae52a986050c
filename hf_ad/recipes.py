"""The default recipe of each environment: dataset, training and evaluation, keyed by env id.

`hf-ad generate --env ENV`, `hf-ad train --dataset D` and `hf-ad evaluate --model M` take every setting the
user does not give from the recipe of the env (of the dataset, of the checkpoint), so that those three
commands with no other flags reproduce the shipped result. A leaf module: it imports only
`hf_ad.constants`, so the data, training and evaluation layers all read it.

Each recipe's docstring says where it differs from the paper's appendix (Laskin et al., 2023) and why; the
model card of a checkpoint records the values it was trained with (`train_config.json`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hf_ad import constants

PAPER_SEEDS = 20  # evaluation seeds per checkpoint in the paper's figures


@dataclass(frozen=True)
class DatasetDefaults:
    """The default dataset of an env: what `hf-ad generate --env ENV_ID` builds.

    `source_options` tune the default source for this env and apply only when that source is used.
    """

    source: str
    histories_per_task: int
    episodes: int
    keep_every: int
    source_options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingRecipe:
    """The `hf-ad train` settings of an env's recipe (each a `TrainConfig` field of the same name).

    The defaults are the first Dark Room release (`DARK_ROOM_V1_RECIPE`, two processes of batch 32): the
    paper's model (embedding 64, 4 layers, 4 heads, dropout 0.1, attention dropout 0.5, token masking 0.3)
    with a feed-forward width of 256 instead of 2048 and a global batch of 64 instead of 128, to fit 2 CPU
    cores (2400 steps in 25 minutes on Dark Room).
    """

    max_steps: int = 2400
    batch_size: int = 32  # per process; the release trains in two processes
    learning_rate: float = 3e-4  # the paper's peak (cosine schedule)
    context: int = 160  # transitions per training segment: 2 * sliding_window
    sliding_window: int = 80  # about 4 episodes (the paper's context)
    max_context: int = 320
    hidden_size: int = 64
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 256
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.5
    token_mask_prob: float = 0.3
    label_smoothing: float = 0.0
    mark_episode_starts: bool = False


@dataclass(frozen=True)
class EvaluationRecipe:
    """The `hf-ad evaluate` settings of an env's recipe.

    Args:
        episodes: episodes per task and run (the paper: 1000 for the dark envs, 100 pulls for the bandit).
        seeds: evaluation seeds per checkpoint (the paper's 20).
        num_tasks: held-out tasks played (a fixed sample of the checkpoint's `test_tasks`,
            `hf_ad.evaluation.held_out_tasks`); `None`: all.
        task_distributions: bandit only: the task distributions (`hf_ad.envs.sample_bandit_tasks`) on which
            the normalised score `(r - r_random) / (r_source - r_random)` is reported.
        tasks_per_distribution: tasks drawn from each of `task_distributions` (seed `distribution_seed`).
        distribution_seed: the seed of those draws.
    """

    episodes: int = 1000
    seeds: int = PAPER_SEEDS
    num_tasks: int | None = None
    task_distributions: tuple[str, ...] = ()
    tasks_per_distribution: int = 0
    distribution_seed: int = 0


@dataclass(frozen=True)
class Recipe:
    """One env's recipe: its dataset, training and evaluation settings.

    `departures` says, in prose, where the recipe differs from the paper's appendix and why (measured where
    a measurement decided it); the model card of a checkpoint trained with the recipe quotes it.
    """

    env_id: str
    dataset: DatasetDefaults
    training: TrainingRecipe = TrainingRecipe()
    evaluation: EvaluationRecipe = EvaluationRecipe()
    num_processes: int = 2  # training processes of the release (`scripts/reproduce.sh`)
    departures: str = ""


DARK_ROOM_V1_RECIPE = Recipe(
    constants.DARK_ROOM,
    # The recipe measured in shared/PAPER.md: 40 histories per goal, every 10th episode, so that a
    # 4-episode (80-transition) window spans visible learning progress (tabular Q-learning converges in
    # ~200 episodes; the paper's source, A3C, is replaced by batched tabular Q-learning: 4M transitions/s).
    DatasetDefaults("q_learning", 40, 500, 10),
    departures=(
        "The source is batched tabular Q-learning (4M transitions/s on one core) instead of A3C, with 40 "
        "histories per training goal of 500 episodes, every 10th kept, so that the 80-transition window "
        "(4 episodes, the paper's context) spans visible learning progress. Feed-forward width 256 instead "
        "of 2048 and a global batch of 64 instead of 128, for 2400 steps, to train in 25 minutes on 2 CPU "
        "cores; the rest is the appendix's (embedding 64, 4 layers, 4 heads, dropout 0.1, attention dropout "
        "0.5, token masking 0.3, peak learning rate 3e-4, cosine schedule)."
    ),
)
"""Dark Room's first release (`pretrained/ad-darkroom-v1`, 2400 steps, 2 x 32 windows of 160 transitions):
AD distilled from Q-learning, the model docs/EVIDENCE.md measures and the recipe its experiments train with
(`hf_ad.experiments`); where it departs from the paper: `departures`."""

DARK_ROOM_RECIPE = Recipe(
    constants.DARK_ROOM,
    # docs/RECIPE_SEARCH.md (trial 4): the explore-then-stay search as the source, every episode of 30 kept;
    # 1% random steps after the goal is found, so the histories show the way back after a wrong step.
    DatasetDefaults("explorer", 100, 30, 1, {"epsilon": 0.1, "exploit_epsilon": 0.01}),
    TrainingRecipe(max_steps=1200, token_mask_prob=0.0),
    departures=(
        "The source is a systematic search (`explorer`: walk to the nearest cell not yet visited until a "
        "reward appears, then go back and stay; 10% random steps while searching, 1% after) instead of "
        "A3C, so AD distils a near-optimal explorer rather than an RL algorithm: 100 histories per training "
        "goal of 30 episodes, every episode kept (the search converges in under 10 episodes). No token "
        "masking (the appendix: 0.3), measured: with it AD scored 13.98 over episodes 16-20 against 15.47 "
        "without (docs/RECIPE_SEARCH.md, trials 1 and 2). Feed-forward width 256 instead of 2048 and a "
        "global batch of 64 instead of 128, for 1200 steps, to train in 10-12.5 minutes on 2 CPU cores; "
        "the rest is the appendix's (embedding 64, 4 layers, 4 heads, dropout 0.1, attention dropout 0.5, "
        "peak learning rate 3e-4, cosine schedule, 80 transitions = 4 episodes of context)."
    ),
)
"""Dark Room, release 2: the shipped `pretrained/ad-darkroom` (1200 steps, 2 x 32 windows of 160
transitions), chosen by the search of docs/RECIPE_SEARCH.md; where it departs from the paper: `departures`.
The first release's recipe is `DARK_ROOM_V1_RECIPE`."""

DARK_ROOM_HARD_RECIPE = Recipe(
    constants.DARK_ROOM_HARD,
    # docs/RECIPE_SEARCH.md (trial H1): the explore-then-stay search as the source, as for Dark Room; its one
    # reward an episode tells it where the goal is. It passes 0.5 at episode 9 and 0.99 at episode 25 of 40.
    DatasetDefaults("explorer", 20, 40, 1, {"epsilon": 0.1, "exploit_epsilon": 0.01}),
    TrainingRecipe(
        max_steps=1200,
        context=400,
        sliding_window=200,
        max_context=400,
        attention_dropout=0.0,
        token_mask_prob=0.0,
        label_smoothing=0.0,
    ),
    departures=(
        "The source is a systematic search (`explorer`: walk to the nearest cell not yet visited until the "
        "reward appears, then go back to it in every later episode; 10% random steps while searching, 1% "
        "after) instead of A3C: 20 histories per training goal of 40 episodes, every episode kept. A window "
        "of 200 transitions (10 episodes) instead of the paper's 4, measured (docs/RECIPE_SEARCH.md, all 58 "
        "held-out goals): on Q-learning's histories with a 4-episode window AD levelled off at 0.64 over "
        "episodes 901-1000 (20 seeds), a window too short to remember which parts of the 289-cell room were "
        "searched; with the search's histories and 10 episodes, 0.94 over episodes 191-200 and 0.98 over "
        "901-1000 (5 seeds). No token masking and no label smoothing (the appendix: 0.5 and 0.2), measured: "
        "with the appendix's values AD did not learn in context on Q-learning's histories (0.08 over "
        "episodes 1-10, 0.10 over 191-200; the random policy 0.04). The appendix's attention dropout for "
        "this env (0). Feed-forward 256 and a global batch of 64 instead of 2048 and 128, for 1200 steps, "
        "to train in under 30 minutes on 2 CPU cores."
    ),
)
"""Dark Room Hard, release 2: the shipped `pretrained/ad-darkroom-hard` (1200 steps, 2 x 32 windows of 400
transitions), trial H1 of docs/RECIPE_SEARCH.md; where it departs from the paper: `departures`. The first
release's recipe (Q-learning's histories, 4 episodes of context) is `DARK_ROOM_HARD_V1_RECIPE`."""

DARK_ROOM_HARD_V1_RECIPE = Recipe(
    constants.DARK_ROOM_HARD,
    # Q-learning learns over ~1000 episodes here and needs a lower optimistic value (a far goal is worth
    # less than an optimism of 5); measured in scripts/bench_sources.py.
    DatasetDefaults("q_learning", 10, 1000, 10, {"init_q": 1.0}),
    TrainingRecipe(attention_dropout=0.0, token_mask_prob=0.0, label_smoothing=0.0),
    departures=(
        "The appendix's attention dropout for this env (0) and 4 episodes (80 transitions) of context, but "
        "no token masking and no label smoothing (the appendix: 0.5 and 0.2), measured: with the appendix's "
        "values AD did not learn in context (`hf-ad evaluate --episodes 200 --seeds 2`, 58 held-out goals: "
        "0.08 over episodes 1-10, 0.10 over 191-200, the random policy 0.04). The source is batched tabular "
        "Q-learning (optimistic value 1: a far goal is worth less than Dark Room's optimism of 5) instead of "
        "A3C, 10 histories per training goal of 1000 episodes (it learns over ~1000 here), every 10th kept. "
        "Feed-forward 256 and a global batch of 64 instead of 2048 and 128, as for Dark Room, to fit 2 CPU "
        "cores."
    ),
)
"""Dark Room Hard's first release (not shipped any more: AD 0.58 / 0.64 over episodes 191-200 / 901-1000,
20 seeds; docs/RECIPE_SEARCH.md), kept so that its runs and the search's trials on Q-learning's histories
are reproducible; where it departs from the paper: `departures`."""

KEY_TO_DOOR_RECIPE = Recipe(
    constants.DARK_KEY_TO_DOOR,
    # Q-learning (with the key in its state) learns a task in ~200 episodes; 1000 of them, every 10th kept.
    DatasetDefaults("q_learning", 1, 1000, 10, {"init_q": 2.0}),
    TrainingRecipe(
        max_steps=2000,
        batch_size=16,
        learning_rate=1e-3,
        context=800,
        sliding_window=400,
        max_context=800,
        attention_dropout=0.0,
        token_mask_prob=0.0,
        mark_episode_starts=True,
    ),
    EvaluationRecipe(episodes=200, num_tasks=256),
    departures=(
        "The source is tabular Q-learning with the key in its state (optimistic value 2), one history of "
        "1000 episodes per training task (1800 tasks), every 10th episode kept, instead of A3C; measured "
        "against 500 episodes with every 5th kept (the same 9M transitions, the source at 1.97 instead of "
        "1.89 by its last episode), 2000 steps each: 1.89 over episodes 191-200 against 1.82 and, over 1000 "
        "episodes (1 seed), 1.86 over 901-1000 against 1.80. A window of "
        "400 transitions (8 episodes; the paper's 4), measured after 2000 steps: 1.82 over episodes "
        "191-200 against 1.77 with 200 (2 seeds on 64 tasks, as below) and, over 1000 episodes (1 seed, "
        "the same tasks), 1.80 over 901-1000 against 1.75, at the same transitions per step (16 segments "
        "of 800 per process instead of 32 of 400). 2000 steps with "
        "feed-forward 256 and a global batch of 32 segments to fit 2 CPU cores, at a peak learning rate of "
        "1e-3 instead of 3e-4, measured "
        "(docs/RECIPE_SEARCH.md, `hf-ad evaluate --episodes 200 --seeds 2 --num-tasks 64`): 1.61 over "
        "episodes 191-200 against 1.03 at 3e-4 (1.52 after 3000 steps). The first step of every episode is "
        "marked (`mark_episode_starts`: no previous action), which the paper does not do: Q-learning's "
        "action depends on whether the key was taken in this episode, and the start cell is random; "
        "measured the same way after 1500 steps, 1.74 over episodes 191-200 against 1.61 unmarked; 2000 "
        "steps: 1.77. No attention dropout and no token masking (the appendix: 0.5 and 0.3), measured: with"
        " both a training step of 2 x 32 segments of 400 took 3.1 s on 2 cores (77 minutes for 1500 steps; "
        "the CPU's attention falls back to its slow path with dropout), without them 1.0 s. Masking was "
        "also measured against elsewhere: with it (and label smoothing) AD did not learn in context on Dark"
        " Room Hard, it was slower on Dark Room (docs/RECIPE_SEARCH.md), and the bandit scored higher with "
        "both off. Evaluated on a fixed sample of 256 of the 4680 held-out tasks (seed 0, "
        "`hf_ad.evaluation.held_out_tasks`) instead of all, for 200 episodes instead of 1000, to fit 20 seeds"
        " on 2 cores: with a window of 400 transitions a cached step reads 0.8 MB of keys and values per "
        "stream, so 256 tasks x 20 seeds x 200 episodes take about 45 minutes per checkpoint in two "
        "processes, and 1000 episodes would take about 4 hours; episodes 901-1000 are measured on one seed "
        "(`--episodes 1000 --seeds 1`, scripts/reproduce.sh)."
    ),
)
"""Dark Key-to-Door (`pretrained/ad-key-to-door`, 2000 steps, 2 x 16 segments of 800 transitions): AD
distilled from Q-learning with an 8-episode window; where it departs from the paper: `departures`."""

BANDIT_RECIPE = Recipe(
    constants.BANDIT,
    # UCB1 (the paper's source) for 100 pulls, the paper's trial count, 10 histories per training task.
    DatasetDefaults("ucb", 10, 100, 1),
    TrainingRecipe(
        max_steps=1800,
        learning_rate=1e-3,
        context=100,
        sliding_window=100,
        max_context=320,
        attention_dropout=0.0,
        token_mask_prob=0.0,
    ),
    EvaluationRecipe(episodes=100, task_distributions=("odd", "even", "uniform"), tasks_per_distribution=200),
    num_processes=1,
    departures=(
        "Histories of 100 pulls (the paper's 100 trials) from UCB1, 10 per training task, so every training "
        "segment is a whole history from its first pull and the window (100 transitions) sees every pull of "
        "an evaluation stream. One process of batch 32 (global batch 32, the paper's 128) for 1800 steps, so "
        "AD and ED train side by side on 2 cores (9.6 minutes each). The appendix's attention dropout 0.5 "
        "and token masking 0.3 are off and the peak learning rate is 1e-3, measured (normalised score on the "
        "odd / even / uniform tasks, 20 seeds): with the appendix's values at 3e-4, AD imitated UCB1 loosely "
        "(loss 1.85) and scored 0.91 / 0.88 / 0.90; with both off, 0.94 / 0.93 / 0.94 (loss 1.21); with "
        "both off at 1e-3, 0.98 / 0.97 / 0.98 (loss 1.04). A likely reason (not isolated): masking a whole "
        "token hides the reward a pull earned, which a bandit learner must count. The paper does not give "
        "its number of bandit tasks: 200 per distribution (odd, even, uniform), drawn with one seed (0), so "
        "the three samples hold the same arm means and differ only in which arm is best."
    ),
)
"""Adversarial bandit: the shipped `pretrained/ad-bandit`; where it departs from the paper: `departures`."""

PIXEL_WATERMAZE_RECIPE = Recipe(
    constants.PIXEL_WATERMAZE,
    # Tabular Q-learning on the privileged pose (324 poses), Dark Room's options. Its learning curve (the
    # `learning_curve` of `hf-ad generate --env hf_ad/PixelWatermaze-v0 --histories-per-task 2`, 130
    # histories on the 65 training goals): 0.9 (episode 0) -> 10.4 (20) -> 27.9 (50) -> 38.0 (100) -> 42.6
    # (150) -> 44.0 (200) -> 44.3 (249) of the oracle's 45.2. Every 10th of 250 episodes is kept, so a
    # 4-episode window (200 transitions) spans 40 of the source's episodes: visible progress through the
    # first ~150. 650,000 stored transitions of 2352 bytes (1.5 GB of frames in RAM when training).
    DatasetDefaults("q_learning", 8, 250, 10),
    TrainingRecipe(
        max_steps=2400,
        batch_size=8,
        context=800,
        sliding_window=400,
        max_context=800,
        hidden_size=128,
        intermediate_size=512,
        attention_dropout=0.0,
        token_mask_prob=0.0,
    ),
    EvaluationRecipe(episodes=100),
    departures=(
        "The paper's Watermaze is DMLab (not installable here): this is a MiniGrid room with landmarks in "
        "its walls and an invisible goal cell, seen as 28x28x3 first-person views. The source is tabular "
        "Q-learning on the privileged pose (position and direction, 324 poses) instead of a distributed DQN "
        "on pixels; the dataset stores the views, which is all AD sees. 8 histories per training goal of "
        "250 episodes, every 10th kept. 8 episodes (400 transitions) of context instead of the paper's 4, "
        "and embedding 128 instead of the dark envs' 64, measured on the held-out goals "
        "(docs/RECIPE_SEARCH.md): 4 episodes at 64 reached 14.0 over episodes 91-100 (20 seeds), 8 episodes "
        "16.6 (20 seeds), 12 episodes 15.6 (5 seeds), 8 episodes at 128 27.1 (5 seeds). No attention "
        "dropout and no token masking (the appendix: 0.5 and 0.3), measured: with the appendix's attention "
        "dropout a training step of 2 x 16 segments of 400 took 4.5 s on 2 cores (3 hours for "
        "2400 steps; the CPU's attention falls back to its slow path with dropout), without it 1.15 s; both "
        "off follows the Dark Room Hard and bandit recipes, where they kept AD from learning in context. "
        "Feed-forward 512 and a global batch of 16 segments of 800 instead of 2048 and 128, to train in "
        "under an hour."
    ),
)
"""Pixel Watermaze (issue 15): the paper's Watermaze role, AD from 28x28x3 first-person images. 8 episodes
(400 transitions) of context, twice the paper's, and embedding 128; segments of 800 at a quarter of Dark
Room's batch per process (8), for about Dark Room's tokens per step. Evaluated for 100 episodes (the
issue's bars: episodes 1-10 against 91-100) on all 16 held-out goals, 20 seeds. The shipped
`pretrained/ad-pixel-watermaze`; where it departs from the paper: `departures`."""

RECIPES: dict[str, Recipe] = {
    recipe.env_id: recipe
    for recipe in (
        DARK_ROOM_RECIPE,
        DARK_ROOM_HARD_RECIPE,
        KEY_TO_DOOR_RECIPE,
        BANDIT_RECIPE,
        PIXEL_WATERMAZE_RECIPE,
    )
}


PAST_RECIPES: dict[str, dict[str, Recipe]] = {
    constants.DARK_ROOM: {"DARK_ROOM_V1_RECIPE": DARK_ROOM_V1_RECIPE},
    constants.DARK_ROOM_HARD: {"DARK_ROOM_HARD_V1_RECIPE": DARK_ROOM_HARD_V1_RECIPE},
}
"""Recipes an env's shipped checkpoints were trained with before its current one, by their name here."""


def recipe_of_run(env_id: str, recorded: dict[str, Any]) -> tuple[str | None, Recipe]:
    """`(name, recipe)` of the recipe a run recorded in `recorded` (its `train_config.json`) was trained
    with: the env's current recipe (name `None`) unless a setting the run recorded contradicts it and a past
    recipe's (`PAST_RECIPES`) does not. A `None` setting (runs recorded before the recipes) fits any.

    Raises:
        ValueError: no recipe for this env.
    """
    current = recipe_for(env_id)
    for name, recipe in ((None, current), *PAST_RECIPES.get(env_id, {}).items()):
        values = dataclasses.asdict(recipe.training)
        if all(recorded.get(field_name) in (None, value) for field_name, value in values.items()):
            return name, recipe
    return None, current


def recipe_for(env_id: str) -> Recipe:
    """The recipe of `env_id`.

    Raises:
        ValueError: no recipe for this env, naming the ones there are and the fix.
    """
    if env_id not in RECIPES:
        raise ValueError(
            f"no hf_ad recipe for env {env_id!r} (recipes: {tuple(RECIPES)}); give every setting as a flag"
        )
    return RECIPES[env_id]


def training_values(env_id: str) -> dict[str, Any]:
    """The recipe's `hf-ad train` settings for `env_id`, by `TrainConfig` field name."""
    recipe = recipe_for(env_id).training
    return {name: getattr(recipe, name) for name in TrainingRecipe.__dataclass_fields__}


__all__ = [
    "BANDIT_RECIPE",
    "DARK_ROOM_HARD_RECIPE",
    "DARK_ROOM_HARD_V1_RECIPE",
    "DARK_ROOM_RECIPE",
    "DARK_ROOM_V1_RECIPE",
    "KEY_TO_DOOR_RECIPE",
    "PAPER_SEEDS",
    "PAST_RECIPES",
    "PIXEL_WATERMAZE_RECIPE",
    "RECIPES",
    "DatasetDefaults",
    "EvaluationRecipe",
    "Recipe",
    "TrainingRecipe",
    "recipe_for",
    "recipe_of_run",
    "training_values",
]
