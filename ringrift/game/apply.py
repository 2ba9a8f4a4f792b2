"""Applying moves: the checked ``apply_move`` and the unchecked fast path, and the phase machine.

Each move type's effect is one function; ``_advance_after_*`` helpers move the phase on as the
canonical turn order requires (placement, movement, capture chain, lines, territory, forced
elimination, victory check, next player).
"""

from __future__ import annotations

from ringrift.game.errors import IllegalMoveError
from ringrift.game.lines import find_lines
from ringrift.game.movegen import (
    claimable_regions,
    has_real_action,
    legal_moves,
    named_territory_decision,
    stack_moves,
)
from ringrift.game.moves import RECOVERY_LINE, RECOVERY_STACK_STRIKE, Move, MoveType
from ringrift.game.state import GameState, Phase, VictoryType, cap_height
from ringrift.game.victory import check_stalemate, check_threshold_victory, finish

MT = MoveType


def apply_move(state: GameState, move: Move) -> None:
    """Apply ``move`` after checking that it is legal; raise ``IllegalMoveError`` if not."""
    if state.phase is Phase.GAME_OVER:
        raise IllegalMoveError(f"{describe(state, move)}: the game is over")
    legal = legal_moves(state)
    if move not in legal:
        named = named_territory_decision(state, move)
        if named is None:
            raise IllegalMoveError(
                f"{describe(state, move)} is not legal: {why_illegal(state, move, legal)}"
            )
        move = named
    apply_move_unchecked(state, move)


def describe(state: GameState, move: Move) -> str:
    """The move and the position it was tried in, for error messages."""
    from ringrift.game.fingerprint import state_hash
    from ringrift.game.notation import move_to_str

    return (
        f"move {move_to_str(state.geo, move)!r} (player {move.player}) in "
        f"{state.config.name} position {state_hash(state)} [player {state.current} to move, "
        f"phase {state.phase.value}, move {state.move_count}]"
    )


def why_illegal(state: GameState, move: Move, legal: list[Move]) -> str:
    if move.player != state.current:
        return f"it is player {state.current}'s turn"
    kinds = sorted({m.type.value for m in legal})
    if move.type.value not in kinds:
        return f"{move.type.value} is not allowed in phase {state.phase.value}; allowed: {kinds}"
    return "no legal move of that type matches it"


def _move_stack_along(
    state: GameState, frm: int, to: int, player: int, moving: tuple[int, ...]
) -> None:
    """Shared path effects of a movement or capture segment from ``frm`` to ``to``."""
    geo = state.geo
    markers = state.markers
    state.set_stack(frm, ())
    markers[frm] = player
    d = _direction(geo.rays[frm], to)
    for c in geo.rays[frm][d]:
        if c == to:
            break
        owner = markers[c]
        if owner:
            if owner == player:
                markers[c] = 0
                state.collapsed[c] = player
                state.territory[player] += 1
            else:
                markers[c] = player
    landed_on_marker = markers[to] != 0
    markers[to] = 0
    state.set_stack(to, moving)
    if landed_on_marker:
        state.eliminate_top(to, 1, player)


def _direction(rays: tuple[tuple[int, ...], ...], to: int) -> int:
    for d, ray in enumerate(rays):
        if to in ray:
            return d
    raise IllegalMoveError(f"cell {to} is not on a straight line from the source")


def _has_capture_from(state: GameState, cell: int, player: int) -> bool:
    """Whether ``player`` still controls the stack at ``cell`` and it can capture from there."""
    s = state.stacks[cell]
    if not s or s[-1] != player:
        return False
    out: list[Move] = []
    stack_moves(state, cell, out, captures_only=True)
    return bool(out)


def _after_stack_move(state: GameState, landing: int, player: int, capture_phase: Phase) -> None:
    """A real action was taken; offer captures from the landing cell, else process lines."""
    state.acted = True
    state.real_taken = True
    state.must_move = -1
    if _has_capture_from(state, landing, player):
        state.phase = capture_phase
        state.chain_at = landing
    else:
        _enter_line_processing(state)


