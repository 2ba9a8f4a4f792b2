"""``ringrift bench selfplay``: how well batched selfplay keeps the network busy.

Plays ``games`` full games at once with Gumbel search and a network of the given shape (fresh
weights, or a saved model), then measures the bare network alone: forward passes of the same
model (as the evaluator runs it) at the mean batch size the selfplay reached, on random inputs,
with nothing else running. The ratio of the two evaluation rates is the share of the device the
search keeps busy.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from ringrift.ai.batched import BatchedSettings, Timers, play_batched
from ringrift.ai.encoding import NUM_GLOBALS, NUM_PLANES
from ringrift.ai.gumbel import GumbelConfig
from ringrift.ai.net_evaluator import NetEvaluator
from ringrift.ai.network import PolicyValueNet, load_model
from ringrift.game import GameConfig
from ringrift.game.boards import geometry


def default_threads(device: str) -> int:
    """Torch threads for selfplay on ``device``: on the CPU one core stays for the search (the
    network runs beside it in its own thread), the rest go to the network; on a GPU, 1."""
    if torch.device(device).type != "cpu":
        return 1
    return max(1, (os.cpu_count() or 2) - 1)


def bare_network_rate(evaluator: NetEvaluator, batch: int, seconds: float = 3.0) -> float:
    """Positions per second of the evaluator's network alone (the module its ``forward``
    runs) at ``batch`` positions per forward pass, on random inputs."""
    device = evaluator.device
    size = geometry(evaluator.board).size
    planes = torch.from_numpy(
        np.random.default_rng(0).random((batch, NUM_PLANES, size, size), dtype=np.float32)
    ).to(device)
    glob = torch.zeros((batch, NUM_GLOBALS), dtype=torch.float32, device=device)
    model = evaluator.inference_module(planes, glob)
    evaluated = 0
    with torch.inference_mode(), NetEvaluator.autocast(device):
        model(planes, glob)  # warm-up
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(planes, glob)
            evaluated += batch
        if device.type == "cuda":
            torch.cuda.synchronize()
        return evaluated / (time.perf_counter() - start)


def bench_selfplay(
    config: str,
    arch: str,
    simulations: int,
    games: int,
    seed: int = 1,
    device: str = "cpu",
    model_path: str | None = None,
    max_moves: int | None = None,
) -> dict[str, Any]:
    cfg = GameConfig.parse(config)
    dev = torch.device(device)
    torch.manual_seed(seed)
    if model_path:
        model = load_model(model_path, cfg.board, arch, device=dev)
    else:
        model = PolicyValueNet(cfg.board, arch)
    evaluator = NetEvaluator(model, dev)
    settings = BatchedSettings(
        GumbelConfig(simulations=simulations), parallel_games=games, max_moves=max_moves
    )
    timers = Timers()
    played = play_batched(
        cfg,
        evaluator,
        settings,
        [seed * 100_000 + i for i in range(games)],
        [f"bench-{i}" for i in range(games)],
        timers,
    )
    selfplay_rate = timers.evaluations / timers.total_s
    batch = max(1, round(timers.mean_batch))
    bare = bare_network_rate(evaluator, batch)
    total = timers.total_s
    finished = sum(1 for g in played if g.finished)
    return {
        "config": config,
        "model": arch,
        "device": device,
        "threads": torch.get_num_threads(),
        "simulations": simulations,
        "games": games,
        "finished_games": finished,
        "seconds": round(total, 2),
        "games_per_hour": round(games / total * 3600, 1),
        "positions_per_s": round(timers.positions / total, 2),
        "moves_per_s": round(timers.moves / total, 2),
        "evals_per_s": round(selfplay_rate, 1),
        "mean_batch": round(timers.mean_batch, 1),
        "bare_evals_per_s": round(bare, 1),
        "ratio": round(selfplay_rate / bare, 3) if bare else 0.0,
        "share": {
            "network": round(timers.network_s / total, 3),
            "engine": round(timers.engine_s / total, 3),
            "search": round(timers.search_s / total, 3),
        },
    }
