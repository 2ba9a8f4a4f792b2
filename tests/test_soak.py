"""A wider soak: seeded random games on all twelve configurations, every position checked.

On top of the position invariants (``tests.invariants``), two checks on the legal-move list:

- nothing offered is refused: every legal move survives the trip a client's move makes (to
  JSON, back through ``move_from_json``) and ``apply_move`` takes it, leaving a position that
  keeps the invariants;
- nothing allowed is missing: placements, movements and capture segments equal, move for move,
  a slow literal reading of the rules (``tests.rules_oracle``); in the decision phases, a line
  or a claimable region always has its decision offered, and the bookkeeping moves
  (``no_*_action``) appear exactly when nothing else of the phase does.

Big boards check a seeded sample of each position's moves, and run the oracle on every fifth
position, to keep the suite's time.
"""

from __future__ import annotations

import random

import pytest

from ringrift.game import ALL_CONFIGS, GameConfig, GameState, Move, MoveType, apply_move
from ringrift.game.lines import find_lines
from ringrift.game.movegen import claimable_regions, legal_moves
from ringrift.game.serialize import move_from_json, move_to_json
from ringrift.game.state import Phase
from tests.invariants import check_invariants
from tests.rules_oracle import placement_options, stack_options

MT = MoveType
BOOKKEEPING = {
    Phase.RING_PLACEMENT: MT.NO_PLACEMENT_ACTION,
    Phase.MOVEMENT: MT.NO_MOVEMENT_ACTION,
    Phase.LINE_PROCESSING: MT.NO_LINE_ACTION,
    Phase.TERRITORY_PROCESSING: MT.NO_TERRITORY_ACTION,
}


def _offered_refused(state: GameState, moves: list[Move], rng: random.Random, sample: int) -> None:
    chosen = moves if len(moves) <= sample else rng.sample(moves, sample)
    for move in chosen:
        trial = state.copy()
        again = move_from_json(trial, move_to_json(trial.geo, move))
        assert again == move, f"{move} came back from JSON as {again}"
        apply_move(trial, again)
        check_invariants(trial)


def _stack_segments(moves: list[Move]) -> tuple[set[tuple[int, int]], set[tuple[int, int, int]]]:
    plain = {(m.frm, m.to) for m in moves if m.type is MT.MOVE_STACK}
    captures = {
        (m.frm, m.target, m.to)
        for m in moves
        if m.type in (MT.OVERTAKING_CAPTURE, MT.CONTINUE_CAPTURE_SEGMENT)
    }
    return plain, captures


def _oracle_segments(
    state: GameState, cells: list[int]
) -> tuple[set[tuple[int, int]], set[tuple[int, int, int]]]:
    plain: set[tuple[int, int]] = set()
    captures: set[tuple[int, int, int]] = set()
    for frm in cells:
        landings, segments = stack_options(state, frm)
        plain |= {(frm, to) for to in landings}
        captures |= {(frm, target, to) for target, to in segments}
    return plain, captures


def _allowed_missing(state: GameState, moves: list[Move]) -> None:
    p = state.current
    kinds = {m.type for m in moves}
    phase = state.phase
    if phase is Phase.RING_PLACEMENT:
        offered = {(m.to, m.rings) for m in moves if m.type is MT.PLACE_RING}
        assert offered == placement_options(state, p)
    elif phase is Phase.MOVEMENT and state.controls_any(p):
        cells = [state.must_move] if state.must_move >= 0 else list(state.controlled_stacks(p))
        cells = [c for c in cells if state.stacks[c] and state.stacks[c][-1] == p]
        assert _stack_segments(moves) == _oracle_segments(state, cells)
    elif phase is Phase.CAPTURE or phase is Phase.CHAIN_CAPTURE:
        _, captures = _oracle_segments(state, [state.chain_at])
        assert _stack_segments(moves)[1] == captures
        assert captures or phase is Phase.CAPTURE, "a chain capture with no segment to play"
    elif phase is Phase.LINE_PROCESSING and not state.pending_line:
        for line in find_lines(state, p):
            offered = {m.type for m in moves if set(m.cells) == set(line)}
            assert {MT.PROCESS_LINE, MT.CHOOSE_LINE_OPTION} <= offered, f"line {line} not offered"
    elif phase is Phase.TERRITORY_PROCESSING and not state.pending_territory:
        assert bool(claimable_regions(state, p)) == (MT.CHOOSE_TERRITORY_OPTION in kinds)
    elif phase is Phase.FORCED_ELIMINATION:
        assert {m.to for m in moves} == set(state.controlled_stacks(p))
    none_move = BOOKKEEPING.get(phase)
    if none_move is not None:
        alone = kinds == {none_move}
        assert (none_move in kinds) == alone, f"{none_move.value} offered beside {kinds}"


SOAK_GAMES = {"square8": 6, "hex8": 6, "square19": 1, "hexagonal": 1}


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_soak_every_position_offers_exactly_what_the_rules_allow(config: str) -> None:
    cfg = GameConfig.parse(config)
    big = cfg.geometry.num_cells > 100
    positions = 0
    for seed in range(SOAK_GAMES[cfg.board.value]):
        rng = random.Random(1000 + seed)
        state = GameState.initial(cfg)
        while not state.is_over:
            moves = legal_moves(state)
            _offered_refused(state, moves, rng, sample=6 if big else 40)
            if not big or positions % 5 == 0:
                _allowed_missing(state, moves)
            positions += 1
            apply_move(state, rng.choice(moves))
            check_invariants(state)
    assert positions > (400 if big else 600)
