"""Histories datasets: features, writing, resuming, validation, reading back three ways, the card."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import shlex
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Features, List, Value, load_dataset, load_dataset_builder
from PIL import Image

from hf_ad import cards, cli, constants
from hf_ad.data import generate, histories
from hf_ad.data.generate import GenerateConfig, generate_histories
from hf_ad.data.histories import load_histories, validate_histories
from hf_ad.envs import task_split
from hf_ad.images import upscale
from hf_ad.recipes import DARK_ROOM_RECIPE
from hf_ad.sources.experts import ExpertConfig
from hf_ad.sources.q_learning import QLearningConfig

EPISODES, KEEP_EVERY, SHARD = 12, 5, 24  # Dark Room: 65 train + 16 test goals -> 3 + 1 shards


def _generate(out, **overrides):
    config = GenerateConfig(out=str(out), tasks="all", learners_per_shard=SHARD)
    source = QLearningConfig(
        histories_per_task=1, episodes=EPISODES, keep_every=KEEP_EVERY, seed=3, **overrides
    )
    return generate_histories(config, source, progress=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("histories") / "darkroom")


def test_features_follow_the_spaces():
    grid = histories.history_features(gym.spaces.MultiDiscrete([9, 9]), [(1, 2), (3, 4)])
    assert grid[constants.OBSERVATION] == List(Value("int64"), length=2)
    assert grid[constants.TASK] == List(Value("int64"), length=2)
    bandit = histories.history_features(gym.spaces.Discrete(1), [(0.1, 0.9, 0.5)])
    assert bandit[constants.OBSERVATION] == Value("int64")
    assert bandit[constants.TASK] == List(Value("float32"), length=3)
    box = histories.history_features(gym.spaces.Box(0, 1, (3,), np.float32), [(1,)])
    assert box[constants.OBSERVATION] == List(Value("float32"), length=3)
    assert list(grid) == list(constants.HISTORY_COLUMNS)
    with pytest.raises(ValueError, match="same length"):
        histories.history_features(gym.spaces.Discrete(2), [(1, 2), (1, 2, 3)])


def test_layout_and_metadata(folder):
    metadata = json.loads((folder / constants.HISTORIES_METADATA).read_text())
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    shard_files = [s["file"] for s in metadata["shards"]]
    expected = [
        constants.DATASET_CARD,
        constants.HISTORIES_METADATA,
        constants.LEARNING_CURVE_PNG,
        *shard_files,
    ]
    assert files == sorted(expected)
    assert shard_files == [f"data/train-0000{i}-of-00003.parquet" for i in range(3)] + [
        "data/test-00000-of-00001.parquet"
    ]
    assert metadata["complete"] and metadata["env_id"] == constants.DARK_ROOM
    assert metadata["generator_config"]["keep_every"] == KEEP_EVERY
    # No --source given, a QLearningConfig passed: Q-learning, not the env's default source (the explorer).
    assert metadata["source"] == "q_learning" and "--source q_learning" in metadata["command"]
    assert len(metadata["task_split"]["train"]) == metadata["splits"]["train"]["num_tasks"] == 65
    assert len(metadata["learning_curve"]["train"]["mean_return"]) == EPISODES
    assert Features.from_dict(metadata["features"])[constants.OBSERVATION] == List(Value("int64"), length=2)


def test_rows_are_whole_histories_in_time_order(folder):
    dataset, metadata = load_histories(folder, split="train")
    columns = dataset.with_format("numpy")[:]
    kept = np.arange(0, EPISODES, KEEP_EVERY)  # episodes 0, 5, 10
    per_history = len(kept) * 20
    assert len(dataset) == 65 * per_history == metadata["splits"]["train"]["num_rows"]
    history = columns[constants.HISTORY_ID].reshape(65, per_history)
    assert (history == np.arange(65)[:, None]).all()
    episode = columns[constants.EPISODE].reshape(65, len(kept), 20)
    assert (episode == kept[None, :, None]).all()
    assert (columns[constants.STEP].reshape(65, -1, 20) == np.arange(20)).all()
    truncated = columns[constants.TRUNCATED].reshape(65, -1, 20)
    assert truncated[..., -1].all() and not truncated[..., :-1].any()
    observation = columns[constants.OBSERVATION].reshape(65, -1, 20, 2)
    assert (observation[:, :, 0] == 4).all()  # every episode starts at the centre
    # The shard's rewards agree with the learner's curve for the kept episodes.
    returns = columns[constants.REWARD].reshape(65, len(kept), 20).sum(-1).mean(0)
    np.testing.assert_allclose(
        returns, np.array(metadata["learning_curve"]["train"]["mean_return"])[kept], atol=1e-5
    )
    # Learners cycle through the tasks: history i learns task i.
    tasks = columns[constants.TASK].reshape(65, per_history, 2)[:, 0]
    assert [tuple(t) for t in tasks] == [tuple(t) for t in metadata["task_split"]["train"]]


def _columns(dataset) -> dict:
    return {name: [row[name] for row in dataset] for name in constants.HISTORY_COLUMNS}


def test_round_trip_three_ways(folder):
    reference, metadata = load_histories(folder, split="test")
    expected = _columns(reference)
    features = Features.from_dict(metadata["features"])
    from_folder = load_dataset(str(folder), split="test")
    files = [str(folder / s["file"]) for s in metadata["shards"] if s["split"] == "test"]
    from_parquet = load_dataset("parquet", data_files=files, split="train")
    streamed = load_dataset(str(folder), split="test", streaming=True)
    for dataset in (from_folder, from_parquet, streamed):
        assert dataset.features == features
        assert _columns(dataset) == expected
    streamed_histories, _ = load_histories(folder, split="test", streaming=True)
    assert _columns(streamed_histories) == expected
    # ... and against the learner itself: regenerate the test shard's blocks directly.
    assert {tuple(t) for t in expected[constants.TASK]} == {tuple(t) for t in metadata["task_split"]["test"]}


def _write_shard_calls(monkeypatch, fail_after: int | None = None) -> list:
    """Record the shards generation writes; with `fail_after`, stop it like Ctrl-C after that many."""
    real_write, written = histories.write_shard, []

    def counting_write(path, table):
        if fail_after is not None and len(written) == fail_after:
            raise KeyboardInterrupt(f"simulated interruption after {fail_after} shards")
        real_write(path, table)
        written.append(path.relative_to(path.parents[1]).as_posix())

    monkeypatch.setattr(generate, "write_shard", counting_write)
    return written


def _metadata(folder) -> dict:
    return json.loads((folder / constants.HISTORIES_METADATA).read_text())


def test_interrupted_generation_is_no_dataset_and_resumes_to_the_same_one(folder, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    _write_shard_calls(monkeypatch, fail_after=0)
    with pytest.raises(KeyboardInterrupt):
        _generate(out)
    (out / constants.STAGING_DIR / constants.HISTORIES_METADATA).unlink()  # as if killed before the journal
    _write_shard_calls(monkeypatch, fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        _generate(out)
    # Only the hidden staging folder exists: neither `datasets` nor hf_ad reads it as a dataset.
    assert [p.name for p in out.iterdir()] == [constants.STAGING_DIR]
    journal = json.loads((out / constants.STAGING_DIR / constants.HISTORIES_METADATA).read_text())
    entries = sorted((out / constants.STAGING_DIR / generate.STAGED_ENTRIES).iterdir())
    assert not journal["complete"] and [path.stem for path in entries] == ["train-00000-of-00003"]
    with pytest.raises(FileNotFoundError, match="doesn't contain any data files"):
        load_dataset(str(out))
    with pytest.raises(ValueError, match=r"not complete; re-run .*: hf-ad generate --out"):
        load_histories(out)

    calls = _write_shard_calls(monkeypatch)
    _generate(out)
    assert calls == [s["file"] for s in _metadata(folder)["shards"]][1:]  # the staged shard was kept
    assert not (out / constants.STAGING_DIR).exists()
    for entry in _metadata(folder)["shards"]:
        assert (out / entry["file"]).read_bytes() == (folder / entry["file"]).read_bytes()
    normalise = lambda m: {k: v for k, v in m.items() if k != "command"}  # noqa: E731 (--out differs)
    assert normalise(_metadata(out)) == normalise(_metadata(folder))
    _generate(out)  # complete, intact and identical configuration: nothing to do
    assert len(calls) == 3


def _as_a_fresh_process() -> None:
    """Forget accelerate's process-wide state a forked process inherits (as a new process would)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)


