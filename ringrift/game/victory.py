"""Game end: victory conditions, stalemate and the final ranking of all players."""

from __future__ import annotations

from ringrift.game.movegen import placements
from ringrift.game.state import NEVER, GameState, Phase, VictoryType


def ranking_key(state: GameState, p: int) -> tuple[int, int, int, int]:
    """Territory, eliminated rings, markers, permanent-elimination turn: larger ranks higher."""
    return (
        state.territory[p],
        state.eliminated[p],
        state.marker_count(p),
        state.elimination_turn[p],
    )


def final_ranks(state: GameState, winner: int | None) -> tuple[int, ...]:
    """Competition ranks (1224) per player 1..n; the winner, if any, is first."""
    n = state.num_players
    others = [p for p in range(1, n + 1) if p != winner]
    others.sort(key=lambda p: ranking_key(state, p), reverse=True)
    ranks = [0] * (n + 1)
    start = 1
    if winner is not None:
        ranks[winner] = 1
        start = 2
    for i, p in enumerate(others):
        if i and ranking_key(state, p) == ranking_key(state, others[i - 1]):
            ranks[p] = ranks[others[i - 1]]
        else:
            ranks[p] = start + i
    return tuple(ranks[1:])


def finish(state: GameState, winner: int | None, victory: VictoryType) -> None:
    state.phase = Phase.GAME_OVER
    state.status = "completed"
    state.winner = winner
    state.victory = victory
    state.ranks = final_ranks(state, winner)
    state.must_move = -1
    state.chain_at = -1
    # A line reward still owed stays flagged, as the canonical engine's final state shows it.
    state.pending_territory = False


def check_threshold_victory(state: GameState) -> bool:
    """Ring-elimination and territory victories; ends the game if one is met."""
    cfg = state.config
    n = cfg.num_players
    for p in range(1, n + 1):
        if state.eliminated[p] >= cfg.victory_threshold:
            finish(state, p, VictoryType.RING_ELIMINATION)
            return True
    total_territory = sum(state.territory)
    for p in range(1, n + 1):
        t = state.territory[p]
        if t >= cfg.territory_victory_minimum and t > total_territory - t:
            finish(state, p, VictoryType.TERRITORY)
            return True
    return False


def check_stalemate(state: GameState) -> bool:
    """With no stacks left and no placement for anyone, convert hands and rank the players."""
    if state.stack_cells:
        return False
    n = state.num_players
    if any(placements(state, p, first_only=True) for p in range(1, n + 1)):
        return False
    for p in range(1, n + 1):
        state.eliminated[p] += state.hand[p]
        state.lost[p] += state.hand[p]
        state.hand[p] = 0
    keys = {p: ranking_key(state, p) for p in range(1, n + 1)}
    best = max(keys.values())
    leaders = [p for p in keys if keys[p] == best]
    if len(leaders) > 1 and state.last_actor in leaders:
        leaders = [state.last_actor]
    finish(state, leaders[0] if len(leaders) == 1 else None, VictoryType.STALEMATE)
    return True


__all__ = ["NEVER", "check_stalemate", "check_threshold_victory", "final_ranks", "finish"]
