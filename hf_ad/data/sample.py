"""A sample of a histories dataset: its first shards, a complete dataset folder of their own.

A release ships its histories beside its checkpoints; where the whole dataset is too large for a hub folder
(Key-to-Door's: 9M transitions in 11 MB), it ships the first shards instead. The sample is a histories folder
like any other (`load_histories`, `hf-ad train` and the card read it), whose metadata lists only the kept
shards and counts only their histories, and records under `constants.HISTORIES_SAMPLE_OF` what the whole
dataset holds: its splits and number of shards, regenerated exactly by the `command` both share.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hf_ad import constants
from hf_ad.cards import write_dataset_card
from hf_ad.data.generate import split_num_bytes
from hf_ad.data.histories import validate_histories
from hf_ad.files import TEMP_SUFFIX, atomic_write_json, replace_folder


def write_histories_sample(
    folder: str | Path, out: str | Path, num_shards: int = 1, repo_id: str | None = None
) -> dict:
    """Write the first `num_shards` shards of each split of the histories at `folder`, with their metadata
    and card, into the new folder `out`.

    Args:
        folder: a complete histories folder.
        out: the sample's folder; must not exist yet (or be empty).
        num_shards: shards kept per split, the first ones.
        repo_id: the hub repo id of the card's usage snippet (default: `<org>/` + the folder's name).

    Returns:
        The sample's metadata.

    Raises:
        ValueError: `num_shards` below 1, `out` holds files, or `folder` is no complete dataset.
    """
    folder, out = Path(folder), Path(out)
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{str(out)!r} is not empty; remove it or give another folder for the sample")
    metadata = validate_histories(folder)
    kept = [
        entry
        for split in metadata["splits"]
        for entry in [s for s in metadata["shards"] if s["split"] == split][:num_shards]
    ]
    staging = out.with_name(out.name + TEMP_SUFFIX)
    shutil.rmtree(staging, ignore_errors=True)
    (staging / constants.DATA_DIR).mkdir(parents=True)
    for entry in kept:
        shutil.copyfile(folder / entry["file"], staging / entry["file"])
    whole = {"splits": metadata["splits"], "num_shards": len(metadata["shards"])}
    sample = {**metadata, "shards": kept, constants.HISTORIES_SAMPLE_OF: whole}
    sample["splits"] = {
        split: {
            **info,
            "num_tasks": count_tasks(staging, [s for s in kept if s["split"] == split]),
            "num_histories": sum(s["num_histories"] for s in kept if s["split"] == split),
            "num_rows": sum(s["num_rows"] for s in kept if s["split"] == split),
            "num_bytes": split_num_bytes(kept, split),
            "num_shards": sum(s["split"] == split for s in kept),
        }
        for split, info in metadata["splits"].items()
    }
    atomic_write_json(staging / constants.HISTORIES_METADATA, sample)
    write_dataset_card(staging, sample, repo_id=repo_id or f"<org>/{out.resolve().name}")
    if out.exists():
        out.rmdir()
    replace_folder(staging, out)
    return sample


def count_tasks(folder: Path, shards: list[dict]) -> int:
    """The number of distinct tasks the histories of `shards` learn (their `task` column)."""
    tasks = []
    for entry in shards:
        column = pq.read_table(folder / entry["file"], columns=["task"]).column("task").combine_chunks()
        tasks.append(column.flatten().to_numpy().reshape(len(column), -1))  # (rows, task size)
    return len(np.unique(np.concatenate(tasks), axis=0)) if tasks else 0
