"""Folder-first publishing: a local folder that is exactly the repo the hub would hold goes up as one commit.

`publish_folder` knows folders only, not what is in them: the caller (`hf-ad publish`) names the files
to upload, an explicit allow-list, so a stray file such as `.env` never leaves the machine, and gives the
card to upload as text, so the local folder is never modified by publishing. Card rendering lives in
`hf_ad.cards`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
)
from huggingface_hub.utils import validate_repo_id

from hf_ad import constants

CARD_FILES = {"dataset": constants.DATASET_CARD, "model": constants.MODEL_CARD}  # by repo type
REPO_TYPES = tuple(CARD_FILES)
AUTH_STATUS_CODES = (401, 403)


def transport_errors() -> tuple[type[Exception], ...]:
    """The network errors of the HTTP client huggingface_hub talks through: `httpx` (huggingface_hub 1.x)
    or `httpx2` (2.x); each installed one counts."""
    errors = []
    for name in ("httpx", "httpx2"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except ImportError:
            continue
    return tuple(errors)


# What an unreachable hub or a refused request raises; each becomes one `HubError` line.
HUB_FAILURES = (HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled, *transport_errors())


class HubError(RuntimeError):
    """The hub could not be reached or refused the request; the message says what to do."""


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it is a valid hub repo id: `"org/name"`, or a bare `"name"` in the user's namespace.

    Raises:
        ValueError: `repo_id` is not a repo id (e.g. a local path).
    """
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(
            f"repo id {repo_id!r} is not a hub repo id ({error}); give 'org/name', or 'name' for your "
            "own namespace"
        ) from None
    return repo_id


def check_files(folder: Path, files: Sequence[str]) -> None:
    """Check that every path of `files` (relative to `folder`) is a regular file inside `folder`.

    Raises:
        ValueError: a file is missing, or points outside `folder` (an absolute path, `..`, a link).
    """
    root = folder.resolve()
    for name in files:
        path = (folder / name).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"cannot publish {name!r}: it lies outside {str(folder)!r}")
        if not path.is_file():
            raise ValueError(f"cannot publish {str(folder)!r}: {name!r} is missing")


def hub_failure_message(repo_id: str, error: Exception) -> str:
    """One line saying why the hub call for `repo_id` failed and what to do about it."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, LocalTokenNotFoundError) or status in AUTH_STATUS_CODES:
        fix = "log in with `hf auth login` or pass --token with write access to it"
    elif isinstance(error, HfHubHTTPError):
        fix = "check the repo id and your access to it, then retry"
    else:
        fix = "check your network connection (and HF_ENDPOINT / HF_HUB_OFFLINE), then retry"
    return f"could not publish to {repo_id!r}: {reason}; {fix}. Nothing was uploaded."


def check_upload(folder: str | Path, repo_id: str, repo_type: str, files: Sequence[str]) -> Path:
    """`folder` as a `Path` once everything a publish needs is checked: `repo_type`, `repo_id`, the folder and
    every file of `files` in it.

    Raises:
        ValueError: a bad `repo_type` or `repo_id`, no such folder, or a file missing from it.
    """
    folder = Path(folder)
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    check_repo_id(repo_id)
    if not folder.is_dir():
        raise ValueError(f"cannot publish {str(folder)!r}: not a folder")
    check_files(folder, files)
    return folder


def repo_path(name: str, path_in_repo: str = "") -> str:
    """Where the file `name` of the folder goes in the repo: under `path_in_repo` (a folder) if given."""
    return f"{path_in_repo.strip('/')}/{name}" if path_in_repo.strip("/") else name


def upload_listing(
    folder: str | Path,
    repo_id: str,
    repo_type: str,
    files: Sequence[str],
    card: str | None,
    path_in_repo: str = "",
    rewritten: Mapping[str, bytes] | None = None,
) -> list[tuple[str, int]]:
    """What `publish_folder` with these arguments would upload, checked the same way; contacts no hub.

    Returns:
        `(path in the repo, size in bytes)` of each upload: the card as `README.md` (if any), then `files`.

    Raises:
        ValueError: as `check_upload`.
    """
    folder = check_upload(folder, repo_id, repo_type, files)
    rewritten = rewritten or {}
    listing = [(CARD_FILES[repo_type], len(card.encode()))] if card is not None else []
    sizes = [len(rewritten[name]) if name in rewritten else (folder / name).stat().st_size for name in files]
    return listing + [(repo_path(name, path_in_repo), size) for name, size in zip(files, sizes, strict=True)]


def publish_folder(
    folder: str | Path,
    repo_id: str,
    repo_type: str,
    files: Sequence[str],
    card: str | None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    path_in_repo: str = "",
    rewritten: Mapping[str, bytes] | None = None,
) -> str:
    """Create `repo_id` on the hub if needed and upload `card` and `files` of `folder` as one commit.

    Everything is checked before the hub is contacted (`check_upload`; `upload_listing` shows the same
    commit without making it).

    Args:
        folder: a local folder holding the repo's files.
        repo_id: `"org/name"`, or `"name"` for the logged-in user's namespace.
        repo_type: `"dataset"` or `"model"`.
        files: the files to upload, relative to `folder` (nothing else in it goes up).
        card: the repo's `README.md` text (uploaded in place of any local one); `None` leaves the repo's
            card as it is.
        private: create the repo private (ignored if it exists).
        token: hub token; `None` uses the logged-in one.
        commit_message: defaults to `"Upload with hf_ad"`.
        revision: the branch to commit to (created from the default branch if missing); default: the
            default branch.
        create_pr: open a pull request with the commit instead of committing to the branch.
        path_in_repo: a folder of the repo to put `files` under (e.g. `"evaluation"`); default: the top.
        rewritten: content to upload instead of the local bytes of some of `files` (e.g. JSON with the
            local absolute paths made portable); the local files are never changed.

    Returns:
        The URL of the commit, or of the pull request with `create_pr`.

    Raises:
        ValueError: a bad `repo_type` or `repo_id`, no such folder, or a file missing from it.
        HubError: the hub is unreachable or refused the upload (e.g. not logged in).
    """
    folder = check_upload(folder, repo_id, repo_type, files)
    operations = []
    if card is not None:
        operations.append(
            CommitOperationAdd(path_in_repo=CARD_FILES[repo_type], path_or_fileobj=card.encode())
        )
    rewritten = rewritten or {}
    operations += [
        CommitOperationAdd(
            path_in_repo=repo_path(name, path_in_repo), path_or_fileobj=rewritten.get(name, folder / name)
        )
        for name in files
    ]
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or "Upload with hf_ad",
            repo_type=repo_type,
            revision=revision,
            create_pr=create_pr,
        )
    except HUB_FAILURES as error:
        raise HubError(hub_failure_message(repo_id, error)) from error
    return str(commit.pr_url if create_pr and commit.pr_url else commit.commit_url)


__all__ = ["HubError", "check_repo_id", "check_upload", "publish_folder", "upload_listing"]
