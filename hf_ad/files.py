"""Atomic file writes: a reader never sees a half-written file, and a crash never loses the old one.
Also where the files the project ships besides the package (card templates, checkpoints) are found.

Every file hf_ad writes (shards, metadata, cards, plots, results, checkpoints' JSON) goes through
`atomic_path`: the content is written to a temporary name in the same folder, flushed to disk with
`fsync`, and renamed over the target in one step (`os.replace` is atomic on POSIX and Windows when
both names are on one file system). The folder is fsynced too, so the rename itself survives a power
cut.
"""

from __future__ import annotations

import contextlib
import json
import os
import site
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """The hidden temporary name `path` is written under: `.<name>.tmp` in the same folder."""
    return path.with_name(f".{path.name}{TEMP_SUFFIX}")


def fsync_path(path: str | Path) -> None:
    """Flush a file, or a folder's entries, to disk."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # some platforms cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `path` through; on success it is fsynced and renamed into place.

    ```python
    with atomic_path(folder / "data.parquet") as tmp:
        pyarrow.parquet.write_table(table, tmp)
    ```

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any, sort_keys: bool = False) -> None:
    """Write `value` as indented JSON (with a final newline) to `path` atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=sort_keys) + "\n")


def replace_folder(tmp: str | Path, folder: str | Path) -> None:
    """Move a fully written folder `tmp` into place as `folder` (which must not exist), durably."""
    for file in Path(tmp).rglob("*"):
        if file.is_file():
            fsync_path(file)
    os.replace(tmp, folder)
    fsync_path(Path(folder).parent)


def shipped_roots() -> list[Path]:
    """Folders that may hold the files shipped beside the package (`model_cards/`, `dataset_cards/`,
    `pretrained/`), searched in this order: the checkout around the package (a source checkout or an
    editable install), then `share/hf_ad/` under the prefix a wheel was installed into (pyproject's
    `data-files`), for the environment and for `pip install --user`."""
    installed = [Path(prefix) / "share" / "hf_ad" for prefix in (sys.prefix, site.getuserbase())]
    return [Path(__file__).resolve().parent.parent, *installed]


__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "fsync_path",
    "replace_folder",
    "shipped_roots",
    "temporary_name",
]
