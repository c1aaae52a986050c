"""Experiments `ablation-context`, `ablation-tasks`, `ablation-masking`, `ablation-subsampling`,
`ablation-source`: the paper's ablations (its figures 7-9, and its choice of source), trained on Dark Room.

Each experiment trains one model per arm (`hf_ad.experiments.arms`: same steps, batch size and model for
every arm; the arms differ in the factor only, everything else is the Dark Room recipe) and evaluates
each on the 16 held-out goals, `seeds` evaluation seeds, actions sampled, `episodes` episodes from an
empty context. The factors:

- `ablation-context` (arms 0.5, 1, 2, 4): the attention window in episodes of 20 steps,
  `sliding_window` 10, 20, 40, 80 (training segments twice that);
- `ablation-tasks` (5, 10, 20, 40, 65): the number of training goals, the first N of the 65
  (`hf_ad.envs.subset_tasks`, nested), `num_train_tasks`;
- `ablation-masking` (0, 0.3, 0.9): `token_mask_prob`, the probability of masking a whole input token;
- `ablation-subsampling` (1, 3, 10, 30): the histories' `keep_every`, with 10 histories per goal instead
  of 40 for every arm, so that the every-episode data stays at 6.5M rows;
- `ablation-source` (q_learning, actor_critic): the source of the histories (500 episodes, every 10th kept).

`results.json` holds per arm the curve, the summary ranges and `fraction_of_oracle` (the mean of the last
10 episodes over the oracle), and `paper`: the paper's corresponding finding, with numbers where it gives
them (as a fraction of the optimum, so that Key-to-Door's context ablation stands next to Dark Room's);
`returns.png` draws the arms' curves, `paper.png` our fractions of the oracle beside the paper's.

    hf-ad experiment ablation-context --out docs/evidence/ablation-context
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hf_ad.envs import task_split
from hf_ad.experiments.arms import (
    ENV_ID,
    Arm,
    arm_setting,
    budget,
    budget_record,
    evaluate_arm,
    run_arm,
    selected_arms,
)
from hf_ad.experiments.common import ExperimentConfig, curves, finish, save_curves
from hf_ad.plotting import Bars, save_bar_plot

EPISODES = 200
STEPS = 1200  # per arm; see docs/EVIDENCE.md for the measured time per step
EPISODE_LENGTH = 20  # Dark Room's; the context arms are windows of whole episodes
LAST = 10  # episodes at the end whose mean return is set beside the paper's


@dataclass(frozen=True)
class PaperFinding:
    """What the paper reports for a factor: in words, and per arm value where it gives a number.

    Args:
        claim: the finding in one sentence, with where it comes from.
        fraction_of_optimum: arm value -> the paper's final return over the optimum (of its env).
    """

    claim: str
    fraction_of_optimum: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Factor:
    """One ablation: its experiment name, title, arms and the paper's finding."""

    name: str
    title: str
    arms: tuple[Arm, ...]
    paper: PaperFinding
    data_defaults: dict = field(
        default_factory=dict
    )  # the experiment's own dataset size, if not the recipe's


def context_arm(episodes: float) -> Arm:
    window = round(episodes * EPISODE_LENGTH)
    return Arm(
        f"context {episodes:g} episodes ({window} steps)", f"{episodes:g}", train={"sliding_window": window}
    )


def tasks_arm(num_tasks: int) -> Arm:
    every_goal = num_tasks == len(task_split(ENV_ID)[0])  # the recipe itself: trained once for all
    return Arm(
        f"{num_tasks} training goals",
        str(num_tasks),
        train={} if every_goal else {"num_train_tasks": num_tasks},
    )


