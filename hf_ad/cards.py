"""Model and dataset cards: rendering them from the card templates, and editing their evaluation section.

A leaf module: it takes plain dicts and folders (a histories folder's metadata, a `final/` folder's JSON
files, an evaluation's results dict) and imports nothing of hf_ad's pipeline, so generation, training,
evaluation and publishing all call it without import cycles.

Card templates are Jinja2 Markdown files in the repo's `dataset_cards/` and `model_cards/` folders.
They are found next to the package in a source checkout or an editable install, and under
`<sys.prefix>/share/hf_ad/` in a wheel install (pyproject ships them as `data-files`).

Cards name local files only relatively: a repo id, a path relative to the working directory, or a
placeholder (`<org>/name`), never an absolute path of the machine that wrote them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCardData, EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from hf_ad import constants
from hf_ad.files import atomic_write_text, shipped_roots
from hf_ad.images import in_a_column, in_a_row, save_png, upscale
from hf_ad.plotting import Band, save_band_plot
from hf_ad.recipes import RECIPES, recipe_of_run

DATASET_CARD_TEMPLATE = "dataset_cards/histories.md"
MODEL_CARD_TEMPLATE = "model_cards/ad.md"
# The files of a `final/` folder the model card is rendered from.
FINAL_FOLDER_FILES = (
    constants.MODEL_CONFIG,
    constants.MODEL_WEIGHTS,
    constants.TRAIN_CONFIG,
    constants.TRAINER_STATE,
)
# The evaluation section `hf-ad evaluate` writes into a model card, between these markers.
CARD_SECTION = ("<!-- hf_ad:evaluation -->", "<!-- /hf_ad:evaluation -->")
# The replay video's block, inside the evaluation section (so a re-rendered card carries it over).
REPLAY_SECTION = ("<!-- hf_ad:replay -->", "<!-- /hf_ad:replay -->")
CITATION_HEADING = "## Citation"
EVAL_TASK_NAME = "In-context reinforcement learning (held-out tasks)"  # marks the results written here


# --- templates ---------------------------------------------------------------------------------------


def template_roots() -> list[Path]:
    """Folders searched for card templates, first match wins (`files.shipped_roots`)."""
    return shipped_roots()


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
    path = find_template(template_name)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template(path.name).render(**values)


# --- local references --------------------------------------------------------------------------------


def portable_path(path: str, fallback: str | None = None) -> str:
    """`path` as a card may show it: unchanged if relative (a repo id or a relative folder); relative to the
    working directory if inside it; else `fallback`, or only its last component (an absolute path means
    nothing on the hub and exposes the machine that wrote the card)."""
    if not os.path.isabs(path):
        return path
    resolved, cwd = Path(path), Path.cwd()
    if resolved.is_relative_to(cwd):
        return resolved.relative_to(cwd).as_posix()
    return fallback or resolved.name


def portable_command(command: str) -> str:
    """`command` with every absolute path argument made portable (`portable_path`)."""
    return shlex.join(portable_path(part) for part in shlex.split(command))


def portable_data(value: Any) -> Any:
    """JSON data with every absolute path made portable: values, dict keys, and arguments of commands."""
    if isinstance(value, dict):
        return {portable_data(key): portable_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [portable_data(item) for item in value]
    if not isinstance(value, str):
        return value
    if os.path.isabs(value):
        return portable_path(value)
    try:
        parts = shlex.split(value) if " " in value else []
    except ValueError:  # not a command line
        return value
    return portable_command(value) if any(os.path.isabs(part) for part in parts) else value


def portable_json(path: Path) -> bytes:
    """The JSON file at `path` as it may be published: absolute local paths made portable, the rest as is
    (a file without any is returned byte for byte)."""
    data = json.loads(path.read_text())
    portable = portable_data(data)
    return path.read_bytes() if portable == data else (json.dumps(portable, indent=2) + "\n").encode()


# --- dataset cards -----------------------------------------------------------------------------------

COLUMN_HELP = {
    constants.HISTORY_ID: "learning history (one learner on one task), unique in the dataset",
    constants.TASK: "the task the history was learned on (env-specific tuple)",
    constants.EPISODE: "episode index within the history (before subsampling)",
    constants.STEP: "step within the episode",
    constants.OBSERVATION: "observation the action was taken in",
    constants.ACTION: "the learner's action",
    constants.REWARD: "reward for that action",
    constants.TERMINATED: "the episode ended in a terminal state at this step",
    constants.TRUNCATED: "the episode was cut by its time limit at this step",
}
CURVE_TABLE_EPISODES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# The sample views of an image dataset: this many frames of an episode, evenly spaced, each pixel
# repeated SAMPLE_VIEW_SCALE times (nearest neighbour), SAMPLE_VIEW_GAP pixels apart.
SAMPLE_VIEW_FRAMES = 8
SAMPLE_VIEW_SCALE = 3
SAMPLE_VIEW_GAP = 4
SAMPLE_VIEW_BACKGROUND = (255, 255, 255)


def _human_size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _size_category(num_rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    bounds += [(10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((label for bound, label in bounds if num_rows < bound), "n>1T")


def _feature_dtype(feature) -> str:
    """Short type name of a feature for the card: `int64`, `list<int64>[2]`, ..."""
    if hasattr(feature, "dtype"):
        return feature.dtype
    return f"list<{_feature_dtype(feature.feature)}>[{feature.length}]"


def plot_learning_curve(metadata: dict, path: Path) -> None:
    """Mean return (± 1 std over histories) per episode for each split, with the oracle's level."""
    bands = [
        Band(
            x=curve["episode"],
            mean=curve["mean_return"],
            std=curve["std_return"],
            label=f"{metadata['source']} ({split} tasks)",
            reference=metadata["splits"][split]["optimal_return"],
            reference_label=f"oracle ({split})",
        )
        for split, curve in metadata["learning_curve"].items()
    ]
    title = f"{metadata['env_id']}: source learning curve"
    save_band_plot(path, bands, title, figsize=(6, 3.5), dpi=100, legend_loc="lower right")


