"""Print the README's results table: every shipped env's evaluation next to the paper's numbers.

    python scripts/results_table.py [--pretrained pretrained]

Every hf_ad number is read from a shipped `results.json` (`hf-ad evaluate`); the paper's are
shared/PAPER.md's headline results (Laskin et al., 2023). tests/test_release.py checks that README.md holds
this table as printed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
HEADER = (
    "| env | episodes: early / late | AD early | AD late | ED: first → last 10 | source: early → late "
    "| oracle | paper: AD early / late | paper: ED | paper: RL² |\n|---|---|---|---|---|---|---|---|---|---|"
)


@dataclass(frozen=True)
class EpisodicRow:
    """One env of the table with a return per episode: its evaluation folders and the paper's numbers."""

    name: str
    evaluation: str  # the folder of the 20-seed evaluation
    early: str  # summary ranges of the early and late columns
    late: str
    paper: tuple[str, str, str]  # AD early / late, ED, RL² (shared/PAPER.md)
    late_evaluation: str | None = None  # where `late` was measured, if not in `evaluation` (fewer seeds)


EPISODIC_ROWS = (
    EpisodicRow(
        "Dark Room",
        "evaluation",
        "episodes 191-200",
        "episodes 901-1000",
        ("9.7 / 14.1", "2.1 → 0.7", "14.7"),
    ),
    EpisodicRow(
        "Dark Room Hard",
        "evaluation-darkroom-hard",
        "episodes 191-200",
        "episodes 901-1000",
        ("0.41 / 0.68", "≈0.06", "0.70"),
    ),
    EpisodicRow(
        "Key-to-Door",
        "evaluation-key-to-door",
        "episodes 191-200",
        "episodes 901-1000",
        ("1.66 / 1.81", "0.18 → 0.58", "1.87"),
        late_evaluation="evaluation-key-to-door-1000",
    ),
    EpisodicRow(
        "Pixel Watermaze",
        "evaluation-pixel-watermaze",
        "episodes 41-50",
        "episodes 91-100",
        ("—", "—", "—"),  # the paper's Watermaze is DMLab's, not this MiniGrid room
    ),
)
BANDIT_PAPER = ("0.98 / 0.83 / 0.87", "0.48 / −0.47 / ≈0", "1.05 / −0.47 / 0.83")


def read_results(pretrained: Path, folder: str) -> dict:
    return json.loads((pretrained / folder / "results.json").read_text())


def mean_of(results: dict, method: str, key: str) -> float:
    return results["methods"][method]["summary"][key]["mean"]


def episodes_label(row: EpisodicRow, late_seeds: int) -> str:
    early, late = (key.removeprefix("episodes ") for key in (row.early, row.late))
    return f"{early} / {late}" + (f" ({late_seeds} seed)" if row.late_evaluation else "")


def episodic_row(pretrained: Path, row: EpisodicRow) -> str:
    results = read_results(pretrained, row.evaluation)
    late_results = read_results(pretrained, row.late_evaluation) if row.late_evaluation else results
    ed = results["methods"]["ED"]["mean"]  # per-episode means over tasks and seeds
    cells = [
        row.name,
        episodes_label(row, late_results["seeds"]),
        f"{mean_of(results, 'AD', row.early):.2f}",
        f"{mean_of(late_results, 'AD', row.late):.2f}",
        f"{sum(ed[:10]) / 10:.2f} → {sum(ed[-10:]) / 10:.2f}",
        f"{mean_of(results, 'source', row.early):.2f} → {mean_of(late_results, 'source', row.late):.2f}",
        f"{results['oracle']['mean']:.2f}",
        *row.paper,
    ]
    return "| " + " | ".join(cells) + " |"


def bandit_row(pretrained: Path) -> str:
    """The bandit's normalised scores on odd / even / uniform tasks (UCB1, the source, scores 1)."""
    results = read_results(pretrained, "evaluation-bandit")
    distributions = list(results["normalised"]["distributions"])

    def scores(method: str) -> str:
        normalised = results["methods"][method]["normalised"]
        return " / ".join(f"{normalised[d]['mean']:.2f}" for d in distributions)

    episodes = f"{results['episodes']} pulls, normalised ({' / '.join(distributions)})"
    cells = ["Bandit", episodes, "—", scores("AD"), scores("ED"), scores("source"), "—", *BANDIT_PAPER]
    return "| " + " | ".join(cells) + " |"


def results_table(pretrained: Path = PRETRAINED_DIR) -> str:
    rows = [episodic_row(pretrained, row) for row in EPISODIC_ROWS]
    return "\n".join([HEADER, *rows[:3], bandit_row(pretrained), *rows[3:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", type=Path, default=PRETRAINED_DIR, help="the shipped folders")
    print(results_table(parser.parse_args().pretrained))


if __name__ == "__main__":
    main()
