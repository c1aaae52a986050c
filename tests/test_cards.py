"""Card rendering (templates, dataset and model cards) and what cards may name: no absolute local paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2
import pytest
from conftest import save_tiny_checkpoint
from huggingface_hub import ModelCard

from hf_ad import ADConfig, cards, constants
from hf_ad.rl2_training import render_model_card as render_rl2_card
from hf_ad.training import TrainConfig, run_command

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"
STATE = {"step": 1, "max_steps": 1, "wall_time_s": 1.0, "loss": 1.5, "num_processes": 1}
STATE |= {"transitions_seen": 20, "context": 20, "eval": None}


@pytest.fixture
def template_root(tmp_path, monkeypatch):
    folder = tmp_path / "dataset_cards"
    folder.mkdir()
    template = "---\n{{ card_data }}\n---\n# {{ title }}\n{% for x in items %}- {{ x }}\n{% endfor %}"
    (folder / "tiny.md").write_text(template)
    monkeypatch.setattr(cards, "template_roots", lambda: [tmp_path / "missing", tmp_path])
    return tmp_path


def test_render_card_fills_template(template_root):
    text = cards.render_card("dataset_cards/tiny.md", card_data="license: mit", title="Hi", items=[1, 2])
    assert text == "---\nlicense: mit\n---\n# Hi\n- 1\n- 2\n"


def test_render_card_undefined_variable_raises(template_root):
    with pytest.raises(jinja2.UndefinedError, match="title"):
        cards.render_card("dataset_cards/tiny.md", card_data="", items=[])


def test_render_card_unknown_template(template_root):
    with pytest.raises(ValueError, match="nope.md"):
        cards.render_card("dataset_cards/nope.md")


def test_shipped_templates_are_found():
    assert cards.find_template(cards.DATASET_CARD_TEMPLATE).is_file()
    assert cards.find_template(cards.MODEL_CARD_TEMPLATE).is_file()


def test_shipped_dataset_card_renders_unchanged():
    folder = PRETRAINED / "darkroom-histories"
    metadata = json.loads((folder / constants.HISTORIES_METADATA).read_text())
    card = cards.render_dataset_card(folder, metadata, repo_id="pretrained/darkroom-histories")
    assert card == (folder / constants.DATASET_CARD).read_text()


def test_shipped_model_card_renders_unchanged(tmp_path, monkeypatch):
    # The card names the training data by the path the run used; recreate it where the run had it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "reproduce").mkdir(parents=True)
    os.symlink(PRETRAINED / "darkroom-histories", tmp_path / "runs" / "reproduce" / "darkroom-histories")
    folder = PRETRAINED / "ad-darkroom"
    card = cards.render_model_card(folder, run_command(folder), repo_id="pretrained/ad-darkroom")
    assert card == (folder / constants.MODEL_CARD).read_text()


AD_FOLDERS = sorted(
    path.parent.name
    for path in PRETRAINED.glob("*/train_config.json")
    if json.loads((path.parent / constants.MODEL_CONFIG).read_text())["model_type"] == ADConfig.model_type
)  # the RL² baseline's card has its own template (`hf_ad.rl2_training`)


@pytest.mark.parametrize("name", AD_FOLDERS)
def test_every_shipped_model_card_re_renders_unchanged_where_its_data_is_not(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no training data here: the card keeps the command it showed
    folder = PRETRAINED / name
    card = cards.render_model_card(folder, run_command(folder), repo_id=f"pretrained/{name}")
    assert card == (folder / constants.MODEL_CARD).read_text()
    assert cards.DATASET_COMMAND_INTRO in card


def test_the_recipe_note_quotes_the_departures_and_names_what_a_run_changed():
    recipe = {"max_steps": 1200, "context": 160, "token_mask_prob": 0.0}
    same = cards.recipe_note(constants.DARK_ROOM, recipe | {"label_smoothing": None})
    assert same.startswith("Trained with hf_ad's recipe for `hf_ad/DarkRoom-v0` (`hf_ad/recipes.py`).")
    assert "instead of A3C" in same and "systematic search" in same
    changed = cards.recipe_note(constants.DARK_ROOM, recipe | {"max_steps": 100})
    assert "but for `max_steps` 100 (recipe: 1200)." in changed
    assert cards.recipe_note("SomeoneElses-v0", recipe) is None
    # A run of the first release's recipe is told against that one (hf_ad.recipes.recipe_of_run).
    first = cards.recipe_note(constants.DARK_ROOM, {"max_steps": 2400, "token_mask_prob": 0.3})
    expected = "Trained with hf_ad's earlier recipe `DARK_ROOM_V1_RECIPE` for `hf_ad/DarkRoom-v0`"
    assert first.startswith(expected)
    assert "batched tabular Q-learning" in first and " but for " not in first


@pytest.mark.parametrize(
    ("path", "shown"),
    [("runs/ad/final", "runs/ad/final"), ("org/name", "org/name"), ("/elsewhere/runs/ad", "ad")],
)
def test_portable_path(path, shown):
    assert cards.portable_path(path) == shown
    assert cards.portable_path(str(Path.cwd() / "runs" / "ad")) == "runs/ad"
    assert cards.portable_path("/elsewhere/final", fallback="<org>/ad") == "<org>/ad"


def test_portable_command():
    command = f"hf-ad evaluate --model /elsewhere/ad/final {Path.cwd() / 'runs/ed'} --out 'my results'"
    assert cards.portable_command(command) == "hf-ad evaluate --model final runs/ed --out 'my results'"


def test_model_card_names_no_absolute_path(tmp_path):
    """A run given absolute paths: the card shows a placeholder repo id and relative names only."""
    dataset = tmp_path / "histories"
    dataset.mkdir()
    final = tmp_path / "ad-tiny" / constants.FINAL_DIR
    save_tiny_checkpoint(final, [(2, 7)])
    train_config = TrainConfig(dataset=str(dataset), output_dir=str(final.parent)).to_dict()
    (final / constants.TRAIN_CONFIG).write_text(json.dumps(train_config))
    (final / constants.TRAINER_STATE).write_text(json.dumps(STATE))
    card = cards.write_model_card(final, run_command(final))
    assert str(tmp_path) not in card
    assert 'from_pretrained("<org>/ad-tiny")' in card and "learning histories of `histories`" in card
    assert '"output_dir": "ad-tiny"' in card and "--dataset histories --output-dir ad-tiny" in card
    assert (final / constants.MODEL_CARD).read_text() == card
    assert ModelCard(card).data.datasets is None  # a local dataset is no hub dataset id


def test_model_card_of_an_incomplete_folder(tmp_path):
    save_tiny_checkpoint(tmp_path, [(2, 7)])
    with pytest.raises(ValueError, match=r"missing \['train_config.json', 'trainer_state.json'\]"):
        cards.render_model_card(tmp_path, "hf-ad train")
    with pytest.raises(ValueError, match="is not a folder"):
        cards.render_model_card(tmp_path / "nope", "hf-ad train")


def _final_of(tmp_path, dataset: str, **train_config) -> Path:
    final = tmp_path / "ad-tiny" / constants.FINAL_DIR
    save_tiny_checkpoint(final, [(2, 7)])
    config = TrainConfig(dataset=dataset, output_dir=str(final.parent), **train_config).to_dict()
    (final / constants.TRAIN_CONFIG).write_text(json.dumps(config))
    (final / constants.TRAINER_STATE).write_text(json.dumps(STATE))
    return final


def test_a_moved_local_dataset_is_no_hub_dataset(tmp_path, monkeypatch):
    """The card is rendered where the run's local dataset is gone (another machine, a published copy)."""
    final = _final_of(tmp_path, str(tmp_path / "elsewhere" / "histories"))
    monkeypatch.chdir(tmp_path)
    card = cards.render_model_card(final, run_command(final), repo_id="org/ad-tiny")
    assert ModelCard(card).data.datasets is None and str(tmp_path) not in card


