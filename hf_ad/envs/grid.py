"""What the grid envs share: the action set, moves, input checks and drawing.

Coordinates are `(x, y)` with `(0, 0)` the top-left cell, `x` growing to the right and `y` growing
downwards (the way a terminal prints rows). A cell's flat index is `y * size + x`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Action order follows the paper's list (left, right, up, down, no-op).
LEFT, RIGHT, UP, DOWN, NOOP = range(5)
NUM_ACTIONS = 5
ACTION_NAMES = ("left", "right", "up", "down", "no-op")
ACTION_DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))  # (dx, dy) per action

# Terminal drawing: two characters per cell so the room looks about square.
EMPTY, WALL = ".", "#"
PATH_ARROWS = {(-1, 0): "<", (1, 0): ">", (0, -1): "^", (0, 1): "v", (0, 0): "o"}

# rgb_array drawing.
CELL_PIXELS = 16
COLORS = {
    "floor": (40, 40, 48),
    "wall": (110, 110, 120),
    "agent": (230, 60, 60),
    "goal": (60, 200, 90),
    "key": (240, 200, 40),
    "door": (70, 130, 230),
    "trail": (75, 75, 110),  # cells the agent visited this episode (`rgb_array` of a single env)
}


def check_size(size: object) -> int:
    """Return `size` as an int, or raise `ValueError` unless it is an integer >= 2."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    return int(size)


def as_items(values: object, what: str, expected: str) -> tuple:
    """`values` (a sequence or an array) as a flat tuple; `ValueError` says `what` must be `expected`."""
    if isinstance(values, np.ndarray):
        return tuple(values.reshape(-1).tolist())
    try:
        return tuple(values)
    except TypeError:
        raise ValueError(f"{what} must be a sequence of {expected}, got {values!r}") from None


def check_cells(values: object, size: int, num_cells: int, what: str) -> tuple[int, ...]:
    """Validate `values` as `num_cells` flattened `(x, y)` cells inside a `size` x `size` grid.

    Returns the values as a tuple of Python ints; raises `ValueError` naming the bad value and what is
    allowed (wrong length, a non-integer entry, or a coordinate outside `0..size-1`).
    """
    length = 2 * num_cells
    try:
        items = (
            tuple(np.asarray(values).reshape(-1).tolist())
            if isinstance(values, np.ndarray)
            else tuple(values)
        )
    except TypeError:
        raise ValueError(f"{what} must be a sequence of {length} integers, got {values!r}") from None
    if len(items) != length:
        raise ValueError(f"{what} must have {length} integers, got {len(items)}: {values!r}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise ValueError(f"{what} must hold integers, got {item!r} in {values!r}")
        if not 0 <= item < size:
            raise ValueError(
                f"{what} {values!r} is outside the {size}x{size} grid: coordinates must be in 0..{size - 1}"
            )
    return tuple(int(item) for item in items)


def check_render_mode(render_mode: str | None, render_modes: Sequence[str]) -> str | None:
    """Return `render_mode`, or raise `ValueError` unless it is `None` or one of `render_modes`."""
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"render_mode must be one of {list(render_modes)} or None, got {render_mode!r}")
    return render_mode


def check_action(action: object, num_actions: int = NUM_ACTIONS) -> int:
    """Return `action` as an int, or raise `ValueError` unless it is an integer in `0..num_actions-1`."""
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action.item()
    if isinstance(action, bool) or not isinstance(action, int | np.integer) or not 0 <= action < num_actions:
        raise ValueError(f"action must be an integer in 0..{num_actions - 1}, got {action!r}")
    return int(action)


def check_actions(actions: object, num_envs: int, num_actions: int = NUM_ACTIONS) -> np.ndarray:
    """Return a batch of actions as an `(num_envs,)` int64 array, or raise `ValueError`."""
    array = np.asarray(actions)
    if array.shape != (num_envs,) or array.dtype.kind not in "iu":
        raise ValueError(f"actions must be {num_envs} integers in 0..{num_actions - 1}, got {actions!r}")
    array = array.astype(np.int64, copy=False)
    # One reduction catches both ends: negative values read as unsigned are huge.
    if array.view(np.uint64).max() >= num_actions:
        bad = array[(array < 0) | (array >= num_actions)]
        raise ValueError(f"actions must be integers in 0..{num_actions - 1}, got {bad.tolist()}")
    return array


def move(x: int, y: int, action: int, size: int) -> tuple[int, int]:
    """The cell reached from `(x, y)` by `action`; walking into a wall leaves the agent in place."""
    dx, dy = ACTION_DELTAS[action]
    return min(max(x + dx, 0), size - 1), min(max(y + dy, 0), size - 1)


