"""Publishing (the hub is unreachable: HfApi is mocked at method level) and `hf-ad publish`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import save_tiny_checkpoint
from huggingface_hub import HfApi, ModelCard
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from hf_ad import ADModel, cli, constants, hub
from hf_ad.rl2_training import RL2TrainConfig, train_rl2
from hf_ad.training import TrainConfig

STATE = {"step": 1, "max_steps": 1, "wall_time_s": 1.0, "loss": 1.5, "num_processes": 1}
STATE |= {"transitions_seen": 20, "context": 20, "eval": None}


@pytest.fixture
def repo_folder(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# card\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000-of-00001.parquet").write_bytes(b"x")
    return tmp_path


@pytest.fixture
def mocked_hub(monkeypatch):
    """Records `create_repo` and `create_commit` calls (with the uploaded files' bytes); uploads nothing."""
    calls = []

    class Commit:
        commit_url = "https://example/commit/1"

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return type("RepoUrl", (), {"repo_id": repo_id})  # what transformers' `push_to_hub` reads

    def create_commit(self, repo_id, operations, **kwargs):
        uploaded = {}
        for op in operations:
            source = op.path_or_fileobj
            uploaded[op.path_in_repo] = source if isinstance(source, bytes) else Path(source).read_bytes()
        calls.append(("create_commit", repo_id, {**kwargs, "files": uploaded}))
        return Commit()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return calls


def test_publish_folder_uploads_the_card_and_the_listed_files_only(repo_folder, mocked_hub):
    (repo_folder / ".env").write_text("HF_TOKEN=secret\n")
    files = ["data/train-00000-of-00001.parquet"]
    url = hub.publish_folder(repo_folder, "org/name", "dataset", files, "# new card\n", private=True)
    assert url == "https://example/commit/1"
    assert [c[0] for c in mocked_hub] == ["create_repo", "create_commit"]
    assert mocked_hub[0][2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    uploaded = mocked_hub[1][2]["files"]
    assert uploaded == {"README.md": b"# new card\n", "data/train-00000-of-00001.parquet": b"x"}
    assert (repo_folder / "README.md").read_text() == "---\nlicense: mit\n---\n# card\n"  # local card kept


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repo_id": "org/name", "repo_type": "space"}, "repo_type"),
        ({"repo_id": "a/b/c", "repo_type": "model"}, "not a hub repo id"),
        ({"repo_id": "/home/me/runs/x", "repo_type": "model"}, "not a hub repo id"),
        ({"repo_id": "org/name", "repo_type": "model", "files": ["missing.bin"]}, "'missing.bin' is missing"),
        ({"repo_id": "org/name", "repo_type": "model", "files": ["../outside"]}, "outside"),
    ],
)
def test_publish_folder_rejects_bad_arguments(repo_folder, mocked_hub, kwargs, match):
    (repo_folder.parent / "outside").write_text("x")
    kwargs = {"files": [], "card": "# card\n", **kwargs}
    with pytest.raises(ValueError, match=match):
        hub.publish_folder(repo_folder, **kwargs)
    assert mocked_hub == []  # checked before the hub is contacted


def test_a_bare_repo_name_means_the_users_namespace(repo_folder, mocked_hub):
    hub.publish_folder(repo_folder, "name", "model", [], "# card\n")
    assert [(c[0], c[1]) for c in mocked_hub] == [("create_repo", "name"), ("create_commit", "name")]


def _offline(*args, **kwargs):
    raise httpx.ConnectError("[Errno 111] Connection refused")


def _unauthorized(*args, **kwargs):
    request = httpx.Request("POST", "https://huggingface.co/api/repos/create")
    response = httpx.Response(401, request=request)
    raise HfHubHTTPError("401 Client Error: Unauthorized for url\nInvalid credentials", response=response)


@pytest.mark.parametrize(("failure", "fix"), [(_offline, "network"), (_unauthorized, "hf auth login")])
def test_hub_failures_become_one_clear_error(repo_folder, monkeypatch, failure, fix):
    monkeypatch.setattr(HfApi, "create_repo", failure)
    with pytest.raises(hub.HubError, match=fix) as error:
        hub.publish_folder(repo_folder, "org/name", "dataset", [], "# card\n")
    assert "\n" not in str(error.value) and "Nothing was uploaded" in str(error.value)


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("histories") / "experts"
    assert cli.main(["generate", "--out", str(folder), "--source", "expert", "--episodes", "2",
                     "--histories-per-task", "1", "--keep-every", "1"]) == 0  # fmt: skip
    return folder


