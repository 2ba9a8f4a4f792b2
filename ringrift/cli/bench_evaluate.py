"""``ringrift bench evaluate``: how well a batched evaluation match keeps the network busy.

Plays ``games`` games of a candidate network against an opponent (a second network of the same
shape, or random, or the heuristic player) the way the evaluation task does, every game in flight
at once, then measures the bare network alone at the mean batch size the match reached. The
ratio of the two evaluation rates is the share of the device the match keeps busy, the same
figure as ``ringrift bench selfplay``'s.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ringrift.ai.gumbel import GumbelConfig
from ringrift.ai.match import MatchSettings, NetSide, Side, baseline_side, play_match_batched
from ringrift.cli.bench_selfplay import bare_network_rate, bench_network
from ringrift.game import GameConfig

OPPONENTS = ("network", "random", "heuristic")


def bench_evaluate(
    config: str,
    arch: str,
    simulations: int,
    games: int,
    *,
    opponent: str = "network",
    seed: int = 1,
    device: str = "cpu",
    model_path: str | None = None,
    opponent_path: str | None = None,
    max_moves: int | None = None,
) -> dict[str, Any]:
    """One match of ``games`` games at ``simulations`` per decision; rates over its wall time."""
    if opponent not in OPPONENTS:
        raise ValueError(f"opponent must be one of {OPPONENTS}, got {opponent!r}")
    cfg = GameConfig.parse(config)
    cand = bench_network(cfg, arch, model_path, 1, device)
    rival: Side
    if opponent == "network":
        rival = NetSide("opponent", bench_network(cfg, arch, opponent_path, 2, device))
    else:
        rival = baseline_side(opponent)
    settings = MatchSettings(
        GumbelConfig(simulations=simulations), games, opening_moves=4, max_moves=max_moves
    )
    started = time.perf_counter()
    out = play_match_batched(cfg, NetSide("candidate", cand), rival, range(games), seed, settings)
    wall = time.perf_counter() - started
    t = out.timers
    mean_batch = t.evaluations / t.batches if t.batches else 0.0
    bare = bare_network_rate(cand, max(1, round(mean_batch)))
    res = out.result()
    rate = t.evaluations / wall
    return {
        "config": config,
        "model": arch,
        "opponent": opponent,
        "device": device,
        "threads": torch.get_num_threads(),
        "simulations": simulations,
        "games": games,
        "finished_games": sum(1 for g in out.games if g.finished),
        "seconds": round(wall, 2),
        "games_per_hour": round(games / wall * 3600, 1),
        "evals_per_s": round(rate, 1),
        "mean_batch": round(mean_batch, 1),
        "bare_evals_per_s": round(bare, 1),
        "ratio": round(rate / bare, 3) if bare else 0.0,
        "network_share": round(t.network_s / wall, 3) if wall else 0.0,
        "candidate": {
            "wins": res.wins,
            "losses": res.losses,
            "draws": res.draws,
            "score": round(sum(g.score for g in out.games) / games, 3),
        },
    }
