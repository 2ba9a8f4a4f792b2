"""Victory conditions: last player standing over three rounds, stalemate, ranking, move cap."""

from __future__ import annotations

from typing import Any

from ringrift.game import GameConfig, GameState, MoveType, VictoryType, apply_move, legal_moves
from ringrift.game.serialize import state_from_json
from ringrift.game.victory import final_ranks


def _state(stacks: dict[str, list[int]], hands: tuple[int, int], **extra: Any) -> GameState:
    board = {
        "type": "square8",
        "size": 8,
        "stacks": {k: {"rings": v} for k, v in stacks.items()},
        "markers": {k: {"player": p} for k, p in extra.get("markers", {}).items()},
        "collapsedSpaces": extra.get("collapsed", {}),
    }
    players = [
        {
            "playerNumber": i + 1,
            "ringsInHand": h,
            "eliminatedRings": 0,
            "territorySpaces": sum(1 for o in extra.get("collapsed", {}).values() if o == i + 1),
        }
        for i, h in enumerate(hands)
    ]
    return state_from_json(
        {
            "board": board,
            "players": players,
            "currentPlayer": 1,
            "currentPhase": "ring_placement",
            "gameStatus": "active",
        }
    )


def _play_quietly(state: GameState, limit: int) -> None:
    """Prefer moves that land on empty cells, so nothing but turns passes."""
    for _ in range(limit):
        if state.is_over:
            return
        moves = legal_moves(state)
        quiet = [m for m in moves if m.type is MoveType.MOVE_STACK and not state.markers[m.to]]
        apply_move(state, quiet[0] if quiet else moves[0])


def test_last_player_standing_after_three_full_rounds() -> None:
    # Player 2 has a ring buried under player 1's cap but nothing to act with.
    state = _state({"3,3": [1, 2], "7,7": [1]}, (0, 0))
    _play_quietly(state, 200)
    assert state.is_over
    assert state.victory is VictoryType.LAST_PLAYER_STANDING
    assert state.winner == 1
    assert state.ranks == (1, 2)
    # one partial round after loading is not scored, then three rounds of four moves per player
    assert state.move_count == 32


def test_last_player_standing_rounds_run_from_the_candidates_own_turn() -> None:
    # Player 1 moves first but has nothing to act with (a ring buried under player 2's cap, no
    # ring in hand, no marker to slide); player 2 alone acts. A round runs from player 2's turn
    # through player 1's, and the win is declared as the third closes, before player 2's
    # fourth turn: where the canonical engine's recorded games end.
    state = _state({"3,3": [2, 1], "7,7": [2]}, (0, 0))
    _play_quietly(state, 200)
    assert state.is_over
    assert state.victory is VictoryType.LAST_PLAYER_STANDING
    assert state.winner == 2 and state.current == 2
    assert state.ranks == (2, 1)
    # player 1's first turn after loading (not scored), then three rounds of four moves a turn
    assert state.move_count == 4 + 3 * 8


def test_a_player_who_regains_an_action_resets_last_player_standing() -> None:
    state = _state({"3,3": [1, 2], "7,7": [1]}, (0, 0))
    while state.lps_rounds < 2:
        _play_quietly(state, 1)
    assert state.lps_candidate == 1 and not state.is_over
    # Player 2 gets a ring back in hand: a real action at the start of their next turn.
    state.hand[2] = 1
    state.lost[2] -= 1
    _play_quietly(state, 8)  # player 1's turn, then player 2's turn (which places)
    assert state.lps_rounds == 0 and not state.is_over


def test_stalemate_ranks_by_territory_then_rings_then_markers() -> None:
    state = _state(
        {},
        (0, 0),
        markers={"0,0": 1, "1,0": 1, "7,7": 2},
        collapsed={"4,4": 1, "4,5": 2},
    )
    while not state.is_over:
        moves = legal_moves(state)
        assert len(moves) == 1 and moves[0].type.value.startswith("no_")
        apply_move(state, moves[0])
    assert state.victory is VictoryType.STALEMATE
    assert state.winner == 1  # equal territory and rings; more markers
    assert state.ranks == (1, 2)
    assert state.move_count == 4  # one full turn of bookkeeping moves


def test_rings_in_hand_count_as_eliminated_in_a_stalemate() -> None:
    # All but two cells collapsed, split evenly; no placement there could ever move.
    cells = [f"{x},{y}" for y in range(8) for x in range(8) if (x, y) not in ((0, 0), (7, 7))]
    collapsed = {c: 1 + i % 2 for i, c in enumerate(cells)}
    state = _state({}, (0, 3), collapsed=collapsed)
    while not state.is_over:
        apply_move(state, legal_moves(state)[0])
    assert state.victory is VictoryType.STALEMATE
    assert state.hand[2] == 0 and state.eliminated[2] == 3
    assert state.winner == 2 and state.ranks == (2, 1)


def test_ranking_shares_ranks_on_full_ties() -> None:
    state = GameState.initial(GameConfig.parse("square8_4p"))
    state.territory[2] = 5
    ranks = final_ranks(state, winner=None)
    assert ranks == (2, 1, 2, 2)
    assert final_ranks(state, winner=3) == (3, 2, 1, 3)


def test_move_cap_ends_the_game() -> None:
    state = GameState.initial(GameConfig.parse("square8_2p"))
    state.move_count = state.config.max_moves - 1
    apply_move(state, legal_moves(state)[0])
    assert state.is_over and state.victory is VictoryType.MAX_MOVES and state.winner is None