def image_observations(metadata: dict) -> bool:
    """Whether a histories dataset stores RGB images: `observation` is `(H, W, 3)` nested lists of uint8."""
    feature = Features.from_dict(metadata["features"])[constants.OBSERVATION]
    lengths = []
    while hasattr(feature, "length"):  # a (nested) fixed-length `List`
        lengths.append(feature.length)
        feature = feature.feature
    return len(lengths) == 3 and lengths[-1] == 3 and getattr(feature, "dtype", None) == "uint8"


def sample_view_rows(folder: Path, metadata: dict) -> list[np.ndarray]:
    """`SAMPLE_VIEW_FRAMES` stored views, evenly spaced over the steps, of the first and of the last stored
    episode of the first history in the first shard: what the learner saw while untrained and once trained.

    Returns:
        One `(SAMPLE_VIEW_FRAMES, H, W, 3)` uint8 array per episode shown.
    """
    path = folder / metadata["shards"][0]["file"]
    index = pq.read_table(path, columns=[constants.HISTORY_ID, constants.EPISODE])
    history_ids = index.column(constants.HISTORY_ID).to_numpy()  # (N,)
    episodes = index.column(constants.EPISODE).to_numpy()  # (N,)
    in_history = history_ids == history_ids[0]  # (N,) a history's rows are contiguous, in time order
    first_rows = int(np.flatnonzero(in_history)[-1]) + 1  # only these are read: a shard may hold GBs
    reader = pq.ParquetFile(path).iter_batches(batch_size=first_rows, columns=[constants.OBSERVATION])
    batches = [next(reader)]
    while sum(batch.num_rows for batch in batches) < first_rows:  # a batch ends at its row group's end
        batches.append(next(reader))
    observations = pa.Table.from_batches(batches).column(constants.OBSERVATION)
    rows = []
    for episode in sorted({int(episodes[in_history].min()), int(episodes[in_history].max())}):
        steps = np.flatnonzero(in_history & (episodes == episode))  # (L,) its rows, step 0 first
        picked = steps[np.linspace(0, len(steps) - 1, SAMPLE_VIEW_FRAMES).round().astype(int)]
        rows.append(np.asarray(observations.take(picked).to_pylist(), dtype=np.uint8))  # (F, H, W, 3)
    return rows


def draw_sample_views(folder: Path, metadata: dict) -> np.ndarray:
    """The sample views as one image: one row of frames per episode shown, scaled up, on white."""
    rows = [
        in_a_row(
            [upscale(frame, SAMPLE_VIEW_SCALE) for frame in frames],
            SAMPLE_VIEW_GAP,
            0,
            SAMPLE_VIEW_BACKGROUND,
        )
        for frames in sample_view_rows(folder, metadata)
    ]
    return in_a_column(rows, SAMPLE_VIEW_GAP, SAMPLE_VIEW_BACKGROUND)


