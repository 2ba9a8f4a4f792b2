"""State encoding: shapes per configuration, exact plane values, seat rotation, legal mask."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ringrift.ai.encoding import (
    ENCODER_VERSION,
    GLOBAL_MOVE_FRACTION,
    GLOBAL_PENDING_LINE,
    GLOBAL_PHASE0,
    GLOBAL_PLAYERS0,
    GLOBAL_SEAT0,
    GLOBALS_PER_SEAT,
    NUM_GLOBALS,
    NUM_PLANES,
    PHASES,
    PLANE_CHAIN,
    PLANE_MUST_MOVE,
    PLANE_VALID,
    PLANES_PER_SEAT,
    SEAT_BURIED,
    SEAT_CAP,
    SEAT_COLLAPSED,
    SEAT_CONTROL,
    SEAT_HEIGHT,
    SEAT_MARKER,
    SEAT_PLANE0,
    SEAT_SLOTS,
    encode_batch,
    encode_state,
    input_shape,
    legal_mask,
    seat_players,
)
from ringrift.game import (
    ALL_CONFIGS,
    GameConfig,
    GameState,
    Phase,
    apply_move_unchecked,
    legal_moves,
)
from ringrift.game.actions import action_space, legal_actions


def random_positions(config: str, seed: int, every: int = 7, limit: int = 400) -> list[GameState]:
    """Positions from one seeded random game, one every ``every`` moves (and the last)."""
    cfg = GameConfig.parse(config)
    rng = random.Random(seed)
    state = GameState.initial(cfg)
    out = [state.copy()]
    while not state.is_over and state.move_count < limit:
        apply_move_unchecked(state, rng.choice(legal_moves(state)))
        if state.move_count % every == 0:
            out.append(state.copy())
    out.append(state.copy())
    return out


def seat_group(planes: np.ndarray, slot: int) -> np.ndarray:
    base = SEAT_PLANE0 + PLANES_PER_SEAT * slot
    return planes[base : base + PLANES_PER_SEAT]


def test_version_and_counts() -> None:
    assert ENCODER_VERSION == 1
    assert NUM_PLANES == 1 + SEAT_SLOTS * PLANES_PER_SEAT + 2 == 27
    assert NUM_GLOBALS == len(PHASES) + SEAT_SLOTS * GLOBALS_PER_SEAT + 4 + 3 + 1 == 32


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_shapes_and_board_mask(config: str) -> None:
    cfg = GameConfig.parse(config)
    geo = cfg.geometry
    for state in random_positions(config, seed=1, every=50, limit=200):
        planes, glob = encode_state(state)
        assert planes.shape == input_shape(cfg.board) == (NUM_PLANES, geo.size, geo.size)
        assert glob.shape == (NUM_GLOBALS,)
        assert planes.dtype == glob.dtype == np.float32
        assert np.isfinite(planes).all() and np.isfinite(glob).all()
        assert planes.min() >= 0.0 and planes.max() <= 1.0
        valid = planes[PLANE_VALID].reshape(-1)
        assert valid.sum() == geo.num_cells
        assert (valid[list(geo.grid_index)] == 1).all()
        # nothing is ever encoded on an off-board square
        off = valid == 0
        assert not planes.reshape(NUM_PLANES, -1)[:, off].any()
        # absent seats are zero, present ones flagged
        for k in range(SEAT_SLOTS):
            present = glob[GLOBAL_SEAT0 + GLOBALS_PER_SEAT * k + 3]
            assert present == (1.0 if k < cfg.num_players else 0.0)
            if k >= cfg.num_players:
                assert not seat_group(planes, k).any()
        assert glob[GLOBAL_PLAYERS0 : GLOBAL_PLAYERS0 + 3].tolist() == [
            float(cfg.num_players == n) for n in (2, 3, 4)
        ]
        assert glob[GLOBAL_PHASE0 : GLOBAL_PHASE0 + len(PHASES)].sum() == 1.0


def test_exact_values_on_a_built_position() -> None:
    cfg = GameConfig.parse("square8_3p")
    s = GameState.initial(cfg)
    geo = s.geo
    size = geo.size
    a, b, c, d, e = (geo.cell(k) for k in ("0,0", "3,4", "7,7", "5,1", "2,6"))
    s.set_stack(a, (3, 1, 2, 2))  # player 2 controls, cap 2, height 4; 3 and 1 below the cap
    s.set_stack(b, (2,))
    s.markers[c] = 3
    s.collapsed[d] = 1
    s.territory[1] = 1
    s.hand[1], s.hand[2], s.hand[3] = 10, 15, 17
    s.eliminated[3] = 4
    s.current = 2
    s.phase = Phase.MOVEMENT
    s.must_move = b
    s.move_count = 90
    planes, glob = encode_state(s)

    def at(plane: int, cell: int) -> float:
        r, col = divmod(geo.grid_index[cell], size)
        return float(planes[plane, r, col])

    # player 2 to move: slot 0 = player 2, slot 1 = player 3, slot 2 = player 1, slot 3 absent
    p2, p3, p1 = (SEAT_PLANE0 + PLANES_PER_SEAT * k for k in range(3))
    assert at(p2 + SEAT_CONTROL, a) == 1.0
    assert at(p2 + SEAT_CAP, a) == pytest.approx(2 / size)
    assert at(p2 + SEAT_HEIGHT, a) == pytest.approx(4 / size)
    assert at(p3 + SEAT_BURIED, a) == pytest.approx(1 / size)
    assert at(p1 + SEAT_BURIED, a) == pytest.approx(1 / size)
    assert at(p2 + SEAT_BURIED, a) == 0.0
    assert at(p2 + SEAT_CONTROL, b) == 1.0
    assert at(p2 + SEAT_CAP, b) == at(p2 + SEAT_HEIGHT, b) == pytest.approx(1 / size)
    assert at(p3 + SEAT_MARKER, c) == 1.0
    assert at(p1 + SEAT_COLLAPSED, d) == 1.0
    assert at(PLANE_MUST_MOVE, b) == 1.0 and planes[PLANE_MUST_MOVE].sum() == 1.0
    assert not planes[PLANE_CHAIN].any()
    assert at(p2 + SEAT_CONTROL, e) == 0.0
    # nothing else: 5 entries for stack a, 3 for b, the marker and the collapsed space
    assert np.count_nonzero(planes[SEAT_PLANE0:PLANE_MUST_MOVE]) == 10

    assert glob[GLOBAL_PHASE0 + PHASES.index(Phase.MOVEMENT)] == 1.0
    seat = [glob[GLOBAL_SEAT0 + 4 * k : GLOBAL_SEAT0 + 4 * k + 4].tolist() for k in range(4)]
    rpp, vt, tm = cfg.rings_per_player, cfg.victory_threshold, cfg.territory_victory_minimum
    assert seat[0] == pytest.approx([15 / rpp, 0, 0, 1])
    assert seat[1] == pytest.approx([17 / rpp, 4 / vt, 0, 1])
    assert seat[2] == pytest.approx([10 / rpp, 0, 1 / tm, 1])
    assert seat[3] == [0, 0, 0, 0]
    assert glob[GLOBAL_PENDING_LINE] == 0.0
    assert glob[GLOBAL_MOVE_FRACTION] == pytest.approx(90 / cfg.max_moves)

    s.chain_at = b
    s.phase = Phase.CHAIN_CAPTURE
    planes, glob = encode_state(s)
    assert at(PLANE_CHAIN, b) == 1.0
    assert glob[GLOBAL_PHASE0 + PHASES.index(Phase.CHAIN_CAPTURE)] == 1.0


def test_tall_stacks_are_clipped_at_the_grid_side() -> None:
    s = GameState.initial(GameConfig.parse("square8_2p"))
    s.set_stack(0, (2,) * 3 + (1,) * 11)
    planes, _ = encode_state(s)
    assert planes[SEAT_PLANE0 + SEAT_CAP, 0, 0] == 1.0
    assert planes[SEAT_PLANE0 + SEAT_HEIGHT, 0, 0] == 1.0
    assert planes[SEAT_PLANE0 + PLANES_PER_SEAT + SEAT_BURIED, 0, 0] == pytest.approx(3 / 8)


@pytest.mark.parametrize("config", ["square8_2p", "hex8_3p", "square8_4p", "hexagonal_4p"])
def test_changing_the_player_to_move_rotates_the_seats(config: str) -> None:
    n = GameConfig.parse(config).num_players
    positions = random_positions(config, seed=2, every=25, limit=300)
    for state in positions[1:]:
        planes, glob = encode_state(state)
        other = state.copy()
        other.current = state.current % n + 1
        rplanes, rglob = encode_state(other)
        assert seat_players(n, other.current)[: n - 1] == seat_players(n, state.current)[1:n]
        for k in range(SEAT_SLOTS):
            if k < n:
                src = (k + 1) % n
                assert np.array_equal(seat_group(rplanes, k), seat_group(planes, src))
                g, h = GLOBAL_SEAT0 + 4 * k, GLOBAL_SEAT0 + 4 * src
                assert np.array_equal(rglob[g : g + 4], glob[h : h + 4])
            else:
                assert not seat_group(rplanes, k).any()
        assert np.array_equal(rplanes[PLANE_VALID], planes[PLANE_VALID])
        assert np.array_equal(rplanes[PLANE_MUST_MOVE:], planes[PLANE_MUST_MOVE:])
    # the view really changes somewhere once there are pieces on the board
    last = positions[-2]
    other = last.copy()
    other.current = last.current % n + 1
    assert not np.array_equal(encode_state(last)[0], encode_state(other)[0])


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_legal_mask_is_the_legal_action_set(config: str) -> None:
    cfg = GameConfig.parse(config)
    size = action_space(cfg.board).size
    every = 5 if cfg.geometry.num_cells < 100 else 60
    for state in random_positions(config, seed=3, every=every, limit=500):
        mask = legal_mask(state)
        assert mask.shape == (size,) and mask.dtype == np.bool_
        assert np.flatnonzero(mask).tolist() == sorted(legal_actions(state))


def test_encode_batch_stacks_and_refuses_mixed_boards() -> None:
    states = random_positions("hex8_2p", seed=4, every=30, limit=120)
    planes, glob = encode_batch(states)
    assert planes.shape == (len(states), *input_shape(states[0].geo.board))
    assert glob.shape == (len(states), NUM_GLOBALS)
    assert np.array_equal(planes[1], encode_state(states[1])[0])
    with pytest.raises(ValueError, match="mix boards"):
        encode_batch([states[0], GameState.initial(GameConfig.parse("square8_2p"))])
