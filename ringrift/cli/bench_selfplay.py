"""``ringrift bench selfplay``: how well batched selfplay keeps the network busy.

Plays ``games`` full games at once with Gumbel search and a network of the given shape (fresh
weights, or a saved model), then measures the bare network alone: forward passes of the same
model (as the evaluator runs it) at the mean batch size the selfplay reached, on random inputs,
with nothing else running. The ratio of the two evaluation rates is the share of the device the
search keeps busy.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class _Job:
    config: str
    arch: str
    simulations: int
    games: int
    seed: int
    device: str
    model_path: str | None
    max_moves: int | None
    overlap: bool
    threads: int


def _play(job: _Job) -> tuple[dict[str, Any], int]:
    """One process's share: its games, with its own network copy; (timers, finished games)."""
    torch.set_num_threads(job.threads)
    cfg = GameConfig.parse(job.config)
    evaluator = _evaluator(job, cfg)
    settings = BatchedSettings(
        GumbelConfig(simulations=job.simulations), parallel_games=job.games, max_moves=job.max_moves
    )
    timers = Timers()
    played = play_batched(
        cfg,
        evaluator,
        settings,
        [job.seed * 100_000 + i for i in range(job.games)],
        [f"bench-{job.seed}-{i}" for i in range(job.games)],
        timers,
        overlap=job.overlap,
    )
    return asdict(timers), sum(1 for g in played if g.finished)


def _evaluator(job: _Job, cfg: GameConfig) -> NetEvaluator:
    return bench_network(cfg, job.arch, job.model_path, 1, job.device)  # the same in every process


def bench_network(
    cfg: GameConfig, arch: str, path: str | None, seed: int, device: str
) -> NetEvaluator:
    """A benchmark's network: the saved model at ``path``, or fresh weights from ``seed``."""
    dev = torch.device(device)
    torch.manual_seed(seed)
    if path:
        return NetEvaluator(load_model(path, cfg.board, arch, device=dev), dev)
    return NetEvaluator(PolicyValueNet(cfg.board, arch), dev)


def bench_selfplay(
    config: str,
    arch: str,
    simulations: int,
    games: int,
    seed: int = 1,
    device: str = "cpu",
    model_path: str | None = None,
    max_moves: int | None = None,
    *,
    procs: int = 1,
    overlap: bool = True,
) -> dict[str, Any]:
    """Selfplay throughput; ``procs`` processes each play ``games`` games at once (as
    ``celery worker -c procs`` would), and the rates are summed over the wall time."""
    jobs = [
        _Job(
            config,
            arch,
            simulations,
            games,
            seed + k,
            device,
            model_path,
            max_moves,
            overlap,
            torch.get_num_threads(),
        )
        for k in range(procs)
    ]
    started = time.perf_counter()
    if procs == 1:
        outcomes = [_play(jobs[0])]
    else:
        with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
            outcomes = list(pool.map(_play, jobs))
    wall = time.perf_counter() - started
    timers = [Timers(**t) for t, _ in outcomes]
    evaluations = sum(t.evaluations for t in timers)
    batches = sum(t.batches for t in timers)
    mean_batch = evaluations / batches if batches else 0.0
    selfplay_rate = evaluations / wall
    bare = bare_network_rate(
        _evaluator(jobs[0], GameConfig.parse(config)), max(1, round(mean_batch))
    )
    busy = sum(t.total_s for t in timers)
    return {
        "config": config,
        "model": arch,
        "device": device,
        "threads": torch.get_num_threads(),
        "processes": procs,
        "overlap": overlap,
        "simulations": simulations,
        "games": games * procs,
        "finished_games": sum(n for _, n in outcomes),
        "seconds": round(wall, 2),
        "games_per_hour": round(games * procs / wall * 3600, 1),
        "positions_per_s": round(sum(t.positions for t in timers) / wall, 2),
        "moves_per_s": round(sum(t.moves for t in timers) / wall, 2),
        "evals_per_s": round(selfplay_rate, 1),
        "mean_batch": round(mean_batch, 1),
        "bare_evals_per_s": round(bare, 1),
        "ratio": round(selfplay_rate / bare, 3) if bare else 0.0,
        "share": {
            "network": round(sum(t.network_s for t in timers) / busy, 3),
            "engine": round(sum(t.engine_s for t in timers) / busy, 3),
            "search": round(sum(t.search_s for t in timers) / busy, 3),
        },
    }
