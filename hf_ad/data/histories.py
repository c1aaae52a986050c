"""Learning-history datasets: the format (features, tables, shards), validation and reading.

A histories folder is exactly a hub dataset repo:

    README.md                              the card (YAML header: configs, splits, features)
    hf_ad_histories.json                   metadata: env id/kwargs, task split, generator config,
                                           features, shard list, learning curve
    learning_curve.png                     the source's mean return per episode
    sample_views.png                       image observations only: a few stored views, in the card
    data/{split}-{index:05d}-of-{count:05d}.parquet

One row per transition (columns `hf_ad.constants.HISTORY_COLUMNS`); a history's rows are
contiguous and in time order. Writing them is `hf_ad.data.generate`'s job; this module never imports
it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, List, Value, load_dataset
from datasets.table import table_cast
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from hf_ad import constants
from hf_ad.files import atomic_path
from hf_ad.sources import EpisodeBlock

FORMAT_VERSION = 1
SPLITS = ("train", "test")
FINITE_COLUMNS = (constants.REWARD, constants.OBSERVATION)  # float columns that must hold finite values
HASH_BLOCK_BYTES = 1 << 20

# --- features and tables -------------------------------------------------------------------------


def _space_feature(space):
    """`datasets` feature of one observation of a gymnasium space."""
    if isinstance(space, gym.spaces.Discrete):
        return Value("int64")
    if isinstance(space, gym.spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        return List(Value("int64"), length=int(space.nvec.shape[0]))
    if isinstance(space, gym.spaces.Box) and space.shape:
        feature = Value(str(np.dtype(space.dtype)))
        for size in reversed(space.shape):
            feature = List(feature, length=int(size))
        return feature
    raise ValueError(
        f"observation space {space} is not supported; expected Discrete, 1-D MultiDiscrete or Box"
    )


def _task_dtype(tasks: Sequence[Sequence]) -> str:
    integral = all(isinstance(v, int | np.integer) for task in tasks for v in task)
    return "int64" if integral else "float32"


def history_features(observation_space, tasks: Sequence[Sequence]):
    """Explicit `datasets.Features` of a histories dataset.

    Args:
        observation_space: the env's (single) observation space: Discrete -> int64, 1-D
            MultiDiscrete -> List(int64, length=D), Box -> nested fixed-length Lists of its dtype.
        tasks: the dataset's tasks (tuples of equal length): int64 when all entries are integers
            (grid positions), float32 otherwise (bandit arm means).
    """

    lengths = {len(task) for task in tasks}
    if len(lengths) != 1:
        raise ValueError(f"all tasks must have the same length, got lengths {sorted(lengths)}")
    return Features(
        {
            constants.HISTORY_ID: Value("int64"),
            constants.TASK: List(Value(_task_dtype(tasks)), length=lengths.pop()),
            constants.EPISODE: Value("int64"),
            constants.STEP: Value("int64"),
            constants.OBSERVATION: _space_feature(observation_space),
            constants.ACTION: Value("int64"),
            constants.REWARD: Value("float32"),
            constants.TERMINATED: Value("bool"),
            constants.TRUNCATED: Value("bool"),
        }
    )


def _fixed_size_array(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    """Arrow array of `values` (rows, *inner) for a (possibly nested) fixed-size-list type."""
    if not pa.types.is_fixed_size_list(arrow_type):
        return pa.array(values.reshape(-1), type=arrow_type)
    inner = _fixed_size_array(values.reshape(-1, *values.shape[2:]), arrow_type.value_type)
    return pa.FixedSizeListArray.from_arrays(inner, arrow_type.list_size)


def histories_table(
    blocks: Sequence[EpisodeBlock], history_ids: np.ndarray, tasks: np.ndarray, features
) -> pa.Table:
    """One table of the kept episodes of N learners, rows ordered by history, episode, step.

    Args:
        blocks: the kept episodes, in episode order, all for the same N learners.
        history_ids: `(N,)` int64 id of each learner's history.
        tasks: `(N, K)` each learner's task.
        features: `history_features(...)` of the dataset.
    """
    num_episodes, (n, length) = len(blocks), blocks[0].actions.shape
    rows_per_history = num_episodes * length

    def stacked(name: str) -> np.ndarray:  # (N, E * L, ...): history-major, then episode, then step
        values = np.stack([getattr(block, name) for block in blocks], axis=1)  # (N, E, L, ...)
        return values.reshape(n, rows_per_history, *values.shape[3:])

    episodes = np.array([block.episode for block in blocks], dtype=np.int64)
    schema = features.arrow_schema
    columns = {
        constants.HISTORY_ID: np.repeat(history_ids.astype(np.int64), rows_per_history),
        constants.TASK: np.repeat(tasks, rows_per_history, axis=0),  # (N * E * L, K)
        constants.EPISODE: np.tile(np.repeat(episodes, length), n),
        constants.STEP: np.tile(np.arange(length, dtype=np.int64), n * num_episodes),
        constants.OBSERVATION: stacked("observations").reshape(
            n * rows_per_history, *blocks[0].observations.shape[2:]
        ),
        constants.ACTION: stacked("actions").reshape(-1),
        constants.REWARD: stacked("rewards").reshape(-1),
        constants.TERMINATED: stacked("terminated").reshape(-1),
        constants.TRUNCATED: stacked("truncated").reshape(-1),
    }
    arrays = [_fixed_size_array(np.asarray(columns[f.name]), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A whole Arrow column as one numpy array, `(N, *shape)` for (nested) fixed-length lists.

    Lists are flattened level by level; every row of a list column must have the same length (one
    observation shape per dataset).

    Raises:
        ValueError: rows of a list column have different lengths.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    num_rows = len(array)
    shape: list[int] = []
    while (
        pa.types.is_list(array.type)
        or pa.types.is_large_list(array.type)
        or pa.types.is_fixed_size_list(array.type)
    ):
        outer = len(array)
        array = array.flatten()  # respects slices, unlike `.values`
        size = len(array) // max(outer, 1)
        if size * outer != len(array):
            raise ValueError(f"list column rows have different lengths ({len(array)} values in {outer} rows)")
        shape.append(size)
    values = array.to_numpy(zero_copy_only=False)
    return values.reshape(num_rows, *shape)


def arrow_num_bytes(path: Path, features: Features) -> int:
    """The bytes of a parquet shard as `datasets` counts them in `SplitInfo.num_bytes` (and so in
    `dataset_size`): the Arrow tables its parquet builder reads back from the file, one per batch of the
    first row group's size, cast to `features` (the validity bitmaps included, which the table written
    from numpy has none of: `table.nbytes` before writing is less)."""
    parquet = pq.ParquetFile(path)
    if parquet.metadata.num_row_groups == 0:
        return 0
    batch_size = parquet.metadata.row_group(0).num_rows
    schema = features.arrow_schema
    return sum(
        table_cast(pa.Table.from_batches([batch]), schema).nbytes
        for batch in parquet.iter_batches(batch_size=batch_size)
    )


PARQUET_MAX_ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default cap on the rows of one row group
ROW_GROUP_BYTES = 64 * 2**20
"""Uncompressed bytes of one parquet row group, at most. The writer holds about 12x a row group while it
encodes nested image lists (measured: 2.9 GB extra for one 235 MB group of 28x28x3 views, 0.9 GB in groups
of 47 MB), so pixel shards are cut into groups of this size; shards of small observations (Dark Room's ~60
bytes a row) keep pyarrow's default of one group per 1Mi rows, byte for byte."""


