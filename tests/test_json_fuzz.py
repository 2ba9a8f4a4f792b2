"""Property-based: a state or move read from JSON with any field replaced by a value of the
wrong type is either read or refused with a ``RingRiftError`` that names that field; never
another exception from deep inside the reader."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ringrift.game import GameConfig, GameState, RingRiftError, apply_move, legal_moves
from ringrift.game.serialize import move_from_json, move_to_json, state_from_json, state_to_json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)


def _positions() -> list[GameState]:
    """Positions of a seeded square8 and hex8 game, every few moves (several phases)."""
    out = []
    for config, seed in (("square8_2p", 3), ("hex8_3p", 4)):
        rng = random.Random(seed)
        state = GameState.initial(GameConfig.parse(config))
        for i in range(120):
            if state.is_over:
                break
            if i % 15 == 0:
                out.append(copy.deepcopy(state))
            apply_move(state, rng.choice(legal_moves(state)))
    return out


POSITIONS = _positions()


def _leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON value, containers included."""
    out = [path] if path else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _leaf_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += _leaf_paths(v, (*path, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return doc


def _names(message: str, path: tuple[Any, ...]) -> bool:
    """Whether an error message names the replaced field (its key, or a key above it)."""
    return any(isinstance(k, str) and k in message for k in path)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_state_with_a_field_of_the_wrong_type_is_read_or_refused_by_name(data: Any) -> None:
    state = data.draw(st.sampled_from(POSITIONS))
    doc = state_to_json(state)
    path = data.draw(st.sampled_from(_leaf_paths(doc)))
    bad = data.draw(JSON)
    try:
        state_from_json(_replace(doc, path, bad))
    except RingRiftError as e:
        assert _names(str(e), path), f"{path} = {bad!r}: {e}"


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_move_with_a_field_of_the_wrong_type_is_read_or_refused_by_name(data: Any) -> None:
    state = data.draw(st.sampled_from(POSITIONS))
    move = data.draw(st.sampled_from(legal_moves(state)))
    doc = move_to_json(state.geo, move)
    path = data.draw(st.sampled_from(_leaf_paths(doc)))
    bad = data.draw(JSON)
    try:
        move_from_json(state, _replace(doc, path, bad))
    except RingRiftError as e:
        assert _names(str(e), path), f"{path} = {bad!r}: {e}"
