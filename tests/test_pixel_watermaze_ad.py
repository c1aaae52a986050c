"""AD from pixels end to end (issue 15): Pixel Watermaze histories of images (the source learning on the
privileged pose), a model with the image encoder trained a few steps on them, evaluated against the
expert-trained ED, the source from scratch and the oracle, through the command line."""

from __future__ import annotations

import dataclasses
import json

import av
import numpy as np
import pytest

from hf_ad import constants
from hf_ad.cli import main
from hf_ad.data.histories import load_histories
from hf_ad.envs import optimal_return
from hf_ad.recipes import PIXEL_WATERMAZE_RECIPE, RECIPES, EvaluationRecipe, TrainingRecipe

TINY_TRAINING = TrainingRecipe(
    max_steps=2,
    batch_size=2,
    context=100,
    sliding_window=50,
    max_context=100,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
)
TINY_EVALUATION = EvaluationRecipe(episodes=2, seeds=2, num_tasks=2)


@pytest.fixture
def tiny_pixel_recipe(monkeypatch):
    recipe = dataclasses.replace(PIXEL_WATERMAZE_RECIPE, training=TINY_TRAINING, evaluation=TINY_EVALUATION)
    monkeypatch.setitem(RECIPES, constants.PIXEL_WATERMAZE, recipe)
    return recipe


def generate(out, source: str) -> list[str]:
    return [
        "generate",
        "--env",
        constants.PIXEL_WATERMAZE,
        "--source",
        source,
        "--out",
        str(out),
        "--histories-per-task",
        "1",
        "--episodes",
        "4",
        "--keep-every",
        "2",
    ]


def train(dataset, run) -> list[str]:
    return ["train", "--dataset", str(dataset), "--output-dir", str(run), "--report-to", "none"]


def test_histories_of_pixels_train_and_evaluate_ad_and_ed(tmp_path, tiny_pixel_recipe):
    assert main(generate(tmp_path / "histories", "q_learning")) == 0
    assert main(generate(tmp_path / "expert", "expert")) == 0

    dataset, metadata = load_histories(str(tmp_path / "histories"))
    assert metadata["source"] == "q_learning" and len(dataset) == 65 * 2 * 50  # every 2nd of 4 episodes
    frames = np.asarray(dataset[:50][constants.OBSERVATION], dtype=np.uint8)
    assert frames.shape == (50, 28, 28, 3)  # what AD sees: the first-person views, stored as uint8
    expert, _ = load_histories(str(tmp_path / "expert"))
    expert_returns = np.add.reduceat(np.asarray(expert[constants.REWARD]), np.arange(0, len(expert), 50))
    goals = np.asarray(expert[constants.TASK])[::50]
    optimal = [optimal_return(constants.PIXEL_WATERMAZE, tuple(goal)) for goal in goals]
    np.testing.assert_array_equal(expert_returns, optimal)  # the expert is the oracle, every episode

    assert main(train(tmp_path / "histories", tmp_path / "ad")) == 0
    assert main(train(tmp_path / "expert", tmp_path / "ed")) == 0
    config = json.loads((tmp_path / "ad" / constants.FINAL_DIR / constants.MODEL_CONFIG).read_text())
    assert (config["observation_type"], config["observation_shape"]) == ("image", [28, 28, 3])
    assert config["num_actions"] == 3 and config["env_id"] == constants.PIXEL_WATERMAZE

    ad, ed = (str(tmp_path / name / constants.FINAL_DIR) for name in ("ad", "ed"))
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", ad, "--ed-model", ed, "--out", str(out)]) == 0
    results = json.loads((out / constants.RESULTS_JSON).read_text())
    assert (results["episodes"], results["seeds"], len(results["tasks"])) == (2, 2, 2)
    assert set(results["methods"]) == {"AD", "ED", "source"}  # the source learns from scratch on the pose
    tasks = [tuple(task) for task in results["tasks"]]
    assert results["oracle"]["mean"] == pytest.approx(
        np.mean([optimal_return(constants.PIXEL_WATERMAZE, task) for task in tasks])
    )
    # The replay video: AD's view next to the map, episode 1 and episode 2 side by side (tests/test_video.py
    # checks the panels' content).
    with av.open(str(out / constants.REPLAY_MP4)) as container:
        sizes = {(frame.height, frame.width) for frame in container.decode(video=0)}
    assert sizes == {(420, 1416)}  # each panel: the 168-pixel view and the 176-pixel map, scaled x2