def row_group_rows(table: pa.Table) -> int:
    """Rows per parquet row group of `table`: at most `ROW_GROUP_BYTES` and pyarrow's default cap."""
    bytes_per_row = max(1, table.nbytes // max(1, table.num_rows))
    return max(1, min(PARQUET_MAX_ROW_GROUP_ROWS, ROW_GROUP_BYTES // bytes_per_row))


def write_shard(path: Path, table: pa.Table) -> None:
    """Write one parquet shard atomically (`hf_ad.files.atomic_path`), in row groups of `row_group_rows`."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_rows(table))


# --- validation and reading --------------------------------------------------------------------------


def read_metadata(folder: str | Path) -> dict:
    """The metadata of a complete histories folder.

    Raises:
        ValueError: the folder holds no metadata: an interrupted generation (only its staging folder
            is there; the message gives the command that resumes it) or no histories dataset at all.
    """
    folder = Path(folder)
    path = folder / constants.HISTORIES_METADATA
    if path.is_file():
        return read_json(path)
    journal = folder / constants.STAGING_DIR / constants.HISTORIES_METADATA
    if journal.is_file():
        raise ValueError(
            f"{str(folder)!r}: generation is not complete; re-run the command that started it to resume "
            f"it: {read_json(journal)['command']}"
        )
    raise ValueError(
        f"{str(folder)!r} is not an hf_ad histories folder: it has no {constants.HISTORIES_METADATA}"
    )


def read_json(path: Path) -> dict:
    """A JSON object from `path`, or a `ValueError` naming the file."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{str(path)!r} is not valid JSON ({error}); it is damaged or was not written by hf_ad"
        ) from None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def first_non_finite(values: np.ndarray) -> int | None:
    """Index of the first row of `values` `(N, ...)` holding a NaN or an infinity; None if none does
    (integer and boolean arrays never do)."""
    if values.dtype.kind != "f":
        return None
    bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))  # (num_bad,)
    return int(bad[0]) if len(bad) else None


