"""Loop presets: every number the pipeline uses, in one frozen object per preset.

``tiny`` finishes generations in about a minute on two CPU cores (tests and the quick start);
``cpu`` learns square8 on a CPU in about an hour; ``default`` is sized for a GPU worker. A
preset's name is stored with the pipeline state, so every worker reads the same numbers. A preset
may scale some numbers per board (``boards``): a square19 or hexagonal game is ten to forty times
the work of a square8 one, so ``tiny`` and ``cpu`` play fewer and cheaper games there.
``preset(name, config)`` gives the numbers for one configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ringrift.ai.batched import BatchedSettings
from ringrift.ai.gumbel import GumbelConfig
from ringrift.ai.match import MatchSettings
from ringrift.errors import ServiceError
from ringrift.pipeline.gate import GateConfig, Threshold
from ringrift.pipeline.sprt import SprtConfig

if TYPE_CHECKING:
    from training.config import TrainConfig


@dataclass(frozen=True)
class Preset:
    name: str
    arch: str
    games_per_generation: int  # new selfplay games before each export
    games_per_task: int  # games in one selfplay task (one shard)
    selfplay: BatchedSettings  # parallel_games is set to the task's games
    window_games: int  # newest games a dataset is built from
    train_preset: str  # training.config preset
    eval_games: int  # games against each fixed opponent (random, heuristic)
    eval_chunk_games: int  # games in one evaluation task; a match's chunks spread over queues
    sprt: SprtConfig  # against the best: chunks until the test decides or reaches its cap
    sprt_wave: int  # chunks against the best sent at once before the test is read again
    rollback_games: int  # a new best plays the best it replaced again (0: no check) ...
    rollback_below: float  # ... and is rolled back when its 95% upper bound is below this
    eval_search: GumbelConfig  # noise-free Gumbel search, both sides
    eval_opening_moves: int  # sampled opening decisions, so evaluation games differ
    gate: GateConfig
    claim_seconds: int  # a started stage with no result after this long is started again
    # a one-task stage (export, training, the gate's decision, a check's verdict) whose task
    # has not begun this long after it was sent is sent again: the worker that took it from
    # the queue died before starting it (its message waits out the broker's visibility timeout)
    pickup_seconds: int
    stale_hours: float  # hours without a promotion at which staleness counts in full
    max_unexported_games: int  # backpressure: no new selfplay past this many unexported games
    exploration_patience: int  # rejected candidates in a row that raise selfplay exploration
    # per board name ("square19"), the fields that differ there
    boards: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_board(self, board: str) -> Preset:
        """The numbers for configurations on ``board``."""
        changes = self.boards.get(board)
        return replace(self, boards={}, **changes) if changes else self

    def selfplay_settings(self, games: int, exploration: int = 0) -> BatchedSettings:
        """A selfplay task's settings at the feedback loop's ``exploration`` level: each level
        raises the Gumbel noise scale by half and samples a quarter more decisions."""
        base = self.selfplay
        return replace(
            base,
            parallel_games=games,
            exploration=base.exploration * (1 + 0.5 * exploration),
            sample_moves=round(base.sample_moves * (1 + 0.25 * exploration)),
        )

    def match_settings(self) -> MatchSettings:
        """How evaluation plays: every game of a chunk in flight at once (64 at most)."""
        return MatchSettings(
            self.eval_search, min(self.eval_chunk_games, 64), self.eval_opening_moves
        )

    def match_games(self, opponent_kind: str) -> int:
        """The most games a match against ``opponent_kind`` ("random", "heuristic", "best")
        plays: fixed opponents a set number, the best until the sequential test decides."""
        return self.sprt.max_games if opponent_kind == "best" else self.eval_games

    def train_config(self) -> TrainConfig:
        """The training config of this preset's runs: its network, and a random board symmetry
        per sample (export writes each position once)."""
        from training.config import PRESETS as TRAIN_PRESETS

        base = TRAIN_PRESETS[self.train_preset]()
        return base.replace(arch=self.arch, augment=True)


TINY = Preset(
    name="tiny",
    arch="b4c64",
    games_per_generation=8,
    games_per_task=4,
    selfplay=BatchedSettings(GumbelConfig(simulations=16, considered=8), sample_moves=20),
    window_games=400,
    train_preset="tiny",
    eval_games=8,
    eval_chunk_games=4,
    # Too few games for the test to decide often: at its cap the gate's "best" threshold
    # decides, as it did before there was a test.
    sprt=SprtConfig(elo0=0, elo1=100, alpha=0.1, beta=0.1, max_games=8),
    sprt_wave=1,
    rollback_games=4,
    rollback_below=0.5,
    # Gumbel at 16 simulations beats random 8-0 with an untrained hex8 network, where PUCT at
    # 64 managed 4-4, at under half the cost.
    eval_search=GumbelConfig(simulations=16, considered=8),
    eval_opening_moves=4,
    gate=GateConfig(
        {
            "random": Threshold(min_score=0.5, min_lower_bound=0.2),
            "best": Threshold(min_score=0.375, min_lower_bound=0.1),
        }
    ),
    claim_seconds=600,
    pickup_seconds=60,
    stale_hours=0.1,
    max_unexported_games=16,
    exploration_patience=2,
    # A big-board game lasts hundreds of searched decisions (over a thousand moves on hexagonal
    # with an untrained network): a smaller network, fewer simulations and fewer games keep a
    # generation there within a few minutes of one core.
    boards={
        board: {
            "arch": "b2c32",
            "games_per_generation": 2,
            "games_per_task": 1,  # a long task would hold its worker from a stage's next task
            "selfplay": BatchedSettings(GumbelConfig(simulations=8, considered=4), sample_moves=20),
            "max_unexported_games": 4,
            "eval_games": 2,
            "eval_chunk_games": 2,
            "sprt": SprtConfig(elo0=0, elo1=100, alpha=0.1, beta=0.1, max_games=2),
            "rollback_games": 2,
            "eval_search": GumbelConfig(simulations=8, considered=4),
        }
        for board in ("square19", "hexagonal")
    },
)

DEFAULT = Preset(
    name="default",
    arch="b10c128",
    games_per_generation=2000,
    games_per_task=128,
    selfplay=BatchedSettings(GumbelConfig(simulations=128, considered=16), sample_moves=30),
    window_games=50_000,
    train_preset="default",
    eval_games=200,
    eval_chunk_games=32,
    sprt=SprtConfig(elo0=0, elo1=20, alpha=0.05, beta=0.05, max_games=400),
    sprt_wave=4,
    rollback_games=64,
    rollback_below=0.5,
    eval_search=GumbelConfig(simulations=200, considered=16),
    eval_opening_moves=6,
    # against the best only the test decides: no threshold there, so its cap rejects
    gate=GateConfig({"random": Threshold(min_score=0.8, min_lower_bound=0.7)}),
    claim_seconds=4 * 3600,
    pickup_seconds=1800,
    stale_hours=12.0,
    max_unexported_games=6000,
    exploration_patience=3,
)

# A network that learns on a CPU: square8 in about an hour of two cores (``ringrift bench
# strength``). Generations are 128 games at 32 simulations, each trained from the best over a
# window of the newest 1,500; the best model is played only until the sequential test or its cap
# of 48 games, and candidates that merely hold their own are still promoted at the cap (the
# "best" threshold), because early on more data matters more than a certain gain. Big boards are
# scaled down as in ``tiny``.
CPU = Preset(
    name="cpu",
    arch="b4c64",
    games_per_generation=128,
    games_per_task=32,
    selfplay=BatchedSettings(GumbelConfig(simulations=32, considered=8), sample_moves=16),
    window_games=1500,
    train_preset="cpu",
    eval_games=16,
    eval_chunk_games=16,
    sprt=SprtConfig(elo0=0, elo1=60, alpha=0.1, beta=0.1, max_games=48),
    sprt_wave=1,
    rollback_games=16,
    rollback_below=0.5,
    eval_search=GumbelConfig(simulations=32, considered=8),
    eval_opening_moves=4,
    gate=GateConfig(
        {
            "random": Threshold(min_score=0.6, min_lower_bound=0.4),
            "best": Threshold(min_score=0.5, min_lower_bound=0.3),
        }
    ),
    claim_seconds=1800,
    pickup_seconds=300,
    stale_hours=0.5,
    max_unexported_games=384,
    exploration_patience=3,
    boards={
        board: {
            "arch": "b2c32",
            "games_per_generation": 8,
            "games_per_task": 2,
            "selfplay": BatchedSettings(
                GumbelConfig(simulations=16, considered=8), sample_moves=20
            ),
            "max_unexported_games": 24,
            "eval_games": 4,
            "eval_chunk_games": 2,
            "sprt": SprtConfig(elo0=0, elo1=100, alpha=0.1, beta=0.1, max_games=8),
            "rollback_games": 4,
            "eval_search": GumbelConfig(simulations=16, considered=8),
        }
        for board in ("square19", "hexagonal")
    },
)

PRESETS = {p.name: p for p in (TINY, CPU, DEFAULT)}


def preset(name: str, config: str | None = None) -> Preset:
    """The preset called ``name``; with ``config`` (``square19_2p``), its numbers for that
    configuration's board."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ServiceError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    p = PRESETS[name]
    return p if config is None else p.for_board(config.rsplit("_", 1)[0])