def test_the_card_names_the_dataset_recorded_at_train_time(tmp_path):
    final = _final_of(tmp_path, str(tmp_path / "histories"), hub_dataset_id="org/dark-histories")
    card = cards.render_model_card(final, run_command(final), repo_id="org/ad-tiny")
    assert ModelCard(card).data.datasets == ["org/dark-histories"]
    assert "[`org/dark-histories`](/datasets/org/dark-histories)" in card  # a link on the hub


def test_portable_data_rewrites_absolute_paths_only(tmp_path):
    record = {
        "dataset": str(tmp_path / "histories"),
        "command": f"hf-ad generate --out {tmp_path / 'histories'} --env hf_ad/DarkRoom-v0",
        "per_checkpoint": {str(tmp_path / "ad" / "final"): 1.5},
        "note": "a 'quoted phrase with / slashes",
        "relative": "runs/ad/final",
        "numbers": [1, 2.5, None],
    }
    portable = cards.portable_data(record)
    assert str(tmp_path) not in json.dumps(portable)
    assert portable["command"] == "hf-ad generate --out histories --env hf_ad/DarkRoom-v0"
    assert portable["per_checkpoint"] == {"final": 1.5}
    assert {key: portable[key] for key in ("note", "relative", "numbers")} == {
        key: record[key] for key in ("note", "relative", "numbers")
    }


def test_the_shipped_rl2_card_re_renders_unchanged_with_its_evaluation():
    folder = PRETRAINED / "rl2-darkroom"
    card = render_rl2_card(folder, repo_id="pretrained/rl2-darkroom")
    assert card == (folder / constants.MODEL_CARD).read_text()
    assert cards.has_evaluation(card)
