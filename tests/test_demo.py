"""`hf-ad demo`: AD vs ED vs the source on held-out goals, the table, the paths, the PNG."""

import json
from pathlib import Path

import pytest
from conftest import save_tiny_checkpoint
from transformers.utils import logging as transformers_logging

from hf_ad import constants
from hf_ad import demo as demo_module
from hf_ad.cli import main
from hf_ad.demo import DemoConfig, returns_table, run_demo, shipped_checkpoint
from hf_ad.envs import optimal_return

TASKS = [(0, 0), (6, 2)]


def _tiny_checkpoint(path, seed: int) -> str:
    return save_tiny_checkpoint(path, TASKS, seed)


def test_demo_prints_every_method_draws_paths_and_writes_the_plot(tmp_path):
    ad, ed = _tiny_checkpoint(tmp_path / "ad", 0), _tiny_checkpoint(tmp_path / "ed", 1)
    out = tmp_path / "demo"
    text = run_demo(DemoConfig(model=ad, ed_model=ed, episodes=3, out=str(out)), log=lambda _: None)
    results = json.loads((out / constants.RESULTS_JSON).read_text())
    assert set(results["methods"]) == {"AD", "ED", "source"}
    assert results["tasks"] == [list(task) for task in TASKS]
    assert (out / constants.RESULTS_PNG).read_bytes().startswith(b"\x89PNG")
    assert returns_table(results) in text
    assert "episode 1: return" in text and "episode 3: return" in text
    assert text.count("#########") >= 4  # two rooms side by side, top and bottom walls
    oracle = sum(optimal_return(constants.DARK_ROOM, task) for task in TASKS) / len(TASKS)
    assert f"| {oracle:.2f} |" in text


def test_demo_cli_runs_without_ed_and_source(tmp_path, capsys):
    ad = _tiny_checkpoint(tmp_path / "ad", 0)
    argv = ["demo", "--model", ad, "--ed_model", "none", "--source", "none", "--episodes", "2"]
    assert main([*argv, "--out", str(tmp_path / "demo")]) == 0
    captured = capsys.readouterr()
    assert "| episode | AD | oracle |" in captured.out
    assert "Loading weights" not in captured.err
    assert transformers_logging.is_progress_bar_enabled()  # quiet inside the demo, not for the user after it


def test_bad_demo_options_are_named():
    with pytest.raises(ValueError, match="episodes must be >= 1, got 0"):
        DemoConfig(model="org/ad", ed_model="none", episodes=0)


def test_the_shipped_checkpoints_are_found_offline_first(tmp_path, monkeypatch):
    """The checkout's copy, else a wheel install's `share/hf_ad/pretrained/`, else the hub id."""
    checkout, installed = tmp_path / "checkout", tmp_path / "prefix" / "share" / "hf_ad"
    monkeypatch.setattr(demo_module, "shipped_roots", lambda: [checkout, installed])
    monkeypatch.chdir(tmp_path)
    assert shipped_checkpoint("ad-darkroom") == demo_module.PRETRAINED_REPO_IDS["ad-darkroom"]
    _tiny_checkpoint(installed / "pretrained" / "ad-darkroom", 0)
    assert shipped_checkpoint("ad-darkroom") == "prefix/share/hf_ad/pretrained/ad-darkroom"
    _tiny_checkpoint(checkout / "pretrained" / "ad-darkroom", 0)
    assert DemoConfig().model == "checkout/pretrained/ad-darkroom"
    assert DemoConfig().ed_model == demo_module.PRETRAINED_REPO_IDS["ed-darkroom"]


def test_the_checkouts_shipped_checkpoints_come_first(monkeypatch):
    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    assert (DemoConfig().model, DemoConfig().ed_model) == ("pretrained/ad-darkroom", "pretrained/ed-darkroom")
