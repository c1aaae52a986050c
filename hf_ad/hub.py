"""Hub helpers shared by datasets and checkpoints: card rendering and folder-first publishing.

Everything hf_ad publishes is first written as a local folder that is exactly the repo the hub
would hold; `publish_folder` then only creates the repo and uploads that folder.

Card templates are Jinja2 Markdown files in the repo's `dataset_cards/` and `model_cards/` folders.
They are found next to the package in a source checkout or an editable install, and under
`<sys.prefix>/share/hf_ad/` in a wheel install (pyproject ships them as `data-files`).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hf_ad import constants

REPO_TYPES = ("dataset", "model")


def template_roots() -> list[Path]:
    """Folders searched for card templates, first match wins."""
    return [Path(__file__).resolve().parent.parent, Path(sys.prefix) / "share" / "hf_ad"]


def find_template(template_name: str) -> Path:
    """Path of a card template such as `"dataset_cards/histories.md"`.

    Raises:
        ValueError: no template root holds `template_name`.
    """
    roots = template_roots()
    for root in roots:
        path = root / template_name
        if path.is_file():
            return path
    raise ValueError(f"card template {template_name!r} not found under any of {[str(r) for r in roots]}")


def render_card(template_name: str, **values) -> str:
    """Render a card template with Jinja2.

    Templates follow huggingface_hub's convention (`DatasetCard.from_template`): the YAML header
    goes in as a string named `card_data` between the `---` lines. Undefined variables raise, so a
    template and its caller never drift apart silently.

    Args:
        template_name: path relative to a template root, e.g. `"dataset_cards/histories.md"`.
        **values: the template's variables.

    Returns:
        The rendered Markdown.
    """
    import jinja2

    path = find_template(template_name)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template(path.name).render(**values)


def publish_folder(
    folder: str | Path,
    repo_id: str,
    repo_type: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create `repo_id` on the hub if needed and upload `folder` to it as one commit.

    Args:
        folder: a local folder holding exactly the repo's files, with its `README.md` card.
        repo_id: `"org/name"`.
        repo_type: `"dataset"` or `"model"`.
        private: create the repo private (ignored if it exists).
        token: hub token; `None` uses the logged-in one.
        commit_message: defaults to `"Upload with hf_ad"`.

    Returns:
        The URL of the commit.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    if not folder.is_dir():
        raise ValueError(f"cannot publish {str(folder)!r}: not a folder")
    if not (folder / constants.DATASET_CARD).is_file():
        raise ValueError(f"cannot publish {str(folder)!r}: it has no {constants.DATASET_CARD} card")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type=repo_type,
        commit_message=commit_message or "Upload with hf_ad",
    )
    return str(getattr(commit, "commit_url", commit))


# `hf-ad publish --KIND FOLDER`: KIND -> (module, function(folder, repo_id, private, token) -> URL).
# Each kind validates its folder and refreshes its card (which names the repo) before uploading.
PUBLISHERS: dict[str, tuple[str, str]] = {
    "dataset": ("hf_ad.data.histories", "publish_histories"),
    "model": ("hf_ad.training", "publish_checkpoint"),
}


@dataclass
class PublishConfig:
    """`hf-ad publish`: upload one local folder (a histories dataset or a checkpoint) to the hub."""

    repo_id: str = field(metadata={"help": "Hub repo to create or update, 'org/name'."})
    dataset: str | None = field(
        default=None, metadata={"help": "A histories dataset folder written by `hf-ad generate`."}
    )
    model: str | None = field(
        default=None, metadata={"help": "A checkpoint folder written by `hf-ad train` (its `final/`)."}
    )
    private: bool = field(default=False, metadata={"help": "Create the repo private."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})

    def folders(self) -> dict[str, str]:
        """The folders given, by kind (a field named after each kind of `PUBLISHERS`)."""
        return {kind: getattr(self, kind) for kind in PUBLISHERS if getattr(self, kind, None)}


def publish(config: PublishConfig) -> str:
    """Publish the one folder `config` names with its kind's publisher; returns the commit URL."""
    folders = config.folders()
    if len(folders) != 1:
        flags = " or ".join(f"--{kind} FOLDER" for kind in PUBLISHERS)
        raise ValueError(f"give exactly one of {flags}, got {sorted(folders) or 'none'}")
    ((kind, folder),) = folders.items()
    module_name, function_name = PUBLISHERS[kind]
    publisher = getattr(importlib.import_module(module_name), function_name)
    return publisher(folder, config.repo_id, private=config.private, token=config.token)
