"""Columns read in place: a dataset column as numpy views of its Arrow chunks.

`datasets` memory-maps its Arrow files, and a chunk of a primitive or fixed-size-list column turns into a
numpy view of the mapped pages without a copy (`histories.column_to_numpy`). Joining the chunks into one
array (`combine_chunks`) would copy the whole column into RAM, which a history of 100M transitions does not
fit; a `ChunkedColumn` keeps the views and addresses rows across them, so only the pages a batch touches
are read. A numpy array is a column of one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from hf_ad.data.histories import column_to_numpy


class ChunkedColumn:
    """One column, `(N, *row_shape)`, held as the numpy views of its chunks, addressed by global row."""

    def __init__(self, chunks: Sequence[np.ndarray]):
        if not chunks:
            raise ValueError("a column needs at least one chunk (an empty column is one empty array)")
        self.chunks = [chunk for chunk in chunks if len(chunk)] or [chunks[0]]
        self.offsets = np.cumsum([0] + [len(chunk) for chunk in self.chunks])  # (C + 1,) first rows, then N
        self.dtype = self.chunks[0].dtype
        self.row_shape = tuple(self.chunks[0].shape[1:])

    @classmethod
    def of(cls, values: ChunkedColumn | pa.ChunkedArray | pa.Array | np.ndarray) -> ChunkedColumn:
        """A column from Arrow (each chunk viewed in place) or numpy (one chunk, as it is)."""
        if isinstance(values, ChunkedColumn):
            return values
        if isinstance(values, pa.ChunkedArray):
            return cls([column_to_numpy(chunk) for chunk in values.chunks] or [column_to_numpy(values)])
        if isinstance(values, pa.Array):
            return cls([column_to_numpy(values)])
        return cls([np.asarray(values)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def to_numpy(self) -> np.ndarray:
        """The whole column as one array: a view for one chunk, else a copy (small data and tests only)."""
        return self.chunks[0] if len(self.chunks) == 1 else np.concatenate(self.chunks)

    def iter_chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """`(first row, chunk)` of every chunk, in order: a pass over the column, one chunk read at a time."""
        for offset, chunk in zip(self.offsets[:-1], self.chunks, strict=True):
            yield int(offset), chunk

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The values at `rows` (any shape, int): `(*rows.shape, *row_shape)`."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.chunks) == 1:
            return self.chunks[0][rows]
        chunk_of_row = np.searchsorted(self.offsets, rows, side="right") - 1  # (*rows.shape,)
        values = np.empty(rows.shape + self.row_shape, dtype=self.dtype)
        for chunk in np.unique(chunk_of_row):
            here = chunk_of_row == chunk
            values[here] = self.chunks[chunk][rows[here] - self.offsets[chunk]]
        return values

    def runs(self, starts: np.ndarray, length: int) -> np.ndarray:
        """`length` consecutive rows from each of `starts (B,)`: `(B, length, *row_shape)`.

        One fancy index for a single chunk; else one slice per run (two or more where a run crosses a
        chunk boundary), a few microseconds per run, never a pass over the column.
        """
        starts = np.asarray(starts, dtype=np.int64)  # (B,)
        if len(self.chunks) == 1:
            return self.chunks[0][starts[:, None] + np.arange(length)]  # (B, length, *row_shape)
        values = np.empty((len(starts), length, *self.row_shape), dtype=self.dtype)
        first_chunks = np.searchsorted(self.offsets, starts, side="right") - 1  # (B,)
        for run, (start, chunk) in enumerate(zip(starts.tolist(), first_chunks.tolist(), strict=True)):
            filled = 0
            while filled < length:
                local = start + filled - int(self.offsets[chunk])
                piece = self.chunks[chunk][local : local + length - filled]
                values[run, filled : filled + len(piece)] = piece
                filled += len(piece)
                chunk += 1
        return values


def run_starts(column: ChunkedColumn) -> np.ndarray:
    """The rows where a run of equal values begins (row 0 included), one chunk at a time: `(R,)` int64."""
    starts, previous = [], None
    for offset, chunk in column.iter_chunks():
        if not len(chunk):
            continue
        changes = np.r_[previous is None or chunk[0] != previous, chunk[1:] != chunk[:-1]]  # (len,)
        starts.append(offset + np.flatnonzero(changes))
        previous = chunk[-1]
    return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)


__all__ = ["ChunkedColumn", "run_starts"]
