"""The evaluation: AD vs ED vs the source from scratch, results.json, the plot and the model card."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import save_tiny_checkpoint
from huggingface_hub import ModelCard
from tqdm.auto import tqdm

from hf_ad import constants
from hf_ad.cards import CARD_SECTION, REPLAY_SECTION
from hf_ad.cli import main, parse_dataclass
from hf_ad.command_line import command_line
from hf_ad.configuration_rl2 import RL2Config
from hf_ad.envs import optimal_return, random_return
from hf_ad.evaluation import (
    EvaluateConfig,
    curve_stats,
    episode_ranges,
    evaluate,
    held_out_tasks,
    normalise,
    recorded_source,
    resolve_source,
    stream_outcomes,
    stream_returns,
)
from hf_ad.modeling_rl2 import RL2Model
from hf_ad.recipes import DARK_ROOM_RECIPE, EvaluationRecipe

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
TASKS = [(0, 0), (2, 7)]
CARD = (
    "---\nlicense: apache-2.0\nlibrary_name: hf_ad\n---\n"
    "# AD on Dark Room\n\nTrained with hf_ad.\n\n## Citation\n"
)


def _save_model(path, seed: int) -> str:
    save_tiny_checkpoint(path, TASKS, seed)
    (path / constants.MODEL_CARD).write_text(CARD)
    return str(path)


def test_evaluate_writes_results_plot_and_cards(tmp_path):
    ad = [_save_model(tmp_path / f"ad{seed}", seed) for seed in (0, 1)]  # two training seeds
    ed = _save_model(tmp_path / "ed", 2)
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", *ad, "--ed_model", ed, "--source", "q_learning"]
    argv += ["--episodes", "12", "--seeds", "2", "--update-card", "--out", str(out)]
    assert main(argv) == 0

    results = json.loads((out / constants.RESULTS_JSON).read_text())
    assert results["env_id"] == constants.DARK_ROOM and results["tasks"] == [list(t) for t in TASKS]
    assert set(results["methods"]) == {"AD", "ED", "source"}
    for name, n in (("AD", 4), ("ED", 2), ("source", 2)):  # runs = checkpoints x seeds
        stats = results["methods"][name]
        assert stats["n"] == n and len(stats["mean"]) == len(stats["std"]) == 12
        assert all(0.0 <= value <= 20.0 for value in stats["mean"])
        assert list(stats["summary"]) == ["episodes 1-10", "episodes 1-12"]
    assert results["methods"]["source"]["config"]["episodes"] == 12
    assert results["oracle"]["mean"] == pytest.approx(
        np.mean([optimal_return(constants.DARK_ROOM, t) for t in TASKS])
    )
    assert results["random"]["mean"] == pytest.approx(
        np.mean([random_return(constants.DARK_ROOM, t) for t in TASKS])
    )
    assert (out / constants.RESULTS_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files

    card = ModelCard.load(tmp_path / "ad0" / constants.MODEL_CARD)
    assert card.data.license == "apache-2.0"  # the card's own metadata is kept
    measured = {r.metric_name: r.metric_value for r in card.data.eval_results}
    own = results["per_checkpoint"]["AD"][ad[0]]["summary"]
    assert measured == {
        f"Mean return, {label} (AD)": pytest.approx(own[label]["mean"], abs=1e-4) for label in own
    }
    assert card.data.eval_results[0].dataset_type == constants.DARK_ROOM
    assert "| ED (n=2) |" in card.text and "| AD, all checkpoints (n=4) |" in card.text
    assert "Trained with hf_ad." in card.text
    assert "hf-ad evaluate --model" in card.text and str(tmp_path) not in card.text  # no absolute path
    assert card.text.index(CARD_SECTION[1]) < card.text.index(
        "## Citation"
    )  # the table precedes the citation

    # The replay video of the first AD checkpoint: in the evaluation folder, in its folder, in its card.
    video = (out / constants.REPLAY_MP4).read_bytes()
    assert (tmp_path / "ad0" / constants.REPLAY_MP4).read_bytes() == video
    assert (
        not (tmp_path / "ad1" / constants.REPLAY_MP4).exists()
        and not (tmp_path / "ed" / "replay.mp4").exists()
    )
    section = card.text.split(CARD_SECTION[0])[1].split(CARD_SECTION[1])[0]
    assert '<video src="replay.mp4"' in section and "episode 12 (right, return" in section

    # A second evaluation replaces the first one's numbers, table and video instead of adding to them.
    assert main([*argv[:-2], "--out", str(tmp_path / "again"), "--source", "none"]) == 0
    card = ModelCard.load(tmp_path / "ad0" / constants.MODEL_CARD)
    assert len(card.data.eval_results) == 2
    assert card.text.count(CARD_SECTION[0]) == 1 and "from scratch" not in card.text
    assert card.text.count(REPLAY_SECTION[0]) == 1 and (tmp_path / "again" / constants.REPLAY_MP4).is_file()


def test_same_seed_same_results(tmp_path):
    model = _save_model(tmp_path / "ad", 0)
    config = dict(model=[model], episodes=3, seeds=2, source="q_learning")
    from hf_ad.evaluation import evaluate

    first = evaluate(EvaluateConfig(out=str(tmp_path / "a"), **config))
    second = evaluate(EvaluateConfig(out=str(tmp_path / "b"), **config))
    assert first["methods"] == second["methods"]
    card = (tmp_path / "ad" / constants.MODEL_CARD).read_text()
    assert card == CARD  # without update_card the card is left alone
    assert (tmp_path / "a" / constants.REPLAY_MP4).is_file() and not (tmp_path / "ad" / "replay.mp4").exists()


def test_recorded_command_keeps_switched_off_defaults():
    config = EvaluateConfig(model=["ad"], out="eval", video=False, greedy=True)
    command = command_line(config, "hf-ad evaluate")
    assert command == "hf-ad evaluate --model ad --out eval --greedy --video false"
    assert parse_dataclass(EvaluateConfig, shlex.split(command)[2:], prog="hf-ad evaluate") == config


def test_curve_stats_and_ranges():
    stats = curve_stats(np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]))
    assert stats["n"] == 2 and stats["mean"] == [2.0, 3.0, 4.0] and stats["std"] == [1.0, 1.0, 1.0]
    assert stats["summary"] == {"episodes 1-3": {"mean": 3.0, "std": 1.0}}
    assert episode_ranges(1000) == [(1, 10), (41, 50), (191, 200), (901, 1000)]
    assert episode_ranges(60) == [(1, 10), (41, 50), (51, 60), (1, 60)]
    assert episode_ranges(100) == [(1, 10), (41, 50), (91, 100), (1, 100)]  # Pixel Watermaze's bar
    assert episode_ranges(10) == [(1, 10)]


def test_stream_outcomes_count_streams_that_go_from_failing_to_solving():
    returns = np.array(
        [
            [0.0, 0.0, 0.0, 0.0],  # never solves
            [0.0, 0.0, 16.0, 16.0],  # fails at first, solves at the end
            [16.0, 16.0, 16.0, 16.0],  # solves throughout
            [16.0, 16.0, 0.5, 0.5],  # forgets
        ]
    )
    assert stream_outcomes(returns, window=2, solved=12.0) == {
        "streams": 4,
        "first_mean": 8.0,
        "last_mean": 8.125,
        "solved_first": 2,
        "solved_last": 2,
        "under_1_last": 2,
        "failing_to_solved": 1,
        "last_min": 0.0,
        "last_median": 8.25,
        "last_max": 16.0,
        "last_episode_shares": {0.0: 0.25, 0.5: 0.25, 16.0: 0.5},
    }
    many = np.arange(24.0).reshape(2, 12)  # 12 distinct returns in the last windows: not counted one by one
    assert stream_outcomes(many, window=6, solved=12.0)["last_episode_shares"] is None


def test_stream_returns_are_the_streams_behind_the_run_scores(tmp_path):
    from hf_ad.evaluation import evaluate

    model = _save_model(tmp_path / "ad", seed=0)
    config = EvaluateConfig(model=[model], out=str(tmp_path / "eval"), episodes=3, seeds=2, source="none")
    returns = stream_returns(model, TASKS, config)
    assert returns.shape == (2 * len(TASKS), 3)
    results = evaluate(config)
    runs = returns.reshape(2, len(TASKS), 3).mean(axis=1)  # (seeds, episodes)
    np.testing.assert_allclose(results["methods"]["AD"]["mean"], runs.mean(axis=0))


def test_the_cli_leaves_cards_alone_unless_asked_and_shows_one_bar_at_a_time(tmp_path, monkeypatch, capsys):
    model = _save_model(tmp_path / "ad", 0)
    bars = BarCounter()
    monkeypatch.setattr("hf_ad.rollout.tqdm", bars.bar)
    monkeypatch.setattr("hf_ad.evaluation.tqdm", bars.bar)
    argv = ["evaluate", "--model", model, "--source", "q_learning", "--episodes", "3", "--seeds", "2"]
    assert main([*argv, "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "ad" / constants.MODEL_CARD).read_text() == CARD
    assert bars.descriptions == ["in-context RL", "q_learning"] and bars.most_open == 1
    err = capsys.readouterr().err
    assert "3/3" in err and "6/6" in err  # the AD bar counts episodes, the source's every seed's
    evaluate(EvaluateConfig(model=[model], out=str(tmp_path / "quiet"), episodes=2, seeds=1, source="none"))
    assert "episode" not in capsys.readouterr().err  # the Python API shows no bar unless asked


class BarCounter:
    """Stands in for `tqdm`: records each bar's description and the most bars open at once."""

    def __init__(self):
        self.descriptions, self.open, self.most_open = [], 0, 0

    def bar(self, *args, **kwargs):
        counter = self

        class CountedBar(tqdm):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                if not self.disable:
                    counter.descriptions.append(self.desc)
                    counter.open += 1
                    counter.most_open = max(counter.most_open, counter.open)
                self.counted = not self.disable

            def close(self):
                if self.counted:
                    counter.open -= 1
                    self.counted = False
                super().close()

        return CountedBar(*args, **kwargs)