def _enter_line_processing(state: GameState) -> None:
    state.phase = Phase.LINE_PROCESSING
    state.chain_at = -1


def _after_line_step(state: GameState) -> None:
    """Stay in line processing while lines remain, else go on to territory."""
    if state.pending_line:
        return
    if find_lines(state, state.current):
        state.phase = Phase.LINE_PROCESSING
    else:
        state.phase = Phase.TERRITORY_PROCESSING


def _after_territory_step(state: GameState) -> None:
    if state.pending_territory:
        return
    if claimable_regions(state, state.current):
        state.phase = Phase.TERRITORY_PROCESSING
    else:
        _end_turn(state)


def _end_turn(state: GameState) -> None:
    """Forced elimination if the player did nothing yet still has stacks; else rotate."""
    p = state.current
    if not state.acted and state.phase is not Phase.FORCED_ELIMINATION and state.controls_any(p):
        state.phase = Phase.FORCED_ELIMINATION
        return
    n = state.num_players
    _record_permanent_eliminations(state)
    if check_threshold_victory(state):
        return
    if check_stalemate(state):
        return
    if _sole_player_left(state):  # every other player has no ring left anywhere
        return
    if state.real_taken:
        state.last_actor = p
    nxt = p
    for _ in range(n):
        nxt = nxt % n + 1
        if not state.is_permanently_eliminated(nxt):
            break
    if _score_turn_for_lps(state, p, nxt):
        return
    state.current = nxt
    state.turn_number += 1
    state.phase = Phase.RING_PLACEMENT
    state.reset_turn()
    if has_real_action(state, nxt):
        state.lps_actors.add(nxt)


LPS_ROUNDS = 3  # full rounds a last player standing must have to themselves


def _score_turn_for_lps(state: GameState, p: int, nxt: int) -> bool:
    """Score player ``p``'s finished turn for last-player-standing (RR-CANON-R172); True if
    the game ended.

    A round is counted from the candidate's own turn: the candidate takes a real action, then
    every other player in turn order starts a turn with no real action available. The win is
    declared when the third such round closes, before the candidate's next turn begins.
    """
    had_real = p in state.lps_actors
    state.lps_actors.discard(p)
    if not state.lps_valid:  # the turn in progress when the position was loaded
        state.lps_valid = True
        return False
    if state.real_taken:
        if state.lps_candidate != p:
            state.lps_candidate = p
            state.lps_rounds = 0
    elif p == state.lps_candidate or had_real:
        state.lps_candidate = 0
        state.lps_rounds = 0
    if state.lps_candidate and nxt == state.lps_candidate:
        state.lps_rounds += 1
        if state.lps_rounds >= LPS_ROUNDS:
            state.current = nxt
            finish(state, nxt, VictoryType.LAST_PLAYER_STANDING)
            return True
    return False


