"""The `hf-ad` command line: each subcommand is a thin call into the library.

Every subcommand parses its own run-config dataclass with `transformers.HfArgumentParser`, so
`hf-ad SUBCOMMAND --help` lists every field with its docstring help. A user error (a bad flag value,
a missing folder, an unreachable hub) prints one line `hf-ad COMMAND: error: ...` and exits with 2;
`hf-ad --debug COMMAND ...` shows the traceback instead. Nothing in hf_ad imports this module.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from accelerate import PartialState
from transformers import AutoConfig, HfArgumentParser

from hf_ad import cards, constants, hub
from hf_ad.command_line import FlagHelpFormatter
from hf_ad.configuration_rl2 import RL2Config
from hf_ad.data.generate import generate_histories, parse_generate_args
from hf_ad.data.histories import validate_histories
from hf_ad.demo import DemoConfig, run_demo
from hf_ad.evaluation import EvaluateConfig, evaluate, summary_lines
from hf_ad.experiments import EXPERIMENTS, ExperimentConfig, experiment_summary, run_experiment
from hf_ad.processes import current_processes
from hf_ad.rl2_training import RL2TrainConfig, train_rl2
from hf_ad.rl2_training import render_model_card as render_rl2_card
from hf_ad.training import TrainConfig, run_command, train
from hf_ad.video import VideoConfig, make_video

DEBUG_FLAG = "--debug"
# Errors that mean the user asked for something that cannot be done (a bad value; a missing file, folder
# or repo; an unreachable hub): one line, no traceback. transformers reports a missing model as OSError.
USER_ERRORS = (ValueError, OSError, hub.HubError)
USAGE_ERROR = 2  # the exit status of argparse's own usage errors

# name -> (one-line help, function taking the remaining argv). Filled below, one entry per module.
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int | None]]] = {}


def command(name: str, help: str):
    """Register `fn(argv)` as `hf-ad NAME`."""

    def register(fn: Callable[[list[str]], int | None]):
        COMMANDS[name] = (help, fn)
        return fn

    return register


def parse_dataclass(config_cls, argv: list[str], prog: str):
    """Parse `argv` into one `config_cls` instance (fields become --flags)."""
    (config,) = parse_dataclasses((config_cls,), argv, prog)
    return config


def parse_dataclasses(config_classes: tuple, argv: list[str], prog: str) -> tuple:
    """Parse `argv` into one instance of each of `config_classes` (their fields together are the flags)."""
    parser = HfArgumentParser(config_classes, prog=prog, formatter_class=FlagHelpFormatter)
    return tuple(parser.parse_args_into_dataclasses(args=argv))


def _usage() -> str:
    lines = [f"usage: hf-ad [{DEBUG_FLAG}] COMMAND [--help] [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help}" for name, (help, _) in COMMANDS.items()]
    lines += ["", f"{DEBUG_FLAG}: show the traceback of an error instead of one line"]
    return "\n".join(lines)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run `hf-ad ARGV`; returns the exit status (0 done, 2 a usage or user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hf-ad: unknown command {name!r}; expected one of {sorted(COMMANDS)}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return USAGE_ERROR
    try:
        return COMMANDS[name][1](rest) or 0
    except USER_ERRORS as error:
        if debug:
            raise
        print(
            f"hf-ad {name}: error: {_one_line(error)} (rerun with {DEBUG_FLAG} for details)", file=sys.stderr
        )
        return USAGE_ERROR


# --- subcommands (each one a few lines; the work happens in the library) ---------------------


@command("generate", "generate a learning-histories dataset (a hub dataset repo folder)")
def generate(argv: list[str]) -> int:
    config, source_config, push = parse_generate_args(argv, prog="hf-ad generate", extra=(DatasetPushArgs,))
    folder = generate_histories(config, source_config, progress=True)
    if current_processes().is_main:  # once, not once per process of `accelerate launch`
        print(f"histories written to {folder}")
        push.push("dataset", folder, default_repo_id=Path(config.out).resolve().name)
    return 0


def train_and_push(argv: list[str], prog: str) -> Path:
    """Parse `TrainConfig` and `ModelPushArgs` from `argv`, train, and publish `final/` when asked.

    The push happens after the final save and on the main process only (under `accelerate launch`, the
    others return once `final/` is written), like `transformers.Trainer`'s `push_to_hub`.
    """
    config, push = parse_dataclasses((TrainConfig, ModelPushArgs), argv, prog)
    final = train(config)
    if PartialState().is_main_process:
        push.push("model", final, default_repo_id=Path(config.output_dir).resolve().name)
    return final


@command(
    "train", "train an AD model on a histories dataset (several processes: accelerate launch -m hf_ad train)"
)
def train_command(argv: list[str]) -> int:
    final = train_and_push(argv, prog="hf-ad train")
    if PartialState().is_main_process:  # once, not once per process of `accelerate launch`
        print(f"final model written to {final}")
    return 0


@command("train-rl2", "train the RL² baseline (recurrent PPO across trials) on an env's training tasks")
def train_rl2_command(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    final = train_rl2(parse_dataclass(RL2TrainConfig, argv, prog="hf-ad train-rl2"))
    print(f"final model written to {final}")
    return 0


@command("evaluate", "AD vs ED vs the source from scratch on held-out tasks: results.json, plot (and card)")
def evaluate_command(argv: list[str]) -> int:
    """`hf-ad evaluate`. With `--push-to-hub --hub-model-id ID`, the evaluation folder's results.json, plots
    and videos go to the model repo `ID` under `evaluation/` (the model card links them there), and the
    repo's card is left as it is: a card changes only when asked, and it is rendered from the checkpoint
    folder by `hf-ad publish --model` (carrying the evaluation section evaluate wrote there), while the
    raw per-episode results are what a hub user cannot get otherwise."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config, push = parse_dataclasses((EvaluateConfig, ModelPushArgs), argv, prog="hf-ad evaluate")
    if push.push_to_hub and push.hub_model_id is None:
        raise ValueError("--push-to-hub needs --hub-model-id: the model repo that gets the evaluation folder")
    results = evaluate(config, progress=True)
    if current_processes().is_main:  # once, not once per process of `accelerate launch`
        print("\n".join(summary_lines(results)))
        push.push("evaluation", Path(config.out))
    return 0