FACTORS = {
    factor.name: factor
    for factor in (
        Factor(
            "ablation-context",
            "Context length",
            tuple(context_arm(episodes) for episodes in (0.5, 1, 2, 4)),
            PaperFinding(
                "Key-to-Door (max return 2), figure 8: 0.4 episodes of context 0.54, 1 episode 1.12, "
                "2 episodes 1.76, 4 episodes 1.84; one episode is not enough (the paper's shortest "
                "context is 0.4 episodes, ours 0.5).",
                {"0.5": 0.54 / 2, "1": 1.12 / 2, "2": 1.76 / 2, "4": 1.84 / 2},
            ),
        ),
        Factor(
            "ablation-tasks",
            "Number of training goals",
            tuple(tasks_arm(n) for n in (5, 10, 20, 40, 65)),
            PaperFinding(
                "Figure 9: with 18 training tasks or fewer AD does not learn in context (no numbers given)."
            ),
        ),
        Factor(
            "ablation-masking",
            "Token-mask probability",
            tuple(Arm(f"token mask {p:g}", f"{p:g}", train={"token_mask_prob": p}) for p in (0.0, 0.3, 0.9)),
            PaperFinding(
                "Appendix: masking 0.3 is the paper's setting; 0.9 collapses in-context learning (no "
                "numbers)."
            ),
        ),
        Factor(
            "ablation-subsampling",
            "Subsampling of the histories (keep_every)",
            tuple(Arm(f"keep every {k}", str(k), data={"keep_every": k}) for k in (1, 3, 10, 30)),
            PaperFinding(
                "Section 5: with every 10th episode kept, AD learns about 10x faster than its source; the "
                "paper gives no sweep over keep_every (no numbers)."
            ),
            data_defaults={"histories_per_task": 10},
        ),
        Factor(
            "ablation-source",
            "Source algorithm of the histories",
            tuple(
                Arm(name.replace("_", "-"), name, data={"source": name})
                for name in ("q_learning", "actor_critic")
            ),
            PaperFinding(
                "The paper distils A3C (actor-critic) on the dark envs and DQN on Watermaze; it compares no "
                "sources on one env (no numbers)."
            ),
        ),
    )
}
NAMES = tuple(FACTORS)


def run_factor(factor: Factor, config: ExperimentConfig, command: str) -> dict:
    """Train, evaluate and compare every (selected) arm of `factor`; write results.json and the plots."""
    config = dataclasses.replace(
        config,
        out=config.out or str(Path("runs") / "experiments" / factor.name),
        episodes=config.episodes or EPISODES,
    )
    plan = budget(config, STEPS, factor.data_defaults)
    arms = selected_arms(factor.arms, config.arms, factor.name)
    trained = [run_arm(arm, plan, config, factor.name) for arm in arms]
    held_out = arm_setting(trained[0].final, config)
    oracle = held_out.oracle()
    methods = {}
    for result in trained:
        returns = evaluate_arm(result.final, held_out, config, result.run_dir)  # (streams, episodes)
        curve = curves(returns, config.seeds)
        last = float(np.mean(curve["mean"][-LAST:]))
        methods[result.arm.label] = curve | {
            "value": result.arm.value,
            "model": str(result.final),
            "histories": str(result.histories),
            "last_episodes_mean": last,
            "fraction_of_oracle": last / oracle,
        }
    title = f"{factor.title}: held-out goals, {config.seeds} seeds, {plan.steps} steps per arm"
    save_curves(f"{config.out}/returns.png", methods, title, oracle)
    save_bar_plot(
        f"{config.out}/paper.png",
        [str(arm.value) for arm in arms],
        [
            Bars("ours (Dark Room)", [methods[arm.label]["fraction_of_oracle"] for arm in arms]),
            Bars("the paper", [factor.paper.fraction_of_optimum.get(str(arm.value)) for arm in arms]),
        ],
        f"{factor.title}: final return / optimum (ours: last {LAST} of {config.episodes} episodes)",
        "fraction of the optimum",
    )
    results = {
        "factor": factor.title,
        "budget": budget_record(plan),
        "oracle": oracle,
        "random": held_out.random(),
        "methods": methods,
        "paper": dataclasses.asdict(factor.paper),
    }
    return finish(factor.name, command, config, held_out, results)


def runner(name: str):
    """`run(config, command)` of the ablation `name` (a key of `FACTORS`), for `EXPERIMENTS`."""
    return lambda config, command: run_factor(FACTORS[name], config, command)
