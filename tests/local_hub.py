"""Serve project folders as Hugging Face Hub repos on 127.0.0.1, offline, through `olah`.

`olah` (PyPI) is a hub-compatible server; in offline mode it serves local git repositories laid out
as `<mirrors>/<models|datasets>/<org>/<name>`, so the real clients (`from_pretrained`,
`load_dataset`, `hf_hub_download`) work against it with `HF_ENDPOINT` pointing at it.

Note: olah 0.5 answers a ranged GET of a local-mirror file with the whole file and status 200, while
`datasets` reads parquet footers from `hf://` paths with range requests (the Hub answers 206). A small
proxy in front of olah serves the requested byte range of such answers, as the Hub does.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
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


class _RangeProxy(http.server.BaseHTTPRequestHandler):
    """Forwards GET/HEAD to olah; answers a ranged GET that got the whole file with 206 and the range."""

    upstream: tuple[str, int]

    def do_HEAD(self):
        self._forward("HEAD")

    def do_GET(self):
        self._forward("GET")

    def _forward(self, method: str) -> None:
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "range")}
        connection.request(method, self.path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        dropped = ("transfer-encoding",) if method == "HEAD" else ("content-length", "transfer-encoding")
        status = response.status
        out_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in dropped]
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if method == "GET" and status == 200 and match:
            size = len(body)
            first, last = match.groups()
            start = max(size - int(last), 0) if not first else int(first)
            end = size - 1 if not first or not last else min(int(last), size - 1)
            body, status = body[start : end + 1], 206
            out_headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        self.send_response(status)
        for key, value in out_headers:
            self.send_header(key, value)
        if method == "GET":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method == "GET":
            self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


@contextlib.contextmanager
def _range_proxy(upstream_port: int) -> Iterator[str]:
    handler = type("Handler", (_RangeProxy,), {"upstream": ("127.0.0.1", upstream_port)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
        with _range_proxy(port) as proxied:
            yield proxied
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
