"""Selfplay games and the shard files that carry them.

A game is played from the standard start with a search at every decision (positions with one
legal move are played through); the record keeps every move, and each searched move keeps the
root visit distribution as a soft policy target. Games travel in shards: gzip-compressed JSON
lines, a header line then one line per game, read back with full validation so that a corrupt or
foreign shard is an error naming the file and line, never a silently shorter dataset.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ringrift.ai.mcts import MCTS, Evaluator, SearchConfig, choose_move, visit_policy
from ringrift.game import GameConfig, GameRecord, GameState, RingRiftError, legal_moves
from ringrift.game.apply import apply_move_unchecked
from ringrift.game.rules_version import RULES_VERSION, UNVERSIONED

SHARD_FORMAT = "ringrift-shard"
SHARD_VERSION = 1


class ShardError(ValueError):
    """A shard file that cannot be trusted: unreadable, truncated, foreign or inconsistent."""


@dataclass(frozen=True)
class SelfplaySettings:
    search: SearchConfig = SearchConfig()
    temperature_moves: int = 30  # decisions sampled with temperature 1, then the most visited
    max_moves: int | None = None  # stop a game early (tests); None uses the rules' cap


@dataclass
class PlayedGame:
    id: str
    config: str
    seed: int
    record: GameRecord
    winner: int | None
    ranks: list[int]
    termination: str
    length: int
    targets: list[tuple[int, list[tuple[int, float]]]]  # (move index in record, policy)
    # the search that played it: settings, and per target the root value and simulations
    search: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "config": self.config,
            "seed": self.seed,
            "record": json.loads(self.record.to_json()),
            "winner": self.winner,
            "ranks": self.ranks,
            "termination": self.termination,
            "length": self.length,
            "targets": [[i, [[a, round(p, 6)] for a, p in pol]] for i, pol in self.targets],
        }
        if self.search is not None:
            out["search"] = self.search
        return out


def play_game(
    config: GameConfig, evaluator: Evaluator, settings: SelfplaySettings, seed: int, game_id: str
) -> PlayedGame:
    rng = random.Random(seed)
    search = MCTS(evaluator, settings.search, rng)
    state = GameState.initial(config)
    record = GameRecord(config.name, seed)
    targets: list[tuple[int, list[tuple[int, float]]]] = []
    decisions = 0
    limit = settings.max_moves or config.max_moves
    while not state.is_over and state.move_count < limit:
        moves = legal_moves(state)
        if len(moves) == 1:
            move = moves[0]
        else:
            root = search.search(state)
            targets.append((len(record.moves), visit_policy(root)))
            temperature = 1.0 if decisions < settings.temperature_moves else 0.0
            move = choose_move(root, temperature, rng)
            decisions += 1
        record.add(state, move)
        apply_move_unchecked(state, move)
    return PlayedGame(
        id=game_id,
        config=config.name,
        seed=seed,
        record=record,
        winner=state.winner,
        ranks=list(state.ranks) if state.ranks else [],
        termination=state.victory.value if state.victory else "unfinished",
        length=state.move_count,
        targets=targets,
    )


@dataclass(frozen=True)
class ShardHeader:
    config: str
    generation: int
    model_id: str | None
    games: int
    rules_version: int = RULES_VERSION


def write_shard(path: Path, header: ShardHeader, games: list[PlayedGame]) -> None:
    """Write a shard (the caller makes it atomic by writing to a temporary path)."""
    write_shard_json(path, header, [g.to_json() for g in games])


def write_shard_json(path: Path, header: ShardHeader, games: list[dict[str, Any]]) -> None:
    """Write a shard of games already in their JSON form (``PlayedGame.to_json``'s): how a
    shard is written again from the ledger's copy of its games."""
    if header.games != len(games):
        raise ShardError(f"{path}: header says {header.games} games, {len(games)} given")
    # mtime 0 and no file name in the gzip header: the same games give the same bytes, so a
    # redelivered selfplay task stores an identical shard under its fixed name.
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        io.TextIOWrapper(gz, encoding="utf-8") as f,
    ):
        head = {"format": SHARD_FORMAT, "version": SHARD_VERSION, **asdict(header)}
        f.write(json.dumps(head, separators=(",", ":")) + "\n")
        for g in games:
            f.write(json.dumps(g, separators=(",", ":")) + "\n")


