"""State encoding for the network: input planes, global features and the legal-action mask.

``encode_state(state)`` returns ``(planes, globals)``: planes ``float32 (C, S, S)`` over the
board's square embedding grid (``S = geo.size``; cell ``c`` sits at flat position
``geo.grid_index[c]``, the same layout the action space uses) and a ``float32 (G,)`` vector.
Both are from the **view of the player to move**: per-seat features come in four seat slots,
slot 0 the player to move, slot 1 the next player in turn order, and so on. Two- and
three-player games leave the slots of absent seats zero, so ``C`` and ``G`` are the same for every
player count (and every board). This module is the contract with trained models: any change to
what a plane or global means bumps ``ENCODER_VERSION``, and models record the version they were
trained with.

Counts ``x`` (stack heights, cap heights, buried rings) are scaled as ``min(x, S) / S``: exact up
to the grid side, which covers every height that can still move (a stack of height ``h`` moves at
least ``h`` cells and no ray is longer than ``S - 1``), and 1.0 for anything taller.

Planes (``C = 27``), seat slot ``k`` in 0..3 with ``base = 1 + 6 * k``:

==============  ============================================================================
plane           value on a cell
==============  ============================================================================
0               1 on board cells (hex boards leave the off-board squares of the grid 0)
base + 0        1 if the stack there is controlled (topped) by seat ``k``
base + 1        cap height of that stack, scaled (0 elsewhere)
base + 2        stack height of that stack, scaled (0 elsewhere)
base + 3        rings of seat ``k`` below the cap of the stack there (any controller), scaled
base + 4        1 if the cell holds a marker of seat ``k``
base + 5        1 if the cell is a collapsed space (territory) of seat ``k``
25              1 on the stack that must move this turn (``state.must_move``, after a placement)
26              1 on the capturing stack of a capture or capture chain (``state.chain_at``)
==============  ============================================================================

Globals (``G = 32``):

==============  ============================================================================
index           value
==============  ============================================================================
0..7            phase one-hot, in ``Phase`` order: ring_placement, movement, capture,
                chain_capture, line_processing, territory_processing, forced_elimination,
                game_over
8 + 4k + 0      seat slot ``k``: rings in hand / rings per player
8 + 4k + 1      seat slot ``k``: rings eliminated credited to the seat / victory threshold
8 + 4k + 2      seat slot ``k``: territory spaces / territory victory minimum
8 + 4k + 3      seat slot ``k``: 1 if the seat is in the game (slot < number of players)
24              1 if a line elimination is owed (``pending_line``)
25              1 if a territory elimination is owed (``pending_territory``)
26              1 on a recovery turn (``recovery_turn``)
27              1 if ``swap_sides`` is available to the player to move
28..30          number of players one-hot: 2, 3, 4
31              moves played / the configuration's move cap
==============  ============================================================================

``legal_mask(state)`` is a ``bool`` vector over the board's whole action space
(``actions.action_space(board).size``), True exactly at the indices of ``legal_action_moves``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ringrift.game.actions import action_space
from ringrift.game.boards import BoardType, geometry
from ringrift.game.movegen import legal_moves, swap_available
from ringrift.game.state import GameState, Phase

ENCODER_VERSION = 1

SEAT_SLOTS = 4
PLANES_PER_SEAT = 6
PLANE_VALID = 0
SEAT_PLANE0 = 1
SEAT_CONTROL = 0  # offsets inside a seat's plane group
SEAT_CAP = 1
SEAT_HEIGHT = 2
SEAT_BURIED = 3
SEAT_MARKER = 4
SEAT_COLLAPSED = 5
PLANE_MUST_MOVE = SEAT_PLANE0 + SEAT_SLOTS * PLANES_PER_SEAT  # 25
PLANE_CHAIN = PLANE_MUST_MOVE + 1  # 26
NUM_PLANES = PLANE_CHAIN + 1  # 27

PHASES: tuple[Phase, ...] = tuple(Phase)
GLOBAL_PHASE0 = 0
GLOBAL_SEAT0 = len(PHASES)  # 8
GLOBALS_PER_SEAT = 4
GLOBAL_PENDING_LINE = GLOBAL_SEAT0 + SEAT_SLOTS * GLOBALS_PER_SEAT  # 24
GLOBAL_PENDING_TERRITORY = GLOBAL_PENDING_LINE + 1
GLOBAL_RECOVERY_TURN = GLOBAL_PENDING_LINE + 2
GLOBAL_SWAP = GLOBAL_PENDING_LINE + 3
GLOBAL_PLAYERS0 = GLOBAL_PENDING_LINE + 4  # 28: one-hot for 2, 3, 4 players
GLOBAL_MOVE_FRACTION = GLOBAL_PLAYERS0 + 3  # 31
NUM_GLOBALS = GLOBAL_MOVE_FRACTION + 1  # 32

_PHASE_INDEX = {p: i for i, p in enumerate(PHASES)}


def input_shape(board: BoardType) -> tuple[int, int, int]:
    """``(C, S, S)`` of the planes for ``board``."""
    size = geometry(board).size
    return (NUM_PLANES, size, size)


def seat_players(num_players: int, current: int) -> tuple[int, ...]:
    """The player in each seat slot (0 for an absent seat): the player to move first."""
    return tuple(
        (current - 1 + k) % num_players + 1 if k < num_players else 0 for k in range(SEAT_SLOTS)
    )


@dataclass(frozen=True, eq=False)
class _Tables:
    """Per-board index arrays, built once so that encoding does no per-cell Python work."""

    size: int
    area: int  # S * S
    scale: float  # 1 / S
    grid: np.ndarray  # int64 (num_cells,): cell -> flat grid position
    grid_list: tuple[int, ...]
    valid: np.ndarray  # float32 (S * S,)
    # plane_of[n][current][player] -> first plane of that player's seat group (0: no player)
    plane_of: dict[int, tuple[np.ndarray, ...]]


@functools.cache
def _tables(board: BoardType) -> _Tables:
    geo = geometry(board)
    area = geo.size * geo.size
    grid = np.asarray(geo.grid_index, dtype=np.int64)
    valid = np.zeros(area, dtype=np.float32)
    valid[grid] = 1.0
    plane_of: dict[int, tuple[np.ndarray, ...]] = {}
    for n in (2, 3, 4):
        per_current = [np.zeros(n + 1, dtype=np.int64)]  # current == 0 never happens
        for cur in range(1, n + 1):
            table = np.zeros(n + 1, dtype=np.int64)
            for p in range(1, n + 1):
                table[p] = SEAT_PLANE0 + PLANES_PER_SEAT * ((p - cur) % n)
            per_current.append(table)
        plane_of[n] = tuple(per_current)
    return _Tables(geo.size, area, 1.0 / geo.size, grid, geo.grid_index, valid, plane_of)


def encode_state(state: GameState) -> tuple[np.ndarray, np.ndarray]:
    """``(planes (C, S, S), globals (G,))``, both float32, from the player to move's view."""
    t = _tables(state.geo.board)
    cfg = state.config
    n = cfg.num_players
    cur = state.current
    area = t.area
    size = t.size
    scale = t.scale
    planes = np.zeros(NUM_PLANES * area, dtype=np.float32)
    planes[PLANE_VALID * area : (PLANE_VALID + 1) * area] = t.valid
    group = t.plane_of[n][cur]

    markers = np.asarray(state.markers, dtype=np.int64)
    cells = np.flatnonzero(markers)
    if cells.size:
        planes[(group[markers[cells]] + SEAT_MARKER) * area + t.grid[cells]] = 1.0
    collapsed = np.asarray(state.collapsed, dtype=np.int64)
    cells = np.flatnonzero(collapsed)
    if cells.size:
        planes[(group[collapsed[cells]] + SEAT_COLLAPSED) * area + t.grid[cells]] = 1.0

    if state.stack_cells:
        idx: list[int] = []
        val: list[float] = []
        grid = t.grid_list
        stacks = state.stacks
        grp = group.tolist()
        for c in state.stack_cells:
            s = stacks[c]
            h = len(s)
            top = s[-1]
            i = h - 2
            while i >= 0 and s[i] == top:
                i -= 1
            cap = h - 1 - i  # rings s[:i + 1] lie below the cap
            g = grid[c]
            base = grp[top] * area + g
            idx += (base, base + area, base + 2 * area)
            val += (1.0, min(cap, size) * scale, min(h, size) * scale)
            if i >= 0:
                below = s[: i + 1]
                for p in set(below):
                    idx.append((grp[p] + SEAT_BURIED) * area + g)
                    val.append(min(below.count(p), size) * scale)
        planes[idx] = val
    if state.must_move >= 0:
        planes[PLANE_MUST_MOVE * area + t.grid_list[state.must_move]] = 1.0
    if state.chain_at >= 0:
        planes[PLANE_CHAIN * area + t.grid_list[state.chain_at]] = 1.0

    glob = [0.0] * NUM_GLOBALS
    glob[GLOBAL_PHASE0 + _PHASE_INDEX[state.phase]] = 1.0
    rings = 1.0 / cfg.rings_per_player
    threshold = 1.0 / cfg.victory_threshold
    territory = 1.0 / cfg.territory_victory_minimum
    for k in range(n):
        p = (cur - 1 + k) % n + 1
        j = GLOBAL_SEAT0 + GLOBALS_PER_SEAT * k
        glob[j] = state.hand[p] * rings
        glob[j + 1] = state.eliminated[p] * threshold
        glob[j + 2] = state.territory[p] * territory
        glob[j + 3] = 1.0
    glob[GLOBAL_PENDING_LINE] = float(state.pending_line)
    glob[GLOBAL_PENDING_TERRITORY] = float(state.pending_territory)
    glob[GLOBAL_RECOVERY_TURN] = float(state.recovery_turn)
    glob[GLOBAL_SWAP] = float(swap_available(state))
    glob[GLOBAL_PLAYERS0 + n - 2] = 1.0
    glob[GLOBAL_MOVE_FRACTION] = state.move_count / cfg.max_moves
    return planes.reshape(NUM_PLANES, size, size), np.asarray(glob, dtype=np.float32)


def encode_batch(states: Sequence[GameState]) -> tuple[np.ndarray, np.ndarray]:
    """``encode_state`` over positions of one board: ``(N, C, S, S)`` and ``(N, G)``."""
    if not states:
        raise ValueError("encode_batch needs at least one state")
    board = states[0].geo.board
    encoded = []
    for s in states:
        if s.geo.board is not board:
            raise ValueError(
                f"encode_batch: states mix boards {board.value} and {s.geo.board.value}"
            )
        encoded.append(encode_state(s))
    return np.stack([e[0] for e in encoded]), np.stack([e[1] for e in encoded])


def legal_mask(state: GameState) -> np.ndarray:
    """Boolean mask over ``action_space(board).size``: True at every legal action index."""
    space = action_space(state.geo.board)
    mask = np.zeros(space.size, dtype=np.bool_)
    encode = space.encode
    mask[[encode(m) for m in legal_moves(state)]] = True
    return mask
