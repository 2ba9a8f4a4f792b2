"""Illegal moves are rejected with ``IllegalMoveError`` and a message that names them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ringrift.game import (
    GameConfig,
    GameState,
    IllegalMoveError,
    Move,
    MoveType,
    Phase,
    apply_move,
    fingerprint,
    legal_moves,
    move_from_str,
    move_to_str,
)
from ringrift.game.apply import apply_move as apply_move_direct
from ringrift.game.checker import prepare_for_fixture_move
from ringrift.game.serialize import move_from_json, state_from_json

PARITY = Path(__file__).parent / "fixtures" / "rules-parity"


def _invalid_cases() -> list[Any]:
    """(state JSON, move JSON) for every ``tsValid: false`` case, one pytest id each."""
    cases = []
    for path in sorted(PARITY.rglob("*.json")):
        data = json.loads(path.read_text())
        name = f"{path.parent.name}/{path.stem}"
        if "expected" in data and "state" in data:
            if data["expected"].get("tsValid", True) is False:
                cases.append(pytest.param(data["state"], data["move"], [], id=name))
        elif "steps" in data and "initialState" in data:
            # a trace's invalid step is tried on the position its valid predecessors reach
            valid_before: list[dict[str, Any]] = []
            for i, step in enumerate(data["steps"]):
                if step.get("expected", {}).get("tsValid", True) is False:
                    cases.append(
                        pytest.param(
                            data["initialState"],
                            step["move"],
                            list(valid_before),
                            id=f"{name}#step{i + 1}",
                        )
                    )
                else:
                    valid_before.append(step["move"])
    return cases


INVALID_CASES = _invalid_cases()


def test_fixture_cases_were_found() -> None:
    assert len(INVALID_CASES) >= 12
    assert any("#step" in c.id for c in INVALID_CASES)


@pytest.mark.parametrize(("state_json", "move_json", "before"), INVALID_CASES)
def test_fixture_invalid_move_is_rejected(
    state_json: dict[str, Any], move_json: dict[str, Any], before: list[dict[str, Any]]
) -> None:
    state = state_from_json(state_json)
    for mv in before:
        prepare_for_fixture_move(state, mv)
        apply_move(state, move_from_json(state, mv))
    prepare_for_fixture_move(state, move_json)
    move = move_from_json(state, move_json)
    assert move not in legal_moves(state)
    fp = fingerprint(state)
    with pytest.raises(IllegalMoveError) as info:
        apply_move_direct(state, move)
    assert move_to_str(state.geo, move) in str(info.value)
    assert f"phase {state.phase.value}" in str(info.value)
    assert fingerprint(state) == fp, "a rejected move must leave the position unchanged"


# ----- hand-made illegal moves ------------------------------------------------------------------


def _start() -> GameState:
    return GameState.initial(GameConfig.parse("square8_2p"))


def _play(state: GameState, *texts: str) -> None:
    for text in texts:
        apply_move(state, move_from_str(state.geo, text))


def _assert_rejected(state: GameState, move: Move, *fragments: str) -> IllegalMoveError:
    fp = fingerprint(state)
    with pytest.raises(IllegalMoveError) as info:
        apply_move(state, move)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert repr(move_to_str(state.geo, move)) in message
    assert f"phase {state.phase.value}" in message
    for fragment in fragments:
        assert fragment in message
    assert fingerprint(state) == fp
    return info.value


def test_wrong_player() -> None:
    state = _start()
    move = Move(MoveType.PLACE_RING, 2, to=state.geo.cell("3,3"))
    _assert_rejected(state, move, "it is player 1's turn", "player 1 to move")


def test_wrong_player_mid_turn() -> None:
    state = _start()
    _play(state, "place_ring p1 to=3,3", "move_stack p1 from=3,3 to=3,5")
    assert state.phase is Phase.LINE_PROCESSING
    _assert_rejected(state, Move(MoveType.NO_LINE_ACTION, 2), "it is player 1's turn")


@pytest.mark.parametrize(
    ("setup", "text", "phase"),
    [
        ((), "move_stack p1 from=3,3 to=3,5", "ring_placement"),
        ((), "no_line_action p1", "ring_placement"),
        (("place_ring p1 to=3,3",), "place_ring p1 to=4,4", "movement"),
        (("place_ring p1 to=3,3",), "no_territory_action p1", "movement"),
        (
            ("place_ring p1 to=3,3", "move_stack p1 from=3,3 to=3,5"),
            "no_territory_action p1",
            "line_processing",
        ),
        (
            ("place_ring p1 to=3,3", "move_stack p1 from=3,3 to=3,5", "no_line_action p1"),
            "skip_placement p1",
            "territory_processing",
        ),
    ],
    ids=[
        "move-in-placement",
        "line-in-placement",
        "place-in-movement",
        "territory-in-movement",
        "territory-in-line",
        "skip-placement-in-territory",
    ],
)
def test_wrong_phase(setup: tuple[str, ...], text: str, phase: str) -> None:
    state = _start()
    _play(state, *setup)
    assert state.phase.value == phase
    move = move_from_str(state.geo, text)
    _assert_rejected(state, move, f"{move.type.value} is not allowed in phase {phase}")


def test_movement_from_the_wrong_stack_after_placing() -> None:
    state = state_from_json(
        {
            "boardType": "square8",
            "board": {"stacks": {"0,0": {"rings": [1]}, "7,7": {"rings": [2]}}},
            "players": [
                {"playerNumber": 1, "ringsInHand": 17},
                {"playerNumber": 2, "ringsInHand": 17},
            ],
            "currentPlayer": 1,
            "currentPhase": "ring_placement",
        }
    )
    _play(state, "place_ring p1 to=4,4")
    _assert_rejected(
        state,
        move_from_str(state.geo, "move_stack p1 from=0,0 to=0,1"),
        "no legal move of that type matches it",
    )


def test_placement_on_a_collapsed_cell() -> None:
    state = state_from_json(
        {
            "boardType": "square8",
            "board": {"stacks": {}, "markers": {}, "collapsedSpaces": {"3,3": 2}},
            "players": [
                {"playerNumber": 1, "ringsInHand": 18},
                {"playerNumber": 2, "ringsInHand": 18, "territorySpaces": 1},
            ],
            "currentPlayer": 1,
            "currentPhase": "ring_placement",
        }
    )
    for rings in (1, 2, 3):
        move = Move(MoveType.PLACE_RING, 1, to=state.geo.cell("3,3"), rings=rings)
        _assert_rejected(state, move, "no legal move of that type matches it")
    # the neighbouring cell is fine
    apply_move(state, Move(MoveType.PLACE_RING, 1, to=state.geo.cell("3,4")))


def test_placement_on_a_marker_and_too_many_rings() -> None:
    state = _start()
    _play(
        state,
        "place_ring p1 to=3,3",
        "move_stack p1 from=3,3 to=3,5",
        "no_line_action p1",
        "no_territory_action p1",
    )
    assert state.markers[state.geo.cell("3,3")] == 1
    _assert_rejected(state, move_from_str(state.geo, "place_ring p2 to=3,3"))
    _assert_rejected(state, move_from_str(state.geo, "place_ring p2 to=0,0 rings=4"))


def test_any_move_after_game_over() -> None:
    rng = random.Random(0)
    state = _start()
    while not state.is_over:
        apply_move(state, rng.choice(legal_moves(state)))
    assert legal_moves(state) == []
    for move in (
        Move(MoveType.PLACE_RING, 1, to=0),
        Move(MoveType.NO_PLACEMENT_ACTION, 2),
        Move(MoveType.FORCED_ELIMINATION, 1, to=0),
        Move(MoveType.SWAP_SIDES, 2),
    ):
        _assert_rejected(state, move, "the game is over", "phase game_over")


def test_move_after_game_over_loaded_from_json() -> None:
    state = state_from_json(
        {
            "boardType": "square8",
            "board": {"stacks": {"0,0": {"rings": [1]}}},
            "players": [
                {"playerNumber": 1, "ringsInHand": 0, "eliminatedRings": 18},
                {"playerNumber": 2, "ringsInHand": 0},
            ],
            "currentPlayer": 2,
            "currentPhase": "movement",
            "gameStatus": "completed",
            "winner": 1,
        }
    )
    assert state.is_over and state.winner == 1
    _assert_rejected(state, Move(MoveType.NO_MOVEMENT_ACTION, 2), "the game is over")
