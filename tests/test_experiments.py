"""`hf-ad experiment NAME`: each experiment runs end to end on the shipped checkpoints with a tiny budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_ad import cli
from hf_ad.baselines import ExploreThenStay
from hf_ad.constants import DARK_ROOM
from hf_ad.experiments import EVALUATION_EXPERIMENTS, ExperimentConfig, run_experiment
from hf_ad.experiments.common import GoalSwitch, Setting, first_episode_at_least, play, source_returns
from hf_ad.experiments.goal_switch import switched_tasks

TINY = {"seeds": 2, "episodes": 5, "num_tasks": 2}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Every evaluation-only experiment once, on the first 2 held-out goals, 2 seeds, 5 episodes (3 s in all;
    the training experiments' smoke tests are in test_experiments_training.py)."""
    root = tmp_path_factory.mktemp("experiments")
    return {
        name: run_experiment(name, ExperimentConfig(out=str(root / name), **TINY))
        for name in EVALUATION_EXPERIMENTS
    }


@pytest.mark.parametrize("name", sorted(EVALUATION_EXPERIMENTS))
def test_each_experiment_writes_its_results_and_plot(tiny_runs, name):
    results = tiny_runs[name]
    out = results["settings"]["out"]
    with open(f"{out}/results.json") as file:
        assert json.load(file) == json.loads(json.dumps(results))
    assert results["command"].startswith(f"hf-ad experiment {name} ") and "--seeds 2" in results["command"]
    assert results["env_id"] == DARK_ROOM and len(results["tasks"]) == 2
    pngs = list(__import__("pathlib").Path(out).glob("*.png"))
    assert pngs and all(path.stat().st_size > 1000 for path in pngs)
    for method in results.get("methods", {}).values():
        assert method["n"] == 2 and len(method["mean"]) in (5, 5 - results.get("switch_episode", 0))


def test_heuristic_numbers_are_consistent(tiny_runs):
    results = tiny_runs["heuristic"]
    assert set(results["methods"]) == {"AD", "ED", "heuristic", "Q-learning"}
    heuristic = results["methods"]["heuristic"]
    assert max(heuristic["mean"]) <= results["oracle"] + 1e-9
    assert heuristic["first_reward"]["streams"] == 4


def test_goal_switch_moves_every_goal_and_the_staying_heuristic_never_recovers(tiny_runs):
    results = tiny_runs["goal-switch"]
    assert results["switch_episode"] == 2 and results["new_tasks"] == results["tasks"][::-1]
    for label, method in results["methods"].items():
        assert ("before_switch" in method) == (label != "Q-learning from scratch")
        assert method["after_switch"]["first_reward"]["streams"] == 4
    assert len(results["methods"]["Q-learning from scratch"]["mean"]) == 3  # from the switch on
    with pytest.raises(ValueError, match="at least 2 held-out tasks"):
        switched_tasks([(1, 1)])


def test_prompting_prompts_rise_with_quality(tiny_runs):
    methods = tiny_runs["prompting"]["methods"]
    prompt_returns = [methods[f"AD, prompt {q:g}"]["prompt_return"] for q in (0.05, 0.5, 1.0)]
    assert prompt_returns == sorted(prompt_returns) and prompt_returns[-1] > prompt_returns[0]
    assert methods["AD, prompt 1"]["prompt_return"] == methods["ED, prompt 1"]["prompt_return"]


def test_attention_shares_are_probabilities(tiny_runs):
    (phase,) = tiny_runs["attention"]["phases"].values()  # 5 episodes: one phase
    assert 0 <= phase["rewarded_key_share"] <= 1 and 0 <= phase["rewarded_attention_share"] <= 1
    assert len(phase["rewarded"]["mean"]) == tiny_runs["attention"]["window"]


def test_stochastic_reward_oracle_is_scaled_by_p(tiny_runs):
    results = tiny_runs["stochastic-reward"]
    assert results["reward_prob"] == 0.5
    assert results["oracle"] == pytest.approx(tiny_runs["heuristic"]["oracle"] / 2)
    assert 0 < results["random"] < results["oracle"]


def test_play_switches_goals_and_is_seeded():
    held_out = Setting(DARK_ROOM, {}, [(1, 7), (8, 5)], seeds=1)
    switch = GoalSwitch(6, [(8, 5), (1, 7)])
    first = play(ExploreThenStay(seed=0), held_out, 8, seed=0, switch=switch)
    assert np.array_equal(first, play(ExploreThenStay(seed=0), held_out, 8, seed=0, switch=switch))
    assert (first[:, 5] > 0).all() and (first[:, 6:] == 0).all()  # found by episode 6, then the goal moved
    learned = source_returns(held_out, 4, seed=0)
    assert learned.shape == (2, 4) and np.array_equal(learned, source_returns(held_out, 4, seed=0))


def test_first_episode_at_least():
    returns = np.array([[0, 2, 5], [0, 0, 0]])
    assert first_episode_at_least(returns, 1).tolist() == [1, -1]
    assert first_episode_at_least(returns, np.array([3, 0])).tolist() == [2, 0]


def test_bad_settings_and_names_are_one_line_errors(tmp_path, capsys):
    for bad in ({"seeds": 0}, {"episodes": -1}, {"reward_prob": 0.0}, {"switch_episode": True}):
        with pytest.raises(ValueError):
            ExperimentConfig(**bad)
    bandit = ["experiment", "heuristic", "--model", "pretrained/ad-bandit", "--out", str(tmp_path)]
    assert cli.main(bandit) == 2
    assert "plays hf_ad/Bandit-v0; these experiments" in capsys.readouterr().err
    assert cli.main(["experiment", "no-such", "--out", str(tmp_path)]) == 2
    assert "unknown experiment 'no-such'" in capsys.readouterr().err
    assert cli.main(["experiment", "--seeds", "2"]) == 2
    assert "name the experiment first" in capsys.readouterr().err
    argv = ["experiment", "goal-switch", "--episodes", "4", "--switch-episode", "4", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "--switch-episode must lie inside the 4 episodes" in capsys.readouterr().err
