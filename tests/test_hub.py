"""Card rendering and publishing (the hub is unreachable: HfApi is mocked at method level)."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi

from hf_ad import hub


@pytest.fixture
def template_root(tmp_path, monkeypatch):
    cards = tmp_path / "dataset_cards"
    cards.mkdir()
    template = "---\n{{ card_data }}\n---\n# {{ title }}\n{% for x in items %}- {{ x }}\n{% endfor %}"
    (cards / "tiny.md").write_text(template)
    monkeypatch.setattr(hub, "template_roots", lambda: [tmp_path / "missing", tmp_path])
    return tmp_path


def test_render_card_fills_template(template_root):
    text = hub.render_card("dataset_cards/tiny.md", card_data="license: mit", title="Hi", items=[1, 2])
    assert text == "---\nlicense: mit\n---\n# Hi\n- 1\n- 2\n"


def test_render_card_undefined_variable_raises(template_root):
    import jinja2

    with pytest.raises(jinja2.UndefinedError, match="title"):
        hub.render_card("dataset_cards/tiny.md", card_data="", items=[])


def test_render_card_unknown_template(template_root):
    with pytest.raises(ValueError, match="nope.md"):
        hub.render_card("dataset_cards/nope.md")


def test_shipped_templates_are_found():
    assert hub.find_template("dataset_cards/histories.md").is_file()


@pytest.fixture
def repo_folder(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# card\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000-of-00001.parquet").write_bytes(b"x")
    return tmp_path


def test_publish_folder_creates_repo_then_uploads(repo_folder, monkeypatch):
    calls = []

    class Commit:
        commit_url = "https://example/commit/1"

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return Commit()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = hub.publish_folder(repo_folder, "org/name", "dataset", private=True)
    assert url == "https://example/commit/1"
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert calls[1][2]["folder_path"] == repo_folder
    assert calls[1][2]["repo_type"] == "dataset"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repo_id": "org/name", "repo_type": "space"}, "repo_type"),
        ({"repo_id": "noslash", "repo_type": "model"}, "org/name"),
    ],
)
def test_publish_folder_rejects_bad_arguments(repo_folder, monkeypatch, kwargs, match):
    monkeypatch.setattr(HfApi, "create_repo", lambda *a, **k: pytest.fail("must not reach the hub"))
    with pytest.raises(ValueError, match=match):
        hub.publish_folder(repo_folder, **kwargs)


def test_publish_folder_needs_a_card(tmp_path, monkeypatch):
    monkeypatch.setattr(HfApi, "create_repo", lambda *a, **k: pytest.fail("must not reach the hub"))
    with pytest.raises(ValueError, match="README.md"):
        hub.publish_folder(tmp_path, "org/name", "dataset")


@pytest.fixture
def mocked_hub(monkeypatch):
    calls = []
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw))
    )

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return "https://example/commit/2"

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_cli_publish_dataset_validates_and_names_the_repo_in_the_card(tmp_path, mocked_hub):
    from hf_ad import cli, constants

    folder = tmp_path / "experts"
    assert cli.main(["generate", "--out", str(folder), "--source", "expert", "--episodes", "2",
                     "--histories-per-task", "1", "--keep-every", "1"]) == 0  # fmt: skip
    assert cli.main(["publish", "--dataset", str(folder), "--repo-id", "org/dark-experts"]) == 0
    assert [(c[0], c[1]) for c in mocked_hub] == [
        ("create_repo", "org/dark-experts"),
        ("upload_folder", "org/dark-experts"),
    ]
    assert mocked_hub[0][2]["repo_type"] == "dataset"
    assert 'load_dataset("org/dark-experts", split="train")' in (folder / constants.DATASET_CARD).read_text()

    (folder / constants.DATA_DIR / "train-00000-of-00001.parquet").unlink()
    with pytest.raises(ValueError, match="missing"):
        cli.main(["publish", "--dataset", str(folder), "--repo-id", "org/dark-experts"])
    assert len(mocked_hub) == 2  # nothing uploaded


def test_publish_needs_exactly_one_folder(mocked_hub):
    with pytest.raises(ValueError, match="exactly one of --dataset FOLDER"):
        hub.publish(hub.PublishConfig(repo_id="org/name"))
    assert mocked_hub == []
