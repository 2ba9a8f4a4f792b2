"""Board symmetries for data augmentation: the dihedral group of each board.

Square boards have 8 (rotations by 90 degrees and reflections), the hexagonal board 12 (rotations
by 60 degrees and reflections, in cube coordinates) and hex8 the 4 of those that keep its marker
chains (see ``symmetries``). Every symmetry is a ``Symmetry``: a cell
permutation ``perm[cell] -> cell`` and a direction permutation ``dirs[d] -> d'`` over
``geo.directions``, such that the cell one step from ``c`` along ``d`` maps to the cell one step
from ``perm[c]`` along ``dirs[d]``. ``symmetries(board)[0]`` is the identity.

The rules are invariant under these maps, so for any position ``s`` and symmetry ``g``::

    {transform_move(geo, m, g) for m in legal_moves(s)} == set(legal_moves(transform_state(s, g)))

``transform_move`` keeps moves in the engine's canonical form: a line (``cells``, and the
``collapse`` segment of a line move) is listed from the end whose next cell lies along a
direction with index ``< num_directions // 2`` (the ``line_axes`` convention of
``lines.find_lines``), and a region (``cells``, its border ``collapse``) in ascending cell order
with ``to`` its lowest cell, as ``territory`` produces them.

For training data, ``transform_planes`` moves encoded planes directly (globals do not change),
and ``transform_actions`` maps a position's legal action indices to the transformed position's.
Line and territory actions are indexed by a line's first or a region's lowest cell, which a
symmetry can change in a way the index alone does not determine, so action indices are mapped
through moves, position by position, never by a fixed table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ringrift.game.actions import action_space, legal_action_moves
from ringrift.game.boards import BoardType, Geometry, geometry
from ringrift.game.moves import Move, MoveType
from ringrift.game.state import GameState

Coord = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Symmetry:
    """One symmetry of a board: ``perm[cell] -> cell``, ``dirs[d] -> d'``."""

    board: BoardType
    name: str
    perm: tuple[int, ...]
    inverse: tuple[int, ...]  # inverse[perm[c]] == c
    dirs: tuple[int, ...]
    grid_gather: np.ndarray  # int64 (S*S,): transformed grid square -> source grid square

    @property
    def is_identity(self) -> bool:
        return all(i == c for i, c in enumerate(self.perm))


def _square_maps() -> list[tuple[str, Callable[[Coord], Coord]]]:
    # Linear maps of centred coordinates; (x, y) -> M (x, y).
    mats = {
        "identity": ((1, 0), (0, 1)),
        "rot90": ((0, -1), (1, 0)),
        "rot180": ((-1, 0), (0, -1)),
        "rot270": ((0, 1), (-1, 0)),
        "mirror_x": ((-1, 0), (0, 1)),
        "mirror_y": ((1, 0), (0, -1)),
        "transpose": ((0, 1), (1, 0)),
        "antitranspose": ((0, -1), (-1, 0)),
    }

    def linear(m: tuple[tuple[int, int], tuple[int, int]]) -> Callable[[Coord], Coord]:
        return lambda v: (m[0][0] * v[0] + m[0][1] * v[1], m[1][0] * v[0] + m[1][1] * v[1])

    return [(name, linear(m)) for name, m in mats.items()]


def _hex_maps() -> list[tuple[str, Callable[[Coord], Coord]]]:
    def rot(v: Coord) -> Coord:  # 60 degrees
        return (-v[2], -v[0], -v[1])

    def reflect(v: Coord) -> Coord:
        return (v[0], v[2], v[1])

    def power(k: int, mirror: bool) -> Callable[[Coord], Coord]:
        def f(v: Coord) -> Coord:
            if mirror:
                v = reflect(v)
            for _ in range(k):
                v = rot(v)
            return v

        return f

    maps = [(f"rot{60 * k}", power(k, False)) for k in range(6)]
    maps += [(f"mirror_rot{60 * k}", power(k, True)) for k in range(6)]
    return maps