def next_cell_table(size: int) -> np.ndarray:
    """`(size * size, NUM_ACTIONS)` int64 table: flat index of the cell each action leads to."""
    xs, ys = np.meshgrid(np.arange(size), np.arange(size))  # (size, size) each, row = y
    x, y = xs.reshape(-1), ys.reshape(-1)  # (n,)
    deltas = np.array(ACTION_DELTAS)  # (A, 2)
    nx = np.clip(x[:, None] + deltas[None, :, 0], 0, size - 1)  # (n, A)
    ny = np.clip(y[:, None] + deltas[None, :, 1], 0, size - 1)  # (n, A)
    return (ny * size + nx).astype(np.int64)


def cell_coordinates(size: int) -> np.ndarray:
    """`(size * size, 2)` int64 table: the `(x, y)` of each flat cell index."""
    cells = np.arange(size * size, dtype=np.int64)
    return np.stack([cells % size, cells // size], axis=1)


def cell_from_uniform(u: float, size: int) -> tuple[int, int]:
    """The cell `floor(u * size**2)` for a uniform `u` in [0, 1): how the envs draw a random cell."""
    index = int(u * size * size)
    return index % size, index // size


def greedy_action(position: Sequence[int], target: Sequence[int]) -> int:
    """A shortest-path action from `position` to `target`: along x first, then y, then no-op."""
    (x, y), (tx, ty) = position, target
    if x != tx:
        return LEFT if tx < x else RIGHT
    if y != ty:
        return UP if ty < y else DOWN
    return NOOP


def greedy_actions(positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`greedy_action` for a batch: `(B,)` int64 actions from `positions` `(B, 2)` to `targets` `(B, 2)`."""
    dx, dy = (np.asarray(targets) - np.asarray(positions)).T  # (B,) each
    along_y = np.where(dy < 0, UP, np.where(dy > 0, DOWN, NOOP))  # (B,)
    return np.where(dx < 0, LEFT, np.where(dx > 0, RIGHT, along_y)).astype(np.int64)


def draw_text(size: int, marks: Mapping[tuple[int, int], str]) -> str:
    """The room as text: walls around, one two-character slot per cell, `marks[(x, y)]` drawn in."""
    wall = WALL * (2 * size + 3)
    rows = [wall]
    for y in range(size):
        row = "".join(f" {marks.get((x, y), EMPTY)}" for x in range(size))
        rows.append(f"{WALL}{row} {WALL}")
    rows.append(wall)
    return "\n".join(rows)


def draw_path(
    size: int, path: Iterable[Sequence[int]], marks: Mapping[tuple[int, int], str] | None = None
) -> str:
    """Draw a whole path of `(x, y)` cells on the room as text.

    Each visited cell shows the arrow of the move that left it (`< > ^ v`, `o` for a no-op or a bump
    into a wall), the start cell is `S` and the last cell `A` (the agent). `marks` (e.g.
    `{goal: "G"}`) are drawn on top.

    Args:
        size: side of the square room.
        path: the agent's cells in time order.
        marks: extra cells to label, drawn over the path.
    """
    cells = [tuple(int(v) for v in cell) for cell in path]
    drawn: dict[tuple[int, int], str] = {}
    for here, there in zip(cells, cells[1:], strict=False):
        drawn[here] = PATH_ARROWS[(there[0] - here[0], there[1] - here[1])]
    if cells:
        drawn[cells[0]] = "S"
        drawn[cells[-1]] = "A"
    drawn.update(marks or {})
    return draw_text(size, drawn)


def draw_rgb(size: int, items: Iterable[tuple[Sequence[int], str]]) -> np.ndarray:
    """The room as an `(H, W, 3)` uint8 image with walls around.

    Args:
        size: side of the square room.
        items: `((x, y), color)` pairs drawn in order, `color` a key of `COLORS`; the agent is drawn
            smaller than the other marks so that a goal under it stays visible, a trail cell fills
            its cell so that a path reads as one line.
    """
    side = (size + 2) * CELL_PIXELS
    image = np.empty((side, side, 3), dtype=np.uint8)  # (H, W, 3)
    image[:] = COLORS["wall"]
    inner = slice(CELL_PIXELS, side - CELL_PIXELS)
    image[inner, inner] = COLORS["floor"]
    for (x, y), color in items:
        pad = {"agent": CELL_PIXELS // 4, "trail": 0}.get(color, CELL_PIXELS // 8)
        top, left = (y + 1) * CELL_PIXELS + pad, (x + 1) * CELL_PIXELS + pad
        image[top : top + CELL_PIXELS - 2 * pad, left : left + CELL_PIXELS - 2 * pad] = COLORS[color]
    return image