def non_finite_problem(columns: dict[str, np.ndarray]) -> str | None:
    """Where the first NaN/inf of `columns` (numpy, keyed by column name, with `history_id`) is."""
    for name in FINITE_COLUMNS:
        row = first_non_finite(columns[name])
        if row is not None:
            history = int(columns[constants.HISTORY_ID][row])
            return f"column {name!r} holds a NaN or infinite value at row {row} (history {history})"
    return None


def _schema_mismatch(found: pa.Schema, expected: pa.Schema) -> str | None:
    found_names, expected_names = found.names, expected.names
    missing = [n for n in expected_names if n not in found_names]
    extra = [n for n in found_names if n not in expected_names]
    if missing or extra:
        return f"columns differ (missing {missing}, unexpected {extra})"
    if found_names != expected_names:
        return f"column order {found_names} differs from {expected_names}"
    for name in expected_names:
        if not found.field(name).type.equals(expected.field(name).type):
            return f"column {name!r} has type {found.field(name).type}, expected {expected.field(name).type}"
    return None


def _first_history_id(parquet: pq.ParquetFile) -> int | None:
    if parquet.metadata.num_rows == 0:
        return None
    return parquet.read_row_group(0, columns=[constants.HISTORY_ID]).column(0)[0].as_py()


def shard_problem(path: Path, entry: dict, schema: pa.Schema, verify: bool = False) -> str | None:
    """What is wrong with one shard against its metadata entry, or None.

    Always checked (cheap: the parquet footer and the first row group's ids): the file exists and
    reads as parquet, its schema, row count, first history id and size in bytes. With `verify`, also
    its sha256 and that its float columns hold no NaN or infinity (reads the whole file).
    """
    if not path.is_file():
        return "it is missing"
    if "sha256" not in entry or "file_size" not in entry:
        return "the metadata records no checksum for it (written by an older hf_ad)"
    size = path.stat().st_size
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        recorded = entry["file_size"]
        return f"it does not read as parquet ({error}); it has {size} bytes, the metadata records {recorded}"
    mismatch = _schema_mismatch(parquet.schema_arrow, schema)
    if mismatch is not None:
        return f"it does not match the dataset's schema: {mismatch}"
    if parquet.metadata.num_rows != entry["num_rows"]:
        return f"it has {parquet.metadata.num_rows} rows, the metadata records {entry['num_rows']}"
    first = _first_history_id(parquet)
    if first != entry["first_history_id"]:
        recorded = entry["first_history_id"]
        return f"its first history is {first}, the metadata records {recorded} (shards swapped or renamed?)"
    if size != entry["file_size"]:
        return f"it has {size} bytes, the metadata records {entry['file_size']}"
    if verify and file_sha256(path) != entry["sha256"]:
        return f"its sha256 differs from the one the metadata records ({entry['sha256']})"
    if verify:
        table = parquet.read(columns=[constants.HISTORY_ID, *FINITE_COLUMNS])
        return non_finite_problem({name: column_to_numpy(table.column(name)) for name in table.column_names})
    return None


def validate_histories(folder: str | Path, metadata: dict | None = None, verify: bool = False) -> dict:
    """Check a histories folder against its metadata; returns the metadata.

    Every load checks what is cheap to check: the shard list, and per shard its schema, row count,
    first history id and size (`shard_problem`). `verify=True` also hashes every shard against the
    sha256 the metadata records and scans the float columns for NaN/inf: seconds per GB, so it is
    left to explicit checks and to re-runs of `hf-ad generate` (which repair what it finds).

    Args:
        folder: a histories folder.
        metadata: its metadata, if already read.
        verify: also check checksums and values (reads every byte).

    Raises:
        ValueError: naming the file, the problem and the fix: generation not complete, a shard listed
            in the metadata but missing or damaged (re-run `hf-ad generate`, which regenerates exactly
            the damaged shards), a parquet file in `data/` that the metadata does not list.
    """
    folder = Path(folder)
    metadata = metadata if metadata is not None else read_metadata(folder)
    if not metadata.get("complete"):
        raise ValueError(
            f"{str(folder)!r}: generation is not complete; re-run the command that started it to resume "
            f"it: {metadata['command']}"
        )
    for file in foreign_shards(folder, metadata):
        raise ValueError(
            f"foreign shard {file!r} in {str(folder)!r}: not listed in {constants.HISTORIES_METADATA}; "
            "remove it (it is not part of this dataset)"
        )
    schema = Features.from_dict(metadata["features"]).arrow_schema
    for entry in metadata["shards"]:
        problem = shard_problem(folder / entry["file"], entry, schema, verify=verify)
        if problem is not None:
            raise ValueError(
                f"shard {entry['file']!r} of {str(folder)!r} is damaged: {problem}. Re-run the command "
                f"that generated the dataset on this folder, which regenerates exactly the damaged shards: "
                f"{metadata['command']}"
            )
    return metadata


