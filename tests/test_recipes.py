"""The recipes: `hf-ad train` / `hf-ad evaluate` with no other flags take the env's recipe, and the Dark
Room recipe is exactly the shipped release."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from hf_ad import ADConfig, constants
from hf_ad.cli import main
from hf_ad.data.generate import DEFAULTS, GenerateConfig, generate_histories
from hf_ad.recipes import (
    BANDIT_RECIPE,
    DARK_ROOM_HARD_RECIPE,
    DARK_ROOM_RECIPE,
    DARK_ROOM_V1_RECIPE,
    KEY_TO_DOOR_RECIPE,
    PAST_RECIPES,
    RECIPES,
    EvaluationRecipe,
    TrainingRecipe,
    recipe_for,
    recipe_of_run,
)
from hf_ad.sources.bandits import UCBConfig
from hf_ad.training import TrainConfig, model_field_names, resume_changes

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
TINY_TRAINING = TrainingRecipe(
    max_steps=2,
    batch_size=4,
    learning_rate=1e-3,
    context=6,
    sliding_window=5,
    max_context=12,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    hidden_dropout=0.05,
    attention_dropout=0.0,
    token_mask_prob=0.2,
    label_smoothing=0.1,
)
TINY_EVALUATION = EvaluationRecipe(
    episodes=4, seeds=2, num_tasks=3, task_distributions=("odd", "uniform"), tasks_per_distribution=3
)


def test_every_env_has_a_recipe_and_generate_defaults_are_its_dataset():
    assert set(RECIPES) == set(constants.ENV_IDS)
    assert all(DEFAULTS[env_id] == recipe.dataset for env_id, recipe in RECIPES.items())
    with pytest.raises(ValueError, match="no hf_ad recipe for env 'nope/Env-v0'.*give every setting"):
        recipe_for("nope/Env-v0")


@pytest.mark.parametrize(
    "name, recipe",
    [
        ("ad-darkroom", DARK_ROOM_RECIPE),
        ("ad-darkroom-v1", DARK_ROOM_V1_RECIPE),
        ("ad-darkroom-hard", DARK_ROOM_HARD_RECIPE),
        ("ed-darkroom-hard", DARK_ROOM_HARD_RECIPE),
        ("ad-key-to-door", KEY_TO_DOOR_RECIPE),
        ("ed-key-to-door", KEY_TO_DOOR_RECIPE),
    ],
)
def test_dark_room_recipes_are_the_shipped_releases(name, recipe):
    """Every recipe value is what `pretrained/NAME` was trained with (scripts/reproduce.sh)."""
    folder = PRETRAINED_DIR / name
    recorded = json.loads((folder / constants.TRAIN_CONFIG).read_text())
    model = ADConfig.from_pretrained(folder).to_dict()  # a field newer than the checkpoint: its default
    state = json.loads((folder / constants.TRAINER_STATE).read_text())
    used = {**recorded, **{name: model[name] for name in model_field_names()}, "context": state["context"]}
    values = dataclasses.asdict(recipe.training)
    assert values == {name: used[name] for name in values}
    assert state["num_processes"] == recipe.num_processes
    # The release's own flags, recipe values left out, resolve to the same run settings.
    flags = {k: recorded[k] for k in ("dataset", "output_dir", "save_steps", "report_to", "resume")}
    resolved = TrainConfig(**flags).with_recipe(recipe.env_id, recipe.training).to_dict()
    assert {k: resolved[k] for k, v in recorded.items() if v is not None} == {
        k: v for k, v in recorded.items() if v is not None
    }


def test_a_run_recorded_before_the_recipes_resumes_with_them():
    """The first Dark Room release left the model and context to ADConfig (null); its recipe: the same."""
    recorded = json.loads((PRETRAINED_DIR / "ad-darkroom-v1" / constants.TRAIN_CONFIG).read_text())
    flags = {k: recorded[k] for k in ("dataset", "output_dir", "save_steps", "report_to", "resume")}
    v1 = DARK_ROOM_V1_RECIPE.training
    assert resume_changes(TrainConfig(**flags).with_recipe(constants.DARK_ROOM, v1), recorded) == {}
    with pytest.raises(ValueError, match="hidden_size: 64 -> 32"):
        resume_changes(TrainConfig(**flags, hidden_size=32).with_recipe(constants.DARK_ROOM, v1), recorded)


def test_each_shipped_dark_room_release_names_the_recipe_it_was_trained_with():
    for folder, expected in (
        ("ad-darkroom", (None, DARK_ROOM_RECIPE)),
        ("ad-darkroom-v1", ("DARK_ROOM_V1_RECIPE", DARK_ROOM_V1_RECIPE)),
    ):
        recorded = json.loads((PRETRAINED_DIR / folder / constants.TRAIN_CONFIG).read_text())
        assert recipe_of_run(constants.DARK_ROOM, recorded) == expected
    assert recipe_of_run(constants.DARK_ROOM, {}) == (None, DARK_ROOM_RECIPE)  # nothing recorded: current
    # A run that fits no recipe is told against the current one (the card lists what it changed).
    assert recipe_of_run(constants.DARK_ROOM, {"max_steps": 7}) == (None, DARK_ROOM_RECIPE)
    assert PAST_RECIPES[constants.DARK_ROOM]["DARK_ROOM_V1_RECIPE"].dataset.source == "q_learning"


def test_init_from_takes_only_the_optimisation_from_the_recipe():
    config = TrainConfig(dataset="d", output_dir="o", init_from="m").with_recipe(constants.BANDIT)
    assert (config.max_steps, config.batch_size) == (BANDIT_RECIPE.training.max_steps, 32)
    assert config.sliding_window is None and config.context is None and config.hidden_size is None


def test_given_flags_win_over_the_recipe():
    config = TrainConfig(dataset="d", output_dir="o", max_steps=7, sliding_window=9).with_recipe(
        constants.BANDIT
    )
    # A window given without a context: twice that window (resolve_context), not the recipe's context.
    assert (config.max_steps, config.sliding_window, config.context) == (7, 9, None)
    assert config.batch_size == BANDIT_RECIPE.training.batch_size
    config = TrainConfig(dataset="d", output_dir="o", hidden_size=8).with_recipe(constants.BANDIT)
    assert (config.hidden_size, config.context) == (8, BANDIT_RECIPE.training.context)


@pytest.fixture
def tiny_bandit_recipe(monkeypatch):
    recipe = dataclasses.replace(BANDIT_RECIPE, training=TINY_TRAINING, evaluation=TINY_EVALUATION)
    monkeypatch.setitem(RECIPES, constants.BANDIT, recipe)
    return recipe


def test_train_and_evaluate_without_flags_use_the_recipe(tmp_path, tiny_bandit_recipe):
    dataset = tmp_path / "histories"
    generate_histories(
        GenerateConfig(out=str(dataset), env=constants.BANDIT),
        UCBConfig(histories_per_task=1, episodes=8),
        progress=False,
    )
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(dataset), "--output-dir", str(run), "--report-to", "none"]) == 0

    recorded = json.loads((run / constants.TRAIN_CONFIG).read_text())
    model = json.loads((run / constants.FINAL_DIR / constants.MODEL_CONFIG).read_text())
    for name, value in dataclasses.asdict(TINY_TRAINING).items():
        assert recorded[name] == value, name
        if name in model_field_names():
            assert model[name] == value, name
    state = json.loads((run / constants.FINAL_DIR / constants.TRAINER_STATE).read_text())
    assert (state["step"], state["context"]) == (2, TINY_TRAINING.context)

    final, out = str(run / constants.FINAL_DIR), tmp_path / "eval"
    assert (
        main(["evaluate", "--model", final, "--ed-model", final, "--out", str(out), "--video", "false"]) == 0
    )
    results = json.loads((out / constants.RESULTS_JSON).read_text())
    assert (results["episodes"], results["seeds"], len(results["tasks"])) == (4, 2, 3)
    assert "--episodes 4 --seeds 2 --num-tasks 3" in results["command"]
    summary = results["normalised"]
    assert list(summary["distributions"]) == ["odd", "uniform"]
    for distribution, info in summary["distributions"].items():
        assert info["tasks"] == 3
        source = results["methods"]["source"]["normalised"][distribution]
        assert source["mean"] == pytest.approx(1.0) and source["n"] == 2  # the reference scores 1
        for method in ("AD", "ED"):
            scores = results["methods"][method]["normalised"][distribution]
            expected = (scores["reward"] - info["random"]) / (info["source"] - info["random"])
            assert scores["mean"] == pytest.approx(expected) and np.isfinite(scores["std"])
            assert results["per_checkpoint"][method][final]["normalised"][distribution]["n"] == 2


@pytest.mark.parametrize(
    "name, env_id",
    [
        ("darkroom", constants.DARK_ROOM),
        ("darkroom-hard", constants.DARK_ROOM_HARD),
        ("key-to-door", constants.DARK_KEY_TO_DOOR),
    ],
)
def test_shipped_histories_are_the_recipe_dataset(name, env_id):
    """`pretrained/NAME-histories` is what `hf-ad generate --env ENV_ID` builds with no other flags."""
    metadata = json.loads((PRETRAINED_DIR / f"{name}-histories" / "hf_ad_histories.json").read_text())
    dataset = recipe_for(env_id).dataset
    generated = metadata["generator_config"]
    assert (metadata["env_id"], metadata["source"]) == (env_id, dataset.source)
    assert (generated["histories_per_task"], generated["episodes"], generated["keep_every"]) == (
        dataset.histories_per_task,
        dataset.episodes,
        dataset.keep_every,
    )
    assert {key: generated[key] for key in dataset.source_options} == dataset.source_options
