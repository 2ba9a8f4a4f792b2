"""Cell sets as Python ints over the board's square embedding grid.

Territory detection floods regions many times per turn; doing it with big-int shifts instead of
a cell-by-cell search is what keeps the large boards fast. Bit ``grid_index[cell]`` stands for a
cell; the masks below stop shifts from wrapping around grid rows or leaving the board.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ringrift.game.boards import BoardType, Geometry, geometry


@dataclass(frozen=True, eq=False)
class BitBoard:
    geo: Geometry
    width: int
    cell_bit: tuple[int, ...]  # cell -> 1 << grid index
    bit_cell: dict[int, int]  # grid index -> cell
    on_board: int
    not_first_col: int
    not_last_col: int

    def spread(self, x: int) -> int:
        """Cells territory-adjacent to any cell of ``x`` (including ``x``), on the board."""
        w = self.width
        grown = (
            x
            | ((x << 1) & self.not_first_col)
            | ((x >> 1) & self.not_last_col)
            | (x << w)
            | (x >> w)
        )
        if self.geo.board.is_hex:
            grown |= ((x >> (w - 1)) & self.not_first_col) | ((x << (w - 1)) & self.not_last_col)
        return grown & self.on_board

    def flood(self, seed: int, allowed: int) -> int:
        """The part of ``allowed`` connected to ``seed`` by territory adjacency."""
        region = seed & allowed
        while True:
            grown = self.spread(region) & allowed
            if grown == region:
                return region
            region = grown

    def cells(self, x: int) -> list[int]:
        """Cells of a bit set, in ascending grid order."""
        out = []
        bit_cell = self.bit_cell
        while x:
            low = x & -x
            out.append(bit_cell[low.bit_length() - 1])
            x ^= low
        return out

    def of(self, cells: list[int] | tuple[int, ...]) -> int:
        bits = 0
        cb = self.cell_bit
        for c in cells:
            bits |= cb[c]
        return bits


@functools.cache
def bitboard(board: BoardType) -> BitBoard:
    geo = geometry(board)
    w = geo.size
    cell_bit = tuple(1 << g for g in geo.grid_index)
    first_col = sum(1 << (r * w) for r in range(w))
    last_col = sum(1 << (r * w + w - 1) for r in range(w))
    full = (1 << (w * w)) - 1
    return BitBoard(
        geo=geo,
        width=w,
        cell_bit=cell_bit,
        bit_cell={g: c for c, g in enumerate(geo.grid_index)},
        on_board=sum(cell_bit),
        not_first_col=full & ~first_col,
        not_last_col=full & ~last_col,
    )
