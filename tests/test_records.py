"""Game records (replay, JSON) and the move text notation."""

from __future__ import annotations

import json
import random

import pytest

from ringrift.game import (
    GameConfig,
    GameRecord,
    GameState,
    IllegalMoveError,
    Move,
    MoveType,
    RingRiftError,
    apply_move,
    fingerprint,
    legal_moves,
    move_from_str,
    move_to_str,
)
from tests.positions import SQUARE8_FIRST_TURN


def recorded_game(config: str, seed: int, limit: int | None = None) -> tuple[GameRecord, GameState]:
    rng = random.Random(seed)
    record = GameRecord(config, seed)
    state = GameState.initial(GameConfig.parse(config))
    while not state.is_over and (limit is None or len(record.moves) < limit):
        move = rng.choice(legal_moves(state))
        record.add(state, move)
        apply_move(state, move)
    return record, state


@pytest.mark.parametrize(("config", "seed"), [("square8_2p", 0), ("square8_2p", 3), ("hex8_3p", 1)])
def test_replay_reaches_the_same_position_and_result(config: str, seed: int) -> None:
    record, final = recorded_game(config, seed)
    assert final.is_over and final.ranks is not None
    replayed = record.replay()
    assert replayed.is_over
    assert fingerprint(replayed) == fingerprint(final)
    assert replayed.winner == final.winner
    assert replayed.ranks == final.ranks
    assert replayed.victory == final.victory
    assert replayed.move_count == final.move_count == len(record.moves)


def test_replay_upto_gives_intermediate_positions() -> None:
    rng = random.Random(5)
    record = GameRecord("square8_2p", 5)
    state = GameState.initial(GameConfig.parse("square8_2p"))
    prints = [fingerprint(state)]
    for _ in range(60):
        move = rng.choice(legal_moves(state))
        record.add(state, move)
        apply_move(state, move)
        prints.append(fingerprint(state))
    for k in (0, 1, 7, 33, 60):
        assert fingerprint(record.replay(k)) == prints[k]


def test_record_json_round_trip() -> None:
    record, _ = recorded_game("hex8_3p", 2, limit=80)
    text = record.to_json()
    data = json.loads(text)
    assert data["version"] == 1
    assert data["config"] == "hex8_3p"
    assert data["seed"] == 2
    assert len(data["moves"]) == 80
    back = GameRecord.from_json(text)
    assert back == record
    assert fingerprint(back.replay()) == fingerprint(record.replay())


def test_record_with_swap_rule_round_trips() -> None:
    record = GameRecord("square8_2p", None, swap_rule=True)
    state = GameState.initial(record.game_config())
    for text in (*SQUARE8_FIRST_TURN, "swap_sides p2"):
        move = move_from_str(state.geo, text)
        record.add(state, move)
        apply_move(state, move)
    back = GameRecord.from_json(record.to_json())
    assert back.swap_rule is True
    assert fingerprint(back.replay()) == fingerprint(state)
    no_swap = GameRecord("square8_2p", None, list(record.moves))
    with pytest.raises(IllegalMoveError, match="swap_sides"):
        no_swap.replay()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"version": 2, "config": "square8_2p", "moves": []}', "unsupported version 2"),
        ('{"version": 1, "config": "square8_2p", "moves": [1]}', "list of move strings"),
        ('{"version": 1, "config": "octagon_2p", "moves": []}', "unknown configuration"),
    ],
)
def test_record_from_json_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(RingRiftError, match=message):
        GameRecord.from_json(text)


@pytest.mark.parametrize("index", [0, 1, 25, -1])
def test_replay_rejects_a_record_with_an_illegal_move(index: int) -> None:
    record, _ = recorded_game("square8_2p", 0, limit=60)
    moves = list(record.moves)
    i = index % len(moves)
    prefix = GameRecord("square8_2p", 0, moves[:i]).replay()
    legal = legal_moves(prefix)
    # a move that parses but is not legal here: the other player's no-op, or a wrong player
    other = prefix.current % 2 + 1
    bad = move_to_str(prefix.geo, Move(MoveType.NO_MOVEMENT_ACTION, other))
    assert move_from_str(prefix.geo, bad) not in legal
    moves[i] = bad
    broken = GameRecord("square8_2p", 0, moves)
    with pytest.raises(IllegalMoveError, match="no_movement_action p"):
        broken.replay()
    # the prefix before the bad move still replays
    assert fingerprint(broken.replay(i)) == fingerprint(prefix)


def test_replay_rejects_an_illegal_placement() -> None:
    record, _ = recorded_game("square8_2p", 1, limit=20)
    moves = list(record.moves)
    assert moves[0].startswith("place_ring p1 ")
    moves[0] = "place_ring p1 to=3,3 rings=4"  # more than three rings at once
    with pytest.raises(IllegalMoveError, match=r"'place_ring p1 to=3,3 rings=4'.*ring_placement"):
        GameRecord("square8_2p", 1, moves).replay()


def test_replay_rejects_unparsable_move_text() -> None:
    with pytest.raises(RingRiftError, match="record move 1"):
        GameRecord("square8_2p", None, ["place_ring p1 to=9,9"]).replay()


@pytest.mark.parametrize(("config", "limit"), [("square8_2p", None), ("hexagonal_2p", 300)])
def test_move_text_round_trip(config: str, limit: int | None) -> None:
    rng = random.Random(11)
    state = GameState.initial(GameConfig.parse(config))
    i = 0
    kinds: set[MoveType] = set()
    while not state.is_over and (limit is None or i < limit):
        moves = legal_moves(state)
        if i % 5 == 0 or len(moves) < 40:
            for m in moves:
                text = move_to_str(state.geo, m)
                assert move_from_str(state.geo, text) == m, text
                kinds.add(m.type)
        apply_move(state, rng.choice(moves))
        i += 1
    assert {MoveType.PLACE_RING, MoveType.MOVE_STACK, MoveType.NO_LINE_ACTION} <= kinds


@pytest.mark.parametrize(
    "text",
    [
        "place_ring p1 to=3,3 rings=2",
        "move_stack p2 from=0,0 to=0,5",
        "overtaking_capture p1 from=1,2 to=4,2 target=2,2",
        "process_line p1 cells=0,0|1,0|2,0|3,0 collapse=0,0|1,0|2,0|3,0 option=1",
        "choose_territory_option p2 to=3,2 cells=3,2|3,3 collapse=2,2",
        "recovery_slide p1 from=2,2 to=2,3 target=4,4 mode=fallback",
        "no_line_action p2",
    ],
)
def test_move_text_parses_and_prints_back(text: str) -> None:
    geo = GameConfig.parse("square8_2p").geometry
    assert move_to_str(geo, move_from_str(geo, text)) == text


@pytest.mark.parametrize(
    "text", ["", "place_ring", "place_ring 1 to=3,3", "jump p1", "place_ring p1 to=3;3", "x px"]
)
def test_move_text_rejects_garbage(text: str) -> None:
    geo = GameConfig.parse("square8_2p").geometry
    with pytest.raises(RingRiftError, match="bad move text|not on the square8 board"):
        move_from_str(geo, text)
