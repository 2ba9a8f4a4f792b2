"""Compact game records: configuration, seed and the move list from the standard start.

A record replays exactly: ``replay`` applies every move with the checked ``apply_move``, so a
record that does not describe a legal game raises ``IllegalMoveError`` naming the move.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ringrift.game.apply import apply_move
from ringrift.game.boards import GameConfig
from ringrift.game.errors import RingRiftError
from ringrift.game.moves import Move
from ringrift.game.notation import move_from_str, move_to_str
from ringrift.game.state import GameState

RECORD_VERSION = 1


@dataclass
class GameRecord:
    config: str
    seed: int | None = None
    moves: list[str] = field(default_factory=list)
    swap_rule: bool = False

    def game_config(self) -> GameConfig:
        base = GameConfig.parse(self.config)
        return GameConfig(base.board, base.num_players, swap_rule=self.swap_rule)

    def add(self, state: GameState, move: Move) -> None:
        self.moves.append(move_to_str(state.geo, move))

    def replay(self, upto: int | None = None) -> GameState:
        """The position after the first ``upto`` moves (all by default)."""
        state = GameState.initial(self.game_config())
        for i, text in enumerate(self.moves[:upto]):
            try:
                move = move_from_str(state.geo, text)
            except RingRiftError as e:
                raise RingRiftError(f"record move {i + 1}: {e}") from None
            apply_move(state, move)
        return state

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": RECORD_VERSION,
                "config": self.config,
                "seed": self.seed,
                "swap_rule": self.swap_rule,
                "moves": self.moves,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> GameRecord:
        try:
            data: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as e:
            raise RingRiftError(f"game record is not valid JSON: {e}") from None
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise RingRiftError(f"game record has unsupported version {data.get('version')!r}")
        moves = data.get("moves")
        if not isinstance(moves, list) or not all(isinstance(m, str) for m in moves):
            raise RingRiftError("game record 'moves' must be a list of move strings")
        GameConfig.parse(str(data.get("config")))
        return cls(str(data["config"]), data.get("seed"), moves, bool(data.get("swap_rule")))
