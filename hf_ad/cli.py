"""The `hf-ad` command line: each subcommand is a thin call into the library.

Every subcommand parses its own run-config dataclass with `transformers.HfArgumentParser`, so
`hf-ad SUBCOMMAND --help` lists every field with its docstring help. A user error (a bad flag value,
a missing folder, an unreachable hub) prints one line `hf-ad COMMAND: error: ...` and exits with 2;
`hf-ad --debug COMMAND ...` shows the traceback instead. Nothing in hf_ad imports this module.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from hf_ad import cards, constants, hub
from hf_ad.configuration_ad import ADConfig
from hf_ad.data.generate import generate_histories, parse_generate_args
from hf_ad.data.histories import validate_histories
from hf_ad.demo import DemoConfig, run_demo
from hf_ad.evaluation import EvaluateConfig, evaluate, summary_lines
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
    parser = HfArgumentParser(config_cls, prog=prog)
    (config,) = parser.parse_args_into_dataclasses(args=argv)
    return config


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
    config, source_config = parse_generate_args(argv, prog="hf-ad generate")
    folder = generate_histories(config, source_config, progress=True)
    print(f"histories written to {folder}")
    return 0


@command("train", "train an AD model on a histories dataset, in one process (see scripts/train.py)")
def train_command(argv: list[str]) -> int:
    print(f"final model written to {train(parse_dataclass(TrainConfig, argv, prog='hf-ad train'))}")
    return 0


@command("evaluate", "AD vs ED vs the source from scratch on held-out tasks: results.json, plot, card")
def evaluate_command(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = evaluate(parse_dataclass(EvaluateConfig, argv, prog="hf-ad evaluate"))
    print("\n".join(summary_lines(results)))
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


# --- publish: the dataset and model kinds -------------------------------------------------------------


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
    private: bool = field(default=False, metadata={"help": "Create the repo private."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})

    def __post_init__(self):
        if (self.dataset is None) == (self.model is None):
            given = [f"--{kind}" for kind in ("dataset", "model") if getattr(self, kind) is not None]
            raise ValueError(f"give exactly one of --dataset FOLDER or --model FOLDER, got {given or 'none'}")
        hub.check_repo_id(self.repo_id)

    @property
    def kind(self) -> str:
        """The repo type: `"dataset"` or `"model"`."""
        return "dataset" if self.dataset is not None else "model"


def dataset_upload(folder: Path, repo_id: str) -> tuple[list[str], str]:
    """The files of a histories folder to upload (metadata, shards, plot) and its card for `repo_id`."""
    metadata = validate_histories(folder)
    files = [constants.HISTORIES_METADATA, *(shard["file"] for shard in metadata["shards"])]
    if (folder / constants.LEARNING_CURVE_PNG).is_file():
        files.append(constants.LEARNING_CURVE_PNG)
    return files, cards.render_dataset_card(folder, metadata, repo_id=repo_id)


def model_upload(folder: Path, repo_id: str) -> tuple[list[str], str]:
    """The files of a `final/` folder to upload (weights, config, remote code, run files, plots, the replay
    video) and its card for `repo_id` (evaluation kept)."""
    cards.check_final_folder(folder)
    ADConfig.from_pretrained(folder)  # the folder loads
    files = [*cards.FINAL_FOLDER_FILES, *constants.MODEL_CODE, *sorted(p.name for p in folder.glob("*.png"))]
    files += [name for name in (constants.REPLAY_MP4, constants.REPLAY_GIF) if (folder / name).is_file()]
    return files, cards.render_model_card(folder, run_command(folder), repo_id=repo_id)


UPLOADS: dict[str, Callable[[Path, str], tuple[list[str], str]]] = {
    "dataset": dataset_upload,
    "model": model_upload,
}


@command("publish", "upload a folder (--dataset or --model FOLDER) to the hub: its card, data and weights")
def publish(argv: list[str]) -> int:
    config = parse_dataclass(PublishConfig, argv, prog="hf-ad publish")
    folder = Path(getattr(config, config.kind))
    if not folder.is_dir():
        raise ValueError(f"--{config.kind} {str(folder)!r} is not a folder")
    files, card = UPLOADS[config.kind](folder, config.repo_id)
    url = hub.publish_folder(
        folder, config.repo_id, config.kind, files, card, private=config.private, token=config.token
    )
    print(url)
    return 0


@command("demo", "the shipped Dark Room AD model learning in context on held-out goals, vs ED and the source")
def demo(argv: list[str]) -> int:
    print(run_demo(parse_dataclass(DemoConfig, argv, prog="hf-ad demo")), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
