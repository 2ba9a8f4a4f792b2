"""The position: a mutable game state built from a ``GameConfig``, with cheap ``copy()``.

Stacks are tuples of ring colours ordered bottom to top (the reference JSON lists them top
first; ``serialize`` converts). Per-cell lists hold stacks, markers and collapsed owners, so a
copy is a handful of list copies. Turn-local fields record what the phase machine in ``rules``
needs (a stack that must move, a capture chain, pending eliminations).
"""

from __future__ import annotations

import enum

from ringrift.game.boards import GameConfig, Geometry


class Phase(enum.StrEnum):
    RING_PLACEMENT = "ring_placement"
    MOVEMENT = "movement"
    CAPTURE = "capture"
    CHAIN_CAPTURE = "chain_capture"
    LINE_PROCESSING = "line_processing"
    TERRITORY_PROCESSING = "territory_processing"
    FORCED_ELIMINATION = "forced_elimination"
    GAME_OVER = "game_over"


class VictoryType(enum.StrEnum):
    RING_ELIMINATION = "ring_elimination"
    TERRITORY = "territory_control"
    LAST_PLAYER_STANDING = "last_player_standing"
    STALEMATE = "stalemate"
    MAX_MOVES = "max_moves"


NEVER = 1 << 30  # elimination turn of a player who was never permanently eliminated


def cap_height(stack: tuple[int, ...]) -> int:
    top = stack[-1]
    i = len(stack) - 2
    while i >= 0 and stack[i] == top:
        i -= 1
    return len(stack) - 1 - i


