"""The turn phase machine, on the standard start and on small hand-written positions."""

from __future__ import annotations

import random

from ringrift.game import (
    BoardType,
    GameConfig,
    GameState,
    Move,
    MoveType,
    Phase,
    VictoryType,
    apply_move,
    legal_moves,
    move_from_str,
)
from ringrift.game.serialize import state_from_json
from tests.positions import SQUARE8_FIRST_TURN

MT = MoveType


def position(
    stacks: dict[str, list[int]] | None = None,
    markers: dict[str, int] | None = None,
    collapsed: dict[str, int] | None = None,
    hand: dict[int, int] | None = None,
    phase: str = "ring_placement",
    current: int = 1,
    board: str = "square8",
    players: int = 2,
) -> GameState:
    """A position from reference JSON; stacks list their rings top first. Rings in hand default
    to the 18 of square8 less the player's rings on the board."""
    stacks = stacks or {}
    rpp = 18
    hand = hand or {}
    player_json = []
    for p in range(1, players + 1):
        on_board = sum(rings.count(p) for rings in stacks.values())
        player_json.append(
            {
                "playerNumber": p,
                "ringsInHand": hand.get(p, rpp - on_board),
                "eliminatedRings": 0,
            }
        )
    return state_from_json(
        {
            "boardType": board,
            "board": {
                "type": board,
                "stacks": {k: {"rings": v} for k, v in stacks.items()},
                "markers": {k: {"player": v} for k, v in (markers or {}).items()},
                "collapsedSpaces": dict(collapsed or {}),
            },
            "players": player_json,
            "currentPlayer": current,
            "currentPhase": phase,
            "gameStatus": "active",
        }
    )


def kinds(state: GameState) -> list[MoveType]:
    return [m.type for m in legal_moves(state)]


def only(state: GameState, kind: MoveType) -> Move:
    """The single legal move, which must be of ``kind``."""
    moves = legal_moves(state)
    assert moves == [Move(kind, state.current)], moves
    return moves[0]


def play(state: GameState, text: str) -> None:
    apply_move(state, move_from_str(state.geo, text))


# ----- (a) the first turn ------------------------------------------------------------------------


def test_first_turn_phase_sequence() -> None:
    state = GameState.initial(GameConfig.parse("square8_2p"))
    geo = state.geo
    assert (state.current, state.phase, state.turn_number) == (1, Phase.RING_PLACEMENT, 1)
    moves = legal_moves(state)
    assert moves and all(m.type is MT.PLACE_RING for m in moves)  # no skip without stacks
    assert {m.rings for m in moves} == {1, 2, 3}
    assert len({m.to for m in moves}) == geo.num_cells

    play(state, "place_ring p1 to=3,3 rings=2")
    assert state.phase is Phase.MOVEMENT and state.current == 1
    assert state.hand[1] == 17 - 1
    moves = legal_moves(state)
    assert moves and {m.type for m in moves} == {MT.MOVE_STACK}
    assert {m.frm for m in moves} == {geo.cell("3,3")}
    assert all(geo.distance(m.frm, m.to) >= 2 for m in moves)  # height 2 moves at least 2

    play(state, "move_stack p1 from=3,3 to=5,5")
    assert state.phase is Phase.LINE_PROCESSING
    assert state.markers[geo.cell("3,3")] == 1  # departure marker
    assert state.stacks[geo.cell("5,5")] == (1, 1)
    apply_move(state, only(state, MT.NO_LINE_ACTION))

    assert state.phase is Phase.TERRITORY_PROCESSING and state.current == 1
    apply_move(state, only(state, MT.NO_TERRITORY_ACTION))

    assert (state.current, state.phase, state.turn_number) == (2, Phase.RING_PLACEMENT, 2)
    moves = legal_moves(state)
    # player 2 controls no stack, so it must place (no skip_placement)
    assert moves and {m.type for m in moves} == {MT.PLACE_RING}
    assert state.move_count == 4


def test_placed_stack_must_move() -> None:
    state = position(stacks={"0,0": [1], "7,7": [2]})
    moves = legal_moves(state)
    assert moves[-1] == Move(MT.SKIP_PLACEMENT, 1)  # it controls a stack that can move
    play(state, "place_ring p1 to=4,4")
    cell = state.geo.cell("4,4")
    assert state.must_move == cell
    moves = legal_moves(state)
    assert moves and all(m.frm == cell for m in moves)

    # after skipping placement, every controlled stack may move
    state = position(stacks={"0,0": [1], "4,4": [1], "7,7": [2]})
    play(state, "skip_placement p1")
    assert state.phase is Phase.MOVEMENT
    assert {m.frm for m in legal_moves(state)} == {state.geo.cell("0,0"), state.geo.cell("4,4")}