def test_every_checkpoint_path_out_and_source_is_checked_before_any_rollout(tmp_path, monkeypatch, capsys):
    model = _save_model(tmp_path / "ad", 0)
    monkeypatch.setattr("hf_ad.evaluation.evaluate_checkpoint", pytest.fail)  # no rollout may start
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-checkpoint").mkdir()
    (tmp_path / "results.txt").write_text("")
    capsys.readouterr()
    argv = ["evaluate", "--model", model, "--out", str(tmp_path / "eval")]
    for extra, expected in (
        (["--ed-model", "ad/typo"], "--ed-model 'ad/typo' is not a folder: pass a checkpoint folder"),
        (["--ed-model", "runs/ed/final"], "--ed-model 'runs/ed/final' is not a folder"),
        (["--ed-model", "not-a-checkpoint"], "--ed-model 'not-a-checkpoint' has no config.json"),
        (["--out", "results.txt"], "--out 'results.txt' is a file"),
        (["--out", "results.txt/eval"], "--out 'results.txt/eval' cannot be created: 'results.txt' is not"),
        (["--source", "ucb"], "--source ucb cannot learn hf_ad/DarkRoom-v0: bandit sources need one-pull"),
    ):
        assert main([*argv, *extra]) == 2, extra
        error = capsys.readouterr().err
        assert error.startswith(f"hf-ad evaluate: error: {expected}") and error.count("\n") == 1, error
    assert not (tmp_path / "eval").exists()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / constants.MODEL_CONFIG).write_text("{")
    with pytest.raises(ValueError, match="--ed-model 'broken': cannot load its config"):
        evaluate(EvaluateConfig(model=[model], ed_model=["broken"], out="x"))


