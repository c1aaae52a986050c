"""The `hf-ad` command line: each subcommand is a thin call into the library.

Every subcommand parses its own run-config dataclass with `transformers.HfArgumentParser`, so
`hf-ad SUBCOMMAND --help` lists every field with its docstring help.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

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
    from transformers import HfArgumentParser

    parser = HfArgumentParser(config_cls, prog=prog)
    (config,) = parser.parse_args_into_dataclasses(args=argv)
    return config


def _usage() -> str:
    lines = ["usage: hf-ad COMMAND [--help] [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help}" for name, (help, _) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hf-ad: unknown command {name!r}; expected one of {sorted(COMMANDS)}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    return COMMANDS[name][1](rest) or 0


# --- subcommands (each one a few lines; the work happens in the library) ---------------------


@command("generate", "generate a learning-histories dataset (a hub dataset repo folder)")
def generate(argv: list[str]) -> int:
    from hf_ad.data.generate import generate_histories, parse_generate_args

    config, source_config = parse_generate_args(argv, prog="hf-ad generate")
    folder = generate_histories(config, source_config, progress=True)
    print(f"histories written to {folder}")
    return 0


@command("train", "train an AD model on a histories dataset, in one process (see scripts/train.py)")
def train(argv: list[str]) -> int:
    from hf_ad.training import TrainConfig, train

    print(f"final model written to {train(parse_dataclass(TrainConfig, argv, prog='hf-ad train'))}")
    return 0


@command("evaluate", "AD vs ED vs the source from scratch on held-out tasks: results.json, plot, card")
def evaluate(argv: list[str]) -> int:
    import logging

    from hf_ad.evaluation import EvaluateConfig, evaluate, summary_lines

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = evaluate(parse_dataclass(EvaluateConfig, argv, prog="hf-ad evaluate"))
    print("\n".join(summary_lines(results)))
    return 0


@command("publish", "upload a folder (--dataset or --model FOLDER) to the hub: create_repo + upload_folder")
def publish(argv: list[str]) -> int:
    from hf_ad import hub

    print(hub.publish(parse_dataclass(hub.PublishConfig, argv, prog="hf-ad publish")))
    return 0


@command("demo", "the shipped Dark Room AD model learning in context on held-out goals, vs ED and the source")
def demo(argv: list[str]) -> int:
    from hf_ad.demo import DemoConfig, run_demo

    print(run_demo(parse_dataclass(DemoConfig, argv, prog="hf-ad demo")), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
