"""Engine benchmark: seeded uniformly random games on one core for a fixed time."""

from __future__ import annotations

import collections
import random
import time
from dataclasses import dataclass, field

from ringrift.game import GameConfig, GameState, apply_move_unchecked, legal_moves


@dataclass
class EngineBenchResult:
    config: str
    seconds: float
    seed: int
    moves: int = 0
    games: int = 0
    game_moves: int = 0  # moves of completed games only
    victory_types: dict[str, int] = field(default_factory=dict)

    @property
    def moves_per_s(self) -> float:
        return self.moves / self.seconds if self.seconds else 0.0

    @property
    def games_per_s(self) -> float:
        return self.games / self.seconds if self.seconds else 0.0

    @property
    def avg_moves(self) -> float:
        return self.game_moves / self.games if self.games else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "config": self.config,
            "seconds": round(self.seconds, 3),
            "seed": self.seed,
            "moves_per_s": round(self.moves_per_s, 1),
            "games_per_s": round(self.games_per_s, 3),
            "avg_moves": round(self.avg_moves, 1),
            "games": self.games,
            "moves": self.moves,
            "victory_types": self.victory_types,
        }


def bench_engine(config: str, seconds: float, seed: int) -> EngineBenchResult:
    """Play random games until ``seconds`` pass; every applied move counts, bookkeeping too.

    Each move costs one full legal-move generation plus one unchecked apply, as in selfplay.
    A game still running when time is up counts towards moves but not towards games.
    """
    cfg = GameConfig.parse(config)
    rng = random.Random(seed)
    victories: collections.Counter[str] = collections.Counter()
    moves = games = game_moves = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        state = GameState.initial(cfg)
        while not state.is_over:
            apply_move_unchecked(state, rng.choice(legal_moves(state)))
            moves += 1
            if moves % 64 == 0 and time.perf_counter() >= deadline:
                break
        if not state.is_over:
            break
        games += 1
        game_moves += state.move_count
        victories[state.victory.value if state.victory else "unknown"] += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return EngineBenchResult(config, elapsed, seed, moves, games, game_moves, dict(victories))


@dataclass
class MatchResult:
    config: str
    games: int
    seed: int
    wins: int = 0
    losses: int = 0
    draws: int = 0
    seconds: float = 0.0

    @property
    def win_rate(self) -> float:
        return self.wins / self.games if self.games else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "config": self.config,
            "games": self.games,
            "seed": self.seed,
            "heuristic_wins": self.wins,
            "heuristic_losses": self.losses,
            "draws": self.draws,
            "win_rate": round(self.win_rate, 4),
            "seconds": round(self.seconds, 2),
        }


def bench_heuristic(config: str, games: int, seed: int) -> MatchResult:
    """The heuristic player against uniform random players, seats rotating game by game."""
    from ringrift.ai import HeuristicPlayer, RandomPlayer
    from ringrift.ai.arena import play_match

    start = time.perf_counter()
    m = play_match(GameConfig.parse(config), HeuristicPlayer, RandomPlayer, games, seed)
    res = MatchResult(config, games, seed, m.wins, m.losses, m.draws)
    res.seconds = time.perf_counter() - start
    return res


def bench_train(
    config: str,
    arch: str,
    steps: int,
    batch_size: int,
    seed: int,
    device: str = "cpu",
) -> dict[str, object]:
    """Training speed of the library against a bare PyTorch loop, same model and batch size.

    The data is real: a few uniform-search selfplay games, exported and trained on as the
    pipeline does (each position once, a random board symmetry per sample). The library figure
    counts its optimiser loop only (data loading and the final evaluation
    excluded); the bare loop runs forward, losses, backward and AdamW on batches prepared in
    advance on the device, so the ratio shows what the library's own work costs.
    """
    import dataclasses
    import tempfile
    from pathlib import Path

    import numpy as np
    import torch

    from ringrift.ai.dataset import load_dataset, write_dataset
    from ringrift.ai.encoding import ENCODER_VERSION
    from ringrift.ai.mcts import SearchConfig, UniformEvaluator
    from ringrift.ai.network import PolicyValueNet
    from ringrift.ai.selfplay import SelfplaySettings, play_game
    from training.config import TrainConfig
    from training.data import make_batch
    from training.loop import train
    from training.losses import compute_losses

    cfg = GameConfig.parse(config)
    torch.manual_seed(seed)
    settings = SelfplaySettings(SearchConfig(simulations=4, batch_size=4))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.npz"
        games = []
        samples = 0
        g = 0
        while samples < 4 * batch_size or g < 4:
            game = play_game(cfg, UniformEvaluator(), settings, seed * 1000 + g, f"bench-{g}")
            games.append(game.to_json())
            samples += len(game.targets)
            g += 1
        stats = write_dataset(games, data, cfg.board, augment=False)
        tc = dataclasses.replace(
            TrainConfig.tiny(),
            arch=arch,
            steps=steps,
            batch_size=batch_size,
            device=device,
            checkpoint_every=max(steps, 1),
            seed=seed,
            augment=True,
        )
        result = train(
            tc, data, Path(tmp) / "model.pt", board=cfg.board, checkpoint_dir=Path(tmp) / "ckpt"
        )
        library = result.steps_per_s * batch_size

        ds = load_dataset(data, expect_encoder_version=ENCODER_VERSION, expect_board=cfg.board)
        dev = torch.device(device)
        model = PolicyValueNet(cfg.board, arch).to(dev)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        rng = np.random.default_rng(seed)
        batches = [
            make_batch(ds, np.sort(rng.choice(len(ds), batch_size, replace=False)), dev)
            for _ in range(8)
        ]
        start = time.perf_counter()
        for step in range(steps):
            loss, _, _ = compute_losses(model, batches[step % len(batches)], tc.value_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        bare = steps * batch_size / (time.perf_counter() - start)
    return {
        "config": config,
        "model": arch,
        "device": device,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "batch_size": batch_size,
        "dataset_samples": stats.num_samples,
        "samples_per_s": round(library, 1),
        "bare_samples_per_s": round(bare, 1),
        "ratio": round(library / bare, 3) if bare else 0.0,
    }
