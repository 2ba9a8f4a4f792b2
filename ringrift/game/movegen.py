"""Legal move generation for every phase, in a stable order.

Order: by move kind as listed in ``legal_moves``, then by source cell, direction and distance
(or target cell). The order is part of the API: seeded random play and recorded action lists
depend on it.
"""

from __future__ import annotations

from ringrift.game.errors import RingRiftError
from ringrift.game.lines import find_lines, line_through
from ringrift.game.moves import (
    RECOVERY_FALLBACK,
    RECOVERY_LINE,
    RECOVERY_STACK_STRIKE,
    Move,
    MoveType,
)
from ringrift.game.state import GameState, Phase, cap_height
from ringrift.game.territory import Region, find_disconnected_regions, named_region_markers

MT = MoveType


def stack_moves(
    state: GameState,
    cell: int,
    out: list[Move],
    *,
    captures_only: bool = False,
    capture_type: MoveType = MT.OVERTAKING_CAPTURE,
) -> None:
    """Append the non-capture moves and capture segments of the stack at ``cell``."""
    stacks = state.stacks
    collapsed = state.collapsed
    s = stacks[cell]
    h = len(s)
    cap = cap_height(s)
    player = s[-1]
    for ray in state.geo.rays[cell]:
        for i, c in enumerate(ray):
            if collapsed[c]:
                break
            t = stacks[c]
            if t:
                if cap >= cap_height(t):
                    for j in range(i + 1, len(ray)):
                        land = ray[j]
                        if collapsed[land] or stacks[land]:
                            break
                        if j + 1 >= h:
                            out.append(Move(capture_type, player, cell, land, c))
                break
            if not captures_only and i + 1 >= h:
                out.append(Move(MT.MOVE_STACK, player, cell, c))


def _reach(state: GameState, cell: int) -> list[tuple[int, int, int]]:
    """Per direction from ``cell``: (free run, capHeight of the stack after it or 0, free run
    beyond that stack). Free cells hold no stack and are not collapsed."""
    stacks = state.stacks
    collapsed = state.collapsed
    out = []
    for ray in state.geo.rays[cell]:
        f = 0
        tcap = 0
        g = 0
        n = len(ray)
        while f < n:
            c = ray[f]
            if collapsed[c]:
                break
            if stacks[c]:
                tcap = cap_height(stacks[c])
                k = f + 1
                while k < n and not collapsed[ray[k]] and not stacks[ray[k]]:
                    k += 1
                g = k - f - 1
                break
            f += 1
        out.append((f, tcap, g))
    return out


def _can_act(reach: list[tuple[int, int, int]], height: int, cap: int) -> bool:
    """Whether a stack of this height and cap, at the cell ``reach`` describes, can move."""
    for f, tcap, g in reach:
        if f >= height:
            return True
        if tcap and g and tcap <= cap and f + 1 + g >= height:
            return True
    return False


def placements(state: GameState, player: int, *, first_only: bool = False) -> list[Move]:
    """Legal ``place_ring`` moves: 1-3 rings on an empty cell, 1 on a stack; no dead stacks.

    The no-dead-placement test is the canonical engine's: a new stack of ``k`` rings on an
    empty cell passes if it could move ``k`` or more, or capture a stack whose cap is at most
    ``k + 1`` (one more than the spec's ``k``) with a landing ``k`` or more away. Its recorded
    games show it: 4 placements in 2,673 that only this passes, where random play under it
    would have made 4.4 such placements; the other relaxations tried predict 11 to 51.
    """
    out: list[Move] = []
    hand = state.hand[player]
    if hand <= 0:
        return out
    cfg = state.config
    supply = cfg.rings_per_player - state.rings_on_board(player)
    max_new = min(hand, 3, supply)
    if max_new <= 0:
        return out
    stacks = state.stacks
    markers = state.markers
    collapsed = state.collapsed
    for c in range(state.geo.num_cells):
        if collapsed[c]:
            continue
        s = stacks[c]
        if s:
            cap = cap_height(s) + 1 if s[-1] == player else 1
            if _can_act(_reach(state, c), len(s) + 1, cap):
                out.append(Move(MT.PLACE_RING, player, -1, c, -1, 1))
                if first_only:
                    return out
        elif not markers[c]:
            reach = _reach(state, c)
            for k in range(1, max_new + 1):
                if _can_act(reach, k, k + 1):
                    out.append(Move(MT.PLACE_RING, player, -1, c, -1, k))
                    if first_only:
                        return out
    return out