def foreign_shards(folder: Path, metadata: dict) -> list[str]:
    """Parquet files under `data/` that the metadata does not list, sorted."""
    listed = {s["file"] for s in metadata["shards"]}
    present = {p.relative_to(folder).as_posix() for p in (folder / constants.DATA_DIR).glob("**/*.parquet")}
    return sorted(present - listed)


def split_files(folder: str | Path, metadata: dict, split: str) -> list[str]:
    """Paths of the shards of `split`, in order."""
    if split not in metadata["splits"]:
        raise ValueError(f"split must be one of {sorted(metadata['splits'])}, got {split!r}")
    return [str(Path(folder) / s["file"]) for s in metadata["shards"] if s["split"] == split]


def looks_like_repo_id(name: str) -> bool:
    """Whether `name` could be a hub repo id (`"name"` or `"org/name"`, hub characters only)."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def dataset_metadata(path_or_repo_id: str | Path) -> dict:
    """The `hf_ad_histories.json` metadata of a local histories folder or a hub dataset repo (downloaded
    alone, without the shards).

    Raises:
        ValueError: a local folder that holds no complete dataset (see `read_metadata`), or a value that is
            neither a folder nor a repo id.
    """
    if Path(path_or_repo_id).is_dir():
        return read_metadata(path_or_repo_id)
    repo_id = str(path_or_repo_id)
    if not looks_like_repo_id(repo_id):
        raise ValueError(
            f"{repo_id!r} is neither a histories folder nor a hub dataset repo id ('org/name'); check the "
            "path, or write the folder with `hf-ad generate --out FOLDER`"
        )
    path = hf_hub_download(repo_id, constants.HISTORIES_METADATA, repo_type="dataset")
    return json.loads(Path(path).read_text())


def load_histories(
    path_or_repo_id: str | Path, split: str = "train", streaming: bool = False, verify: bool = False
):
    """Load a histories dataset and its metadata from a local folder or a hub dataset repo.

    Args:
        path_or_repo_id: a folder written by `generate_histories`, or `"org/name"` on the hub.
        split: `"train"` or `"test"` (the task split the histories were learned on).
        streaming: return a `datasets.IterableDataset` that reads the shards lazily.
        verify: for a local folder, also check every shard's sha256 and values
            (`validate_histories(verify=True)`); the cheap checks run on every load.

    Returns:
        `(dataset, metadata)`: a `datasets.Dataset` (or `IterableDataset`) with the dataset's
        explicit features, and the `hf_ad_histories.json` metadata dict.
    """

    if Path(path_or_repo_id).is_dir():
        folder = Path(path_or_repo_id)
        metadata = validate_histories(folder, verify=verify)
        files = split_files(folder, metadata, split)
        features = Features.from_dict(metadata["features"])
        dataset = load_dataset(
            "parquet", data_files={split: files}, features=features, split=split, streaming=streaming
        )
        return dataset, metadata

    repo_id = str(path_or_repo_id)
    metadata = dataset_metadata(repo_id)
    repo_files = {f for f in HfApi().list_repo_files(repo_id, repo_type="dataset") if f.endswith(".parquet")}
    listed = {s["file"] for s in metadata["shards"]}
    if listed != repo_files:
        raise ValueError(
            f"dataset repo {repo_id!r}: shards missing {sorted(listed - repo_files)}, "
            f"foreign {sorted(repo_files - listed)} (against {constants.HISTORIES_METADATA})"
        )
    features = Features.from_dict(metadata["features"])
    dataset = load_dataset(repo_id, split=split, streaming=streaming)
    if dataset.features != features:
        raise ValueError(
            f"dataset repo {repo_id!r}: features {dataset.features} differ from the metadata's {features}"
        )
    return dataset, metadata
