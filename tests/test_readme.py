"""Every command line of README.md runs as written.

Each line of the README's bash blocks is checked here: its program and subcommand exist and every flag
parses (`hf-ad` lines with the subcommand's own HfArgumentParser, `accelerate launch` lines with
accelerate's, which must fill in no default it would warn about). Then the `hf-ad` lines run, in README
order, in an empty folder: the same commands with tiny sizes appended (`TINY`; argparse keeps the last
value of a flag), the hub mocked for `publish`. Lines run elsewhere (`COVERED_ELSEWHERE`): `hf-ad demo`
by `make demo` and `tests/test_demo.py`; the `pip` lines and the `accelerate launch ... train` lines
by `tests/test_wheel.py`; multi-process generation and evaluation by `tests/test_histories.py` and
`tests/test_evaluation.py` (through `accelerate.debug_launcher`); `make` targets by CI.
"""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path

import pytest
from accelerate.commands import launch as accelerate_launch
from huggingface_hub import HfApi
from transformers import HfArgumentParser

from hf_ad import cli
from hf_ad.data.generate import parse_generate_args
from hf_ad.demo import DemoConfig
from hf_ad.evaluation import EvaluateConfig
from hf_ad.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
TINY_MODEL = ["--hidden-size", "16", "--num-hidden-layers", "1", "--num-attention-heads", "2"]
TINY_MODEL += ["--intermediate-size", "32", "--sliding-window", "10"]
TINY = {
    "generate": ["--histories-per-task", "1", "--episodes", "6"],
    "train": ["--max-steps", "2", "--batch-size", "4", "--report-to", "none", *TINY_MODEL],
    "evaluate": ["--episodes", "2", "--seeds", "1", "--num-tasks", "2"],
    "publish": [],
}
COVERED_ELSEWHERE = {"demo": "make demo, tests/test_demo.py", "pip": "tests/test_wheel.py"}


def bash_lines(markdown: str) -> list[str]:
    """The command lines of the ```bash blocks: continuations joined, comments and blank lines dropped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(" ".join(line.split()))
    return lines


def command_words(line: str) -> list[str]:
    """The words of a command line after its `NAME=value` environment assignments."""
    words = shlex.split(line)
    while words and ENV_ASSIGNMENT.match(words[0]):
        words.pop(0)
    return words


# The run config each `hf-ad` command parses (generate's comes with its source's: `parse_generate_args`).
CONFIGS = {
    "train": (TrainConfig, cli.ModelPushArgs),
    "evaluate": (EvaluateConfig, cli.ModelPushArgs),
    "publish": (cli.PublishConfig,),
    "demo": (DemoConfig,),
}


def unknown_flags(command: str, args: list[str]) -> list[str]:
    """The flags of `hf-ad COMMAND ARGS` that its parser does not know (argparse level: the configs are
    not built, so paths that exist only after earlier lines do not matter)."""
    if command == "generate":
        try:
            parse_generate_args(args, extra=(cli.DatasetPushArgs,))
        except ValueError as error:  # HfArgumentParser: "Some specified arguments are not used ..."
            return [str(error)]
        return []
    return HfArgumentParser(CONFIGS[command]).parse_known_args(args)[1]


def check_hf_ad_line(words: list[str]) -> None:
    command, args = words[0], words[1:]
    assert command in cli.COMMANDS, f"hf-ad has no command {command!r}"
    try:
        unknown = unknown_flags(command, args)
    except SystemExit:
        pytest.fail(f"`hf-ad {shlex.join(words)}` does not parse (see the usage error above)")
    assert unknown == [], f"`hf-ad {command}` has no flags {unknown}"


def check_accelerate_line(words: list[str], caplog) -> None:
    assert words[:2] == ["accelerate", "launch"], words
    args = accelerate_launch.launch_command_parser().parse_args(words[2:])
    assert args.module and args.training_script == "hf_ad", "launch the installed package: -m hf_ad"
    with caplog.at_level(logging.WARNING, logger=accelerate_launch.logger.name):
        accelerate_launch._validate_launch_command(args)
    assert "had defaults used instead" not in caplog.text, caplog.text
    check_hf_ad_line(args.training_script_args)


def check_make_line(words: list[str]) -> None:
    targets = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()
    assert words[1] in targets, f"the Makefile has no target {words[1]!r}"


def test_the_readme_has_the_workflows_command_lines():
    programs = [command_words(line)[:2] for line in bash_lines(README.read_text())]
    for expected in (
        ["hf-ad", "generate"],
        ["hf-ad", "train"],
        ["hf-ad", "evaluate"],
        ["accelerate", "launch"],
    ):
        assert expected in programs


def test_every_readme_command_line_names_real_commands_and_flags(caplog, monkeypatch):
    # As on a machine without `accelerate config`: only the line's own values count.
    monkeypatch.setattr(
        accelerate_launch, "default_config_file", str(ROOT / "no-such-accelerate-config.yaml")
    )
    for line in bash_lines(README.read_text()):
        words = command_words(line)
        if words[0] == "hf-ad":
            check_hf_ad_line(words[1:])
        elif words[0] == "accelerate":
            check_accelerate_line(words, caplog)
        elif words[0] == "make":
            check_make_line(words)
        else:
            assert words[0] in COVERED_ELSEWHERE, f"README line {line!r}: unknown program {words[0]!r}"


def test_the_checker_catches_a_flag_that_does_not_exist(caplog):
    with pytest.raises(AssertionError, match="no flags"):
        check_hf_ad_line(["train", "--dataset", "d", "--output-dir", "o", "--no-such-flag", "1"])
    words = command_words("accelerate launch -m hf_ad train --dataset d --output-dir o")
    with pytest.raises(AssertionError, match="had defaults used instead"):
        check_accelerate_line(words, caplog)


@pytest.fixture
def mocked_hub(monkeypatch):
    """Records the repos `hf-ad publish` creates and the files it commits; uploads nothing."""
    commits = {}

    class Commit:
        commit_url = "https://example/commit/1"
        pr_url = "https://example/pr/1"

    def create_commit(self, repo_id, operations, **kwargs):
        commits[repo_id] = sorted(op.path_in_repo for op in operations)
        return Commit()

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "create_branch", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return commits


def test_the_readmes_hf_ad_lines_run_in_order_from_an_empty_folder(tmp_path, monkeypatch, mocked_hub, capsys):
    from accelerate.state import AcceleratorState, GradientState

    monkeypatch.chdir(tmp_path)
    ran = []
    for line in dict.fromkeys(bash_lines(README.read_text())):  # each distinct line once, in order
        words = command_words(line)
        if words[0] != "hf-ad" or words[1] in COVERED_ELSEWHERE:
            continue
        AcceleratorState._reset_state(True)  # each line is a new process
        GradientState._reset_state()
        status = cli.main([*words[1:], *TINY[words[1]]])
        assert status == 0, f"{line!r} failed: {capsys.readouterr().err}"
        ran.append(words[1])
    assert {"generate", "train", "evaluate", "publish"} <= set(ran)
    err = capsys.readouterr().err  # quiet: no transformers bar from hf_ad's own loads and saves
    assert "Loading weights" not in err and "Writing model shards" not in err
    assert (tmp_path / "runs" / "eval" / "results.json").is_file()
    assert {"org/ad-darkroom", "org/darkroom-histories"} <= set(mocked_hub)