def read_shard(path: Path) -> tuple[ShardHeader, list[dict[str, Any]]]:
    """Read and validate a shard: every game must replay to the result it claims."""
    header: ShardHeader | None = None
    games: list[dict[str, Any]] = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                data = json.loads(line)
                if n == 1:
                    header = _header(path, data)
                else:
                    games.append(_check_game(path, n, data, header))
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{path}: unreadable shard: {e}") from None
    if header is None:
        raise ShardError(f"{path}: empty shard")
    if len(games) != header.games:
        raise ShardError(f"{path}: header says {header.games} games, found {len(games)}")
    return header, games


def iter_positions(game: dict[str, Any]) -> Iterator[tuple[GameState, list[tuple[int, float]]]]:
    """Replay a shard game, yielding (position before the move, policy target) per target."""
    record = GameRecord.from_json(json.dumps(game["record"]))
    targets = {int(i): [(int(a), float(p)) for a, p in pol] for i, pol in game["targets"]}
    state = GameState.initial(record.game_config())
    from ringrift.game import apply_move, move_from_str

    for i, text in enumerate(record.moves):
        if i in targets:
            yield state.copy(), targets[i]
        apply_move(state, move_from_str(state.geo, text))


def _check_search(where: str, search: Any, targets: int) -> None:
    """A game's search record: settings, and one root value and simulation count per target."""
    if not isinstance(search, dict) or not isinstance(search.get("settings"), dict):
        raise ShardError(f"{where}: the search record has no settings")
    values, sims = search.get("root_values"), search.get("simulations")
    if not isinstance(values, list) or not isinstance(sims, list):
        raise ShardError(f"{where}: the search record lacks root values or simulations")
    if len(values) != targets or len(sims) != targets:
        raise ShardError(
            f"{where}: {targets} targets but {len(values)} root values, {len(sims)} counts"
        )
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in sims):
        raise ShardError(f"{where}: simulation counts must be non-negative integers")


def _header(path: Path, data: Any) -> ShardHeader:
    if not isinstance(data, dict) or data.get("format") != SHARD_FORMAT:
        raise ShardError(f"{path}: not a ringrift shard (line 1)")
    if data.get("version") != SHARD_VERSION:
        raise ShardError(f"{path}: shard version {data.get('version')!r} is not supported")
    rules = data.get("rules_version", UNVERSIONED)
    if rules != RULES_VERSION:
        raise ShardError(
            f"{path}: games played under rules version {rules!r}; this engine plays rules "
            f"version {RULES_VERSION} and cannot replay or train on them"
        )
    try:
        GameConfig.parse(str(data["config"]))
        return ShardHeader(
            str(data["config"]), int(data["generation"]), data.get("model_id"), int(data["games"])
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ShardError(f"{path}: bad shard header: {e}") from None


def _check_game(path: Path, line: int, g: Any, header: ShardHeader | None) -> dict[str, Any]:
    where = f"{path}: line {line}"
    if header is None or not isinstance(g, dict):
        raise ShardError(f"{where}: not a game object")
    try:
        if g["config"] != header.config:
            raise ShardError(f"{where}: game config {g['config']!r} in a {header.config} shard")
        record = GameRecord.from_json(json.dumps(g["record"]))
        state = record.replay()
        if state.move_count != int(g["length"]):
            raise ShardError(
                f"{where}: length {g['length']} but the record has {state.move_count} moves"
            )
        if state.winner != g["winner"]:
            raise ShardError(f"{where}: winner {g['winner']} but the record gives {state.winner}")
        for i, pol in g["targets"]:
            if not 0 <= int(i) < len(record.moves) or not pol:
                raise ShardError(f"{where}: bad policy target at move {i}")
        if "search" in g:
            _check_search(where, g["search"], len(g["targets"]))
    except ShardError:
        raise
    except (KeyError, TypeError, ValueError, RingRiftError) as e:
        raise ShardError(f"{where}: {e}") from None
    return g
