"""Serve project folders as Hugging Face Hub repos on 127.0.0.1, offline, through `olah`.

`olah` (PyPI) is a hub-compatible server; in offline mode it serves local git repositories laid out
as `<mirrors>/<models|datasets>/<org>/<name>`, so the real clients (`from_pretrained`,
`load_dataset`, `hf_hub_download`) work against it with `HF_ENDPOINT` pointing at it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_TYPE_DIRS = {"model": "models", "dataset": "datasets"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(cwd: Path, *args: str) -> None:
    identity = ("-c", "user.name=hf_ad tests", "-c", "user.email=tests@hf-ad.invalid")
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


def make_git_repo(folder: Path, destination: Path) -> None:
    """Copy `folder` to `destination` as a one-commit git repo on branch `main` (what olah serves)."""
    shutil.copytree(folder, destination)
    _git(destination, "init", "-q", "-b", "main")
    _git(destination, "add", "-A")
    _git(destination, "commit", "-q", "-m", "snapshot")


def _wait_until_up(endpoint: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"olah exited early with code {process.returncode}")
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"olah did not answer on {endpoint} within {timeout_s:.0f} s")


@contextlib.contextmanager
def serve_local_hub(repos: dict[str, tuple[Path, str]], workdir: Path) -> Iterator[str]:
    """Serve `{repo_id: (folder, repo_type)}` on 127.0.0.1; yields the endpoint for `HF_ENDPOINT`."""
    mirrors = workdir / "mirrors"
    for repo_id, (folder, repo_type) in repos.items():
        make_git_repo(Path(folder), mirrors / REPO_TYPE_DIRS[repo_type] / repo_id)
    port = _free_port()
    config = workdir / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'repos-path = "{workdir / "cache"}"\nmirrors-path = ["{mirrors}"]\n'
        "[accessibility]\noffline = true\n"
    )
    olah_cli = Path(sys.executable).with_name("olah-cli")
    log = open(workdir / "olah.log", "w")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen([str(olah_cli), "-c", str(config)], cwd=workdir, stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint, process)
        yield endpoint
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
        log.close()


def hub_env(endpoint: str, home: Path) -> dict[str, str]:
    """Environment for a client subprocess that talks to the local hub only."""
    env = dict(os.environ)
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_DATASETS_OFFLINE", None)
    return env