def _snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_cli_publish_dataset_uploads_its_files_and_leaves_the_folder_alone(dataset_folder, mocked_hub):
    (dataset_folder / ".env").write_text("HF_TOKEN=secret\n")
    before = _snapshot(dataset_folder)
    assert cli.main(["publish", "--dataset", str(dataset_folder), "--repo-id", "org/dark-experts"]) == 0
    assert _snapshot(dataset_folder) == before  # publishing never rewrites the local folder
    (dataset_folder / ".env").unlink()
    assert [(c[0], c[1], c[2]["repo_type"]) for c in mocked_hub] == [
        ("create_repo", "org/dark-experts", "dataset"),
        ("create_commit", "org/dark-experts", "dataset"),
    ]
    uploaded = mocked_hub[1][2]["files"]
    metadata = json.loads(before[constants.HISTORIES_METADATA])
    shards = {shard["file"] for shard in metadata["shards"]}
    assert set(uploaded) == {"README.md", constants.HISTORIES_METADATA, constants.LEARNING_CURVE_PNG} | shards
    card = uploaded["README.md"].decode()
    assert 'load_dataset("org/dark-experts", split="train")' in card
    assert str(dataset_folder.parent) not in card  # no absolute local path


def test_cli_publish_validates_the_folder_before_the_hub(dataset_folder, tmp_path, mocked_hub, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in _snapshot(dataset_folder).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    (copy / constants.DATA_DIR / "train-00000-of-00001.parquet").unlink()
    assert cli.main(["publish", "--dataset", str(copy), "--repo-id", "org/dark-experts"]) == 2
    assert "hf-ad publish: error: shard 'data/train-00000-of-00001.parquet'" in capsys.readouterr().err
    assert mocked_hub == []  # nothing uploaded


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repo-id", "org/name"], "exactly one of --dataset FOLDER or --model FOLDER"),
        (["--repo-id", "org/name", "--dataset", "x", "--model", "y"], "got ['--dataset', '--model']"),
        (["--repo-id", "bad/repo/id", "--dataset", "DATASET"], "'bad/repo/id' is not a hub repo id"),
        (["--repo-id", "org/name", "--model", "no/such/folder"], "--model 'no/such/folder' is not a folder"),
    ],
)
def test_cli_publish_user_errors_are_one_line(dataset_folder, mocked_hub, capsys, argv, message):
    before = _snapshot(dataset_folder)
    argv = [str(dataset_folder) if arg == "DATASET" else arg for arg in argv]
    assert cli.main(["publish", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-ad publish: error: ") and message in err and err.count("\n") == 1
    assert mocked_hub == [] and _snapshot(dataset_folder) == before


def test_cli_publish_offline_is_one_line(dataset_folder, monkeypatch, capsys):
    monkeypatch.setattr(HfApi, "create_repo", _offline)
    assert cli.main(["publish", "--dataset", str(dataset_folder), "--repo-id", "org/dark-experts"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("hf-ad publish: error: could not publish to 'org/dark-experts'") and "network" in err
    )
    assert err.count("\n") == 1 and "Traceback" not in err


def _final_folder(folder, output_dir):
    """A `final/` folder as `hf-ad train` writes it, with a tiny random model and an absolute run path."""
    save_tiny_checkpoint(folder, [(2, 7)])
    train_config = (
        TrainConfig(dataset="org/dark-histories", output_dir=str(output_dir)).with_dataset_id().to_dict()
    )
    (folder / constants.TRAIN_CONFIG).write_text(json.dumps(train_config))
    (folder / constants.TRAINER_STATE).write_text(json.dumps(STATE))
    (folder / "returns.png").write_bytes(b"\x89PNG")
    (folder / constants.REPLAY_MP4).write_bytes(b"\x00\x00\x00\x20ftypisom")
    (folder / "notes.txt").write_text("not for the hub")
    return folder


def test_cli_publish_model_uploads_its_files_with_a_card_for_the_repo(tmp_path, mocked_hub):
    final = _final_folder(tmp_path / "ad-tiny" / "final", tmp_path / "ad-tiny")
    before = _snapshot(final)
    assert cli.main(["publish", "--model", str(final), "--repo-id", "org/ad-tiny"]) == 0
    assert _snapshot(final) == before
    uploaded = mocked_hub[1][2]["files"]
    assert set(uploaded) == {
        "README.md", "config.json", "model.safetensors", *constants.REMOTE_CODE,
        constants.TRAIN_CONFIG, constants.TRAINER_STATE, "returns.png", constants.REPLAY_MP4,
    }  # fmt: skip
    card = uploaded["README.md"].decode()
    assert 'from_pretrained("org/ad-tiny")' in card and "- org/dark-histories" in card
    # The run's record goes up without the machine's absolute paths; the local file keeps them.
    assert str(tmp_path) not in uploaded[constants.TRAIN_CONFIG].decode()
    assert json.loads(uploaded[constants.TRAIN_CONFIG])["output_dir"] == "ad-tiny"
    assert json.loads((final / constants.TRAIN_CONFIG).read_text())["output_dir"] == str(tmp_path / "ad-tiny")


def test_cli_publish_an_rl2_model_uploads_its_code_and_its_own_card_with_the_evaluation(tmp_path, mocked_hub):
    settings = {"env_kwargs": '{"size": 3}', "num_envs": 2, "episodes_per_trial": 1, "rollout_steps": 20}
    settings |= {"num_minibatches": 1, "hidden_size": 8, "embedding_size": 8, "progress": False}
    final = train_rl2(RL2TrainConfig(output_dir=str(tmp_path / "rl2-tiny"), total_trials=1, **settings))
    argv = ["--model", str(final), "--out", str(tmp_path / "eval"), "--episodes", "2", "--seeds", "1"]
    assert cli.main(["evaluate", *argv, "--source", "none", "--video", "false", "--update-card"]) == 0
    assert cli.main(["publish", "--model", str(final), "--repo-id", "org/rl2-tiny"]) == 0
    uploaded = mocked_hub[1][2]["files"]
    assert {*constants.RL2_CODE, "configuration_ad.py", "model.safetensors", constants.TRAINER_STATE} <= set(
        uploaded
    )
    card = ModelCard(uploaded["README.md"].decode())
    assert "An [RL²]" in card.text and 'from_pretrained("org/rl2-tiny")' in card.text
    assert "RL², this checkpoint" in card.text and card.data.eval_results  # what evaluate measured stays


def test_cli_publish_model_needs_a_final_folder(tmp_path, mocked_hub, capsys):
    final = _final_folder(tmp_path / "final", tmp_path)
    (final / "model.safetensors").unlink()
    assert cli.main(["publish", "--model", str(final), "--repo-id", "org/ad-tiny"]) == 2
    assert "missing ['model.safetensors']" in capsys.readouterr().err
    assert mocked_hub == []


# --- publish flags: --revision, --commit-message, --create-pr, --dry-run --------------------------------


@pytest.fixture
def mocked_hub_with_branches(mocked_hub, monkeypatch):
    """`mocked_hub` that also records `create_branch` and answers pull requests with their URL."""

    def create_branch(self, repo_id, **kwargs):
        mocked_hub.append(("create_branch", repo_id, kwargs))

    create_commit = HfApi.create_commit

    def create_commit_or_pr(self, repo_id, operations, **kwargs):
        commit = create_commit(self, repo_id, operations, **kwargs)
        commit.pr_url = "https://example/pr/1" if kwargs.get("create_pr") else None
        return commit

    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "create_commit", create_commit_or_pr)
    return mocked_hub


def test_cli_publish_to_a_branch_as_a_pull_request(dataset_folder, mocked_hub_with_branches, capsys):
    argv = ["publish", "--dataset", str(dataset_folder), "--repo-id", "org/dark-experts"]
    argv += ["--revision", "v2", "--commit-message", "Histories v2", "--create-pr"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == "https://example/pr/1\n"
    calls = {name: (repo_id, kwargs) for name, repo_id, kwargs in mocked_hub_with_branches}
    assert calls["create_branch"] == (
        "org/dark-experts",
        {"branch": "v2", "repo_type": "dataset", "exist_ok": True},
    )
    commit = calls["create_commit"][1]
    assert (commit["revision"], commit["create_pr"], commit["commit_message"]) == ("v2", True, "Histories v2")


def test_cli_publish_dry_run_lists_exactly_what_publish_uploads(tmp_path, mocked_hub, capsys):
    final = _final_folder(tmp_path / "ad-tiny" / "final", tmp_path / "ad-tiny")
    argv = ["publish", "--model", str(final), "--repo-id", "ad-tiny"]
    assert cli.main([*argv, "--dry-run"]) == 0
    assert mocked_hub == []  # nothing uploaded, the hub not even contacted
    header, *rows, total = capsys.readouterr().out.splitlines()
    assert "model repo 'ad-tiny' (in your namespace)" in header and "rendered for 'ad-tiny'" in header
    listed = {row.split()[0]: int(row.split()[1].replace(",", "")) for row in rows}
    assert cli.main(argv) == 0
    uploaded = mocked_hub[1][2]["files"]
    assert listed == {name: len(data) for name, data in uploaded.items()}
    assert total == f"  total {sum(listed.values()):,} bytes. Nothing was uploaded."


def test_cli_publish_dry_run_checks_as_publish_does(tmp_path, mocked_hub, capsys):
    final = _final_folder(tmp_path / "final", tmp_path)
    (final / "model.safetensors").unlink()
    assert cli.main(["publish", "--model", str(final), "--repo-id", "org/ad-tiny", "--dry-run"]) == 2
    assert "missing ['model.safetensors']" in capsys.readouterr().err


# --- --push-to-hub: generate, train and evaluate publish when the run ends -------------------------------

TINY_TRAIN = ["--max-steps", "1", "--batch-size", "2", "--save-steps", "0", "--report-to", "none"]
TINY_TRAIN += ["--hidden-size", "16", "--num-hidden-layers", "1", "--num-attention-heads", "2"]
TINY_TRAIN += ["--intermediate-size", "32", "--sliding-window", "4"]


def test_generate_push_to_hub_publishes_the_dataset(tmp_path, mocked_hub, capsys):
    folder = tmp_path / "experts"
    argv = ["generate", "--out", str(folder), "--source", "expert", "--episodes", "1"]
    argv += [
        "--histories-per-task",
        "1",
        "--push-to-hub",
        "--hub-dataset-id",
        "org/experts",
        "--hub-private-repo",
    ]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.endswith("https://example/commit/1\n")
    assert mocked_hub[0] == (
        "create_repo",
        "org/experts",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
    )
    uploaded = mocked_hub[1][2]["files"]
    assert (
        constants.HISTORIES_METADATA in uploaded
        and 'load_dataset("org/experts"' in uploaded["README.md"].decode()
    )


def test_train_push_to_hub_publishes_final_as_publish_does(dataset_folder, tmp_path, mocked_hub, monkeypatch):
    run = tmp_path / "ad-tiny"
    argv = ["train", "--dataset", str(dataset_folder), "--output-dir", str(run), *TINY_TRAIN]
    assert cli.main([*argv, "--push-to-hub", "--hub-token", "hf_x"]) == 0
    assert [(c[0], c[1]) for c in mocked_hub] == [("create_repo", "ad-tiny"), ("create_commit", "ad-tiny")]
    pushed = mocked_hub[1][2]  # default repo: the run folder's name in the user's namespace
    assert pushed["commit_message"].startswith("End of training")
    assert "hf_x" not in (run / constants.TRAIN_CONFIG).read_text()  # the token is never written

    mocked_hub.clear()
    assert cli.main(["publish", "--model", str(run / constants.FINAL_DIR), "--repo-id", "ad-tiny"]) == 0
    assert pushed["files"] == mocked_hub[1][2]["files"]  # the same files and card as `hf-ad publish`
    assert 'from_pretrained("ad-tiny")' in pushed["files"]["README.md"].decode()

    mocked_hub.clear()
    monkeypatch.setattr(cli, "PartialState", lambda: type("Rank1", (), {"is_main_process": False}))
    assert cli.main([*argv, "--resume", "--push-to-hub"]) == 0
    assert mocked_hub == []  # only the main process pushes


def test_push_to_hub_checks_the_repo_id_before_the_run(dataset_folder, tmp_path, mocked_hub, capsys):
    run = tmp_path / "run"
    argv = ["train", "--dataset", str(dataset_folder), "--output-dir", str(run), *TINY_TRAIN]
    assert cli.main([*argv, "--push-to-hub", "--hub-model-id", "a/b/c"]) == 2
    assert "'a/b/c' is not a hub repo id" in capsys.readouterr().err and not run.exists()
    argv = ["evaluate", "--model", "org/ad", "--out", str(tmp_path / "eval"), "--push-to-hub"]
    assert cli.main(argv) == 2
    assert "--push-to-hub needs --hub-model-id" in capsys.readouterr().err and mocked_hub == []


def test_evaluate_push_to_hub_uploads_the_results_into_evaluation(tmp_path, mocked_hub):
    final = _final_folder(tmp_path / "ad-tiny" / "final", tmp_path / "ad-tiny")
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(final), "--out", str(out), "--source", "none", "--episodes", "2"]
    argv += ["--seeds", "1", "--num-tasks", "1", "--push-to-hub", "--hub-model-id", "org/ad-tiny"]
    assert cli.main(argv) == 0
    assert [(c[0], c[1], c[2]["repo_type"]) for c in mocked_hub] == [
        ("create_repo", "org/ad-tiny", "model"),
        ("create_commit", "org/ad-tiny", "model"),
    ]
    uploaded = mocked_hub[1][2]["files"]
    expected = {"evaluation/results.json", "evaluation/returns.png", "evaluation/replay.mp4"}
    assert set(uploaded) == expected  # the card is left alone
    results = json.loads(uploaded["evaluation/results.json"])
    local = json.loads((out / constants.RESULTS_JSON).read_text())
    assert str(tmp_path) not in json.dumps(results)  # the local paths of --model and --out stay home
    assert results["methods"]["AD"]["mean"] == local["methods"]["AD"]["mean"]


def test_an_unreachable_hub_is_one_line_through_the_real_client(repo_folder, monkeypatch):
    """No mock: huggingface_hub's own HTTP client (httpx2 in huggingface_hub 2.x) fails to connect."""
    monkeypatch.setattr(hf_constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(hub.HubError, match="network") as error:
        hub.publish_folder(repo_folder, "org/name", "dataset", [], "# card\n", token="hf_x")
    assert "\n" not in str(error.value) and "Nothing was uploaded" in str(error.value)


# --- ADModel keeps transformers' own save_pretrained / push_to_hub ----------------------------------------


def test_save_pretrained_writes_the_remote_code(tmp_path):
    save_tiny_checkpoint(tmp_path, [(2, 7)])
    assert {"config.json", "model.safetensors", *constants.MODEL_CODE} <= {p.name for p in tmp_path.iterdir()}
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_ad.ADConfig", "AutoModel": "modeling_ad.ADModel"}


def test_push_to_hub_uploads_the_model_with_its_remote_code(tmp_path, mocked_hub, monkeypatch):
    def no_card_yet(cls, repo_id, **kwargs):  # a new repo: transformers then writes its default card
        raise EntryNotFoundError(f"{repo_id} has no README.md")

    monkeypatch.setattr(ModelCard, "load", classmethod(no_card_yet))
    model = ADModel.from_pretrained(save_tiny_checkpoint(tmp_path, [(2, 7)]))
    model.push_to_hub("org/ad-tiny", private=True, commit_message="tiny")
    assert [(c[0], c[1]) for c in mocked_hub] == [
        ("create_repo", "org/ad-tiny"),
        ("create_commit", "org/ad-tiny"),
    ]
    assert mocked_hub[0][2]["private"] is True and mocked_hub[1][2]["commit_message"] == "tiny"
    uploaded = mocked_hub[1][2]["files"]
    assert {"config.json", "model.safetensors", *constants.MODEL_CODE} <= set(uploaded)
    for name in constants.MODEL_CODE:
        assert uploaded[name] == (tmp_path / name).read_bytes()