@command(
    "experiment",
    "an experiment of docs/EVIDENCE.md (heuristic, ablation-context, ood, ...): results.json, plots",
)
def experiment_command(argv: list[str]) -> int:
    """`hf-ad experiment NAME [--flags]`: `hf_ad.experiments.EXPERIMENTS[NAME]` with an `ExperimentConfig`."""
    names = sorted(EXPERIMENTS)
    if argv and argv[0] in ("-h", "--help"):
        print(f"hf-ad experiment NAME [ARGS...], NAME one of {names}; ARGS (not every one applies to each):")
        parse_dataclass(ExperimentConfig, argv, prog="hf-ad experiment NAME")  # prints the flags and exits
    if not argv or argv[0].startswith("-"):
        raise ValueError(f"name the experiment first: hf-ad experiment NAME [ARGS...], NAME one of {names}")
    name = argv[0]
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {names}")
    config = parse_dataclass(ExperimentConfig, argv[1:], prog=f"hf-ad experiment {name}")
    results = run_experiment(name, config)
    print("\n".join(experiment_summary(results)))
    return 0


@command(
    "video", "replay.mp4 of a checkpoint on a held-out task: episode 1 next to the last, returns on screen"
)
def video_command(argv: list[str]) -> int:
    video, replay = make_video(parse_dataclass(VideoConfig, argv, prog="hf-ad video"), log=lambda _: None)
    print(
        f"{video}: episode 1 return {replay.returns[0]:g}, episode {len(replay.returns)} return "
        f"{replay.returns[-1]:g}"
    )
    return 0


# --- publish: the dataset, model and evaluation kinds, and the --push-to-hub flags -----------------------


@dataclass
class CommitOptions:
    """How a folder goes up (`hub.publish_folder`'s options); `hf-ad publish` and --push-to-hub fill it."""

    private: bool = False
    token: str | None = None
    revision: str | None = None
    commit_message: str | None = None
    create_pr: bool = False