def movements(state: GameState, player: int) -> list[Move]:
    out: list[Move] = []
    if state.must_move >= 0:
        if state.stacks[state.must_move] and state.stacks[state.must_move][-1] == player:
            stack_moves(state, state.must_move, out)
        return out
    for c in state.controlled_stacks(player):
        stack_moves(state, c, out)
    return out


def has_movement(state: GameState, player: int) -> bool:
    out: list[Move] = []
    stacks = state.stacks
    for c in state.stack_cells:
        if stacks[c][-1] == player:
            stack_moves(state, c, out)
            if out:
                return True
    return False


def has_real_action(state: GameState, player: int) -> bool:
    """A placement, movement or capture is available (last-player-standing's 'real action')."""
    return has_movement(state, player) or bool(placements(state, player, first_only=True))


def is_recovery_eligible(state: GameState, player: int) -> bool:
    return (
        not state.controls_any(player) and player in state.markers and state.has_buried_ring(player)
    )


def recovery_moves(state: GameState, player: int) -> list[Move]:
    """Recovery slides: line-forming slides if any exist, else fallback slides and strikes."""
    geo = state.geo
    markers = state.markers
    stacks = state.stacks
    collapsed = state.collapsed
    length = state.config.line_length
    extraction = sorted(c for c in state.stack_cells if player in stacks[c])
    line_moves: list[Move] = []
    fallback: list[Move] = []
    for m in range(geo.num_cells):
        if markers[m] != player:
            continue
        markers[m] = 0  # the sliding marker leaves its cell
        try:
            for _d, t in geo.neighbor_dirs[m]:
                if collapsed[t] or markers[t]:
                    continue
                if stacks[t]:
                    for x in extraction:
                        fallback.append(
                            Move(MT.RECOVERY_SLIDE, player, m, t, x, mode=RECOVERY_STACK_STRIKE)
                        )
                    continue
                markers[t] = player
                try:
                    for axis in geo.line_axes:
                        line = line_through(state, t, player, axis)
                        if len(line) < length:
                            continue
                        for x in extraction:
                            line_moves.append(
                                Move(
                                    MT.RECOVERY_SLIDE,
                                    player,
                                    m,
                                    t,
                                    x,
                                    cells=line,
                                    collapse=line,
                                    option=1,
                                    mode=RECOVERY_LINE,
                                )
                            )
                        for i in range(len(line) - length + 1) if len(line) > length else ():
                            seg = line[i : i + length]
                            line_moves.append(
                                Move(
                                    MT.RECOVERY_SLIDE,
                                    player,
                                    m,
                                    t,
                                    -1,
                                    cells=line,
                                    collapse=seg,
                                    option=2,
                                    mode=RECOVERY_LINE,
                                )
                            )
                finally:
                    markers[t] = 0
                for x in extraction:
                    fallback.append(
                        Move(MT.RECOVERY_SLIDE, player, m, t, x, mode=RECOVERY_FALLBACK)
                    )
        finally:
            markers[m] = player
    return line_moves if line_moves else fallback


def line_moves(state: GameState, player: int) -> list[Move]:
    """Line decisions. Any line may be collapsed whole (then one ring is owed), as
    ``process_line`` or as ``choose_line_option`` option 1; a longer line may instead collapse
    any run of the line length (option 2, nothing owed)."""
    length = state.config.line_length
    out: list[Move] = []
    for line in find_lines(state, player):
        out.append(Move(MT.PROCESS_LINE, player, cells=line, collapse=line, option=1))
        out.append(Move(MT.CHOOSE_LINE_OPTION, player, cells=line, collapse=line, option=1))
        if len(line) == length:
            continue
        for i in range(len(line) - length + 1):
            out.append(
                Move(
                    MT.CHOOSE_LINE_OPTION,
                    player,
                    cells=line,
                    collapse=line[i : i + length],
                    option=2,
                )
            )
    return out


def claimable_regions(state: GameState, player: int) -> list[Region]:
    """Disconnected regions ``player`` may process: a way to pay must remain outside."""
    return [
        region
        for region in find_disconnected_regions(state)
        if _can_pay_outside(state, player, set(region.cells))
    ]


def _can_pay_outside(state: GameState, player: int, inside: set[int]) -> bool:
    """Whether ``player`` has a way to pay for a region outside its cells: a controlled stack,
    or on a recovery turn a buried ring to extract."""
    stacks = state.stacks
    if state.recovery_turn:
        return any(player in stacks[c][:-1] for c in state.stack_cells if c not in inside)
    return any(stacks[c][-1] == player for c in state.stack_cells if c not in inside)


