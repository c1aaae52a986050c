"""The band plot: a PNG written atomically, without touching matplotlib's global backend."""

from __future__ import annotations

import matplotlib

from hf_ad.plotting import Band, Level, save_band_plot

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