def _launched_generation(out: str, stop_at: tuple[int, int] | None) -> None:
    """Runs in each process `debug_launcher` forks; with `stop_at=(rank, n)` that process is killed (as by
    Ctrl-C) when it starts writing its n-th shard."""
    _as_a_fresh_process()
    from hf_ad.processes import current_processes

    processes = current_processes()
    assert processes.count == 2
    if stop_at is not None and processes.index == stop_at[0]:
        real_write, written = generate.write_shard, []

        def stopping_write(path, table):
            if len(written) == stop_at[1]:
                raise KeyboardInterrupt(f"process {processes.index} stopped")
            real_write(path, table)
            written.append(path)

        generate.write_shard = stopping_write
    _generate(out)


def _assert_same_dataset(out: Path, reference: Path) -> None:
    for entry in _metadata(reference)["shards"]:
        assert (out / entry["file"]).read_bytes() == (reference / entry["file"]).read_bytes()
    normalise = lambda m: {k: v for k, v in m.items() if k != "command"}  # noqa: E731 (--out differs)
    assert normalise(_metadata(out)) == normalise(_metadata(reference))
    assert (out / constants.DATASET_CARD).read_text().replace(out.name, reference.name) == (
        reference / constants.DATASET_CARD
    ).read_text()
    assert not (out / constants.STAGING_DIR).exists()