@dataclass
class PublishConfig:
    """`hf-ad publish`: upload one local folder (a histories dataset or a checkpoint) to the hub."""

    repo_id: str = field(metadata={"help": "Hub repo to create or update: 'org/name', or 'name' for yours."})
    dataset: str | None = field(
        default=None, metadata={"help": "A histories dataset folder written by `hf-ad generate`."}
    )
    model: str | None = field(
        default=None, metadata={"help": "A checkpoint folder written by `hf-ad train` (its `final/`)."}
    )
    private: bool = field(default=False, metadata={"help": "Create the repo private (if it does not exist)."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    revision: str | None = field(
        default=None, metadata={"help": "Branch to commit to, created if missing (default: the main branch)."}
    )
    commit_message: str | None = field(
        default=None, metadata={"help": "Message of the commit (default: 'Upload with hf_ad')."}
    )
    create_pr: bool = field(
        default=False, metadata={"help": "Open a pull request with the commit instead of committing."}
    )
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Check everything and list the files that would be uploaded, with sizes; upload nothing."
        },
    )

    def __post_init__(self):
        if (self.dataset is None) == (self.model is None):
            given = [f"--{kind}" for kind in ("dataset", "model") if getattr(self, kind) is not None]
            raise ValueError(f"give exactly one of --dataset FOLDER or --model FOLDER, got {given or 'none'}")
        hub.check_repo_id(self.repo_id)

    @property
    def kind(self) -> str:
        """The repo type: `"dataset"` or `"model"`."""
        return "dataset" if self.dataset is not None else "model"

    def commit_options(self) -> CommitOptions:
        return CommitOptions(self.private, self.token, self.revision, self.commit_message, self.create_pr)


@dataclass
class PushArgs:
    """The --push-to-hub flags of generate, train and evaluate, named as transformers' `TrainingArguments`."""

    push_to_hub: bool = field(
        default=False,
        metadata={"help": "Publish the result to the hub when the run ends (as `hf-ad publish`)."},
    )
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the hub repo private."})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    hub_revision: str | None = field(
        default=None, metadata={"help": "Branch to push to, created if missing (default: the main branch)."}
    )

    REPO_ID_FIELD: ClassVar[str]  # the flag naming the repo: each kind's own

    @property
    def hub_id(self) -> str | None:
        return getattr(self, self.REPO_ID_FIELD)

    def __post_init__(self):
        if self.hub_id is not None:
            hub.check_repo_id(self.hub_id)  # a typo fails before the run, not after it

    def push(self, kind: str, folder: Path, default_repo_id: str | None = None) -> None:
        """Publish `folder` as `kind` (a key of `UPLOADS`) if --push-to-hub was given; prints the URL."""
        if not self.push_to_hub:
            return
        repo_id = self.hub_id or default_repo_id
        options = CommitOptions(self.hub_private_repo, self.hub_token, self.hub_revision, PUSH_MESSAGES[kind])
        print(upload(kind, folder, repo_id, options))


@dataclass
class ModelPushArgs(PushArgs):
    """--push-to-hub of `hf-ad train` (its `final/`) and `hf-ad evaluate` (the evaluation folder)."""

    hub_model_id: str | None = field(
        default=None,
        metadata={
            "help": "Model repo to push to: 'org/name', or 'name' for yours. Train: default the name of "
            "--output-dir; evaluate: required (its evaluation/ folder gets the results)."
        },
    )
    REPO_ID_FIELD: ClassVar[str] = "hub_model_id"


@dataclass
class DatasetPushArgs(PushArgs):
    """--push-to-hub of `hf-ad generate` (the histories folder)."""

    hub_dataset_id: str | None = field(
        default=None,
        metadata={
            "help": "Dataset repo to push to: 'org/name', or 'name' for yours; default: the --out name."
        },
    )
    REPO_ID_FIELD: ClassVar[str] = "hub_dataset_id"


PUSH_MESSAGES = {
    "dataset": "hf-ad generate --push-to-hub",
    "model": "End of training (hf-ad train --push-to-hub)",
    "evaluation": "hf-ad evaluate --push-to-hub",
}


def dataset_upload(folder: Path, repo_id: str) -> tuple[list[str], str]:
    """The files of a histories folder to upload (metadata, shards, images) and its card for `repo_id`.

    The folder is verified in full first (checksums and NaN/inf values): nothing damaged goes up."""
    metadata = validate_histories(folder, verify=True)
    files = [constants.HISTORIES_METADATA, *(shard["file"] for shard in metadata["shards"])]
    files += [
        png for png in (constants.LEARNING_CURVE_PNG, constants.SAMPLE_VIEWS_PNG) if (folder / png).is_file()
    ]
    return files, cards.render_dataset_card(folder, metadata, repo_id=repo_id)


def model_upload(folder: Path, repo_id: str) -> tuple[list[str], str]:
    """The files of a `final/` folder to upload (weights, config, remote code, run files, plots, the replay
    video) and its card for `repo_id` (evaluation kept): AD's, or the RL² baseline's (`hf-ad train-rl2`)."""
    cards.check_final_folder(folder)
    config = AutoConfig.from_pretrained(folder)  # the folder loads
    code = [name for name in constants.REMOTE_CODE + constants.RL2_CODE if (folder / name).is_file()]
    files = [*cards.FINAL_FOLDER_FILES, *code, *sorted(p.name for p in folder.glob("*.png"))]
    files += [name for name in (constants.REPLAY_MP4, constants.REPLAY_GIF) if (folder / name).is_file()]
    if config.model_type == RL2Config.model_type:
        return files, render_rl2_card(folder, repo_id=repo_id)
    return files, cards.render_model_card(folder, run_command(folder), repo_id=repo_id)