def territory_moves(state: GameState, player: int) -> list[Move]:
    return [
        Move(
            MT.CHOOSE_TERRITORY_OPTION,
            player,
            to=r.cells[0],
            cells=r.cells,
            collapse=r.border_markers,
            option=r.border_color,
        )
        for r in claimable_regions(state, player)
    ]


def named_territory_decision(state: GameState, move: Move) -> Move | None:
    """A ``choose_territory_option`` naming a region the region finder does not offer, as the
    canonical engine accepts it; None if it does not.

    The canonical engine offers only disconnected regions, but takes a decision naming any
    region of uncollapsed cells when the mover can pay for it (a stack of theirs outside), and
    processes it like a found one: its cells and the markers joined to it collapse, then the
    mover pays. A decision naming no region leaves territory processing, as skipping does.
    """
    p = state.current
    if (
        move.type is not MT.CHOOSE_TERRITORY_OPTION
        or move.player != p
        or state.phase is not Phase.TERRITORY_PROCESSING
        or state.pending_territory
    ):
        return None
    if not move.cells:
        for leave in (MT.SKIP_TERRITORY_PROCESSING, MT.NO_TERRITORY_ACTION):
            if Move(leave, p) in legal_moves(state):
                return Move(leave, p)
        return None
    cells = tuple(sorted(set(move.cells)))
    if any(state.collapsed[c] for c in cells):
        return None
    if not _can_pay_outside(state, p, set(cells)):
        return None
    return Move(
        MT.CHOOSE_TERRITORY_OPTION,
        p,
        to=cells[0],
        cells=cells,
        collapse=named_region_markers(state, cells),
        option=0,
    )


def elimination_moves(state: GameState, player: int) -> list[Move]:
    """Pending line or territory eliminations; recovery turns extract buried rings instead."""
    if state.pending_territory and state.recovery_turn:
        cells = sorted(c for c in state.stack_cells if player in state.stacks[c][:-1])
    else:
        cells = state.controlled_stacks(player)
    return [Move(MT.ELIMINATE_RINGS_FROM_STACK, player, to=c) for c in cells]


def swap_available(state: GameState) -> bool:
    return (
        state.config.swap_rule
        and not state.swap_used
        and state.current == 2
        and state.turn_number == 2
        and state.phase is Phase.RING_PLACEMENT
        and not state.acted
    )


def legal_moves(state: GameState) -> list[Move]:
    """Every legal move for the player to move, bookkeeping moves included."""
    p = state.current
    phase = state.phase
    if phase is Phase.RING_PLACEMENT:
        out = placements(state, p)
        if out:
            if has_movement(state, p) or (
                is_recovery_eligible(state, p) and recovery_moves(state, p)
            ):
                out.append(Move(MT.SKIP_PLACEMENT, p))
        else:
            out.append(Move(MT.NO_PLACEMENT_ACTION, p))
        if swap_available(state):
            out.append(Move(MT.SWAP_SIDES, p))
        return out
    if phase is Phase.MOVEMENT:
        if state.controls_any(p):
            out = movements(state, p)
        elif is_recovery_eligible(state, p):
            out = recovery_moves(state, p)
            if out:
                out.append(Move(MT.SKIP_RECOVERY, p))
        else:
            out = []
        return out or [Move(MT.NO_MOVEMENT_ACTION, p)]
    if phase in (Phase.CAPTURE, Phase.CHAIN_CAPTURE) and state.chain_at < 0:
        raise RingRiftError(f"{phase.value} phase without the capturing stack's position")
    if phase is Phase.CAPTURE:
        out = []
        stack_moves(state, state.chain_at, out, captures_only=True)
        out.append(Move(MT.SKIP_CAPTURE, p))
        return out
    if phase is Phase.CHAIN_CAPTURE:
        out = []
        stack_moves(
            state, state.chain_at, out, captures_only=True, capture_type=MT.CONTINUE_CAPTURE_SEGMENT
        )
        return out
    if phase is Phase.LINE_PROCESSING:
        if state.pending_line:
            return elimination_moves(state, p)
        return line_moves(state, p) or [Move(MT.NO_LINE_ACTION, p)]
    if phase is Phase.TERRITORY_PROCESSING:
        if state.pending_territory:
            return elimination_moves(state, p)
        out = territory_moves(state, p)
        if not out:
            return [Move(MT.NO_TERRITORY_ACTION, p)]
        out.append(Move(MT.SKIP_TERRITORY_PROCESSING, p))
        return out
    if phase is Phase.FORCED_ELIMINATION:
        return [Move(MT.FORCED_ELIMINATION, p, to=c) for c in state.controlled_stacks(p)]
    return []