def test_a_task_sample_is_fixed_spread_over_the_split_and_in_its_order():
    class Config:
        test_tasks = [[x, y] for x in range(20) for y in range(20)]  # sorted, like a split

    everything = held_out_tasks("ckpt", Config)
    assert everything == [tuple(task) for task in Config.test_tasks]
    assert held_out_tasks("ckpt", Config, 1000) == everything
    sample = held_out_tasks("ckpt", Config, 40)
    assert sample == held_out_tasks("ckpt", Config, 40)  # the same N plays the same tasks
    assert len(set(sample)) == 40 and set(sample) <= set(everything)
    assert sample == sorted(sample)
    assert sample != everything[:40]  # not the split's first corner
    assert max(x for x, _ in sample) >= 15  # spread over the whole split
    Config.test_tasks = []
    with pytest.raises(ValueError, match="no held-out tasks"):
        held_out_tasks("ckpt", Config)


def test_normalise_scores_random_0_and_the_reference_1():
    random, reference = 0.5, 0.6
    runs = np.array([[0.5, 0.5], [0.6, 0.6], [0.7, 0.5]])  # (runs, episodes): random, reference, reference
    scores = normalise(runs, random, reference)
    assert scores["n"] == 3 and scores["reward"] == pytest.approx(0.5666667)
    assert scores["mean"] == pytest.approx(2 / 3) and scores["std"] == pytest.approx(np.std([0.0, 1.0, 1.0]))
    assert normalise(np.full((2, 4), reference), random, reference)["mean"] == pytest.approx(1.0)


