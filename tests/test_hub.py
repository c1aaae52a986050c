"""Publishing (the hub is unreachable: HfApi is mocked at method level) and `hf-ad publish`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import save_tiny_checkpoint
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from hf_ad import cli, constants, hub
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
    train_config = TrainConfig(dataset="org/dark-histories", output_dir=str(output_dir)).to_dict()
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
        "README.md", "config.json", "model.safetensors", "configuration_ad.py", "modeling_ad.py",
        constants.TRAIN_CONFIG, constants.TRAINER_STATE, "returns.png", constants.REPLAY_MP4,
    }  # fmt: skip
    card = uploaded["README.md"].decode()
    assert 'from_pretrained("org/ad-tiny")' in card and "- org/dark-histories" in card


def test_cli_publish_model_needs_a_final_folder(tmp_path, mocked_hub, capsys):
    final = _final_folder(tmp_path / "final", tmp_path)
    (final / "model.safetensors").unlink()
    assert cli.main(["publish", "--model", str(final), "--repo-id", "org/ad-tiny"]) == 2
    assert "missing ['model.safetensors']" in capsys.readouterr().err
    assert mocked_hub == []