def _build(geo: Geometry, name: str, f: Callable[[Coord], Coord]) -> Symmetry:
    if geo.board.is_hex:

        def on_cell(c: Coord) -> Coord:
            return f(c)  # cube coordinates are centred already

    else:
        off = geo.size - 1  # doubled centre

        def on_cell(c: Coord) -> Coord:
            x, y = f((2 * c[0] - off, 2 * c[1] - off))
            return ((x + off) // 2, (y + off) // 2)

    perm = []
    for coord in geo.coords:
        image = on_cell(coord)
        if image not in geo.coord_index:
            raise AssertionError(f"symmetry {name} maps {coord} off the {geo.board.value} board")
        perm.append(geo.coord_index[image])
    if sorted(perm) != list(range(geo.num_cells)):
        raise AssertionError(f"symmetry {name} is not a permutation of the cells")
    dirs = [geo.directions.index(tuple(f(d))) for d in geo.directions]
    inverse = [0] * len(perm)
    for c, p in enumerate(perm):
        inverse[p] = c
    area = geo.size * geo.size
    gather = np.arange(area, dtype=np.int64)  # off-board squares (hex) stay where they are
    grid = geo.grid_index
    for c, p in enumerate(perm):
        gather[grid[p]] = grid[c]
    return Symmetry(geo.board, name, tuple(perm), tuple(inverse), tuple(dirs), gather)


@functools.cache
def symmetries(board: BoardType) -> tuple[Symmetry, ...]:
    """The board's symmetry group, identity first: the maps of the board's shape that keep
    every adjacency the rules use. That is 8 on square boards and 12 on hexagonal; on hex8 it
    is 4 (identity, the 180-degree rotation and the two reflections across the x = y axis),
    because the marker chains that collapse with a territory region there are joined along
    (x+1, y+1) and (x-1, y-1) as well (``Geometry.marker_link_neighbors``)."""
    geo = geometry(board)
    maps = _hex_maps() if board.is_hex else _square_maps()
    built = (_build(geo, name, f) for name, f in maps)
    return tuple(sym for sym in built if _keeps_adjacency(geo, sym))


def _keeps_adjacency(geo: Geometry, sym: Symmetry) -> bool:
    perm = sym.perm
    for table in (geo.neighbors, geo.territory_neighbors, geo.marker_link_neighbors):
        for c, near in enumerate(table):
            if {perm[n] for n in near} != set(table[perm[c]]):
                return False
    return True


def _check_board(board: BoardType, sym: Symmetry) -> None:
    if sym.board is not board:
        raise ValueError(
            f"symmetry {sym.name} belongs to the {sym.board.value} board, not {board.value}"
        )


def transform_state(state: GameState, sym: Symmetry) -> GameState:
    """A new position: ``state`` with every cell-indexed fact moved by ``sym``."""
    _check_board(state.geo.board, sym)
    perm, inv = sym.perm, sym.inverse
    s = state.copy()
    s.stacks = [state.stacks[i] for i in inv]
    s.stack_cells = {perm[c] for c in state.stack_cells}
    s.markers = [state.markers[i] for i in inv]
    s.collapsed = [state.collapsed[i] for i in inv]
    s.must_move = perm[state.must_move] if state.must_move >= 0 else -1
    s.chain_at = perm[state.chain_at] if state.chain_at >= 0 else -1
    return s


def _orient(geo: Geometry, run: tuple[int, ...]) -> tuple[int, ...]:
    """A line listed from the end whose next cell lies along a direction < half (line_axes)."""
    if len(run) < 2:
        return run
    d, _ = action_space(geo.board).step[(run[0], run[1])]
    return run if d < geo.num_directions // 2 else run[::-1]


def transform_move(geo: Geometry, move: Move, sym: Symmetry) -> Move:
    """``move`` as played in the transformed position, in the engine's canonical form."""
    _check_board(geo.board, sym)
    perm = sym.perm
    cells = tuple(perm[c] for c in move.cells)
    collapse = tuple(perm[c] for c in move.collapse)
    to = perm[move.to] if move.to >= 0 else -1
    if move.type is MoveType.CHOOSE_TERRITORY_OPTION:
        cells = tuple(sorted(cells))
        collapse = tuple(sorted(collapse))
        if cells:
            to = cells[0]
    elif cells:
        cells = _orient(geo, cells)
        collapse = _orient(geo, collapse)
    return move._replace(
        frm=perm[move.frm] if move.frm >= 0 else -1,
        to=to,
        target=perm[move.target] if move.target >= 0 else -1,
        cells=cells,
        collapse=collapse,
    )


def transform_planes(planes: np.ndarray, sym: Symmetry) -> np.ndarray:
    """Encoded planes ``(..., C, S, S)`` of a position -> those of the transformed position."""
    shape = planes.shape
    area = shape[-1] * shape[-2]
    if area != sym.grid_gather.size:
        raise ValueError(
            f"planes of grid {shape[-2]}x{shape[-1]} do not fit symmetry {sym.name} of the "
            f"{sym.board.value} board"
        )
    flat = planes.reshape(*shape[:-2], area)
    return np.ascontiguousarray(flat[..., sym.grid_gather].reshape(shape))


def transform_actions(state: GameState, sym: Symmetry) -> dict[int, int]:
    """Legal action index in ``state`` -> the same action's index in the transformed position.

    Moves sharing an index (a recovery slide's extraction choices) map to one shared index.
    """
    geo = state.geo
    space = action_space(geo.board)
    return {
        action: space.encode(transform_move(geo, moves[0], sym))
        for action, moves in legal_action_moves(state).items()
    }
