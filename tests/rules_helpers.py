"""Helpers shared by the rules-derived tests: build a square8 position from reference-shaped
JSON (stacks top first), snapshot everything the tests pin down, and play moves by text with
cell lists in any order."""

from __future__ import annotations

from typing import Any

from ringrift.game import (
    GameState,
    Geometry,
    Move,
    MoveType,
    apply_move,
    legal_moves,
    move_from_str,
    move_to_str,
)
from ringrift.game.serialize import state_from_json

MT = MoveType


def build(
    stacks: dict[str, list[int]] | None = None,
    markers: dict[str, int] | None = None,
    collapsed: dict[str, int] | None = None,
    *,
    players: int = 2,
    current: int = 1,
    phase: str = "movement",
    hand: dict[int, int] | None = None,
) -> GameState:
    """A square8 position from reference JSON. Stacks list their rings TOP FIRST. Every player
    holds 5 rings in hand unless ``hand`` says otherwise; territory starts as the collapsed
    spaces each player owns."""
    hand = hand or {}
    return state_from_json(
        {
            "boardType": "square8",
            "board": {
                "type": "square8",
                "stacks": {k: {"rings": list(v)} for k, v in (stacks or {}).items()},
                "markers": {k: {"player": p} for k, p in (markers or {}).items()},
                "collapsedSpaces": dict(collapsed or {}),
            },
            "players": [
                {"playerNumber": p, "ringsInHand": hand.get(p, 5), "eliminatedRings": 0}
                for p in range(1, players + 1)
            ],
            "currentPlayer": current,
            "currentPhase": phase,
            "gameStatus": "active",
        }
    )


def snapshot(state: GameState) -> dict[str, Any]:
    """Everything these tests pin down, in the reference shape (stacks top first)."""
    keys = state.geo.keys
    return {
        "stacks": {keys[c]: list(reversed(state.stacks[c])) for c in sorted(state.stack_cells)},
        "markers": {keys[c]: p for c, p in enumerate(state.markers) if p},
        "collapsed": {keys[c]: p for c, p in enumerate(state.collapsed) if p},
        "hand": state.hand[1:],
        "eliminated": state.eliminated[1:],
        "territory": state.territory[1:],
        "phase": state.phase.value,
        "current": state.current,
    }


def expected(
    stacks: dict[str, list[int]] | None = None,
    markers: dict[str, int] | None = None,
    collapsed: dict[str, int] | None = None,
    *,
    hand: list[int],
    eliminated: list[int],
    territory: list[int],
    phase: str,
    current: int,
) -> dict[str, Any]:
    return {
        "stacks": dict(stacks or {}),
        "markers": dict(markers or {}),
        "collapsed": dict(collapsed or {}),
        "hand": hand,
        "eliminated": eliminated,
        "territory": territory,
        "phase": phase,
        "current": current,
    }


def _norm(geo: Geometry, m: Move) -> str:
    """Move text with the cell lists in ascending order (their order is not a rules matter)."""
    cells = tuple(sorted(m.cells))
    collapse = tuple(sorted(m.collapse))
    to = min(cells) if m.type is MT.CHOOSE_TERRITORY_OPTION and cells else m.to
    return move_to_str(geo, m._replace(cells=cells, collapse=collapse, to=to))


def legal(state: GameState) -> list[str]:
    """The legal moves as sorted normalised text (duplicates would show twice)."""
    return sorted(_norm(state.geo, m) for m in legal_moves(state))


def texts(state: GameState, *moves: str) -> list[str]:
    """Move texts (cells in any order) normalised the same way as ``legal``."""
    return sorted(_norm(state.geo, move_from_str(state.geo, t)) for t in moves)


def play(state: GameState, text: str) -> None:
    """Apply the one legal move matching ``text`` (cell order in ``text`` is free)."""
    want = _norm(state.geo, move_from_str(state.geo, text))
    found = [m for m in legal_moves(state) if _norm(state.geo, m) == want]
    assert len(found) == 1, f"{text!r} matches {len(found)} legal moves: {legal(state)}"
    apply_move(state, found[0])