def test_two_processes_write_the_single_process_dataset(folder, tmp_path):
    from accelerate import debug_launcher

    out = tmp_path / "darkroom"  # the reference's folder name: the card names it
    debug_launcher(_launched_generation, args=(str(out), None), num_processes=2)
    _assert_same_dataset(out, folder)


def test_an_interrupted_two_process_generation_resumes(folder, tmp_path, monkeypatch):
    """Process 1 (shards 1 and 3 of 4) is stopped at its second shard; a resume, here by one process,
    writes only what is missing and ends with the single-process dataset."""
    from accelerate import debug_launcher

    out = tmp_path / "darkroom"
    # The launcher reports whichever process it sees end first: the stopped one, or its peer losing it
    # (whose message depends on where it was); the staged shards below show which stop it was.
    with pytest.raises(Exception, match="terminated with the following error"):
        debug_launcher(_launched_generation, args=(str(out), (1, 1)), num_processes=2)
    assert [p.name for p in out.iterdir()] == [constants.STAGING_DIR]
    staged = {p.stem for p in (out / constants.STAGING_DIR / generate.STAGED_ENTRIES).iterdir()}
    assert "train-00001-of-00003" in staged and "test-00000-of-00001" not in staged
    calls = _write_shard_calls(monkeypatch)
    _generate(out)
    assert sorted(calls) == sorted(
        s["file"] for s in _metadata(folder)["shards"] if Path(s["file"]).stem not in staged
    )
    _assert_same_dataset(out, folder)