class GameState:
    """A RingRift position. Players are numbered 1..n; per-player lists are indexed by number."""

    __slots__ = (
        "config",
        "geo",
        "stacks",
        "stack_cells",
        "markers",
        "collapsed",
        "hand",
        "eliminated",
        "territory",
        "lost",
        "current",
        "phase",
        "status",
        "winner",
        "victory",
        "ranks",
        "move_count",
        "turn_number",
        "must_move",
        "chain_at",
        "acted",
        "real_taken",
        "pending_line",
        "pending_territory",
        "recovery_turn",
        "lps_actors",
        "lps_candidate",
        "lps_rounds",
        "lps_valid",
        "swap_used",
        "last_actor",
        "elimination_turn",
    )

    config: GameConfig
    geo: Geometry
    stacks: list[tuple[int, ...]]
    stack_cells: set[int]
    markers: list[int]
    collapsed: list[int]
    hand: list[int]
    eliminated: list[int]  # rings credited to each player
    territory: list[int]
    lost: list[int]  # rings of each colour that have been eliminated
    current: int
    phase: Phase
    status: str  # "active" (or "waiting" when loaded so) until "completed"
    winner: int | None
    victory: VictoryType | None
    ranks: tuple[int, ...] | None
    move_count: int
    turn_number: int
    must_move: int
    chain_at: int
    acted: bool
    real_taken: bool
    pending_line: bool
    pending_territory: bool
    recovery_turn: bool
    lps_actors: set[int]
    lps_candidate: int
    lps_rounds: int
    lps_valid: bool
    swap_used: bool
    last_actor: int
    elimination_turn: list[int]

    @classmethod
    def initial(cls, config: GameConfig) -> GameState:
        """The standard empty start: every ring in hand, player 1 to place."""
        s = cls.__new__(cls)
        n = config.num_players
        geo = config.geometry
        s.config = config
        s.geo = geo
        s.stacks = [()] * geo.num_cells
        s.stack_cells = set()
        s.markers = [0] * geo.num_cells
        s.collapsed = [0] * geo.num_cells
        s.hand = [0] + [config.rings_per_player] * n
        s.eliminated = [0] * (n + 1)
        s.territory = [0] * (n + 1)
        s.lost = [0] * (n + 1)
        s.current = 1
        s.phase = Phase.RING_PLACEMENT
        s.status = "active"
        s.winner = None
        s.victory = None
        s.ranks = None
        s.move_count = 0
        s.turn_number = 1
        s.elimination_turn = [NEVER] * (n + 1)
        s.swap_used = False
        s.last_actor = 0
        s.lps_candidate = 0
        s.lps_rounds = 0
        s.lps_valid = True
        s.lps_actors = {1}  # the first player can always place from the empty start
        s.reset_turn()
        return s

    def reset_turn(self) -> None:
        self.must_move = -1
        self.chain_at = -1
        self.acted = False
        self.real_taken = False
        self.pending_line = False
        self.pending_territory = False
        self.recovery_turn = False

    def copy(self) -> GameState:
        s = GameState.__new__(GameState)
        s.config = self.config
        s.geo = self.geo
        s.stacks = self.stacks[:]
        s.stack_cells = set(self.stack_cells)
        s.markers = self.markers[:]
        s.collapsed = self.collapsed[:]
        s.hand = self.hand[:]
        s.eliminated = self.eliminated[:]
        s.territory = self.territory[:]
        s.lost = self.lost[:]
        s.current = self.current
        s.phase = self.phase
        s.status = self.status
        s.winner = self.winner
        s.victory = self.victory
        s.ranks = self.ranks
        s.move_count = self.move_count
        s.turn_number = self.turn_number
        s.must_move = self.must_move
        s.chain_at = self.chain_at
        s.acted = self.acted
        s.real_taken = self.real_taken
        s.pending_line = self.pending_line
        s.pending_territory = self.pending_territory
        s.recovery_turn = self.recovery_turn
        s.lps_actors = set(self.lps_actors)
        s.lps_candidate = self.lps_candidate
        s.lps_rounds = self.lps_rounds
        s.lps_valid = self.lps_valid
        s.swap_used = self.swap_used
        s.last_actor = self.last_actor
        s.elimination_turn = self.elimination_turn[:]
        return s

    # ----- queries -------------------------------------------------------------------------

    @property
    def num_players(self) -> int:
        return self.config.num_players

    @property
    def is_over(self) -> bool:
        return self.phase is Phase.GAME_OVER

    def controller(self, cell: int) -> int:
        s = self.stacks[cell]
        return s[-1] if s else 0

    def controlled_stacks(self, player: int) -> list[int]:
        stacks = self.stacks
        return sorted(c for c in self.stack_cells if stacks[c][-1] == player)

    def controls_any(self, player: int) -> bool:
        stacks = self.stacks
        return any(stacks[c][-1] == player for c in self.stack_cells)

    def rings_on_board(self, player: int) -> int:
        stacks = self.stacks
        return sum(stacks[c].count(player) for c in self.stack_cells)

    def has_buried_ring(self, player: int) -> bool:
        stacks = self.stacks
        for c in self.stack_cells:
            s = stacks[c]
            if player in s[:-1]:
                return True
        return False

    def marker_count(self, player: int = 0) -> int:
        if player:
            return self.markers.count(player)
        return len(self.markers) - self.markers.count(0)

    def collapsed_count(self) -> int:
        return len(self.collapsed) - self.collapsed.count(0)

    def total_eliminated(self) -> int:
        return sum(self.eliminated)

    def progress(self) -> int:
        """S = markers + collapsed spaces + eliminated rings; it never decreases."""
        return self.marker_count() + self.collapsed_count() + self.total_eliminated()

    def is_permanently_eliminated(self, player: int) -> bool:
        if self.hand[player]:
            return False
        stacks = self.stacks
        return not any(player in stacks[c] for c in self.stack_cells)

    # ----- primitive mutations (no legality checks) ---------------------------------------

    def set_stack(self, cell: int, stack: tuple[int, ...]) -> None:
        self.stacks[cell] = stack
        if stack:
            self.stack_cells.add(cell)
        else:
            self.stack_cells.discard(cell)

    def eliminate_top(self, cell: int, count: int, credit: int) -> None:
        """Remove the top ``count`` rings of a stack, crediting them to ``credit``."""
        s = self.stacks[cell]
        lost = self.lost
        for ring in s[len(s) - count :]:
            lost[ring] += 1
        self.eliminated[credit] += count
        self.set_stack(cell, s[: len(s) - count])

    def extract_buried(self, cell: int, player: int) -> None:
        """Remove ``player``'s bottommost ring from a stack (recovery's self-elimination)."""
        s = self.stacks[cell]
        i = s.index(player)
        self.lost[player] += 1
        self.eliminated[player] += 1
        self.set_stack(cell, s[:i] + s[i + 1 :])

    def collapse(self, cell: int, owner: int) -> None:
        if self.stacks[cell]:
            s = self.stacks[cell]
            for ring in s:
                self.lost[ring] += 1
            self.eliminated[owner] += len(s)
            self.set_stack(cell, ())
        self.markers[cell] = 0
        self.collapsed[cell] = owner
        self.territory[owner] += 1