def dataset_card_data(metadata: dict, size_bytes: int) -> str:
    """The card's YAML header: configs (data files per split), dataset_info (features, splits), tags."""
    splits = metadata["splits"]
    card_data = DatasetCardData(
        license="apache-2.0",
        pretty_name=pretty_name(metadata),
        task_categories=["reinforcement-learning"],
        tags=["reinforcement-learning", "in-context-rl", "algorithm-distillation", "hf_ad"],
        size_categories=[_size_category(sum(s["num_rows"] for s in splits.values()))],
    )
    data_files = [{"split": split, "path": f"{constants.DATA_DIR}/{split}-*.parquet"} for split in splits]
    MetadataConfigs({"default": {"data_files": data_files}}).to_dataset_card_data(card_data)
    split_dict = SplitDict()
    for split, info in splits.items():
        split_dict.add(SplitInfo(name=split, num_bytes=info["num_bytes"], num_examples=info["num_rows"]))
    info = DatasetInfo(
        features=Features.from_dict(metadata["features"]),
        splits=split_dict,
        download_size=size_bytes,
        dataset_size=sum(info["num_bytes"] for info in splits.values()),
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    return card_data.to_yaml()


def pretty_name(metadata: dict) -> str:
    env_name = metadata["env_id"].split("/")[-1]
    return f"{env_name} learning histories ({metadata['source']})"


def curve_table(metadata: dict) -> list[dict]:
    """Rows of the card's learning-curve table: mean return of each split at a few episodes."""
    curves = metadata["learning_curve"]
    num_episodes = len(next(iter(curves.values()))["mean_return"])
    episodes = [e for e in CURVE_TABLE_EPISODES if e < num_episodes - 1] + [num_episodes - 1]
    return [
        {"episode": e, "values": [curve["mean_return"][e] for curve in curves.values()]} for e in episodes
    ]


def render_dataset_card(folder: str | Path, metadata: dict, repo_id: str | None = None) -> str:
    """The `README.md` card of a complete histories folder.

    Args:
        folder: the histories folder (its shards give the download size).
        metadata: its `hf_ad_histories.json` metadata.
        repo_id: the hub repo id shown in the usage snippet; default: `<org>/` + the folder's name.
    """
    folder = Path(folder)
    placeholder = f"<org>/{folder.resolve().name}"
    size_bytes = sum((folder / s["file"]).stat().st_size for s in metadata["shards"])
    features = Features.from_dict(metadata["features"])
    columns = [
        {"name": name, "dtype": _feature_dtype(feature), "help": COLUMN_HELP[name]}
        for name, feature in features.items()
    ]
    return render_card(
        DATASET_CARD_TEMPLATE,
        card_data=dataset_card_data(metadata, size_bytes),
        pretty_name=pretty_name(metadata),
        repo_id=portable_path(repo_id or placeholder, fallback=placeholder),
        source=metadata["source"],
        env_id=metadata["env_id"],
        env_kwargs=metadata["env_kwargs"],
        keep_every=metadata["generator_config"]["keep_every"],
        columns=columns,
        splits=[{"name": name, **info} for name, info in metadata["splits"].items()],
        size=_human_size(size_bytes),
        observation_space=metadata["observation_space"],
        action_space=metadata["action_space"],
        episode_length=metadata["episode_length"],
        num_train_tasks=len(metadata["task_split"]["train"]),
        num_test_tasks=len(metadata["task_split"]["test"]),
        task_split_seed=metadata["task_split"]["seed"],
        task_split_kind=metadata["task_split"].get("kind", "random"),
        metadata_file=constants.HISTORIES_METADATA,
        generator_config={"source": metadata["source"], **metadata["generator_config"]},
        learning_curve_png=constants.LEARNING_CURVE_PNG,
        sample_views_png=constants.SAMPLE_VIEWS_PNG
        if (folder / constants.SAMPLE_VIEWS_PNG).is_file()
        else None,
        sample_view_frames=SAMPLE_VIEW_FRAMES,
        curve_table=curve_table(metadata),
        command=portable_command(metadata["command"]),
        hf_ad_version=metadata["hf_ad_version"],
        sample_of=metadata.get(constants.HISTORIES_SAMPLE_OF),
    )


def write_dataset_card(folder: str | Path, metadata: dict, repo_id: str | None = None) -> None:
    """Write `learning_curve.png`, `sample_views.png` (image observations only: the Hub's viewer shows
    their uint8 lists as numbers) and the `README.md` card into a complete histories folder."""
    folder = Path(folder)
    plot_learning_curve(metadata, folder / constants.LEARNING_CURVE_PNG)
    if image_observations(metadata):
        save_png(folder / constants.SAMPLE_VIEWS_PNG, draw_sample_views(folder, metadata))
    atomic_write_text(folder / constants.DATASET_CARD, render_dataset_card(folder, metadata, repo_id))


# --- model cards -------------------------------------------------------------------------------------


def check_final_folder(folder: str | Path) -> Path:
    """`folder` as a `Path` if it holds the files a model card is rendered from.

    Raises:
        ValueError: `folder` is not a folder, or some of `FINAL_FOLDER_FILES` are missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder; give the final/ folder written by `hf-ad train`")
    missing = [name for name in FINAL_FOLDER_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"{str(folder)!r} is not a final/ folder written by `hf-ad train`: missing {missing}"
        )
    return folder


def _num_parameters(weights: Path) -> int:
    """Parameter count of a safetensors file, from its header (no tensor is loaded)."""
    with safe_open(weights, framework="np") as tensors:
        return sum(math.prod(tensors.get_slice(name).get_shape()) for name in tensors.keys())  # noqa: SIM118


DATASET_COMMAND_INTRO = "The training data was generated with"


def _dataset_command(dataset: str, previous_card: str | None) -> str | None:
    """The `hf-ad generate` command recorded in a local histories folder, if `dataset` is one; else the one
    the card showed before (a shipped folder re-rendered where its training data is not)."""
    metadata = Path(dataset) / constants.HISTORIES_METADATA
    if metadata.is_file():
        return json.loads(metadata.read_text()).get("command")
    shown = re.search(rf"{DATASET_COMMAND_INTRO}\n\n```\n(.+)\n```", previous_card or "")
    return shown.group(1) if shown else None


def recipe_note(env_id: str, train_config: dict) -> str | None:
    """What the card says of the recipe the run was trained with (`hf_ad.recipes.recipe_of_run`): its
    departures from the paper, and any setting of this run that is not the recipe's (`None`: the env has no
    recipe)."""
    if env_id not in RECIPES:
        return None
    name, recipe = recipe_of_run(env_id, train_config)
    changed = [  # None: the recipe's (runs recorded before the recipes: the same defaults)
        f"`{setting}` {train_config[setting]!r} (recipe: {value!r})"
        for setting, value in dataclasses.asdict(recipe.training).items()
        if train_config.get(setting) not in (None, value)
    ]
    which = "recipe" if name is None else f"earlier recipe `{name}`"
    note = f"Trained with hf_ad's {which} for `{env_id}` (`hf_ad/recipes.py`)"
    if changed:
        note += " but for " + ", ".join(changed)
    return f"{note}. Where the recipe departs from the paper's appendix, and why: {recipe.departures}"


def render_model_card(folder: str | Path, command: str, repo_id: str | None = None) -> str:
    """The `README.md` card of a `final/` folder, from its files alone; what `hf-ad evaluate` wrote is kept.

    The card is built from `config.json`, `model.safetensors`, `train_config.json` and
    `trainer_state.json`, so it can be re-rendered at any time (e.g. with the hub repo id). If the folder
    already has a card, its evaluation section and results are carried over (`carry_evaluation`).

    Args:
        folder: a `final/` folder written by `hf-ad train`.
        command: the command line that trained it (shown in the card).
        repo_id: the hub repo id (or relative folder) shown in the usage snippet; default: the run's
            `final/` folder (`portable_path`, else `<org>/` + the run's name).

    Raises:
        ValueError: a file of `FINAL_FOLDER_FILES` is missing.
    """
    folder = check_final_folder(folder)
    config = json.loads((folder / constants.MODEL_CONFIG).read_text())
    train_config = json.loads((folder / constants.TRAIN_CONFIG).read_text())
    state = json.loads((folder / constants.TRAINER_STATE).read_text())
    dataset = train_config["dataset"]
    # Recorded by `train`: whether --dataset was a local folder is known at train time only.
    dataset_id = train_config.get("hub_dataset_id")
    model_name = Path(train_config["output_dir"]).name or "ad"
    run_final = str(Path(train_config["output_dir"]) / constants.FINAL_DIR)
    shown_config = {key: portable_path(v) if isinstance(v, str) else v for key, v in train_config.items()}
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        pipeline_tag="reinforcement-learning",
        tags=["reinforcement-learning", "in-context-rl", "algorithm-distillation", "hf_ad", config["env_id"]],
        datasets=[dataset_id] if dataset_id else None,
        model_name=model_name,
    )
    previous = folder / constants.MODEL_CARD
    previous_card = previous.read_text() if previous.is_file() else None
    dataset_command = _dataset_command(dataset, previous_card)
    card = render_card(
        MODEL_CARD_TEMPLATE,
        card_data=card_data.to_yaml(),
        model_name=model_name,
        repo_id=portable_path(repo_id or run_final, fallback=f"<org>/{model_name}"),
        config=config,
        num_parameters=_num_parameters(folder / constants.MODEL_WEIGHTS),
        dataset=dataset_id or portable_path(dataset),
        dataset_url=f"/datasets/{dataset_id}" if dataset_id else None,  # the hub's own page of it
        evaluated=previous_card is not None and has_evaluation(previous_card),
        command=portable_command(command),
        dataset_command=portable_command(dataset_command) if dataset_command else None,
        dataset_command_intro=DATASET_COMMAND_INTRO,
        recipe_note=recipe_note(config["env_id"], train_config),
        train_config=shown_config,
        train_config_json=json.dumps(shown_config, indent=2, sort_keys=True),
        state=state,
        hf_ad_version=constants.VERSION,
    )
    return carry_evaluation(previous_card, card) if previous_card is not None else card


def write_model_card(folder: str | Path, command: str, repo_id: str | None = None) -> str:
    """Render the model card of a `final/` folder (`render_model_card`) into its `README.md`; returns it."""
    card = render_model_card(folder, command, repo_id)
    atomic_write_text(Path(folder) / constants.MODEL_CARD, card)
    return card


# --- the evaluation section of a model card -----------------------------------------------------------


def method_label(results: dict, method: str) -> str:
    """How cards name `method` of an evaluation: its label in `results.json` ("RL²" for `"RL2"`)."""
    return results["methods"].get(method, {}).get("label", method)


def evaluation_section(results: dict, method: str, own: dict) -> str:
    """The Markdown evaluation section of a checkpoint's card (between `CARD_SECTION` markers).

    Args:
        results: an evaluation's `results.json` dict.
        method: the checkpoint's method in it (`"AD"`, `"ED"` or `"RL2"`; its rows carry the method's label).
        own: the checkpoint's own curve stats (`results["per_checkpoint"][method][path]`).
    """
    labels = results["ranges"]
    name = method_label(results, method)
    header = "| method | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"

    def row(name: str, stats: dict) -> str:
        cells = [
            f"{stats['summary'][label]['mean']:.2f} ± {stats['summary'][label]['std']:.2f}"
            for label in labels
        ]
        return f"| {name} (n={stats['n']}) | " + " | ".join(cells) + " |\n"

    rows = row(f"{name}, this checkpoint", own)
    for key, stats in results["methods"].items():
        if key != method or len(stats.get("checkpoints", [])) > 1:
            rows += row(stats["label"] if key != method else f"{name}, all checkpoints", stats)
    for key, name in (("oracle", "oracle"), ("random", "random policy")):
        rows += f"| {name} | " + " | ".join(f"{results[key]['mean']:.2f}" for _ in labels) + " |\n"
    sample = "sampled" if results["sample"] else "greedy"
    intro = (
        f"Return per episode on {len(results['tasks'])} held-out tasks of `{results['env_id']}`, "
        f"{results['seeds']} evaluation seeds per checkpoint, {results['episodes']} episodes, "
        f"{sample} actions, "
        "the context filled by the agent itself. Mean ± std over runs (n runs; one run = one checkpoint and "
        "one seed, scored by its mean over the tasks). Measured by:\n\n"
        f"```\n{portable_command(results['command'])}\n```\n\n"
    )
    normalised = normalised_table(results, method, own) if "normalised" in results else ""
    return f"{CARD_SECTION[0]}\n## Evaluation\n\n{intro}{header}{rows}{normalised}{CARD_SECTION[1]}"


def normalised_table(results: dict, method: str, own: dict) -> str:
    """The Markdown table of the paper's normalised bandit scores (`results["normalised"]`): one row per
    method, one column per task distribution, mean ± std over runs."""
    summary = results["normalised"]
    distributions = list(summary["distributions"])
    header = (
        "| method | "
        + " | ".join(f"`{d}`" for d in distributions)
        + " |\n|---|"
        + "---|" * len(distributions)
    )

    def row(name: str, scores: dict) -> str:
        cells = [f"{scores[d]['mean']:.2f} ± {scores[d]['std']:.2f}" for d in distributions]
        return f"| {name} (n={scores[distributions[0]]['n']}) | " + " | ".join(cells) + " |\n"

    rows = row(f"{method}, this checkpoint", own["normalised"])
    for key, stats in results["methods"].items():
        if "normalised" in stats and (key != method or len(stats.get("checkpoints", [])) > 1):
            rows += row(
                stats["label"] if key != method else f"{method}, all checkpoints", stats["normalised"]
            )
    rows += "| random policy | " + " | ".join("0.00" for _ in distributions) + " |\n"
    tasks = ", ".join(f"{v['tasks']} `{d}`" for d, v in summary["distributions"].items())
    return (
        f"\nNormalised score as in the paper, `{summary['formula']}`, with `r` a run's mean return per "
        f"episode over {summary['episodes']} episodes and the source ({summary['reference']}, learning from "
        f"scratch) as the reference, on {tasks} tasks (`hf_ad.envs.sample_bandit_tasks`):\n\n{header}\n{rows}"
    )


def _eval_results(results: dict, method: str, own: dict) -> list[EvalResult]:
    """The `model-index` entries of one checkpoint: its mean return over each summary range, and its
    normalised score on each task distribution where measured (the bandit)."""
    settings = {key: results[key] for key in ("episodes", "seeds", "seed", "sample")}
    return [
        EvalResult(
            task_type="reinforcement-learning",
            task_name=EVAL_TASK_NAME,
            dataset_type=results["env_id"],
            dataset_name=f"{results['env_id']} held-out tasks",
            dataset_split="test",
            metric_type="mean_reward",
            metric_name=f"Mean return, {label} ({method_label(results, method)})",
            metric_value=round(own["summary"][label]["mean"], 4),
            metric_args={**settings, "num_tasks": len(results["tasks"]), "runs": own["n"]},
        )
        for label in results["ranges"]
    ] + [
        EvalResult(
            task_type="reinforcement-learning",
            task_name=EVAL_TASK_NAME,
            dataset_type=results["env_id"],
            dataset_name=f"{results['env_id']} {distribution} tasks",
            dataset_split=distribution,
            metric_type="normalized_score",
            metric_name=f"Normalised score, {distribution} tasks ({method_label(results, method)})",
            metric_value=round(scores["mean"], 4),
            metric_args={**settings, "num_tasks": info["tasks"], "runs": scores["n"]},
        )
        for distribution, scores in own.get("normalised", {}).items()
        for info in [results["normalised"]["distributions"][distribution]]
    ]


def update_model_card(folder: str | Path, results: dict, method: str, own: dict) -> None:
    """Fill the `model-index` of `folder/README.md` with this checkpoint's numbers; add the evaluation table.

    Earlier results written here (task name `EVAL_TASK_NAME`) are replaced; other eval results are kept.
    A folder without a card gets a minimal one.

    Args:
        folder: a local checkpoint folder.
        results: the evaluation's `results.json` dict.
        method: the checkpoint's method (`"AD"` or `"ED"`).
        own: the checkpoint's own curve stats (`results["per_checkpoint"][method][path]`).
    """
    folder = Path(folder)
    data, text = _load_card(folder)
    kept = [r for r in (data.eval_results or []) if r.task_name != EVAL_TASK_NAME]
    data.eval_results = kept + _eval_results(results, method, own)
    atomic_write_text(
        folder / constants.MODEL_CARD,
        _card_with_section(data, text, evaluation_section(results, method, own)),
    )


def _load_card(folder: Path) -> tuple[ModelCardData, str]:
    """The YAML data and the text of `folder`'s card; a folder without a card gets a minimal one."""
    path = folder / constants.MODEL_CARD
    if path.is_file():
        card = ModelCard.load(path)
        data, text = card.data, card.text
    else:
        data, text = ModelCardData(), f"# {folder.name}\n"
    data.model_name = data.model_name or folder.name
    return data, text


