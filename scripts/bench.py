"""Benchmarks: speed targets live here, never in unit tests.

Usage:
    OMP_NUM_THREADS=1 python scripts/bench.py envs      # one section (envs, pixels, sources, ...)
    OMP_NUM_THREADS=1 python scripts/bench.py all       # every section

Each section is a module `scripts/bench_<name>.py` with `run() -> str` returning a Markdown block
(tables of the figures, with the baseline measured in the same run and the ratio against it). The
block replaces that section of BENCHMARKS.md, between `<!-- bench:NAME -->` markers, so the file
always holds the latest figures of every section.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sys
from pathlib import Path

import torch

from hf_ad.files import atomic_write_text

SECTIONS = ("envs", "pixels", "sources", "model", "train", "windows", "rollout")
# Not in `all`: minutes and gigabytes (`make bench-scale`); a CUDA GPU (`make bench-gpu`).
EXTRA_SECTIONS = ("scale", "gpu")
BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Written by `scripts/bench.py`; every ratio is against a baseline measured in the same run.\n"
)


def machine_line() -> str:
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return (
        f"_{datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={threads}, torch {torch.__version__}, Python {platform.python_version()}_"
    )


def replace_section(text: str, name: str, block: str) -> str:
    """Put `block` between the markers of section `name`, appending the section if it is new."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    body = f"{start}\n## {name}\n\n{machine_line()}\n\n{block.strip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + body + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + body + "\n"


def write_section(name: str, block: str) -> None:
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    atomic_write_text(BENCHMARKS_MD, replace_section(text, name, block))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("section", choices=(*SECTIONS, *EXTRA_SECTIONS, "all"))
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    names = SECTIONS if args.section == "all" else (args.section,)
    for name in names:
        block = importlib.import_module(f"bench_{name}").run()
        print(f"## {name}\n{block}\n")
        if not args.no_write:
            write_section(name, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
