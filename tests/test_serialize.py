"""Reference JSON: state and move round trips, validation on load, top-first stacks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from ringrift.game import (
    BoardType,
    GameConfig,
    GameState,
    Move,
    MoveType,
    Phase,
    RingRiftError,
    VictoryType,
    apply_move,
    fingerprint,
    legal_moves,
    move_from_str,
)
from ringrift.game.serialize import move_from_json, move_to_json, state_from_json, state_to_json
from ringrift.game.state import cap_height
from tests.positions import SQUARE8_FIRST_TURN

# (configuration, seed, move limit or None for a whole game)
GAMES = [
    ("square8_2p", 0, None),
    ("square8_2p", 1, None),
    ("hex8_3p", 0, None),
    ("hex8_3p", 1, None),
    ("square19_2p", 0, 300),
]


def play(config: str, seed: int, limit: int | None) -> Iterator[tuple[int, GameState]]:
    """Yield (index, position) before each move of a seeded random game."""
    rng = random.Random(seed)
    state = GameState.initial(GameConfig.parse(config))
    i = 0
    while not state.is_over and (limit is None or i < limit):
        yield i, state
        apply_move(state, rng.choice(legal_moves(state)))
        i += 1
    yield i, state


def sampled(index: int, state: GameState) -> bool:
    """Every tenth position, plus every capture-phase position (they carry extra state)."""
    return index % 10 == 0 or state.phase in (Phase.CAPTURE, Phase.CHAIN_CAPTURE)


def round_trip(state: GameState) -> GameState:
    return state_from_json(state_to_json(state))


def assert_same_position(a: GameState, b: GameState) -> None:
    assert fingerprint(b) == fingerprint(a)
    assert legal_moves(b) == legal_moves(a)
    assert b.hand == a.hand
    assert b.eliminated == a.eliminated
    assert b.territory == a.territory
    assert b.current == a.current
    assert b.phase is a.phase
    assert b.must_move == a.must_move
    assert b.chain_at == a.chain_at
    assert b.pending_line == a.pending_line
    assert b.pending_territory == a.pending_territory
    assert b.lost == a.lost
    assert b.turn_number == a.turn_number


@pytest.mark.parametrize(("config", "seed", "limit"), GAMES)
def test_state_json_round_trip(config: str, seed: int, limit: int | None) -> None:
    phases: set[Phase] = set()
    checked = 0
    for i, state in play(config, seed, limit):
        if not sampled(i, state) and not state.is_over:
            continue
        phases.add(state.phase)
        assert_same_position(state, round_trip(state))
        checked += 1
    assert checked >= 10
    if config == "square8_2p":
        # the seeded games pass through every phase that carries turn-local state
        assert {Phase.MOVEMENT, Phase.CAPTURE, Phase.CHAIN_CAPTURE, Phase.GAME_OVER} <= phases


def test_round_trip_of_every_position_of_one_game() -> None:
    for _, state in play("square8_2p", 0, None):
        assert_same_position(state, round_trip(state))


@pytest.mark.parametrize(("config", "seed", "limit"), GAMES)
def test_move_json_round_trip(config: str, seed: int, limit: int | None) -> None:
    kinds: set[MoveType] = set()
    for i, state in play(config, seed, limit):
        if not sampled(i, state):
            continue
        for m in legal_moves(state):
            assert move_from_json(state, move_to_json(state.geo, m)) == m
            kinds.add(m.type)
    assert MoveType.PLACE_RING in kinds and MoveType.MOVE_STACK in kinds


def test_capture_phase_json_names_the_capturing_stack() -> None:
    for _, state in play("square8_2p", 0, None):
        if state.phase is Phase.CHAIN_CAPTURE:
            break
    else:
        pytest.fail("seeded game never reached chain_capture")
    data = state_to_json(state)
    assert data["currentPhase"] == "chain_capture"
    x, y = state.geo.coords[state.chain_at]
    assert data["chainCapturePosition"] == {"x": x, "y": y}
    loaded = state_from_json(data)
    assert loaded.chain_at == state.chain_at
    moves = legal_moves(loaded)
    assert moves and all(
        m.type is MoveType.CONTINUE_CAPTURE_SEGMENT and m.frm == state.chain_at for m in moves
    )


def test_turn_local_fields_are_written() -> None:
    state = GameState.initial(GameConfig.parse("square8_2p"))
    apply_move(state, move_from_str(state.geo, "place_ring p1 to=3,3"))
    data = state_to_json(state)
    assert data["mustMoveFromStackKey"] == "3,3"
    assert data["pendingLineRewardElimination"] is False
    assert data["pendingTerritorySelfElimination"] is False
    loaded = state_from_json(data)
    assert loaded.must_move == state.geo.cell("3,3")
    assert {m.frm for m in legal_moves(loaded)} == {state.geo.cell("3,3")}

    state.pending_line = True
    state.pending_territory = True
    data = state_to_json(state)
    assert data["pendingLineRewardElimination"] is True
    assert data["pendingTerritorySelfElimination"] is True
    loaded = state_from_json(data)
    assert loaded.pending_line and loaded.pending_territory


# ----- loading validates its input ----------------------------------------------------------


def small_state(**board: Any) -> dict[str, Any]:
    """A square8 2-player state JSON with the given board fields (stacks top first)."""
    return {
        "boardType": "square8",
        "board": {"type": "square8", "size": 8, "stacks": {}, "markers": {}, **board},
        "players": [
            {"playerNumber": 1, "ringsInHand": 17, "eliminatedRings": 0},
            {"playerNumber": 2, "ringsInHand": 18, "eliminatedRings": 0},
        ],
        "currentPlayer": 1,
        "currentPhase": "ring_placement",
        "gameStatus": "active",
    }


def test_small_state_loads() -> None:
    s = state_from_json(small_state(stacks={"3,3": {"rings": [1]}}))
    assert s.stacks[s.geo.cell("3,3")] == (1,)


def test_rejects_unknown_board_type() -> None:
    data = small_state()
    data["boardType"] = "octagon8"
    data["board"]["type"] = "octagon8"
    with pytest.raises(RingRiftError, match="unknown boardType 'octagon8'"):
        state_from_json(data)


@pytest.mark.parametrize("field", ["stacks", "markers", "collapsedSpaces"])
def test_rejects_position_off_the_board(field: str) -> None:
    value: Any = {"stacks": {"rings": [1]}, "markers": {"player": 1}, "collapsedSpaces": 1}[field]
    with pytest.raises(RingRiftError, match=r"8,3.* not on the square8 board"):
        state_from_json(small_state(**{field: {"8,3": value}}))


def test_rejects_off_board_position_object() -> None:
    data = small_state(stacks={"3,3": {"rings": [1]}})
    data["currentPhase"] = "chain_capture"
    data["chainCapturePosition"] = {"x": 3, "y": 9}
    with pytest.raises(RingRiftError, match=r"chainCapturePosition.*3,9 is not on the square8"):
        state_from_json(data)


def test_rejects_marker_on_a_stack() -> None:
    data = small_state(stacks={"3,3": {"rings": [1]}}, markers={"3,3": {"player": 2}})
    with pytest.raises(RingRiftError, match=r"board\.markers\[3,3\]: bad marker"):
        state_from_json(data)


def test_rejects_collapsed_space_under_a_marker() -> None:
    data = small_state(markers={"2,2": {"player": 1}}, collapsedSpaces={"2,2": 1})
    with pytest.raises(RingRiftError, match=r"board\.collapsedSpaces\[2,2\]: bad collapsed"):
        state_from_json(data)


@pytest.mark.parametrize("rings", [[1, 3], [0], [], [2, "1"]])
def test_rejects_bad_ring_colour(rings: list[Any]) -> None:
    with pytest.raises(RingRiftError, match=r"board\.stacks\[4,4\]: bad rings"):
        state_from_json(small_state(stacks={"4,4": {"rings": rings}}))


def test_rejects_bad_marker_colour() -> None:
    with pytest.raises(RingRiftError, match=r"board\.markers\[1,1\]: bad marker"):
        state_from_json(small_state(markers={"1,1": {"player": 3}}))


def test_rejects_unknown_phase() -> None:
    data = small_state()
    data["currentPhase"] = "dancing"
    with pytest.raises(RingRiftError, match="unknown currentPhase 'dancing'"):
        state_from_json(data)


def test_rejects_current_player_out_of_range() -> None:
    data = small_state()
    data["currentPlayer"] = 3
    with pytest.raises(RingRiftError, match="currentPlayer 3 is not a player"):
        state_from_json(data)


def test_rejects_capture_phase_without_position() -> None:
    data = small_state(stacks={"3,3": {"rings": [1]}})
    data["currentPhase"] = "capture"
    state = state_from_json(data)
    with pytest.raises(RingRiftError, match="capture phase without the capturing stack"):
        legal_moves(state)


def test_rejects_move_json_without_type_or_fields() -> None:
    state = GameState.initial(GameConfig.parse("square8_2p"))
    with pytest.raises(RingRiftError, match="needs a 'type'"):
        move_from_json(state, {"player": 1})
    with pytest.raises(RingRiftError, match="unknown move type 'teleport'"):
        move_from_json(state, {"type": "teleport", "player": 1})
    with pytest.raises(RingRiftError, match="place_ring move needs 'to'"):
        move_from_json(state, {"type": "place_ring", "player": 1})


# ----- stacks are top first in JSON ------------------------------------------------------------


def test_reference_stacks_are_top_first() -> None:
    state = state_from_json(small_state(stacks={"2,5": {"rings": [1, 2, 2]}}))
    cell = state.geo.cell("2,5")
    assert state.stacks[cell] == (2, 2, 1)  # bottom to top
    assert state.controller(cell) == 1
    assert cap_height(state.stacks[cell]) == 1
    out = state_to_json(state)["board"]["stacks"]["2,5"]
    assert out["rings"] == [1, 2, 2]
    assert out["controllingPlayer"] == 1
    assert out["capHeight"] == 1
    assert out["stackHeight"] == 3


def test_hex_positions_use_cube_coordinates() -> None:
    data = small_state(stacks={"1,-1": {"rings": [2, 1]}})
    data["boardType"] = "hex8"
    data["board"]["type"] = "hex8"
    state = state_from_json(data)  # a legacy two-coordinate key gains its z
    cell = state.geo.cell("1,-1,0")
    assert state.stacks[cell] == (1, 2)
    out = state_to_json(state)
    assert out["board"]["stacks"]["1,-1,0"]["position"] == {"x": 1, "y": -1, "z": 0}


# ----- round-trip losses (engine bugs, see the report) ------------------------------------------


def test_round_trip_keeps_that_the_player_has_acted() -> None:
    state = GameState.initial(GameConfig.parse("square8_2p"))
    for text in ("place_ring p1 to=3,3", "move_stack p1 from=3,3 to=3,4", "no_line_action p1"):
        apply_move(state, move_from_str(state.geo, text))
    loaded = round_trip(state)
    assert_same_position(state, loaded)  # passes: the difference is invisible until the next move
    move = Move(MoveType.NO_TERRITORY_ACTION, 1)
    apply_move(state, move)
    apply_move(loaded, move)
    assert (state.current, state.phase) == (2, Phase.RING_PLACEMENT)
    assert (loaded.current, loaded.phase) == (2, Phase.RING_PLACEMENT)


def test_round_trip_keeps_swap_used() -> None:
    state = GameState.initial(GameConfig(BoardType.SQUARE8, 2, swap_rule=True))
    for text in (*SQUARE8_FIRST_TURN, "swap_sides p2"):
        apply_move(state, move_from_str(state.geo, text))
    assert Move(MoveType.SWAP_SIDES, 2) not in legal_moves(state)
    assert Move(MoveType.SWAP_SIDES, 2) not in legal_moves(round_trip(state))


def _after_recovery_with_a_region() -> GameState:
    """The first position, over seeded games, in territory processing after a recovery slide
    with a region to claim."""
    for seed in range(40):
        for _, state in play("square8_2p", seed, None):
            if (
                state.recovery_turn
                and state.phase is Phase.TERRITORY_PROCESSING
                and any(m.type is MoveType.CHOOSE_TERRITORY_OPTION for m in legal_moves(state))
            ):
                return state
    pytest.fail("no seeded game reached territory processing after a recovery slide")


def test_round_trip_keeps_recovery_turn() -> None:
    state = _after_recovery_with_a_region()
    assert legal_moves(round_trip(state)) == legal_moves(state)


def test_round_trip_keeps_the_result_of_a_finished_game() -> None:
    for seed in range(5):
        *_, (_, state) = play("hex8_4p", seed, None)
        if state.victory is VictoryType.TERRITORY:
            break
    else:
        pytest.fail("no seeded hex8_4p game ended by territory")
    loaded = round_trip(state)
    assert fingerprint(loaded) == fingerprint(state)
    assert loaded.winner == state.winner
    assert loaded.victory is VictoryType.TERRITORY
    assert loaded.ranks == state.ranks
