"""Static board geometry and per-configuration parameters.

Everything here is computed once per board type and shared by every position: cells are plain
ints, and neighbour and ray tables are tuples indexed by cell, so move generation never builds a
coordinate object on its hot path.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from ringrift.game.errors import RingRiftError


class BoardType(enum.StrEnum):
    SQUARE8 = "square8"
    SQUARE19 = "square19"
    HEX8 = "hex8"
    HEXAGONAL = "hexagonal"

    @property
    def is_hex(self) -> bool:
        return self in (BoardType.HEX8, BoardType.HEXAGONAL)


# Clockwise from east; the opposite of direction d is (d + n/2) % n.
SQUARE_DIRECTIONS: tuple[tuple[int, int], ...] = (
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
)
# Cube-coordinate directions (dx, dy, dz), dx + dy + dz == 0.
HEX_DIRECTIONS: tuple[tuple[int, int, int], ...] = (
    (1, -1, 0),
    (1, 0, -1),
    (0, 1, -1),
    (-1, 1, 0),
    (-1, 0, 1),
    (0, -1, 1),
)

_RINGS_PER_PLAYER = {
    BoardType.SQUARE8: 18,
    BoardType.SQUARE19: 72,
    BoardType.HEX8: 18,
    BoardType.HEXAGONAL: 96,
}
_RADIUS = {BoardType.HEX8: 4, BoardType.HEXAGONAL: 12}
_SQUARE_SIZE = {BoardType.SQUARE8: 8, BoardType.SQUARE19: 19}
_MOVE_CAPS = {
    BoardType.SQUARE8: (600, 900, 1400),
    BoardType.HEX8: (600, 900, 1400),
    BoardType.SQUARE19: (2400, 3000, 3600),
    BoardType.HEXAGONAL: (3600, 4200, 4800),
}


@dataclass(frozen=True, eq=False)
class Geometry:
    """Cells, coordinates and adjacency tables of one board type.

    Cells are numbered 0..num_cells-1. Square cell (x, y) is ``y * size + x``. Hex cells are
    numbered row by row over the embedding grid (see ``grid_index``), skipping grid squares that
    are off the board.
    """

    board: BoardType
    size: int  # side of the square embedding grid (8, 19, 9, 25)
    coords: tuple[tuple[int, ...], ...]
    keys: tuple[str, ...]  # "x,y" or "x,y,z", as in the reference JSON
    key_index: dict[str, int]
    coord_index: dict[tuple[int, ...], int]
    grid_index: tuple[int, ...]  # cell -> row * size + col in the embedding grid
    directions: tuple[tuple[int, ...], ...]
    rays: tuple[tuple[tuple[int, ...], ...], ...]  # rays[cell][d]: cells from cell along d
    neighbors: tuple[tuple[int, ...], ...]  # movement / line adjacency
    neighbor_dirs: tuple[tuple[tuple[int, int], ...], ...]  # (direction, cell) pairs
    territory_neighbors: tuple[tuple[int, ...], ...]
    # Marker chains that collapse with a territory region, as the canonical engine joins
    # them: the 8 cells around (x, y) on square8, square19 and hex8 (on hex8 that is the 6
    # hex neighbours plus (x+1, y+1) and (x-1, y-1), two cells at hex distance 2); none on
    # hexagonal, where only the border markers touching the region collapse with it.
    marker_link_neighbors: tuple[tuple[int, ...], ...]
    line_axes: tuple[int, ...]  # one direction per line axis

    @property
    def num_cells(self) -> int:
        return len(self.coords)

    @property
    def num_directions(self) -> int:
        return len(self.directions)

    @property
    def max_distance(self) -> int:
        return self.size - 1

    def opposite(self, d: int) -> int:
        return (d + len(self.directions) // 2) % len(self.directions)

    def cell(self, key: str) -> int:
        try:
            return self.key_index[key]
        except KeyError:
            raise RingRiftError(
                f"position {key!r} is not on the {self.board.value} board"
            ) from None

    def distance(self, a: int, b: int) -> int:
        ca, cb = self.coords[a], self.coords[b]
        return max(abs(p - q) for p, q in zip(ca, cb, strict=True))


def _build_square(board: BoardType) -> Geometry:
    n = _SQUARE_SIZE[board]
    coords = tuple((x, y) for y in range(n) for x in range(n))
    index: dict[tuple[int, ...], int] = {c: i for i, c in enumerate(coords)}
    return _finish(
        board,
        n,
        coords,
        index,
        SQUARE_DIRECTIONS,
        territory_dirs=(0, 2, 4, 6),
        grid=tuple(range(n * n)),
    )


def _build_hex(board: BoardType) -> Geometry:
    r = _RADIUS[board]
    n = 2 * r + 1
    cells: list[tuple[int, int, int]] = []
    grid: list[int] = []
    for row in range(n):  # row = z + r
        for col in range(n):  # col = x + r
            x, z = col - r, row - r
            y = -x - z
            if max(abs(x), abs(y), abs(z)) <= r:
                cells.append((x, y, z))
                grid.append(row * n + col)
    coords = tuple(cells)
    index: dict[tuple[int, ...], int] = {c: i for i, c in enumerate(coords)}
    return _finish(
        board, n, coords, index, HEX_DIRECTIONS, territory_dirs=tuple(range(6)), grid=tuple(grid)
    )


def _finish(
    board: BoardType,
    size: int,
    coords: tuple[tuple[int, ...], ...],
    index: dict[tuple[int, ...], int],
    directions: tuple[tuple[int, ...], ...],
    territory_dirs: tuple[int, ...],
    grid: tuple[int, ...],
) -> Geometry:
    rays = []
    for c in coords:
        per_dir = []
        for d in directions:
            ray = []
            cur = tuple(a + b for a, b in zip(c, d, strict=True))
            while cur in index:
                ray.append(index[cur])
                cur = tuple(a + b for a, b in zip(cur, d, strict=True))
            per_dir.append(tuple(ray))
        rays.append(tuple(per_dir))
    neighbors = tuple(tuple(r[0] for r in per if r) for per in rays)
    neighbor_dirs = tuple(tuple((d, r[0]) for d, r in enumerate(per) if r) for per in rays)
    territory = tuple(tuple(per[d][0] for d in territory_dirs if per[d]) for per in rays)
    keys = tuple(",".join(str(v) for v in c) for c in coords)
    xy_index = {c[:2]: i for i, c in enumerate(coords)}
    marker_links = tuple(
        ()
        if board is BoardType.HEXAGONAL
        else tuple(
            xy_index[(c[0] + dx, c[1] + dy)]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dx, dy) != (0, 0) and (c[0] + dx, c[1] + dy) in xy_index
        )
        for c in coords
    )
    return Geometry(
        board=board,
        size=size,
        coords=coords,
        keys=keys,
        key_index={k: i for i, k in enumerate(keys)},
        coord_index=index,
        grid_index=grid,
        directions=directions,
        rays=tuple(rays),
        neighbors=neighbors,
        neighbor_dirs=neighbor_dirs,
        territory_neighbors=territory,
        marker_link_neighbors=marker_links,
        line_axes=tuple(range(len(directions) // 2)),
    )


@functools.cache
def geometry(board: BoardType) -> Geometry:
    return _build_hex(board) if board.is_hex else _build_square(board)


@dataclass(frozen=True)
class GameConfig:
    """The static description of a game: board and player count, and the numbers they imply."""

    board: BoardType
    num_players: int
    swap_rule: bool = False  # pie rule for 2 players; selfplay leaves it off

    def __post_init__(self) -> None:
        if self.num_players not in (2, 3, 4):
            raise RingRiftError(f"num_players must be 2, 3 or 4, not {self.num_players}")
        if self.swap_rule and self.num_players != 2:
            raise RingRiftError("the swap rule exists only for 2-player games")

    @property
    def name(self) -> str:
        return f"{self.board.value}_{self.num_players}p"

    @property
    def geometry(self) -> Geometry:
        return geometry(self.board)

    @property
    def rings_per_player(self) -> int:
        return _RINGS_PER_PLAYER[self.board]

    @property
    def line_length(self) -> int:
        small = self.board in (BoardType.SQUARE8, BoardType.HEX8)
        return 3 if small and self.num_players >= 3 else 4

    @property
    def victory_threshold(self) -> int:
        # round(rpp * (2/3 + (n-1)/3)) computed exactly in integers.
        num = self.rings_per_player * (self.num_players + 1)
        return (2 * num + 3) // 6

    @property
    def territory_victory_minimum(self) -> int:
        return self.geometry.num_cells // self.num_players + 1

    @property
    def max_moves(self) -> int:
        return _MOVE_CAPS[self.board][self.num_players - 2]

    @classmethod
    def parse(cls, name: str) -> GameConfig:
        """Parse a configuration name such as ``square8_2p`` or ``hexagonal_4p``."""
        m = re.fullmatch(r"(square8|square19|hex8|hexagonal)_([234])p", name.strip())
        if not m:
            raise RingRiftError(
                f"unknown configuration {name!r}: expected <board>_<n>p with board in "
                "square8, square19, hex8, hexagonal and n in 2, 3, 4"
            )
        return cls(BoardType(m.group(1)), int(m.group(2)))


ALL_CONFIGS: tuple[str, ...] = tuple(f"{b.value}_{n}p" for b in BoardType for n in (2, 3, 4))
