"""The fingerprint string and its 64-bit hash."""

from __future__ import annotations

import pytest

from ringrift.game import GameConfig, GameState, apply_move, fingerprint, legal_moves
from ringrift.game.fingerprint import fingerprint_hash, state_hash

# Values computed independently with the JavaScript form of the hash (Math.imul arithmetic).
KNOWN = [
    ("", "488bdcb81aee8d83"),
    ("a", "501c2ba782c97901"),
    ("2:ring_placement:waiting:0#1:17:0:0|2:18:0:0#3,4:1:1:1#3,3:1#", "4d5d8fd49b7ec93b"),
    ("1:movement:active:0#1:18:0:0|2:18:0:0###", "36895d5ee76a3e27"),
    ("0:game_over:completed:0#1:0:18:3|2:5:2:0#-1,2,-1:1:2:2##", "9e2fa60bf31580c5"),
]


@pytest.mark.parametrize(("text", "digest"), KNOWN)
def test_hash_matches_the_reference_arithmetic(text: str, digest: str) -> None:
    assert fingerprint_hash(text) == digest


def test_fingerprint_of_the_start_and_after_a_placement() -> None:
    state = GameState.initial(GameConfig.parse("square8_2p"))
    assert fingerprint(state) == "1:ring_placement:active:0#1:18:0:0|2:18:0:0###"
    place = next(m for m in legal_moves(state) if m.rings == 2 and state.geo.keys[m.to] == "3,3")
    apply_move(state, place)
    assert fingerprint(state) == "1:movement:active:0#1:16:0:0|2:18:0:0#3,3:1:2:2##"
    assert state_hash(state) == fingerprint_hash(fingerprint(state))
    assert len(state_hash(state)) == 16
