"""Run configs and command lines: the exact command a card or results file records, and the `--help`
of the parsers that read them back.

A leaf module (standard library only), so that generation, training and evaluation can each
record how they were run without importing the CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex


def command_line(config, program: str, skip: tuple[str, ...] = (), keep: tuple[str, ...] = ()) -> str:
    """The command line that gives `config` back: `program` plus the flags that differ from the defaults.

    Args:
        config: a run-config dataclass instance (fields become `--field-name` flags).
        program: the command before the flags, e.g. `"hf-ad evaluate"`.
        skip: fields never written (e.g. `resume`).
        keep: fields always written, even at their defaults.
    """
    parts = shlex.split(program)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in skip or (value == f.default and f.name not in keep):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):  # differs from its default: `--flag` turns it on, `--flag false` off
            parts += [flag] if value else [flag, "false"]
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


class FlagHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each flag's default, except where there is none to show.

    Pass it as `HfArgumentParser(..., formatter_class=FlagHelpFormatter)`: argparse's default formatter
    appends "(default: None)" to required flags and to optional ones whose help already says what
    leaving them out means; this one appends the default only when it is a value.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


__all__ = ["FlagHelpFormatter", "command_line"]