def _place_block(text: str, block: str, markers: tuple[str, str], anchor: str) -> str:
    """`text` with `block` in place of the one between `markers`, else just before `anchor`, else at the
    end."""
    if markers[0] in text and markers[1] in text:
        head, rest = text.split(markers[0], 1)
        return head + block + rest.split(markers[1], 1)[1]
    if anchor in text:
        head, rest = text.split(anchor, 1)
        return head + block + "\n\n" + anchor + rest
    return text.rstrip() + "\n\n" + block + "\n"


def _card_with_section(data: ModelCardData, text: str, section: str) -> str:
    """A card of `data` and `text` with the evaluation `section` in place of any earlier one (the first one
    goes before the citation of hf_ad's card template)."""
    text = _place_block(text, section, CARD_SECTION, CITATION_HEADING)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{text}"))


def has_evaluation(card: str) -> bool:
    """Whether `card` holds the evaluation section `hf-ad evaluate` writes."""
    return CARD_SECTION[0] in card and CARD_SECTION[1] in card


def replay_block(file_name: str, caption: str) -> str:
    """The card's replay between `REPLAY_SECTION` markers: `caption`, then the video `file_name` of the repo
    (an mp4 as an HTML `<video>` player, a GIF as an image)."""
    if file_name.endswith(".mp4"):
        media = f'<video src="{file_name}" controls autoplay loop muted playsinline></video>'
    else:
        media = f"![replay]({file_name})"
    return f"{REPLAY_SECTION[0]}\n### Replay\n\n{caption}\n\n{media}\n{REPLAY_SECTION[1]}"


