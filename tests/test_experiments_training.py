"""The experiments that train (`hf-ad experiment ablation-*`, `ood`): each end to end with a tiny budget."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hf_ad import cli, constants
from hf_ad.constants import DARK_ROOM
from hf_ad.envs import in_training_region, task_split
from hf_ad.experiments import EXPERIMENTS, TRAINING_EXPERIMENTS, ExperimentConfig, run_experiment
from hf_ad.experiments.ablation import FACTORS
from hf_ad.experiments.arms import EVALUATION_FILE, HISTORIES_DIR, selected_arms
from hf_ad.recipes import DARK_ROOM_V1_RECIPE

# 1 learner per goal, 90 source episodes (9 stored at keep_every 10: one 160-transition segment fits), 3
# optimizer steps of 4 windows, 2 goals x 2 seeds x 3 episodes of evaluation.
TINY = {
    "steps": 3,
    "batch_size": 4,
    "histories_per_task": 1,
    "source_episodes": 90,
    "seeds": 2,
    "episodes": 3,
    "num_tasks": 2,
}
TWO_ARMS = {
    "ablation-context": "0.5,4",
    "ablation-tasks": "5,65",
    "ablation-masking": "0,0.9",
    "ablation-subsampling": "3,10",
    "ablation-source": "q_learning,actor_critic",
}


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    """One work folder for every factor, so arms with the same data share one histories folder."""
    return tmp_path_factory.mktemp("work")


def tiny_config(out: Path, work_dir: Path, **overrides) -> ExperimentConfig:
    return ExperimentConfig(out=str(out), work_dir=str(work_dir), **{**TINY, **overrides})


@pytest.fixture(scope="module")
def ablations(tmp_path_factory, work_dir):
    root = tmp_path_factory.mktemp("ablations")
    return {
        name: run_experiment(name, tiny_config(root / name, work_dir, arms=TWO_ARMS[name]))
        for name in FACTORS
    }


def test_every_training_experiment_is_registered():
    assert set(TRAINING_EXPERIMENTS) == {*FACTORS, "ood"} and set(TRAINING_EXPERIMENTS) <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", sorted(FACTORS))
def test_each_ablation_trains_and_evaluates_its_arms(ablations, work_dir, name):
    results = ablations[name]
    out = Path(results["settings"]["out"])
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert all((out / png).stat().st_size > 1000 for png in ("returns.png", "paper.png"))
    assert results["command"].startswith(f"hf-ad experiment {name} ") and "--steps 3" in results["command"]
    assert results["budget"]["steps"] == 3 and results["budget"]["batch_size"] == 4
    values = TWO_ARMS[name].split(",")
    assert [method["value"] for method in results["methods"].values()] == values
    for method in results["methods"].values():
        assert method["n"] == 2 and len(method["mean"]) == 3
        state = json.loads((Path(method["model"]) / "trainer_state.json").read_text())
        assert state["step"] == 3
        assert method["fraction_of_oracle"] == pytest.approx(method["last_episodes_mean"] / results["oracle"])
    assert results["paper"]["claim"]


def test_arms_differ_in_their_factor_only(ablations):
    context = ablations["ablation-context"]["methods"].values()
    windows = [json.loads((Path(m["model"]) / "config.json").read_text())["sliding_window"] for m in context]
    assert windows == [10, 80]
    tasks = ablations["ablation-tasks"]["methods"].values()
    trained_on = [json.loads((Path(m["model"]) / "config.json").read_text())["train_tasks"] for m in tasks]
    assert [len(t) for t in trained_on] == [5, 65] and {tuple(t) for t in trained_on[0]} <= {
        tuple(t) for t in trained_on[1]
    }
    sources = [m["histories"] for m in ablations["ablation-source"]["methods"].values()]
    assert len(set(sources)) == 2
    masks = [m["histories"] for m in ablations["ablation-masking"]["methods"].values()]
    assert len(set(masks)) == 1  # same data: one cached histories folder
    assert ablations["ablation-context"]["paper"]["fraction_of_optimum"]["4"] == pytest.approx(0.92)


def test_a_rerun_reuses_every_arm(ablations, work_dir, tmp_path):
    name = "ablation-masking"
    first = ablations[name]
    models = [Path(m["model"]) / "model.safetensors" for m in first["methods"].values()]
    written = [path.stat().st_mtime_ns for path in models]
    again = run_experiment(name, tiny_config(first["settings"]["out"], work_dir, arms=TWO_ARMS[name]))
    assert again["methods"] == first["methods"]
    assert [path.stat().st_mtime_ns for path in models] == written
    for method in first["methods"].values():
        assert (Path(method["model"]).parent / EVALUATION_FILE).is_file()
    assert len(list((work_dir / HISTORIES_DIR).iterdir())) == 3  # recipe, subsampling, actor-critic


def test_an_arm_that_trains_the_recipe_is_trained_once_for_every_experiment(ablations):
    def model(name, label):
        return ablations[name]["methods"][label]["model"]

    recipe = model("ablation-context", "context 4 episodes (80 steps)")
    assert recipe == model("ablation-tasks", "65 training goals") == model("ablation-source", "q-learning")
    assert model("ablation-masking", "token mask 0") != recipe


def test_the_experiments_train_the_first_release_recipe_whatever_the_shipped_one(ablations):
    """The evidence measures AD distilled from Q-learning (`DARK_ROOM_V1_RECIPE`), not the shipped recipe."""
    method = ablations["ablation-context"]["methods"]["context 4 episodes (80 steps)"]
    recorded = json.loads((Path(method["model"]).parent / constants.TRAIN_CONFIG).read_text())
    v1 = DARK_ROOM_V1_RECIPE
    assert {k: recorded[k] for k in ("token_mask_prob", "sliding_window", "intermediate_size")} == {
        "token_mask_prob": v1.training.token_mask_prob,
        "sliding_window": v1.training.sliding_window,
        "intermediate_size": v1.training.intermediate_size,
    }
    metadata = json.loads((Path(method["histories"]) / constants.HISTORIES_METADATA).read_text())
    assert metadata["source"] == v1.dataset.source
    assert metadata["generator_config"]["keep_every"] == v1.dataset.keep_every


def results_of(config: ExperimentConfig) -> dict:
    return run_experiment("ablation-masking", config)


def test_an_interrupted_arm_resumes_from_its_checkpoint(work_dir, tmp_path):
    config = tiny_config(tmp_path / "out", work_dir, arms="0.3", steps=4)
    (run_dir,) = {Path(m["model"]).parent for m in results_of(config)["methods"].values()}
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["2", "3"]
    # As if stopped after step 2: no checkpoint 3, no final/, no evaluation. The rerun trains steps 3-4.
    shutil.rmtree(run_dir / "final")
    shutil.rmtree(run_dir / "checkpoints" / "3")
    (run_dir / EVALUATION_FILE).unlink()
    results = results_of(config)
    resumed = json.loads((run_dir / "final" / "trainer_state.json").read_text())
    assert resumed["step"] == 4 and resumed["transitions_seen"] == 4 * 4 * 160
    assert results["methods"]["token mask 0.3"]["n"] == 2


def test_ood_scores_in_region_and_out_of_region_goals(tmp_path, work_dir):
    results = run_experiment("ood", tiny_config(tmp_path / "ood", work_dir))
    train, _ = task_split(DARK_ROOM, kind="regions")
    assert sorted(map(tuple, results["train_tasks"])) == train
    inside, outside = results["groups"]["in-region"], results["groups"]["out-of-region"]
    assert all(in_training_region(DARK_ROOM, task) for task in inside["tasks"])
    assert not any(in_training_region(DARK_ROOM, task) for task in outside["tasks"])
    assert len(inside["tasks"]) == len(outside["tasks"]) == 2 and len(results["tasks"]) == 4
    for group in (inside, outside):
        assert set(group["methods"]) == {"AD", "Q-learning"} and group["methods"]["AD"]["n"] == 2
    assert set(results["methods"]) == {f"{m}, {g}" for m in ("AD", "Q-learning") for g in results["groups"]}
    assert (tmp_path / "ood" / "returns.png").stat().st_size > 1000
    metadata = json.loads((Path(results["histories"]) / "hf_ad_histories.json").read_text())
    assert metadata["task_split"]["kind"] == "regions" and "--task-split regions" in metadata["command"]


def test_bad_arms_and_budgets_are_named(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"ablation-masking has the arms \['0', '0.3', '0.9'\]"):
        selected_arms(FACTORS["ablation-masking"].arms, "0.5", "ablation-masking")
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        ExperimentConfig(steps=0)
    argv = [
        "experiment",
        "ablation-tasks",
        "--arms",
        "7",
        "--out",
        str(tmp_path),
        "--work-dir",
        str(tmp_path),
    ]
    assert cli.main(argv) == 2
    assert "ablation-tasks has the arms" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ablation-tasks trains its own models and does not read --model"):
        run_experiment("ablation-tasks", ExperimentConfig(model="pretrained/ad-darkroom"))
    with pytest.raises(ValueError, match="heuristic trains nothing and does not read --steps, --work-dir"):
        run_experiment("heuristic", ExperimentConfig(steps=5, work_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="--arms does not apply to ood"):
        run_experiment("ood", ExperimentConfig(out=str(tmp_path), work_dir=str(tmp_path), arms="1"))
