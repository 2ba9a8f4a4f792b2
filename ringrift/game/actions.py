"""One fixed action-index space per board, shared by the rules and a network's policy head.

The space is laid out as planes over the board's square embedding grid (side ``S``; hex boards
leave the squares off the board unused), so a convolutional policy head can emit it directly:
``index = plane * S * S + grid_index[cell]``, then ``NUM_SINGLETONS`` plain indices at the end.

===========================  ==================  ============================================
planes                       cell                move types
===========================  ==================  ============================================
``k - 1`` for k in 1..3      destination         ``place_ring`` of k rings
``3 + d*L + (dist-1)``       source stack        ``move_stack``, ``overtaking_capture``,
                                                 ``continue_capture_segment`` moving
                                                 ``dist`` cells in direction ``d`` (L = S-1)
``R0 + d``                   source marker       ``recovery_slide`` towards ``d`` (line
                                                 option 1, fallback, stack strike)
``R0 + D + d``               source marker       ``recovery_slide`` towards ``d``, option 2
``X0 + a``                   first cell          ``process_line`` / ``choose_line_option`` 1:
                                                 the whole line on axis ``a``
``X0 + A + a``               first cell          ``choose_line_option`` 2: the segment on ``a``
``T0 + b`` for b in 0..4      lowest cell         ``choose_territory_option`` for the region
                                                 whose border colour is ``b`` (0: collapsed
                                                 spaces only)
``T0 + 5``                   stack               ``eliminate_rings_from_stack``,
                                                 ``forced_elimination``
===========================  ==================  ============================================

Singletons follow the planes in the order of ``SINGLETONS``. Each legal move has exactly one
index; two legal moves share one only when a recovery slide offers several extraction stacks or
option-2 segments (the choice the index leaves open). ``legal_action_moves`` groups them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ringrift.game.boards import BoardType, Geometry, geometry
from ringrift.game.errors import RingRiftError
from ringrift.game.movegen import legal_moves
from ringrift.game.moves import Move, MoveType
from ringrift.game.state import GameState

MT = MoveType

SINGLETONS: tuple[MoveType, ...] = (
    MT.SKIP_PLACEMENT,
    MT.NO_PLACEMENT_ACTION,
    MT.NO_MOVEMENT_ACTION,
    MT.SKIP_CAPTURE,
    MT.SKIP_RECOVERY,
    MT.NO_LINE_ACTION,
    MT.NO_TERRITORY_ACTION,
    MT.SKIP_TERRITORY_PROCESSING,
    MT.SWAP_SIDES,
)
NUM_SINGLETONS = len(SINGLETONS)
_MOVE_PLANE_TYPES = (MT.MOVE_STACK, MT.OVERTAKING_CAPTURE, MT.CONTINUE_CAPTURE_SEGMENT)


@dataclass(frozen=True, eq=False)
class ActionSpace:
    geo: Geometry
    grid: int  # S * S
    move0: int
    recovery0: int
    line0: int
    territory_plane: int
    eliminate_plane: int
    num_planes: int
    step: dict[tuple[int, int], tuple[int, int]]  # (from, to) -> (direction, distance)

    @property
    def size(self) -> int:
        return self.num_planes * self.grid + NUM_SINGLETONS

    def _at(self, plane: int, cell: int) -> int:
        return plane * self.grid + self.geo.grid_index[cell]

    def encode(self, m: Move) -> int:
        t = m.type
        geo = self.geo
        if t is MT.PLACE_RING:
            return self._at(m.rings - 1, m.to)
        if t in _MOVE_PLANE_TYPES:
            d, dist = self.step[(m.frm, m.to)]
            return self._at(self.move0 + d * geo.max_distance + dist - 1, m.frm)
        if t is MT.RECOVERY_SLIDE:
            d, _ = self.step[(m.frm, m.to)]
            extra = geo.num_directions if m.option == 2 else 0
            return self._at(self.recovery0 + extra + d, m.frm)
        if t in (MT.PROCESS_LINE, MT.CHOOSE_LINE_OPTION):
            axis = self._axis(m.cells)
            if m.option == 2:
                return self._at(self.line0 + len(geo.line_axes) + axis, m.collapse[0])
            return self._at(self.line0 + axis, m.cells[0])
        if t is MT.CHOOSE_TERRITORY_OPTION:
            return self._at(self.territory_plane + m.option, min(m.cells))
        if t in (MT.ELIMINATE_RINGS_FROM_STACK, MT.FORCED_ELIMINATION):
            return self._at(self.eliminate_plane, m.to)
        return self.num_planes * self.grid + SINGLETONS.index(t)

    def _axis(self, cells: tuple[int, ...]) -> int:
        d, _ = self.step[(cells[0], cells[1])]
        return d % (self.geo.num_directions // 2)


@functools.cache
def action_space(board: BoardType) -> ActionSpace:
    geo = geometry(board)
    dirs = geo.num_directions
    move0 = 3
    recovery0 = move0 + dirs * geo.max_distance
    line0 = recovery0 + 2 * dirs
    territory = line0 + 2 * len(geo.line_axes)
    step = {
        (c, to): (d, k + 1)
        for c in range(geo.num_cells)
        for d, ray in enumerate(geo.rays[c])
        for k, to in enumerate(ray)
    }
    return ActionSpace(
        geo,
        geo.size * geo.size,
        move0,
        recovery0,
        line0,
        territory,
        territory + 5,
        territory + 6,
        step,
    )


def encode_move(state: GameState, move: Move) -> int:
    return action_space(state.geo.board).encode(move)


def legal_action_moves(state: GameState) -> dict[int, list[Move]]:
    """Legal moves grouped by action index, both in legal-move order."""
    space = action_space(state.geo.board)
    out: dict[int, list[Move]] = {}
    for m in legal_moves(state):
        out.setdefault(space.encode(m), []).append(m)
    return out


def legal_actions(state: GameState) -> list[int]:
    return list(legal_action_moves(state))


def decode_action(state: GameState, action: int) -> Move:
    """The first legal move with this index; ``RingRiftError`` if none is legal."""
    moves = legal_action_moves(state).get(action)
    if not moves:
        raise RingRiftError(f"action {action} is not legal in this position")
    return moves[0]
