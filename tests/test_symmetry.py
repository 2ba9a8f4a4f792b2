"""Board symmetries: group structure, and equivariance of the rules and the encoding."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from ringrift.ai.encoding import encode_state
from ringrift.ai.symmetry import (
    Symmetry,
    symmetries,
    transform_actions,
    transform_move,
    transform_planes,
    transform_state,
)
from ringrift.game import (
    BoardType,
    GameConfig,
    GameState,
    MoveType,
    Phase,
    apply_move_unchecked,
    legal_moves,
)
from ringrift.game.actions import legal_actions

MT = MoveType


@pytest.mark.parametrize("board", list(BoardType), ids=lambda b: b.value)
def test_group_structure(board: BoardType) -> None:
    group = symmetries(board)
    geo = GameConfig(board, 2).geometry
    assert len(group) == {"square8": 8, "square19": 8, "hex8": 4, "hexagonal": 12}[board.value]
    assert group[0].is_identity and group[0].dirs == tuple(range(geo.num_directions))
    assert len({g.perm for g in group}) == len(group)
    cells = list(range(geo.num_cells))
    by_perm = {g.perm: g for g in group}
    for g in group:
        assert sorted(g.perm) == cells
        assert sorted(g.dirs) == list(range(geo.num_directions))
        assert all(g.inverse[g.perm[c]] == c for c in cells)
        # neighbour relations, whole rays, opposite directions and territory adjacency preserved
        for c in cells:
            for d, ray in enumerate(geo.rays[c]):
                assert tuple(g.perm[x] for x in ray) == geo.rays[g.perm[c]][g.dirs[d]]
                assert g.dirs[geo.opposite(d)] == geo.opposite(g.dirs[d])
            assert {g.perm[x] for x in geo.territory_neighbors[c]} == set(
                geo.territory_neighbors[g.perm[c]]
            )
            assert {g.perm[x] for x in geo.marker_link_neighbors[c]} == set(
                geo.marker_link_neighbors[g.perm[c]]
            )
        # closed under composition and inverses
        for h in group:
            composed = tuple(h.perm[g.perm[c]] for c in cells)
            assert composed in by_perm
        assert g.inverse in by_perm


def _line_position(cfg: GameConfig, axis: int) -> GameState:
    """Player 1 to process an overlength line on ``axis``, starting near the centre."""
    s = GameState.initial(cfg)
    geo = s.geo
    length = cfg.line_length
    centre = _centre(s)
    start = min(
        (c for c in range(geo.num_cells) if len(geo.rays[c][axis]) >= length),
        key=lambda c: geo.distance(c, centre),
    )
    for c in (start, *geo.rays[start][axis][:length]):
        s.markers[c] = 1
    s.set_stack(next(c for c in range(geo.num_cells) if not s.markers[c]), (1, 1))
    s.hand[1] -= 2
    s.phase = Phase.LINE_PROCESSING
    return s


def _recovery_position(cfg: GameConfig, axis: int) -> GameState:
    """Player 1 has no stack, a buried ring and markers one slide away from an overlength line."""
    s = GameState.initial(cfg)
    geo = s.geo
    centre = _centre(s)  # the gap the slide fills
    length = cfg.line_length
    for c in geo.rays[centre][geo.opposite(axis)][: length - 1] + geo.rays[centre][axis][:1]:
        s.markers[c] = 1
    s.markers[geo.rays[centre][(axis + 1) % geo.num_directions][0]] = 1
    s.set_stack(geo.rays[centre][(axis + 2) % geo.num_directions][2], (1, 2, 2))
    s.hand[1] -= 1
    s.hand[2] -= 2
    s.phase = Phase.MOVEMENT
    return s


def _fallback_position(cfg: GameConfig) -> GameState:
    """Player 1 has no stack, a buried ring, one marker beside a stack and no line in reach."""
    s = GameState.initial(cfg)
    geo = s.geo
    centre = _centre(s)
    s.markers[centre] = 1
    s.set_stack(geo.rays[centre][0][0], (1, 2, 2))
    s.hand[1] -= 1
    s.hand[2] -= 2
    s.phase = Phase.MOVEMENT
    return s


def _centre(s: GameState) -> int:
    geo = s.geo
    if geo.board.is_hex:
        return geo.coord_index[(0, 0, 0)]
    return geo.coord_index[(geo.size // 2, geo.size // 2)]


def _check(state: GameState, group: tuple[Symmetry, ...], seen: Counter[str]) -> None:
    geo = state.geo
    moves = legal_moves(state)
    planes, glob = encode_state(state)
    for g in group:
        moved = transform_state(state, g)
        expected = {transform_move(geo, m, g) for m in moves}
        assert set(legal_moves(moved)) == expected, (g.name, state.phase, state.move_count)
        mapping = transform_actions(state, g)
        assert sorted(mapping.values()) == sorted(legal_actions(moved))
        mplanes, mglob = encode_state(moved)
        assert np.array_equal(transform_planes(planes, g), mplanes)
        assert np.array_equal(glob, mglob)
        for m in moves:
            t = transform_move(geo, m, g)
            if len(m.cells) >= 2 and m.type is not MT.CHOOSE_TERRITORY_OPTION:
                seen["reversed line" if t.cells[0] != g.perm[m.cells[0]] else "line"] += 1
    for m in moves:
        seen[m.type.value if m.type is not MT.RECOVERY_SLIDE else f"recovery {m.mode}"] += 1
        if m.type is MT.CHOOSE_LINE_OPTION and m.option == 2:
            seen["line option 2"] += 1


# (config, seed, chance of checking a position); positions with line, territory or recovery
# moves, or with a move type not checked yet, are always checked.
CASES = [
    ("square8_2p", 2, 0.15),
    ("square8_4p", 3, 0.1),
    ("hex8_2p", 0, 0.15),
    ("hex8_4p", 1, 0.1),
    ("square19_2p", 1, 0.01),
    ("hexagonal_3p", 1, 0.005),
]
INTERESTING = {MT.CHOOSE_TERRITORY_OPTION, MT.RECOVERY_SLIDE, MT.PROCESS_LINE}


@pytest.mark.parametrize("config,seed,chance", CASES, ids=[c[0] for c in CASES])
def test_rules_and_encoding_are_equivariant(config: str, seed: int, chance: float) -> None:
    cfg = GameConfig.parse(config)
    group = symmetries(cfg.board)
    rng = random.Random(seed)
    seen: Counter[str] = Counter()
    state = GameState.initial(cfg)
    checked = 0
    types_checked: set[MoveType] = set()
    while not state.is_over:
        moves = legal_moves(state)
        types = {m.type for m in moves}
        if rng.random() < chance or types & INTERESTING or not types <= types_checked:
            _check(state, group, seen)
            checked += 1
            types_checked |= types
        apply_move_unchecked(state, rng.choice(moves))
    for axis in cfg.geometry.line_axes:
        _check(_line_position(cfg, axis), group, seen)
        _check(_recovery_position(cfg, axis), group, seen)
    _check(_fallback_position(cfg), group, seen)
    assert checked >= 5
    for kind in (
        "place_ring",
        "move_stack",
        "overtaking_capture",
        "continue_capture_segment",
        "choose_territory_option",
        "eliminate_rings_from_stack",
        "line option 2",
        "recovery line",
        "recovery fallback",
        "recovery stack_strike",
        "reversed line",
    ):
        assert seen[kind], f"{config}: no {kind} among the checked positions"


def test_a_symmetry_of_another_board_is_refused() -> None:
    state = GameState.initial(GameConfig.parse("square8_2p"))
    with pytest.raises(ValueError, match="hex8"):
        transform_state(state, symmetries(BoardType.HEX8)[1])