def test_placement_on_own_stack_then_move_it() -> None:
    state = position(stacks={"2,2": [1], "7,7": [2]})
    play(state, "place_ring p1 to=2,2")
    cell = state.geo.cell("2,2")
    assert state.stacks[cell] == (1, 1)
    moves = legal_moves(state)
    assert moves and all(m.frm == cell and state.geo.distance(cell, m.to) >= 2 for m in moves)


# ----- (b) no rings in hand ----------------------------------------------------------------------


def test_no_rings_in_hand_gives_no_placement_action() -> None:
    state = position(stacks={"3,3": [1], "6,6": [2]}, hand={1: 0})
    assert legal_moves(state) == [Move(MT.NO_PLACEMENT_ACTION, 1)]
    play(state, "no_placement_action p1")
    assert state.phase is Phase.MOVEMENT and state.current == 1
    moves = legal_moves(state)
    assert moves and {m.frm for m in moves} == {state.geo.cell("3,3")}


def test_no_rings_in_hand_and_no_stacks() -> None:
    # player 1 has nothing at all to do: every phase offers only its bookkeeping move
    state = position(stacks={"6,6": [2]}, hand={1: 0})
    for kind, phase in [
        (MT.NO_PLACEMENT_ACTION, Phase.RING_PLACEMENT),
        (MT.NO_MOVEMENT_ACTION, Phase.MOVEMENT),
        (MT.NO_LINE_ACTION, Phase.LINE_PROCESSING),
        (MT.NO_TERRITORY_ACTION, Phase.TERRITORY_PROCESSING),
    ]:
        assert state.phase is phase and state.current == 1
        apply_move(state, only(state, kind))
    assert state.is_over or (state.current, state.phase) == (2, Phase.RING_PLACEMENT)


# ----- (c) capture after a move ------------------------------------------------------------------


def test_move_then_capture_phase() -> None:
    # P1 at 0,0 moves to 2,0; from there it can overtake P2's stack at 3,0
    state = position(stacks={"0,0": [1], "3,0": [2], "7,7": [2]}, phase="movement")
    geo = state.geo
    assert Move(MT.MOVE_STACK, 1, geo.cell("0,0"), geo.cell("2,0")) in legal_moves(state)
    play(state, "move_stack p1 from=0,0 to=2,0")
    assert state.phase is Phase.CAPTURE and state.current == 1
    land = geo.cell("2,0")
    assert state.chain_at == land
    moves = legal_moves(state)
    assert moves[-1] == Move(MT.SKIP_CAPTURE, 1)
    captures = moves[:-1]
    assert captures and all(m.type is MT.OVERTAKING_CAPTURE and m.frm == land for m in captures)
    assert {m.target for m in captures} == {geo.cell("3,0")}
    assert {m.to for m in captures} == {geo.cell(f"{x},0") for x in range(4, 8)}

    skipped = state.copy()
    play(skipped, "skip_capture p1")
    assert skipped.phase is Phase.LINE_PROCESSING

    play(state, "overtaking_capture p1 from=2,0 to=5,0 target=3,0")
    assert state.stacks[geo.cell("5,0")] == (2, 1)  # captured ring goes to the bottom
    assert geo.cell("3,0") not in state.stack_cells
    assert state.phase is Phase.LINE_PROCESSING


def test_move_without_capture_goes_to_line_processing() -> None:
    state = position(stacks={"0,0": [1], "3,0": [2, 2], "7,7": [2]}, phase="movement")
    play(state, "move_stack p1 from=0,0 to=2,0")  # cap 1 cannot overtake cap 2
    assert state.phase is Phase.LINE_PROCESSING


# ----- (d) chain capture -------------------------------------------------------------------------


def test_chain_capture_offers_only_continuations() -> None:
    state = position(stacks={"0,0": [1], "1,0": [2], "3,0": [2], "7,7": [2]}, phase="movement")
    geo = state.geo
    play(state, "overtaking_capture p1 from=0,0 to=2,0 target=1,0")
    land = geo.cell("2,0")
    assert state.phase is Phase.CHAIN_CAPTURE and state.chain_at == land
    assert state.stacks[land] == (2, 1)
    moves = legal_moves(state)
    assert moves
    assert all(m.type is MT.CONTINUE_CAPTURE_SEGMENT and m.frm == land for m in moves)
    assert {m.target for m in moves} == {geo.cell("3,0")}
    assert MT.SKIP_CAPTURE not in kinds(state)
    # height 2 lands at least 2 away
    assert {m.to for m in moves} == {geo.cell(f"{x},0") for x in range(4, 8)}

    play(state, "continue_capture_segment p1 from=2,0 to=4,0 target=3,0")
    assert state.stacks[geo.cell("4,0")] == (2, 2, 1)
    assert state.phase is Phase.LINE_PROCESSING
    assert state.markers[geo.cell("0,0")] == 1 and state.markers[land] == 1