def embed_replay(folder: str | Path, file_name: str, caption: str) -> None:
    """Show the replay video `file_name` (a file in `folder`) in `folder/README.md`.

    The block replaces an earlier replay; the first one goes at the end of the evaluation section (where a
    re-rendered card carries it over), else before the citation, else at the end. A folder without a card
    gets a minimal one.

    Args:
        folder: a local checkpoint folder.
        file_name: the video's name in the folder, e.g. `constants.REPLAY_MP4`.
        caption: what the video shows (Markdown).

    Raises:
        ValueError: `folder/file_name` does not exist.
    """
    folder = Path(folder)
    if not (folder / file_name).is_file():
        raise ValueError(f"{str(folder / file_name)!r} does not exist: write the video before embedding it")
    data, text = _load_card(folder)
    anchor = CARD_SECTION[1] if CARD_SECTION[1] in text else CITATION_HEADING
    block = replay_block(file_name, caption)
    if REPLAY_SECTION[0] not in text:  # the first replay: a blank line ends the table above it
        block = "\n" + block
    text = _place_block(text, block, REPLAY_SECTION, anchor)
    atomic_write_text(folder / constants.MODEL_CARD, str(ModelCard(f"---\n{data.to_yaml()}\n---\n{text}")))


def carry_evaluation(old_card: str, new_card: str) -> str:
    """`new_card` (a re-rendered card) with the evaluation section and results that `old_card` had.

    Lets a checkpoint's card be re-rendered (e.g. for a hub repo id) without losing what `hf-ad evaluate`
    measured.
    """
    if not has_evaluation(old_card):
        return new_card
    old = ModelCard(old_card)
    section = CARD_SECTION[0] + old.text.split(CARD_SECTION[0], 1)[1].split(CARD_SECTION[1], 1)[0]
    new = ModelCard(new_card)
    kept = [r for r in (new.data.eval_results or []) if r.task_name != EVAL_TASK_NAME]
    measured = [r for r in (old.data.eval_results or []) if r.task_name == EVAL_TASK_NAME]
    new.data.eval_results = kept + measured or None
    return _card_with_section(new.data, new.text, section + CARD_SECTION[1])


__all__ = [
    "CARD_SECTION",
    "EVAL_TASK_NAME",
    "REPLAY_SECTION",
    "carry_evaluation",
    "check_final_folder",
    "embed_replay",
    "evaluation_section",
    "find_template",
    "has_evaluation",
    "portable_command",
    "portable_path",
    "render_card",
    "render_dataset_card",
    "render_model_card",
    "replay_block",
    "update_model_card",
    "write_dataset_card",
    "write_model_card",
]