def test_the_progress_bar_counts_the_rows_stored(tmp_path, monkeypatch):
    """The bar ends at the dataset's rows, not at the transitions played (`keep_every` times as many)."""
    bars = []

    class RecordingBar(generate.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(generate, "tqdm", RecordingBar)
    config = GenerateConfig(out=str(tmp_path / "histories"), tasks="all", learners_per_shard=SHARD)
    source = QLearningConfig(histories_per_task=1, episodes=EPISODES, keep_every=KEEP_EVERY, seed=3)
    rows = sum(
        split["num_rows"] for split in _metadata(generate_histories(config, source))["splits"].values()
    )
    (bar,) = bars
    assert (bar.unit, bar.total, bar.n) == ("row", rows, rows)


def test_a_stop_while_moving_into_place_resumes_there(folder, tmp_path, monkeypatch):
    out = tmp_path / "moving"
    real_write_card = generate.write_dataset_card

    def stopped_write_card(*args, **kwargs):
        raise KeyboardInterrupt("simulated interruption after data/ moved into place")

    monkeypatch.setattr(generate, "write_dataset_card", stopped_write_card)
    with pytest.raises(KeyboardInterrupt):
        _generate(out)
    assert (out / constants.DATA_DIR).is_dir() and not (out / constants.HISTORIES_METADATA).exists()
    with pytest.raises(ValueError, match="not complete"):
        load_histories(out)
    monkeypatch.setattr(generate, "write_dataset_card", real_write_card)
    calls = _write_shard_calls(monkeypatch)
    _generate(out)
    assert calls == [] and not (out / constants.STAGING_DIR).exists()
    assert _metadata(out)["shards"] == _metadata(folder)["shards"]
    validate_histories(out, verify=True)


def test_metadata_records_each_shards_checksum(folder):
    for entry in _metadata(folder)["shards"]:
        path = folder / entry["file"]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["file_size"] == path.stat().st_size
        assert pq.read_table(path)[constants.HISTORY_ID][0].as_py() == entry["first_history_id"]
    validate_histories(folder, verify=True)


def test_image_shards_are_written_in_bounded_row_groups(tmp_path, monkeypatch):
    """The parquet writer's memory grows with the row group: image rows go in groups of ROW_GROUP_BYTES."""
    views = np.arange(100 * 28 * 28 * 3, dtype=np.int64).astype(np.uint8).reshape(100, 28, 28, 3)
    image_type = pa.list_(pa.list_(pa.list_(pa.uint8(), 3), 28), 28)
    table = pa.table({constants.OBSERVATION: histories._fixed_size_array(views, image_type)})
    monkeypatch.setattr(histories, "ROW_GROUP_BYTES", 30 * table.nbytes // 100)  # 30 rows a group
    histories.write_shard(tmp_path / "pixels.parquet", table)
    written = pq.ParquetFile(tmp_path / "pixels.parquet")
    assert [written.metadata.row_group(i).num_rows for i in range(written.num_row_groups)] == [30, 30, 30, 10]
    np.testing.assert_array_equal(histories.column_to_numpy(written.read()[constants.OBSERVATION]), views)
    small = pa.table({constants.ACTION: np.arange(100, dtype=np.int64)})  # far below the bound: one group
    histories.write_shard(tmp_path / "actions.parquet", small)
    assert pq.ParquetFile(tmp_path / "actions.parquet").num_row_groups == 1


def _rerun_recorded_command(folder, out) -> int:
    """`hf-ad generate` with the command recorded in `folder`'s metadata, pointed at `out`."""
    argv = shlex.split(_metadata(folder)["command"])[2:]
    argv[argv.index("--out") + 1] = str(out)
    return cli.main(["generate", *argv])


def test_truncated_shard_is_named_and_exactly_it_is_regenerated(folder, copy, monkeypatch):
    damaged = "data/train-00001-of-00003.parquet"
    original = (folder / damaged).read_bytes()
    (copy / damaged).write_bytes(original[: len(original) // 2])
    with pytest.raises(ValueError, match=r"train-00001-of-00003\.parquet.*damaged.*Re-run .*hf-ad generate"):
        load_histories(copy)
    calls = _write_shard_calls(monkeypatch)
    assert _rerun_recorded_command(folder, copy) == 0
    assert calls == [damaged]
    assert (copy / damaged).read_bytes() == original
    load_histories(copy, verify=True)


def test_swapped_shards_are_named_and_both_regenerated(folder, copy, monkeypatch):
    first, second = copy / "data/train-00000-of-00003.parquet", copy / "data/train-00001-of-00003.parquet"
    first_bytes, second_bytes = first.read_bytes(), second.read_bytes()
    first.write_bytes(second_bytes)
    second.write_bytes(first_bytes)
    with pytest.raises(ValueError, match=r"train-00000-of-00003\.parquet.*first history is 24, .* records 0"):
        load_histories(copy)
    calls = _write_shard_calls(monkeypatch)
    _generate(copy)
    assert sorted(calls) == ["data/train-00000-of-00003.parquet", "data/train-00001-of-00003.parquet"]
    assert (first.read_bytes(), second.read_bytes()) == (first_bytes, second_bytes)


def test_same_size_corruption_is_found_by_verify_and_by_a_rerun(folder, copy, monkeypatch):
    path = copy / "data/test-00000-of-00001.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"test-00000-of-00001\.parquet.*sha256 differs"):
        validate_histories(copy, verify=True)
    calls = _write_shard_calls(monkeypatch)
    _generate(copy)
    assert calls == ["data/test-00000-of-00001.parquet"]
    validate_histories(copy, verify=True)


def test_a_rerun_that_does_not_reproduce_the_recorded_bytes_says_so(copy):
    metadata = _metadata(copy)
    metadata["shards"][0]["sha256"] = "0" * 64
    (copy / constants.HISTORIES_METADATA).write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"train-00000-of-00003\.parquet.*differs from the one recorded"):
        _generate(copy)


def test_shards_without_checksums_are_regenerated_and_gain_them(folder, copy, monkeypatch):
    """Datasets written before checksums existed: refused on load, upgraded by a re-run."""
    metadata = _metadata(copy)
    for entry in metadata["shards"]:
        del entry["sha256"], entry["file_size"]
    (copy / constants.HISTORIES_METADATA).write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="records no checksum"):
        load_histories(copy)
    calls = _write_shard_calls(monkeypatch)
    _generate(copy)
    assert len(calls) == 4
    assert _metadata(copy)["shards"] == _metadata(folder)["shards"]


def test_nan_written_into_a_shard_is_named_by_verify(copy):
    file = "data/train-00002-of-00003.parquet"
    table = pq.read_table(copy / file)
    rewards = table[constants.REWARD].to_numpy().copy()
    rewards[30] = np.nan
    index = table.schema.get_field_index(constants.REWARD)
    table = table.set_column(index, table.schema.field(index), pa.array(rewards, pa.float32()))
    pq.write_table(table, copy / file, compression="zstd")
    metadata = _metadata(copy)  # as if a tool had re-recorded the checksums: only the values tell
    (entry,) = [e for e in metadata["shards"] if e["file"] == file]
    entry.update(file_size=(copy / file).stat().st_size, sha256=histories.file_sha256(copy / file))
    (copy / constants.HISTORIES_METADATA).write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"train-00002-of-00003\.parquet.*'reward' holds a NaN .*history 48"):
        load_histories(copy, verify=True)


def test_a_source_producing_nan_writes_nothing(tmp_path, monkeypatch):
    learn, config_cls = generate.SOURCES["q_learning"]

    def nan_learn(env_id, tasks, config, env_kwargs=None):
        for block in learn(env_id, tasks, config, env_kwargs):
            if block.episode == 2:
                block.rewards[5, 3] = np.inf
            yield block

    monkeypatch.setattr(generate, "SOURCES", {"q_learning": (nan_learn, config_cls)})
    with pytest.raises(
        ValueError, match=r"'q_learning' produced a NaN or infinite reward in episode 2 of history 5"
    ):
        _generate(tmp_path / "nan")
    assert not list((tmp_path / "nan").rglob("*.parquet"))


def test_other_configuration_is_refused(copy):
    with pytest.raises(ValueError, match="learning_rate"):
        _generate(copy, learning_rate=0.25)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_no_dataset_is_never_written_into(tmp_path, overwrite):
    """E.g. a model's `final/` passed as --out: refused with or without --overwrite, left untouched."""
    final = tmp_path / "final"
    final.mkdir()
    (final / constants.MODEL_CARD).write_text("my model card")
    (final / "config.json").write_text("{}")
    config = GenerateConfig(out=str(final), tasks="test", learners_per_shard=SHARD, overwrite=overwrite)
    with pytest.raises(ValueError, match="not empty.*no histories dataset.*with or without --overwrite"):
        generate_histories(config, QLearningConfig(episodes=2), progress=False)
    assert sorted(p.name for p in final.iterdir()) == ["README.md", "config.json"]
    assert (final / constants.MODEL_CARD).read_text() == "my model card"


def test_overwrite_replaces_a_dataset_of_another_configuration(copy):
    config = GenerateConfig(out=str(copy), tasks="test", learners_per_shard=SHARD, overwrite=True)
    generate_histories(config, QLearningConfig(episodes=2, learning_rate=0.25), progress=False)
    metadata = validate_histories(copy, verify=True)
    assert metadata["generator_config"]["learning_rate"] == 0.25
    assert [s["file"] for s in metadata["shards"]] == ["data/test-00000-of-00001.parquet"]


@pytest.fixture
def copy(folder, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(folder, out)
    return out


def test_missing_shard_is_named(copy):
    (copy / "data/train-00001-of-00003.parquet").unlink()
    with pytest.raises(ValueError, match=r"train-00001-of-00003\.parquet.*missing"):
        validate_histories(copy)


def test_foreign_shard_is_named(copy):
    shutil.copy(copy / "data/test-00000-of-00001.parquet", copy / "data/test-00007-of-00009.parquet")
    with pytest.raises(ValueError, match=r"foreign shard 'data/test-00007-of-00009\.parquet'"):
        validate_histories(copy)


def test_schema_mismatch_is_named(copy):
    path = copy / "data/train-00002-of-00003.parquet"
    table = pq.read_table(path)
    index = table.schema.get_field_index(constants.REWARD)
    table = table.set_column(index, constants.REWARD, table[constants.REWARD].cast(pa.float64()))
    pq.write_table(table, path)
    with pytest.raises(
        ValueError, match=r"train-00002-of-00003\.parquet.*'reward' has type double, expected float"
    ):
        load_histories(copy)


def test_card_renders_with_yaml_header(folder):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(folder / constants.DATASET_CARD)
    data = card.data.to_dict()
    assert {"reinforcement-learning", "in-context-rl", "algorithm-distillation"} <= set(data["tags"])
    assert data["configs"][0]["data_files"] == [
        {"split": "train", "path": "data/train-*.parquet"},
        {"split": "test", "path": "data/test-*.parquet"},
    ]
    assert [f["name"] for f in data["dataset_info"]["features"]] == list(constants.HISTORY_COLUMNS)
    assert "![learning curve](learning_curve.png)" in card.text
    assert "hf-ad generate --out" in card.text and "--env hf_ad/DarkRoom-v0 --source q_learning" in card.text
    assert (folder / constants.LEARNING_CURVE_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (folder / constants.SAMPLE_VIEWS_PNG).exists() and "sample views" not in card.text  # no images


def test_card_of_image_observations_shows_sample_views(tmp_path):
    """The Hub's viewer shows uint8 lists as numbers: the card embeds a strip of stored views instead."""
    config = GenerateConfig(out=str(tmp_path / "pixels"), env=constants.PIXEL_WATERMAZE, tasks="test")
    source = QLearningConfig(histories_per_task=1, episodes=6, keep_every=5, seed=0)
    folder = generate_histories(config, source, progress=False)
    card = (folder / constants.DATASET_CARD).read_text()
    assert f"![sample views]({constants.SAMPLE_VIEWS_PNG})" in card
    with Image.open(folder / constants.SAMPLE_VIEWS_PNG) as png:
        strip = np.asarray(png.convert("RGB"))
    metadata = json.loads((folder / constants.HISTORIES_METADATA).read_text())
    shard = pq.read_table(folder / metadata["shards"][0]["file"])
    history, episode = (shard.column(name).to_numpy() for name in (constants.HISTORY_ID, constants.EPISODE))
    views = histories.column_to_numpy(shard.column(constants.OBSERVATION))  # (N, 28, 28, 3) uint8
    first = history == history[0]  # (N,) the first history's rows, in time order
    assert sorted(set(episode[first])) == [0, 5]  # one row of views for each stored episode
    tile = 28 * cards.SAMPLE_VIEW_SCALE + cards.SAMPLE_VIEW_GAP  # one scaled view and the gap after it
    frames = cards.SAMPLE_VIEW_FRAMES
    assert strip.shape == (2 * tile - cards.SAMPLE_VIEW_GAP, frames * tile - cards.SAMPLE_VIEW_GAP, 3)
    for row, shown_episode in enumerate((0, 5)):
        episode_views = views[first & (episode == shown_episode)]  # (50, 28, 28, 3)
        for column, step in enumerate((0, 7, 14, 21, 28, 35, 42, 49)):  # 8 of the 50 steps, evenly spaced
            shown = strip[row * tile : row * tile + 84, column * tile : column * tile + 84]
            expected = upscale(episode_views[step], cards.SAMPLE_VIEW_SCALE)
            np.testing.assert_array_equal(shown, expected, f"row {row}, column {column}")
    files, _ = cli.dataset_upload(folder, "org/pixel-histories")
    assert constants.SAMPLE_VIEWS_PNG in files  # published with the card that embeds it


def _card_dataset_info(folder) -> dict:
    from huggingface_hub import DatasetCard

    return DatasetCard.load(folder / constants.DATASET_CARD).data.to_dict()["dataset_info"]


def test_card_byte_counts_are_what_datasets_computes(folder, tmp_path):
    """`num_bytes`, `dataset_size`, `download_size`: the numbers `datasets` records preparing the folder."""
    builder = load_dataset_builder(str(folder), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    info = _card_dataset_info(folder)
    assert {s["name"]: s["num_bytes"] for s in info["splits"]} == {
        name: split.num_bytes for name, split in builder.info.splits.items()
    }
    assert (info["dataset_size"], info["download_size"]) == (
        builder.info.dataset_size,
        builder.info.download_size,
    )


def test_a_rerun_corrects_the_byte_counts_of_an_older_dataset(folder, copy):
    """Older hf_ad recorded the table's size before writing (no validity bitmaps): a re-run of the recorded
    command fixes the metadata and the card, and rewrites no shard."""
    metadata = _metadata(copy)
    shards = {p: p.read_bytes() for p in (copy / constants.DATA_DIR).iterdir()}
    for entry in metadata["shards"]:
        entry["num_bytes"] = pq.read_table(copy / entry["file"]).combine_chunks().nbytes - 1
    (copy / constants.HISTORIES_METADATA).write_text(json.dumps(metadata))
    assert _rerun_recorded_command(folder, copy) == 0
    assert _metadata(copy) == _metadata(folder)
    assert _card_dataset_info(copy) == _card_dataset_info(folder)
    assert {p: p.read_bytes() for p in (copy / constants.DATA_DIR).iterdir()} == shards


def test_expert_histories_and_parse_defaults(tmp_path):
    config, source = generate.parse_generate_args(["--out", str(tmp_path / "x")])
    recipe = DARK_ROOM_RECIPE.dataset
    assert (config.source_name, source.histories_per_task, source.keep_every) == (
        recipe.source,
        recipe.histories_per_task,
        recipe.keep_every,
    )
    assert (source.epsilon, source.exploit_epsilon) == (0.1, 0.01)  # the recipe's options for its source
    config, source = generate.parse_generate_args(
        ["--out", str(tmp_path / "e"), "--source", "expert", "--episodes", "2", "--histories-per-task", "1"]
    )
    assert isinstance(source, ExpertConfig) and source.episodes == 2
    dataset, metadata = load_histories(generate_histories(config, source, progress=False))
    assert metadata["source"] == "expert"
    returns = np.array(metadata["learning_curve"]["train"]["mean_return"])
    np.testing.assert_allclose(returns, metadata["splits"]["train"]["optimal_return"])


def test_recorded_command_parses_back_to_the_same_configs(tmp_path):
    argv = ["--out", str(tmp_path / "a b"), "--env", constants.DARK_ROOM_HARD, "--env-kwargs", '{"size": 9}']
    config, source = generate.parse_generate_args(
        [*argv, "--source", "q_learning", "--learning-rate", "0.25", "--learners-per-shard", "7"]
    )
    command = generate.generate_command(config, source)
    program, flags = shlex.split(command)[:2], shlex.split(command)[2:]
    assert program == ["hf-ad", "generate"]
    for flag in ("--env", "--source", "--out", "--tasks", "--histories-per-task", "--episodes", "--seed"):
        assert flag in flags
    again, again_source = generate.parse_generate_args(flags)
    assert again_source == source
    assert again == config


def test_bad_generate_config():
    with pytest.raises(ValueError, match="env must be one of"):
        GenerateConfig(out="x", env="CartPole-v1")
    with pytest.raises(ValueError, match="env_kwargs must be a JSON object"):
        GenerateConfig(out="x", env_kwargs="[1]")


def test_load_histories_from_a_hub_repo_id(folder, tmp_path):
    """Through the real hub clients, against a local hub-compatible server (olah, offline)."""
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from local_hub import hub_env, serve_local_hub

    code = (
        "from hf_ad.data import load_histories\n"
        "dataset, metadata = load_histories('org/dark-room', split='test')\n"
        "streamed, _ = load_histories('org/dark-room', split='test', streaming=True)\n"
        "rows = list(streamed)\n"
        "assert rows == list(dataset) and len(rows) == metadata['splits']['test']['num_rows'], len(rows)\n"
        "print(metadata['source'], len(rows))\n"
        # training reads the same path: the repo id's memory-mapped download, no copy of the folder
        "from hf_ad import cli\n"
        f"argv = ['train', '--dataset', 'org/dark-room', '--output-dir', {str(tmp_path / 'run')!r}]\n"
        "argv += ['--max-steps', '1', '--batch-size', '2', '--context', '10', '--save-steps', '0']\n"
        "argv += ['--report-to', 'none', '--hidden-size', '16', '--num-hidden-layers', '1']\n"
        "argv += ['--num-attention-heads', '2', '--intermediate-size', '32', '--sliding-window', '4']\n"
        "assert cli.main(argv) == 0\n"
    )
    with serve_local_hub({"org/dark-room": (folder, "dataset")}, tmp_path / "hub") as endpoint:
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=hub_env(endpoint, tmp_path / "home"),
            capture_output=True,
            text=True,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[:2] == ["q_learning", str(16 * 3 * 20)]
    trained = json.loads((tmp_path / "run" / constants.TRAIN_CONFIG).read_text())
    assert trained["dataset"] == "org/dark-room" and (tmp_path / "run" / constants.FINAL_DIR).is_dir()


def _imports(module) -> tuple[set[str], set[str]]:
    """(modules of `from X import ...`, names of `import X`) anywhere in a module's source."""
    nodes = list(ast.walk(ast.parse(Path(module.__file__).read_text())))
    from_modules = {node.module for node in nodes if isinstance(node, ast.ImportFrom)}
    plain = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    return from_modules, plain


def test_the_format_module_never_imports_generation():
    """Layering: generate -> histories, never the reverse; no `import hf_ad` or CLI inside the package."""
    for module in (histories, generate):
        from_modules, plain = _imports(module)
        assert "hf_ad" not in plain and "hf_ad.cli" not in from_modules | plain
    assert "hf_ad.data.generate" not in _imports(histories)[0]
    assert "hf_ad.data.histories" in _imports(generate)[0]


def test_the_shipped_dataset_passes_full_verification():
    shipped = Path(__file__).parents[1] / "pretrained" / "darkroom-histories"
    metadata = validate_histories(shipped, verify=True)
    assert all(len(entry["sha256"]) == 64 for entry in metadata["shards"])


def test_a_missing_folder_is_named_not_taken_for_a_repo_id(tmp_path):
    missing = tmp_path / "no-such-histories"
    with pytest.raises(ValueError, match=r"neither a histories folder nor a hub dataset repo id"):
        load_histories(missing)


def test_regions_task_split_is_generated_recorded_and_reproduced(tmp_path):
    config, source = generate.parse_generate_args(
        [
            "--out",
            str(tmp_path / "regions"),
            "--task-split",
            "regions",
            "--episodes",
            "2",
            "--histories-per-task",
            "1",
        ]
    )
    folder = generate_histories(dataclasses.replace(config, tasks="all"), source, progress=False)
    metadata = histories.read_metadata(folder)
    train, test = task_split(constants.DARK_ROOM, kind="regions")
    assert metadata["task_split"]["kind"] == "regions" and metadata["task_split_kind"] == "regions"
    assert [tuple(t) for t in metadata["task_split"]["train"]] == train
    assert [tuple(t) for t in metadata["task_split"]["test"]] == test
    assert "--task-split regions" in metadata["command"]
    assert 'kind="regions"' in (folder / "README.md").read_text()
    with pytest.raises(ValueError, match="--task-split regions needs --env one of"):
        GenerateConfig(out=str(tmp_path / "x"), env=constants.DARK_KEY_TO_DOOR, task_split="regions")


def test_a_sample_is_a_complete_dataset_of_the_first_shards(folder, tmp_path):
    from hf_ad.data.sample import write_histories_sample

    whole = histories.read_metadata(folder)
    sample = write_histories_sample(folder, tmp_path / "sample", num_shards=1)
    assert [s["file"] for s in sample["shards"]] == [
        next(s["file"] for s in whole["shards"] if s["split"] == split) for split in ("train", "test")
    ]
    assert sample[constants.HISTORIES_SAMPLE_OF] == {"splits": whole["splits"], "num_shards": 4}
    assert validate_histories(tmp_path / "sample", verify=True) == sample
    dataset, _ = load_histories(tmp_path / "sample", split="train")
    first_shard = pq.read_table(folder / sample["shards"][0]["file"])
    assert dataset.num_rows == first_shard.num_rows == sample["splits"]["train"]["num_rows"]
    assert dataset["history_id"] == first_shard.column("history_id").to_pylist()
    train = sample["splits"]["train"]
    assert (train["num_tasks"], train["num_histories"], train["num_shards"]) == (SHARD, SHARD, 1)
    card = (tmp_path / "sample" / constants.DATASET_CARD).read_text()
    assert "is a **sample** of the dataset: 2 of its 4 parquet" in card
    assert f"{whole['splits']['train']['num_histories']} histories" in card


def test_a_sample_of_every_shard_counts_as_the_whole(folder, tmp_path):
    from hf_ad.data.sample import write_histories_sample

    whole = histories.read_metadata(folder)
    sample = write_histories_sample(folder, tmp_path / "sample", num_shards=10)
    assert sample["splits"] == whole["splits"] and sample["shards"] == whole["shards"]


@pytest.mark.parametrize("problem", ["not empty", "no shards"])
def test_a_bad_sample_request_is_named_and_writes_nothing(folder, tmp_path, problem):
    from hf_ad.data.sample import write_histories_sample

    out = tmp_path / "sample"
    out.mkdir()
    if problem == "not empty":
        (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty" if problem == "not empty" else "at least 1"):
        write_histories_sample(folder, out, num_shards=0 if problem == "no shards" else 1)
    assert sorted(p.name for p in out.iterdir()) == (["keep.txt"] if problem == "not empty" else [])
