"""The card of a histories dataset: README.md (from `dataset_cards/histories.md`) and the learning curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hf_ad import constants
from hf_ad.hub import render_card

TEMPLATE = "dataset_cards/histories.md"
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


def plot_learning_curve(metadata: dict, path: Path) -> None:
    """Mean return (± 1 std over histories) per episode for each split, with the oracle's level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for split, curve in metadata["learning_curve"].items():
        episodes = np.asarray(curve["episode"])
        mean, std = np.asarray(curve["mean_return"]), np.asarray(curve["std_return"])
        (line,) = ax.plot(episodes, mean, label=f"{metadata['source']} ({split} tasks)")
        ax.fill_between(episodes, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        optimal = metadata["splits"][split]["optimal_return"]
        ax.axhline(optimal, color=line.get_color(), linestyle="--", linewidth=1, label=f"oracle ({split})")
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.set_title(f"{metadata['env_id']}: source learning curve")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)


def card_data_yaml(metadata: dict, features, size_bytes: int) -> str:
    """The card's YAML header: configs (data files per split), dataset_info (features, splits), tags."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

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
    dataset_size = sum(info["num_bytes"] for info in splits.values())
    info = DatasetInfo(
        features=features, splits=split_dict, download_size=size_bytes, dataset_size=dataset_size
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


def write_card(folder: Path, metadata: dict, features, repo_id: str | None = None) -> None:
    """Write `learning_curve.png` and `README.md` into a complete histories folder."""
    plot_learning_curve(metadata, folder / constants.LEARNING_CURVE_PNG)
    size_bytes = sum((folder / s["file"]).stat().st_size for s in metadata["shards"])
    columns = [
        {"name": name, "dtype": _feature_dtype(feature), "help": COLUMN_HELP[name]}
        for name, feature in features.items()
    ]
    splits = [{"name": name, **info} for name, info in metadata["splits"].items()]
    text = render_card(
        TEMPLATE,
        card_data=card_data_yaml(metadata, features, size_bytes),
        pretty_name=pretty_name(metadata),
        repo_id=repo_id or f"<org>/{Path(folder).resolve().name}",
        source=metadata["source"],
        env_id=metadata["env_id"],
        env_kwargs=metadata["env_kwargs"],
        keep_every=metadata["generator_config"]["keep_every"],
        columns=columns,
        splits=splits,
        size=_human_size(size_bytes),
        observation_space=metadata["observation_space"],
        action_space=metadata["action_space"],
        episode_length=metadata["episode_length"],
        num_train_tasks=len(metadata["task_split"]["train"]),
        num_test_tasks=len(metadata["task_split"]["test"]),
        task_split_seed=metadata["task_split"]["seed"],
        metadata_file=constants.HISTORIES_METADATA,
        generator_config={"source": metadata["source"], **metadata["generator_config"]},
        learning_curve_png=constants.LEARNING_CURVE_PNG,
        curve_table=curve_table(metadata),
        command=metadata["command"],
        hf_ad_version=metadata["hf_ad_version"],
    )
    tmp = folder / f".{constants.DATASET_CARD}.tmp"
    tmp.write_text(text)
    tmp.replace(folder / constants.DATASET_CARD)


def _feature_dtype(feature) -> str:
    """Short type name of a feature for the card: `int64`, `list<int64>[2]`, ..."""
    if hasattr(feature, "dtype"):
        return feature.dtype
    return f"list<{_feature_dtype(feature.feature)}>[{feature.length}]"
