"""The RingRift rules engine: boards, positions, legal moves, apply, JSON and records.

Typical use::

    cfg = GameConfig.parse("square8_2p")
    state = GameState.initial(cfg)
    moves = legal_moves(state)          # stable order, bookkeeping moves included
    apply_move(state, moves[0])         # checked; apply_move_unchecked skips the check
"""

from ringrift.game.apply import apply_move, apply_move_unchecked
from ringrift.game.boards import ALL_CONFIGS, BoardType, GameConfig, Geometry, geometry
from ringrift.game.errors import IllegalMoveError, RingRiftError
from ringrift.game.fingerprint import fingerprint, fingerprint_hash, state_hash
from ringrift.game.movegen import legal_moves
from ringrift.game.moves import Move, MoveType
from ringrift.game.notation import move_from_str, move_to_str
from ringrift.game.records import GameRecord
from ringrift.game.rules_version import RULES_VERSION
from ringrift.game.state import GameState, Phase, VictoryType

__all__ = [
    "ALL_CONFIGS",
    "BoardType",
    "GameConfig",
    "GameRecord",
    "GameState",
    "Geometry",
    "IllegalMoveError",
    "Move",
    "MoveType",
    "Phase",
    "RULES_VERSION",
    "RingRiftError",
    "VictoryType",
    "apply_move",
    "apply_move_unchecked",
    "fingerprint",
    "fingerprint_hash",
    "geometry",
    "legal_moves",
    "move_from_str",
    "move_to_str",
    "state_hash",
]
