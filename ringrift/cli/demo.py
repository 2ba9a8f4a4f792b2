"""The quick-start job for now: one random-vs-heuristic game, then the engine benchmark."""

from __future__ import annotations

from ringrift.ai import HeuristicPlayer, RandomPlayer
from ringrift.cli.bench import bench_engine
from ringrift.game import GameConfig, GameState, apply_move_unchecked


def run_demo(config: str, seed: int, seconds: float) -> int:
    cfg = GameConfig.parse(config)
    state = GameState.initial(cfg)
    players: dict[int, RandomPlayer | HeuristicPlayer] = {
        1: RandomPlayer(seed),
        2: HeuristicPlayer(seed),
    }
    for p in range(3, cfg.num_players + 1):
        players[p] = RandomPlayer(seed + p)
    while not state.is_over:
        apply_move_unchecked(state, players[state.current].choose(state))
    names = {p: players[p].name for p in players}
    print(f"{cfg.name}: player 1 {names[1]} vs player 2 {names[2]}")
    print(
        f"game over after {state.move_count} moves: winner "
        f"{state.winner} ({names.get(state.winner or 0, 'none')}) by "
        f"{state.victory.value if state.victory else '?'}; ranks {state.ranks}"
    )
    result = bench_engine(cfg.name, seconds, seed)
    print(
        f"engine benchmark ({seconds:g} s, random play): {result.moves_per_s:.0f} moves/s, "
        f"{result.games_per_s:.1f} games/s, {result.avg_moves:.0f} moves per game"
    )
    return 0
