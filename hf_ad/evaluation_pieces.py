"""Resumable evaluation: the finished pieces of an `hf-ad evaluate` run, kept until its results are written.

The paper's protocol is long on a CPU (Key-to-Door: 256 tasks x 20 seeds x 1000 episodes of 50 steps per
checkpoint, hours), so `hf_ad.evaluation` plays each checkpoint in pieces of whole evaluation seeds and the
source in one piece, and keeps every finished piece's returns under the output folder's hidden staging
folder (`out/.hf_ad_staging/`), next to a journal of the run's settings. Running the same command again
skips the pieces that are there: an interrupted evaluation resumes at the piece where it stopped, and its
results are those of an uninterrupted run (a piece's streams draw their actions as in the whole run:
`InContextAgent.reset(first_stream=..., total_streams=...)`). A staging folder left by a run with other
settings (another checkpoint, its weights changed, other tasks, seeds or episodes) is discarded with a log
line; the folder is removed once `results.json` is written.

Pieces are `.npy` files written atomically and read with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hf_ad import constants
from hf_ad.files import atomic_path, atomic_write_json
from hf_ad.processes import current_processes

JOURNAL = "evaluation.json"
# Streams per piece at least: the rollout bench steps 17k env-steps/s at 81 streams, 22k at 1024
# (BENCHMARKS.md), so pieces of about 1024 streams cost little speed.
PIECE_STREAMS = 1024


def seed_pieces(num_tasks: int, seeds: int) -> list[range]:
    """The evaluation seeds of each piece: whole seeds, at least `PIECE_STREAMS` streams a piece (the last
    may hold fewer), so that resuming costs little speed."""
    per_piece = max(1, -(-PIECE_STREAMS // num_tasks))
    return [range(first, min(first + per_piece, seeds)) for first in range(0, seeds, per_piece)]


def checkpoint_digest(path: str) -> str:
    """sha256 over a local checkpoint's weights files (so a retrained folder is a new checkpoint); a hub
    id names itself."""
    weights = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    digest = hashlib.sha256()
    for file in weights:
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest() if weights else path


class EvaluationPieces:
    """The finished pieces of one evaluation under `out/STAGING_DIR`, for the run described by `settings`
    (JSON-able; the pieces of a run with other settings are discarded). Under `accelerate launch` the main
    process alone reads and writes, and every process gets the same answers."""

    def __init__(self, out: str | Path, settings: dict[str, Any], log: Callable[[str], None]):
        self.folder = Path(out) / constants.STAGING_DIR
        self.settings = json.loads(json.dumps(settings))  # tuples as lists, as the journal reads back
        self.processes = current_processes()
        news = self.processes.on_main(self._open)
        if news:
            log(news)

    def _open(self) -> str | None:
        """Keep the staging folder of the same run, else start a new one; what happened, if worth a line."""
        journal = self.folder / JOURNAL
        if journal.is_file() and json.loads(journal.read_text()) == self.settings:
            done = len(list(self.folder.glob("*.npy")))
            return f"resuming the evaluation in {self.folder} (pieces done: {done})" if done else None
        news = None
        if self.folder.exists():
            news = f"discarded the unfinished evaluation in {self.folder}: it was run with other settings"
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        atomic_write_json(journal, self.settings)
        return news

    def piece(self, name: str, play: Callable[[], np.ndarray]) -> np.ndarray:
        """The piece `name`'s returns: read back if finished, else `play()` (on every process, which returns
        the gathered result) and kept."""
        path = self.folder / f"{name}.npy"
        done = self.processes.on_main(lambda: np.load(path, allow_pickle=False) if path.is_file() else None)
        if done is not None:
            return done
        result = play()
        self.processes.on_main(lambda: self._write(path, result))
        return result

    @staticmethod
    def _write(path: Path, array: np.ndarray) -> None:
        with atomic_path(path) as tmp, tmp.open("wb") as stream:
            np.save(stream, np.asarray(array), allow_pickle=False)

    def finish(self) -> None:
        """Remove the staging folder: the results are written."""
        self.processes.on_main(lambda: shutil.rmtree(self.folder, ignore_errors=True))


__all__ = ["EvaluationPieces", "PIECE_STREAMS", "checkpoint_digest", "seed_pieces"]