# ----- (e) forced elimination --------------------------------------------------------------------


def blocked_position() -> GameState:
    """Player 1: no rings in hand, two single rings boxed in by player 2's cap-2 stacks."""
    walls = ["1,0", "0,1", "1,1", "6,7", "7,6", "6,6"]
    stacks = {"0,0": [1], "7,7": [1, 2], **{w: [2, 2] for w in walls}}
    return position(stacks=stacks, hand={1: 0})


def test_forced_elimination_when_blocked() -> None:
    state = blocked_position()
    geo = state.geo
    for kind, phase in [
        (MT.NO_PLACEMENT_ACTION, Phase.RING_PLACEMENT),
        (MT.NO_MOVEMENT_ACTION, Phase.MOVEMENT),
        (MT.NO_LINE_ACTION, Phase.LINE_PROCESSING),
        (MT.NO_TERRITORY_ACTION, Phase.TERRITORY_PROCESSING),
    ]:
        assert (state.current, state.phase) == (1, phase)
        apply_move(state, only(state, kind))
    assert (state.current, state.phase) == (1, Phase.FORCED_ELIMINATION)
    moves = legal_moves(state)
    assert moves == [
        Move(MT.FORCED_ELIMINATION, 1, to=geo.cell("0,0")),
        Move(MT.FORCED_ELIMINATION, 1, to=geo.cell("7,7")),
    ]
    before = state.eliminated[1]
    play(state, "forced_elimination p1 to=7,7")  # removes the cap: one ring, leaving P2's
    assert state.stacks[geo.cell("7,7")] == (2,)
    assert state.eliminated[1] == before + 1
    assert (state.current, state.phase) == (2, Phase.RING_PLACEMENT)
    assert state.turn_number == 2


def test_forced_elimination_removes_whole_cap() -> None:
    # a cap of two (rings top first: 1, 1, then P2's 2) boxed in by cap-3 stacks
    walls = {w: [2, 2, 2] for w in ("1,0", "0,1", "1,1")}
    state = position(stacks={"0,0": [1, 1, 2], **walls}, hand={1: 0})
    for _ in range(4):
        apply_move(state, legal_moves(state)[0])
    cell = state.geo.cell("0,0")
    assert legal_moves(state) == [Move(MT.FORCED_ELIMINATION, 1, to=cell)]
    play(state, "forced_elimination p1 to=0,0")
    assert state.stacks[cell] == (2,)
    assert state.eliminated[1] == 2
    # P1 has no ring left anywhere, so P2 is the last player standing (as the canonical engine
    # ends such a game at once)
    assert state.is_over and state.winner == 2
    assert state.victory is VictoryType.LAST_PLAYER_STANDING


def test_no_forced_elimination_after_acting() -> None:
    state = position(stacks={"0,0": [1], "7,7": [2]})
    for text in ("place_ring p1 to=4,4", "move_stack p1 from=4,4 to=4,6"):
        play(state, text)
    apply_move(state, only(state, MT.NO_LINE_ACTION))
    apply_move(state, only(state, MT.NO_TERRITORY_ACTION))
    assert (state.current, state.phase) == (2, Phase.RING_PLACEMENT)


# ----- (f) an exact-length line ------------------------------------------------------------------


def test_exact_line_then_elimination_then_territory() -> None:
    # P1 markers at 0,0 1,0 2,0; its stack at 3,0 steps to 3,1 and leaves the fourth marker
    state = position(
        stacks={"3,0": [1], "6,6": [1, 1], "7,3": [2]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1},
        phase="movement",
    )
    geo = state.geo
    line = tuple(geo.cell(f"{x},0") for x in range(4))
    play(state, "move_stack p1 from=3,0 to=3,1")
    assert state.phase is Phase.LINE_PROCESSING
    assert legal_moves(state) == [
        Move(MT.PROCESS_LINE, 1, cells=line, collapse=line, option=1),
        Move(MT.CHOOSE_LINE_OPTION, 1, cells=line, collapse=line, option=1),
    ]

    apply_move(state, legal_moves(state)[0])
    assert all(state.collapsed[c] == 1 and not state.markers[c] for c in line)
    assert state.territory[1] == 4
    assert state.phase is Phase.LINE_PROCESSING and state.pending_line
    moves = legal_moves(state)
    assert moves == [
        Move(MT.ELIMINATE_RINGS_FROM_STACK, 1, to=geo.cell("3,1")),
        Move(MT.ELIMINATE_RINGS_FROM_STACK, 1, to=geo.cell("6,6")),
    ]

    rings_before = state.rings_on_board(1)
    play(state, "eliminate_rings_from_stack p1 to=6,6")
    assert state.stacks[geo.cell("6,6")] == (1,)  # exactly one ring of the two
    assert state.rings_on_board(1) == rings_before - 1
    assert state.eliminated[1] == 1
    assert not state.pending_line
    assert state.phase is Phase.LINE_PROCESSING  # line processing goes on (R123)
    apply_move(state, only(state, MT.NO_LINE_ACTION))
    assert state.phase is Phase.TERRITORY_PROCESSING
    apply_move(state, only(state, MT.NO_TERRITORY_ACTION))
    assert (state.current, state.phase) == (2, Phase.RING_PLACEMENT)