def evaluation_upload(folder: Path, repo_id: str) -> tuple[list[str], None]:
    """The files of an evaluation folder to upload into a model repo (`results.json`, plots, videos); no
    card: the model's card is rendered from its checkpoint folder (`model_upload`)."""
    if not (folder / constants.RESULTS_JSON).is_file():
        raise ValueError(f"{str(folder)!r} holds no {constants.RESULTS_JSON}: not an `hf-ad evaluate` folder")
    others = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in EVALUATION_MEDIA)
    return [constants.RESULTS_JSON, *others], None


PORTABLE_JSON = (constants.TRAIN_CONFIG, constants.HISTORIES_METADATA, constants.RESULTS_JSON)
EVALUATION_MEDIA = (".png", ".mp4", ".gif")  # the plots and replay videos of an evaluation folder
# kind -> (repo type, folder in the repo, `(folder, repo_id) -> (files, card)`)
UPLOADS: dict[str, tuple[str, str, Callable[[Path, str], tuple[list[str], str | None]]]] = {
    "dataset": ("dataset", "", dataset_upload),
    "model": ("model", "", model_upload),
    "evaluation": ("model", "evaluation", evaluation_upload),
}


def upload(kind: str, folder: Path, repo_id: str, options: CommitOptions, dry_run: bool = False) -> str:
    """Publish `folder` as `kind` (a key of `UPLOADS`) to `repo_id`; returns the commit (or PR) URL, or with
    `dry_run` the listing of what would be uploaded (nothing is)."""
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder")
    repo_type, path_in_repo, files_and_card = UPLOADS[kind]
    files, card = files_and_card(folder, repo_id)
    # The run's JSON records may hold local absolute paths: they go up portable (`cards.portable_data`).
    rewritten = {name: cards.portable_json(folder / name) for name in files if name in PORTABLE_JSON}
    if dry_run:
        listing = hub.upload_listing(folder, repo_id, repo_type, files, card, path_in_repo, rewritten)
        return dry_run_report(repo_id, repo_type, listing, options, with_card=card is not None)
    return hub.publish_folder(
        folder,
        repo_id,
        repo_type,
        files,
        card,
        path_in_repo=path_in_repo,
        rewritten=rewritten,
        **dataclasses.asdict(options),
    )


def dry_run_report(
    repo_id: str, repo_type: str, listing: list[tuple[str, int]], options: CommitOptions, with_card: bool
) -> str:
    """What `hf-ad publish --dry-run` prints: the target and the repo id the card was rendered for, then one
    line per file with its size in bytes."""
    target = f"{repo_type} repo {repo_id!r}" + ("" if "/" in repo_id else " (in your namespace)")
    branch = f" branch {options.revision!r}" if options.revision else " the main branch"
    how = f"as a pull request on{branch}" if options.create_pr else f"to{branch}"
    width = max(len(path) for path, _ in listing)
    card = f"; the card ({hub.CARD_FILES[repo_type]}) is rendered for {repo_id!r}" if with_card else ""
    lines = [f"dry run: would upload {len(listing)} files {how} of {target}{card}:"]
    lines += [f"  {path:<{width}}  {size:>12,} bytes" for path, size in listing]
    lines.append(f"  total {sum(size for _, size in listing):,} bytes. Nothing was uploaded.")
    return "\n".join(lines)


@command("publish", "upload a folder (--dataset or --model FOLDER) to the hub: its card, data and weights")
def publish(argv: list[str]) -> int:
    config = parse_dataclass(PublishConfig, argv, prog="hf-ad publish")
    folder = Path(getattr(config, config.kind))
    if not folder.is_dir():
        raise ValueError(f"--{config.kind} {str(folder)!r} is not a folder")
    print(upload(config.kind, folder, config.repo_id, config.commit_options(), dry_run=config.dry_run))
    return 0


@command("demo", "the shipped Dark Room AD model learning in context on held-out goals, vs ED and the source")
def demo(argv: list[str]) -> int:
    print(run_demo(parse_dataclass(DemoConfig, argv, prog="hf-ad demo")), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