def apply_move_unchecked(state: GameState, move: Move) -> None:
    """Apply a move known to be legal in ``state`` (e.g. one taken from ``legal_moves``).

    Nothing is validated: an illegal move here corrupts the position silently. Use
    ``apply_move`` for moves from outside the engine.
    """
    t = move.type
    p = state.current
    deciding = state.phase is Phase.LINE_PROCESSING or state.phase is Phase.TERRITORY_PROCESSING
    eliminated_before = state.total_eliminated() if deciding else 0
    if t is MT.PLACE_RING:
        state.set_stack(move.to, state.stacks[move.to] + (p,) * move.rings)
        state.hand[p] -= move.rings
        state.must_move = move.to
        state.acted = True
        state.real_taken = True
        state.phase = Phase.MOVEMENT
    elif t is MT.SKIP_PLACEMENT or t is MT.NO_PLACEMENT_ACTION:
        state.phase = Phase.MOVEMENT
    elif t is MT.MOVE_STACK:
        _move_stack_along(state, move.frm, move.to, p, state.stacks[move.frm])
        _after_stack_move(state, move.to, p, Phase.CAPTURE)
    elif t is MT.OVERTAKING_CAPTURE or t is MT.CONTINUE_CAPTURE_SEGMENT:
        target = state.stacks[move.target]
        moving = (target[-1],) + state.stacks[move.frm]
        state.set_stack(move.target, target[:-1])
        _move_stack_along(state, move.frm, move.to, p, moving)
        _after_stack_move(state, move.to, p, Phase.CHAIN_CAPTURE)
    elif t is MT.SKIP_CAPTURE or t is MT.NO_MOVEMENT_ACTION or t is MT.SKIP_RECOVERY:
        _enter_line_processing(state)
    elif t is MT.RECOVERY_SLIDE:
        _apply_recovery(state, move, p)
        state.acted = True
        state.recovery_turn = True
        _enter_line_processing(state)
    elif t is MT.PROCESS_LINE or t is MT.CHOOSE_LINE_OPTION:
        for c in move.collapse:
            state.collapse(c, p)
        state.acted = True
        if move.option != 2 and state.controls_any(p):
            state.pending_line = True
        _after_line_step(state)
    elif t is MT.NO_LINE_ACTION:
        state.phase = Phase.TERRITORY_PROCESSING
    elif t is MT.ELIMINATE_RINGS_FROM_STACK:
        _apply_elimination(state, move.to, p)
    elif t is MT.CHOOSE_TERRITORY_OPTION:
        for c in move.cells:
            state.collapse(c, p)
        for c in move.collapse:
            state.collapse(c, p)
        state.acted = True
        state.pending_territory = True
    elif t is MT.SKIP_TERRITORY_PROCESSING or t is MT.NO_TERRITORY_ACTION:
        _end_turn(state)
    elif t is MT.FORCED_ELIMINATION:
        state.eliminate_top(move.to, cap_height(state.stacks[move.to]), p)
        _end_turn(state)
    elif t is MT.SWAP_SIDES:
        state.swap_used = True
    else:  # pragma: no cover - every MoveType is handled above
        raise IllegalMoveError(f"unknown move type {t!r}")
    state.move_count += 1
    if state.phase is Phase.GAME_OVER or check_threshold_victory(state):
        return
    if deciding and state.total_eliminated() != eliminated_before and _sole_player_left(state):
        return
    if state.move_count >= state.config.max_moves:
        finish(state, None, VictoryType.MAX_MOVES)


def _record_permanent_eliminations(state: GameState) -> None:
    for q in range(1, state.num_players + 1):
        if state.elimination_turn[q] >= 1 << 30 and state.is_permanently_eliminated(q):
            state.elimination_turn[q] = state.turn_number


def _sole_player_left(state: GameState) -> bool:
    """End the game when every other player has no ring left anywhere; True if it ended.

    Checked at each turn's end and, as the canonical engine does, right after a line or
    territory decision too, where a self-elimination still owed is then not asked for. (After
    a recovery slide the turn goes on; the turn's end decides.)"""
    standing = [
        q for q in range(1, state.num_players + 1) if not state.is_permanently_eliminated(q)
    ]
    if len(standing) != 1:
        return False
    _record_permanent_eliminations(state)
    finish(state, standing[0], VictoryType.LAST_PLAYER_STANDING)
    return True


def _apply_elimination(state: GameState, cell: int, p: int) -> None:
    state.acted = True  # paying for a line or region: the turn did something
    if state.phase is Phase.LINE_PROCESSING:
        # The line is paid for; line processing goes on (more lines, or no_line_action).
        state.eliminate_top(cell, 1, p)
        state.pending_line = False
        return
    if state.recovery_turn:
        state.extract_buried(cell, p)
    else:
        state.eliminate_top(cell, cap_height(state.stacks[cell]), p)
    state.pending_territory = False
    _after_territory_step(state)


def _apply_recovery(state: GameState, move: Move, p: int) -> None:
    state.markers[move.frm] = 0
    if move.mode == RECOVERY_STACK_STRIKE:
        state.eliminate_top(move.to, 1, p)
    else:
        state.markers[move.to] = p
    if move.mode == RECOVERY_LINE:
        for c in move.collapse:
            state.collapse(c, p)
    if move.target >= 0:
        state.extract_buried(move.target, p)