def test_config_validation():
    recipe = EvaluateConfig(model=["m"], out="x").with_recipe(EvaluationRecipe())
    assert (recipe.seeds, recipe.episodes) == (20, 1000)  # the paper's evaluation seeds and episodes
    with pytest.raises(ValueError, match="at least one"):
        EvaluateConfig(model=[], out="x")
    with pytest.raises(ValueError, match="episodes"):
        EvaluateConfig(model=["m"], out="x", episodes=0)
    with pytest.raises(ValueError, match="source must be one of"):
        EvaluateConfig(model=["m"], out="x", source="sarsa")


def test_source_recorded_with_the_training_data(tmp_path, monkeypatch):
    dataset = tmp_path / "histories"
    dataset.mkdir()
    generator_config = {"episodes": 300, "seed": 4, "learning_rate": 0.3}
    metadata = {"source": "q_learning", "generator_config": generator_config}
    (dataset / constants.HISTORIES_METADATA).write_text(json.dumps(metadata))
    model = tmp_path / "final"
    model.mkdir()
    (model / constants.TRAIN_CONFIG).write_text(json.dumps({"dataset": str(dataset)}))
    assert recorded_source(str(model)) == ("q_learning", generator_config)
    config = EvaluateConfig(model=[str(model)], out="x")
    assert resolve_source(config, constants.DARK_ROOM) == ("q_learning", generator_config)
    # Without a record: the source of the recipe the checkpoint was trained with, with its options.
    config = EvaluateConfig(model=[str(tmp_path / "elsewhere")], out="x")
    current = DARK_ROOM_RECIPE.dataset
    assert resolve_source(config, constants.DARK_ROOM) == (current.source, current.source_options)
    v1 = PRETRAINED_DIR / "ad-darkroom-v1"  # its train_config names its recipe; its data is not here:
    monkeypatch.chdir(tmp_path)  # (a relative path, which a later reproduction may fill with other data)
    assert resolve_source(EvaluateConfig(model=[str(v1)], out="x"), constants.DARK_ROOM) == ("q_learning", {})
    given = EvaluateConfig(model=[str(tmp_path / "elsewhere")], out="x", source="q_learning")
    assert resolve_source(given, constants.DARK_ROOM) == ("q_learning", {})  # another source: its defaults
    assert resolve_source(EvaluateConfig(model=["m"], out="x", source="none"), constants.DARK_ROOM) is None


def test_models_of_different_envs_are_refused_before_any_rollout(tmp_path, monkeypatch):
    ad = _save_model(tmp_path / "ad", 0)
    ed = save_tiny_checkpoint(tmp_path / "ed", TASKS, env_id=constants.DARK_ROOM_HARD, env_kwargs={"size": 9})
    monkeypatch.setattr("hf_ad.evaluation.evaluate_checkpoint", pytest.fail)  # no rollout may start
    with pytest.raises(ValueError, match=r"ed'.* trained on 'hf_ad/DarkRoomHard-v0'.*must play the same env"):
        evaluate(EvaluateConfig(model=[ad], ed_model=[ed], out=str(tmp_path / "out"), episodes=2, seeds=1))


def _save_rl2(path) -> str:
    torch.manual_seed(0)
    config = RL2Config(
        hidden_size=8, embedding_size=8, env_id=constants.DARK_ROOM, test_tasks=[list(TASKS[0])]
    )
    RL2Model(config).save_pretrained(path)
    (path / constants.MODEL_CARD).write_text(CARD)
    return str(path)


def test_rl2_joins_as_its_own_method_with_the_curve_it_has_alone(tmp_path):
    ad, rl2 = _save_model(tmp_path / "ad", 0), _save_rl2(tmp_path / "rl2")
    settings = {"episodes": 3, "seeds": 2, "source": "none", "video": False}
    both = evaluate(
        EvaluateConfig(model=[ad], rl2_model=[rl2], out=str(tmp_path / "both"), update_card=True, **settings)
    )
    alone = evaluate(EvaluateConfig(model=[rl2], out=str(tmp_path / "alone"), **settings))

    assert list(both["methods"]) == ["AD", "RL2"] and both["methods"]["RL2"]["label"] == "RL²"
    assert both["methods"]["RL2"]["mean"] == alone["methods"]["AD"]["mean"]  # the same streams, same seeds
    assert "--rl2-model" in both["command"]
    card = ModelCard.load(tmp_path / "rl2" / constants.MODEL_CARD)
    assert "| RL², this checkpoint (n=2) |" in card.text and "| AD (n=2) |" in card.text
    assert {r.metric_name for r in card.data.eval_results} >= {"Mean return, episodes 1-3 (RL²)"}


