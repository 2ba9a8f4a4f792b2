"""Selfplay games and shards: round trip, replay, and loud failures on bad shards."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ringrift.ai.mcts import SearchConfig, UniformEvaluator
from ringrift.ai.selfplay import (
    PlayedGame,
    SelfplaySettings,
    ShardError,
    ShardHeader,
    iter_positions,
    play_game,
    read_shard,
    write_shard,
)
from ringrift.game import GameConfig

SETTINGS = SelfplaySettings(SearchConfig(simulations=8, batch_size=4))


@pytest.fixture(scope="module")
def games() -> list[PlayedGame]:
    cfg = GameConfig.parse("hex8_2p")
    return [play_game(cfg, UniformEvaluator(), SETTINGS, seed, f"g{seed}") for seed in (1, 2)]


def test_games_finish_and_carry_targets(games: list[PlayedGame]) -> None:
    for g in games:
        assert g.termination != "unfinished" and g.length == len(g.record.moves)
        assert g.targets and all(abs(sum(p for _, p in pol) - 1) < 1e-6 for _, pol in g.targets)
    assert games[0].record.moves != games[1].record.moves
    again = play_game(GameConfig.parse("hex8_2p"), UniformEvaluator(), SETTINGS, 1, "g1")
    assert again.record.moves == games[0].record.moves, "a seed replays the same game"


def test_shard_round_trip_and_replay(tmp_path: Path, games: list[PlayedGame]) -> None:
    path = tmp_path / "s.jsonl.gz"
    write_shard(path, ShardHeader("hex8_2p", 0, None, 2), games)
    header, rows = read_shard(path)
    assert header.games == 2 and [r["id"] for r in rows] == ["g1", "g2"]
    positions = list(iter_positions(rows[0]))
    assert len(positions) == len(games[0].targets)
    assert all(not s.is_over for s, _ in positions)


def _rewrite(path: Path, edit: int, field: str, value: object) -> None:
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()
    data = json.loads(lines[edit])
    data[field] = value
    lines[edit] = json.dumps(data)
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("edit", "field", "value", "message"),
    [
        (1, "winner", 99, "winner 99"),
        (1, "length", 3, "length 3"),
        (1, "config", "square8_2p", "game config"),
        (0, "games", 5, "header says 5 games"),
        (0, "format", "other", "not a ringrift shard"),
        (0, "rules_version", 1, "played under rules version 1; this engine plays rules version"),
    ],
)
def test_inconsistent_shards_are_rejected(
    tmp_path: Path, games: list[PlayedGame], edit: int, field: str, value: object, message: str
) -> None:
    path = tmp_path / "s.jsonl.gz"
    write_shard(path, ShardHeader("hex8_2p", 0, None, 2), games)
    _rewrite(path, edit, field, value)
    with pytest.raises(ShardError, match=message):
        read_shard(path)


def test_truncated_or_garbled_shard_is_rejected(tmp_path: Path, games: list[PlayedGame]) -> None:
    path = tmp_path / "s.jsonl.gz"
    write_shard(path, ShardHeader("hex8_2p", 0, None, 2), games)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match="unreadable shard"):
        read_shard(path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ShardError, match=str(path)):
        read_shard(path)


def test_illegal_move_in_a_shard_is_rejected(tmp_path: Path, games: list[PlayedGame]) -> None:
    path = tmp_path / "s.jsonl.gz"
    write_shard(path, ShardHeader("hex8_2p", 0, None, 2), games)
    record = games[0].to_json()["record"]
    record["moves"][0] = "move_stack p1 from=0,0,0 to=1,-1,0"
    _rewrite(path, 1, "record", record)
    with pytest.raises(ShardError, match="line 2"):
        read_shard(path)


@pytest.fixture(scope="module")
def gumbel_games() -> list[PlayedGame]:
    from ringrift.ai.batched import BatchedSettings, play_batched, to_played
    from ringrift.ai.gumbel import GumbelConfig

    cfg = GameConfig.parse("hex8_2p")
    settings = BatchedSettings(GumbelConfig(simulations=8, considered=4), parallel_games=2)
    played = play_batched(cfg, UniformEvaluator(), settings, [5, 6], ["g5", "g6"])
    return [to_played(g, cfg, settings, "model-x") for g in played]


def test_gumbel_games_carry_their_search_through_a_shard(
    tmp_path: Path, gumbel_games: list[PlayedGame]
) -> None:
    path = tmp_path / "s.jsonl.gz"
    write_shard(path, ShardHeader("hex8_2p", 0, "model-x", 2), gumbel_games)
    _, read = read_shard(path)
    for game, played in zip(read, gumbel_games, strict=True):
        search = game["search"]
        assert search == played.search and search["model_id"] == "model-x"
        assert search["settings"]["search"]["simulations"] == 8
        assert len(search["root_values"]) == len(search["simulations"]) == len(game["targets"])
        assert all(len(v) == 2 for v in search["root_values"])


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"root_values": [], "simulations": []}, "no settings"),
        ({"settings": {}, "simulations": []}, "lacks root values"),
        ({"settings": {}, "root_values": [[0, 0]], "simulations": [1]}, "targets but 1 root"),
    ],
)
def test_a_bad_search_record_is_rejected(
    tmp_path: Path, gumbel_games: list[PlayedGame], search: dict[str, object], message: str
) -> None:
    path = tmp_path / "s.jsonl.gz"
    write_shard(path, ShardHeader("hex8_2p", 0, "model-x", 2), gumbel_games)
    _rewrite(path, 1, "search", search)
    with pytest.raises(ShardError, match=message):
        read_shard(path)
