"""Moves: small immutable values with a canonical type name and integer cells.

A move is a ``NamedTuple`` so that generating a few hundred of them per position stays cheap;
cells are indices into the board's ``Geometry``. Text and JSON forms live in ``notation`` and
``serialize``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class MoveType(enum.StrEnum):
    PLACE_RING = "place_ring"
    SKIP_PLACEMENT = "skip_placement"
    NO_PLACEMENT_ACTION = "no_placement_action"
    MOVE_STACK = "move_stack"
    OVERTAKING_CAPTURE = "overtaking_capture"
    CONTINUE_CAPTURE_SEGMENT = "continue_capture_segment"
    SKIP_CAPTURE = "skip_capture"
    NO_MOVEMENT_ACTION = "no_movement_action"
    RECOVERY_SLIDE = "recovery_slide"
    SKIP_RECOVERY = "skip_recovery"
    PROCESS_LINE = "process_line"
    CHOOSE_LINE_OPTION = "choose_line_option"
    NO_LINE_ACTION = "no_line_action"
    CHOOSE_TERRITORY_OPTION = "choose_territory_option"
    SKIP_TERRITORY_PROCESSING = "skip_territory_processing"
    NO_TERRITORY_ACTION = "no_territory_action"
    ELIMINATE_RINGS_FROM_STACK = "eliminate_rings_from_stack"
    FORCED_ELIMINATION = "forced_elimination"
    SWAP_SIDES = "swap_sides"


# Legacy names still found in recorded data.
MOVE_TYPE_ALIASES = {
    "choose_line_reward": MoveType.CHOOSE_LINE_OPTION,
    "process_territory_region": MoveType.CHOOSE_TERRITORY_OPTION,
}

BOOKKEEPING_TYPES = frozenset(
    {
        MoveType.NO_PLACEMENT_ACTION,
        MoveType.NO_MOVEMENT_ACTION,
        MoveType.NO_LINE_ACTION,
        MoveType.NO_TERRITORY_ACTION,
    }
)

# Recovery modes of a recovery_slide.
RECOVERY_LINE = "line"
RECOVERY_FALLBACK = "fallback"
RECOVERY_STACK_STRIKE = "stack_strike"


class Move(NamedTuple):
    """One move. Unused fields keep their defaults.

    - ``frm``/``to``: source and destination cells (placement uses ``to``; eliminations use
      ``to`` for the stack).
    - ``target``: captured stack of a capture; extraction stack of a recovery slide.
    - ``rings``: rings placed.
    - ``cells``: the whole line (line moves) or region (territory moves), in board order.
    - ``collapse``: cells collapsed by option 2 of an overlength line (line moves and recovery).
    - ``option``: line moves, 1 (collapse all) or 2 (collapse ``collapse`` only, no
      elimination); territory moves, the border colour (0: enclosed by collapsed spaces only).
    - ``mode``: recovery mode (``line``, ``fallback``, ``stack_strike``).
    """

    type: MoveType
    player: int
    frm: int = -1
    to: int = -1
    target: int = -1
    rings: int = 1
    cells: tuple[int, ...] = ()
    collapse: tuple[int, ...] = ()
    option: int = 0
    mode: str = ""