def test_an_rl2_flag_takes_rl2_checkpoints_only(tmp_path, monkeypatch):
    ad = _save_model(tmp_path / "ad", 0)
    monkeypatch.setattr("hf_ad.evaluation.evaluate_checkpoint", pytest.fail)  # no rollout may start
    with pytest.raises(
        ValueError,
        match=r"--rl2-model '.*ad' is not RL² \(model type 'algorithm_distillation'\): pass a folder",
    ):
        evaluate(EvaluateConfig(model=[ad], rl2_model=[ad], out=str(tmp_path / "out"), episodes=2, seeds=1))


def _launched_evaluation(config: EvaluateConfig) -> None:
    """Runs in each process `debug_launcher` forks (accelerate's state forgotten, as in a new process)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    evaluate(config)


def test_two_processes_give_the_single_process_results(tmp_path):
    """6 streams (2 tasks x 3 seeds) split 3 + 3 across a seed's tasks, the source's 3 seeds 2 + 1."""
    from accelerate import debug_launcher

    model = _save_model(tmp_path / "ad", 0)
    config = dict(model=[model], episodes=12, seeds=3, source="q_learning", video=False)
    evaluate(EvaluateConfig(out=str(tmp_path / "one"), **config))
    debug_launcher(_launched_evaluation, args=(EvaluateConfig(out=str(tmp_path / "two"), **config),))
    alone, together = (
        json.loads((tmp_path / out / constants.RESULTS_JSON).read_text()) for out in ("one", "two")
    )
    assert together.pop("command") == alone.pop("command").replace("/one", "/two")
    assert together == alone
    assert together["methods"]["AD"]["std"] != [0.0] * 12  # the seeds differ: sampling was exercised


class Stopped(Exception):
    """An evaluation stopped from outside (as by Ctrl-C or a killed job)."""


def test_an_interrupted_evaluation_resumes_where_it_stopped_with_the_same_results(tmp_path, monkeypatch):
    """One piece per seed: stopped in the second of three, a rerun plays the other two and gives the numbers
    of an uninterrupted run; a rerun with other settings starts afresh."""
    from hf_ad.rollout import InContextRLPipeline

    monkeypatch.setattr("hf_ad.evaluation_pieces.PIECE_STREAMS", 1)
    model = _save_model(tmp_path / "ad", 0)
    config = dict(model=[model], episodes=4, seeds=3, source="q_learning", video=False)
    whole = evaluate(EvaluateConfig(out=str(tmp_path / "whole"), **config))
    play, played, stop_at = InContextRLPipeline.__call__, [], [1]  # stop at the second call

    def stopping(pipe, *args, **kwargs):
        if len(played) in stop_at:
            raise Stopped
        played.append(kwargs["first_stream"])
        return play(pipe, *args, **kwargs)

    monkeypatch.setattr(InContextRLPipeline, "__call__", stopping)
    out = tmp_path / "resumed"
    with pytest.raises(Stopped):
        evaluate(EvaluateConfig(out=str(out), **config))
    assert sorted(path.name for path in (out / constants.STAGING_DIR).glob("*.npy")) == ["AD-0-0.npy"]
    lines, played[:], stop_at[:] = [], [], []
    resumed = evaluate(EvaluateConfig(out=str(out), **config), log=lines.append)
    assert played == [2, 4]  # the first streams of seeds 1 and 2 (2 tasks a seed)
    assert resumed["methods"] == whole["methods"] and "(pieces done: 1)" in lines[0]
    assert not (out / constants.STAGING_DIR).exists()
    played[:], stop_at[:] = [], [1]
    with pytest.raises(Stopped):
        evaluate(EvaluateConfig(out=str(out), **config))
    lines, played[:], stop_at[:] = [], [], []
    evaluate(EvaluateConfig(out=str(out), **{**config, "episodes": 3}), log=lines.append)
    assert played == [0, 2, 4] and "discarded the unfinished evaluation" in lines[0]