def test_line_on_hex_three_player_is_three_long() -> None:
    state = position(
        board="hex8",
        players=3,
        stacks={"2,-2,0": [1], "-3,3,0": [2], "0,3,-3": [3]},
        markers={"0,0,0": 1, "1,-1,0": 1},
        phase="movement",
    )
    # stepping 2,-2,0 -> 2,-1,-1 leaves the third marker of a 3-long row (hex8 3p needs 3)
    play(state, "move_stack p1 from=2,-2,0 to=2,-1,-1")
    moves = legal_moves(state)
    assert [m.type for m in moves] == [MT.PROCESS_LINE, MT.CHOOSE_LINE_OPTION]
    assert all(len(m.cells) == 3 for m in moves)


# ----- (g) the swap rule -------------------------------------------------------------------------


def _swap_positions(cfg: GameConfig, seed: int, take_swap: bool) -> list[tuple[GameState, bool]]:
    """(position, whether swap_sides is legal there) over a seeded game."""
    rng = random.Random(seed)
    state = GameState.initial(cfg)
    seen = []
    swap = Move(MT.SWAP_SIDES, 2)
    while not state.is_over and state.move_count < 200:
        moves = legal_moves(state)
        offered = swap in moves
        seen.append((state.copy(), offered))
        if offered and take_swap:
            move = swap
        else:
            move = rng.choice([m for m in moves if m.type is not MT.SWAP_SIDES])
        apply_move(state, move)
    return seen


def test_swap_only_at_player_twos_first_placement() -> None:
    cfg = GameConfig(BoardType.SQUARE8, 2, swap_rule=True)
    for take_swap in (False, True):
        seen = _swap_positions(cfg, 4, take_swap)
        offered_at = [s for s, offered in seen if offered]
        assert len(offered_at) == 1
        s = offered_at[0]
        assert (s.current, s.phase, s.turn_number) == (2, Phase.RING_PLACEMENT, 2)
        assert legal_moves(s)[-1] == Move(MT.SWAP_SIDES, 2)


def test_swap_then_player_two_still_places() -> None:
    state = GameState.initial(GameConfig(BoardType.SQUARE8, 2, swap_rule=True))
    for text in SQUARE8_FIRST_TURN:
        assert MT.SWAP_SIDES not in kinds(state)
        play(state, text)
    assert MT.SWAP_SIDES in kinds(state)
    play(state, "swap_sides p2")
    assert (state.current, state.phase) == (2, Phase.RING_PLACEMENT)
    assert MT.SWAP_SIDES not in kinds(state)
    assert set(kinds(state)) == {MT.PLACE_RING}


def test_no_swap_without_the_option() -> None:
    cfg = GameConfig(BoardType.SQUARE8, 2)
    for state, offered in _swap_positions(cfg, 4, False):
        assert not offered, (state.current, state.phase, state.turn_number)


def test_landing_on_a_marker_that_hands_the_stack_over_ends_the_movement() -> None:
    """The moved stack loses its top ring to the marker; the opponent's ring is now on top, so
    the mover has no capture from the landing cell, even if that stack could capture."""
    state = state_from_json(
        {
            "board": {
                "type": "square8",
                "size": 8,
                "stacks": {"0,0": {"rings": [1, 2]}, "0,3": {"rings": [1]}},
                "markers": {"0,2": {"player": 2}},
                "collapsedSpaces": {},
            },
            "players": [
                {"playerNumber": 1, "ringsInHand": 0, "eliminatedRings": 0, "territorySpaces": 0},
                {"playerNumber": 2, "ringsInHand": 0, "eliminatedRings": 0, "territorySpaces": 0},
            ],
            "currentPlayer": 1,
            "currentPhase": "movement",
            "gameStatus": "active",
        }
    )
    geo = state.geo
    move = Move(MoveType.MOVE_STACK, 1, geo.cell("0,0"), geo.cell("0,2"))
    apply_move(state, move)
    assert state.stacks[geo.cell("0,2")] == (2,)
    assert state.phase is Phase.LINE_PROCESSING
    assert all(m.player == 1 for m in legal_moves(state))
