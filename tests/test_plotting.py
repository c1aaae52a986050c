"""The band plot: a PNG written atomically, without touching matplotlib's global backend."""

from __future__ import annotations

import matplotlib
import pytest

from hf_ad.plotting import Band, Bars, Level, save_band_plot, save_bar_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_band_plot_writes_a_png_and_leaves_the_backend_alone(tmp_path):
    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # a user's choice, which library code must not override
    try:
        bands = [
            Band([0, 1, 2], [0.0, 1.0, 2.0], [0.1, 0.2, 0.3], "AD", reference=2.5, reference_label="oracle")
        ]
        save_band_plot(tmp_path / "curve.png", bands, "title", [Level(0.5, "random", "gray", ":")])
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
    assert (tmp_path / "curve.png").read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]  # no temporary file left


def test_bar_plot_leaves_gaps_for_missing_values_and_checks_lengths(tmp_path):
    series = [Bars("ours", [0.5, 0.9]), Bars("the paper", [None, 0.92])]
    save_bar_plot(tmp_path / "bars.png", ["1", "4"], series, "title", "fraction")
    assert (tmp_path / "bars.png").read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError, match="series 'ours' has 1 values for 2 groups"):
        save_bar_plot(tmp_path / "bad.png", ["1", "4"], [Bars("ours", [0.5])], "title", "fraction")
