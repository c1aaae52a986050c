"""Pixel images as numpy arrays: nearest-neighbour upscaling, images in a row or a column, a PNG file.

A leaf module (numpy, Pillow, `hf_ad.files`): the replay video (`hf_ad.video`) and the dataset card's
sample views (`hf_ad.cards`) both lay out small env images with it. Images are `(H, W, 3)` uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hf_ad.files import atomic_path


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """`image` with each pixel repeated `factor` x `factor` times (nearest neighbour: no blurred edges)."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)  # (factor * H, factor * W, 3)


def in_a_row(
    images: Sequence[np.ndarray],
    gap: int,
    border: int = 0,
    background: tuple[int, int, int] = (0, 0, 0),
    even: bool = False,
) -> np.ndarray:
    """`images` left to right, top-aligned on a `background` canvas, `gap` pixels apart, `border` around.

    Args:
        images: `(H_i, W_i, 3)` uint8 images; the row is as tall as the tallest.
        gap: pixels between two neighbours.
        border: pixels around the row.
        background: RGB colour of the canvas.
        even: round the height and width up to even numbers (H.264 needs them).
    """
    height = max(image.shape[0] for image in images) + 2 * border
    width = sum(image.shape[1] for image in images) + (len(images) - 1) * gap + 2 * border
    if even:
        height, width = height + height % 2, width + width % 2
    canvas = np.empty((height, width, 3), dtype=np.uint8)  # (H, W, 3)
    canvas[:] = background
    left = border
    for image in images:
        canvas[border : border + image.shape[0], left : left + image.shape[1]] = image
        left += image.shape[1] + gap
    return canvas


def in_a_column(
    images: Sequence[np.ndarray], gap: int, background: tuple[int, int, int] = (0, 0, 0)
) -> np.ndarray:
    """`images` top to bottom, left-aligned, `gap` pixels apart (`in_a_row` turned on its side)."""
    turned = [image.transpose(1, 0, 2) for image in images]  # (W_i, H_i, 3)
    return in_a_row(turned, gap, background=background).transpose(1, 0, 2)  # (H, W, 3)


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write an `(H, W, 3)` uint8 image as a PNG at `path`, atomically."""
    with atomic_path(Path(path)) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
