"""hf_ad's plots: mean return per episode with a ± 1 std band and reference levels, and grouped bars.

The dataset card's learning curve and the evaluation's returns plot are the band plot; the ablation
experiments set their arms' scores beside the paper's with the bar plot. It goes through
matplotlib's object API (`matplotlib.figure.Figure` + the Agg canvas), so library code never switches the
global backend or keeps pyplot state; matplotlib is imported when a plot is drawn (it costs ~0.8 s and
only plotting needs it). The PNG is written atomically through `hf_ad.files`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hf_ad.files import atomic_path


@dataclass
class Band:
    """One curve: `mean` ± `std` over `x`, and optionally a reference level drawn in the curve's colour.

    Args:
        x: `(E,)` x values (episodes).
        mean: `(E,)` mean per x.
        std: `(E,)` standard deviation per x (the band is mean ± std).
        label: legend label of the curve.
        reference: a level drawn as a dashed line in the curve's colour (e.g. the oracle of this split).
        reference_label: legend label of that level.
    """

    x: Sequence[float]
    mean: Sequence[float]
    std: Sequence[float]
    label: str
    reference: float | None = None
    reference_label: str | None = None


@dataclass
class Level:
    """A horizontal reference line in its own colour and style (e.g. the oracle over all curves)."""

    value: float
    label: str
    color: str
    linestyle: str


def save_band_plot(
    path: str | Path,
    bands: Sequence[Band],
    title: str,
    levels: Sequence[Level] = (),
    figsize: tuple[float, float] = (7, 4.2),
    dpi: int = 100,
    linewidth: float | None = None,
    legend_loc: str = "best",
    xlabel: str = "episode",
    ylabel: str = "return",
) -> None:
    """Draw `bands` (mean line + ± std band each) and `levels` as a PNG at `path`, written atomically.

    Args:
        path: the PNG file to write.
        bands: the curves, one colour each from matplotlib's default cycle.
        title: the axes title.
        levels: horizontal lines drawn after the bands.
        figsize: figure size in inches.
        dpi: resolution.
        linewidth: width of the mean lines (`None`: matplotlib's default).
        legend_loc: where the legend goes.
        xlabel, ylabel: the axes' labels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for band in bands:
        x, mean, std = np.asarray(band.x), np.asarray(band.mean), np.asarray(band.std)  # (E,) each
        (line,) = axes.plot(x, mean, label=band.label, linewidth=linewidth)
        axes.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        if band.reference is not None:
            axes.axhline(
                band.reference,
                color=line.get_color(),
                linestyle="--",
                linewidth=1,
                label=band.reference_label,
            )
    for level in levels:
        axes.axhline(
            level.value, color=level.color, linestyle=level.linestyle, linewidth=1, label=level.label
        )
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(loc=legend_loc, fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


@dataclass
class Bars:
    """One series of a grouped bar plot: one value per group, `None` where the series has none."""

    label: str
    values: Sequence[float | None]


def save_bar_plot(
    path: str | Path,
    groups: Sequence[str],
    series: Sequence[Bars],
    title: str,
    ylabel: str,
    xlabel: str = "",
    figsize: tuple[float, float] = (7, 4.2),
    dpi: int = 100,
) -> None:
    """Draw `series` as bars side by side in each of `groups` (a missing value leaves a gap) as a PNG at
    `path`, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / max(len(series), 1)
    for index, bars in enumerate(series):
        if len(bars.values) != len(groups):
            raise ValueError(f"series {bars.label!r} has {len(bars.values)} values for {len(groups)} groups")
        x = np.arange(len(groups)) + (index - (len(series) - 1) / 2) * width  # (G,)
        values = np.array([np.nan if v is None else v for v in bars.values], dtype=float)  # (G,)
        axes.bar(x, values, width=width, label=bars.label)
    axes.set_xticks(np.arange(len(groups)), list(groups))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


__all__ = ["Band", "Bars", "Level", "save_band_plot", "save_bar_plot"]
