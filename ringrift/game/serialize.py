"""Positions and moves in the reference JSON shape.

Stacks there list rings top first (``rings[0]`` is the top ring); positions are ``{x, y}`` or
``{x, y, z}`` and map keys ``"x,y"``/``"x,y,z"``. Loading validates as it goes: an unknown
board, a position off the board, a cell holding two things or an impossible ring count is a
``RingRiftError`` that names the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ringrift.game.boards import BoardType, GameConfig, Geometry
from ringrift.game.errors import AmbiguousMoveError, RingRiftError
from ringrift.game.moves import MOVE_TYPE_ALIASES, Move, MoveType
from ringrift.game.state import NEVER, GameState, Phase, VictoryType, cap_height
from ringrift.game.victory import final_ranks

MT = MoveType
JSON = dict[str, Any]


def position_json(geo: Geometry, cell: int) -> JSON:
    c = geo.coords[cell]
    if len(c) == 3:
        return {"x": c[0], "y": c[1], "z": c[2]}
    return {"x": c[0], "y": c[1]}


def cell_of(geo: Geometry, pos: Any, what: str) -> int:
    """Cell index of a ``{x, y[, z]}`` object or an ``"x,y[,z]"`` key."""
    with _field(what):
        return _cell_of(geo, pos, what)


def _cell_of(geo: Geometry, pos: Any, what: str) -> int:
    if isinstance(pos, str):
        parts = pos.split(",")
        if geo.board.is_hex and len(parts) == 2:  # legacy hex keys omit z
            x, y = int(parts[0]), int(parts[1])
            pos = f"{x},{y},{-x - y}"
        try:
            return geo.cell(pos)
        except RingRiftError as e:
            raise RingRiftError(f"{what}: {e}") from None
    if not isinstance(pos, dict) or "x" not in pos or "y" not in pos:
        raise RingRiftError(f"{what}: expected a position {{x, y}}, got {pos!r}")
    if geo.board.is_hex:
        x, y = int(pos["x"]), int(pos["y"])
        z = int(pos["z"]) if pos.get("z") is not None else -x - y
        key = f"{x},{y},{z}"
    else:
        key = f"{int(pos['x'])},{int(pos['y'])}"
    try:
        return geo.key_index[key]
    except KeyError:
        raise RingRiftError(
            f"{what}: position {key} is not on the {geo.board.value} board"
        ) from None


def _board_type(data: JSON) -> BoardType:
    name = data.get("boardType") or (data.get("board") or {}).get("type")
    try:
        return BoardType(str(name))
    except ValueError:
        raise RingRiftError(f"unknown boardType {name!r}") from None


def _swap_rule(data: JSON) -> bool:
    opts = data.get("rulesOptions") or {}
    return bool(data.get("swapRuleEnabled", opts.get("swapRuleEnabled", False)))


def state_from_json(data: JSON) -> GameState:
    """Load a reference-shaped game state; a field of the wrong shape is a ``RingRiftError``
    naming it."""
    if not isinstance(data, dict) or "board" not in data or "players" not in data:
        raise RingRiftError("state JSON needs 'board' and 'players'")
    with _field("board"):
        board_type = _board_type(data)
    with _field("players"):
        if not isinstance(data["players"], list) or not data["players"]:
            raise RingRiftError(f"players must list the game's players, got {data['players']!r}")
        players = sorted(data["players"], key=lambda p: int(p["playerNumber"]))
        n = len(players)
        if [int(p["playerNumber"]) for p in players] != list(range(1, n + 1)):
            raise RingRiftError("players must be numbered 1..n")
    with _field("maxPlayers"):
        num_players = n if n > 1 else int(data.get("maxPlayers", 2))
    with _field("swapRuleEnabled"):
        cfg = GameConfig(board_type, num_players, swap_rule=_swap_rule(data) and num_players == 2)
    s = GameState.initial(cfg)
    geo = s.geo
    board = data["board"]
    with _field("board.stacks"):
        for key, st in (board.get("stacks") or {}).items():
            cell = cell_of(geo, key, "board.stacks key")
            rings = st.get("rings")
            if not rings or not all(isinstance(r, int) and 1 <= r <= num_players for r in rings):
                raise RingRiftError(f"board.stacks[{key}]: bad rings {rings!r}")
            s.set_stack(cell, tuple(reversed(rings)))
    with _field("board.markers"):
        for key, mk in (board.get("markers") or {}).items():
            cell = cell_of(geo, key, "board.markers key")
            owner = int(mk["player"] if isinstance(mk, dict) else mk)
            if not 1 <= owner <= num_players or s.stacks[cell]:
                raise RingRiftError(f"board.markers[{key}]: bad marker {mk!r}")
            s.markers[cell] = owner
    with _field("board.collapsedSpaces"):
        for key, owner in (board.get("collapsedSpaces") or {}).items():
            cell = cell_of(geo, key, "board.collapsedSpaces key")
            owner = int(owner)
            if not 1 <= owner <= num_players or s.stacks[cell] or s.markers[cell]:
                raise RingRiftError(f"board.collapsedSpaces[{key}]: bad collapsed space")
            s.collapsed[cell] = owner
    with _field("players"):
        for p in players:
            k = int(p["playerNumber"])
            s.hand[k] = int(p.get("ringsInHand", 0))
            s.eliminated[k] = int(p.get("eliminatedRings", 0))
            s.territory[k] = int(p.get("territorySpaces", s.collapsed.count(k)))
    for k in range(1, num_players + 1):
        s.lost[k] = max(0, cfg.rings_per_player - s.hand[k] - s.rings_on_board(k))
    try:
        s.phase = Phase(data.get("currentPhase", "ring_placement"))
    except (ValueError, TypeError):
        raise RingRiftError(f"unknown currentPhase {data.get('currentPhase')!r}") from None
    with _field("currentPlayer"):
        s.current = int(data.get("currentPlayer", 1))
    if not 1 <= s.current <= num_players:
        raise RingRiftError(f"currentPlayer {s.current} is not a player")
    s.status = str(data.get("gameStatus", "active"))
    with _field("turnNumber"):
        s.turn_number = int(data.get("turnNumber", 1) or 1)
    with _field("moveHistory"):
        history = data.get("moveHistory") or []
        if not isinstance(history, list) or not all(isinstance(m, dict) for m in history):
            raise RingRiftError(f"moveHistory must be a list of moves, got {history!r}")
    s.move_count = len(history)
    s.lps_actors = set()
    s.lps_valid = False
    s.elimination_turn = [NEVER] * (num_players + 1)
    chain = data.get("chainCapturePosition")
    if chain:
        s.chain_at = cell_of(geo, chain, "chainCapturePosition")
    elif s.phase in (Phase.CAPTURE, Phase.CHAIN_CAPTURE) and history:
        with _field("moveHistory"):
            s.chain_at = _last_landing(geo, history)
    s.pending_line = bool(data.get("pendingLineRewardElimination", False))
    s.pending_territory = bool(data.get("pendingTerritorySelfElimination", False))
    with _field("moveHistory"):
        _infer_turn(s, history, data)
    if s.status == "completed" or s.phase is Phase.GAME_OVER:
        s.phase = Phase.GAME_OVER
        s.status = "completed"
        with _field("winner"):
            winner = data.get("winner")
            s.winner = int(winner) if winner else None
        kind = str(data.get("victoryType"))
        s.victory = VictoryType(kind) if kind in VictoryType._value2member_map_ else None
        with _field("players"):
            s.ranks = final_ranks(s, s.winner)
    if data.get("swapApplied") or data.get("swapUsed"):
        s.swap_used = True
    extra = data.get(ENGINE_KEY)
    if isinstance(extra, dict):
        _load_engine_fields(s, extra)
    return s


@contextmanager
def _field(name: str) -> Iterator[None]:
    """Read field ``name``: a value of the wrong shape is a ``RingRiftError`` naming it."""
    try:
        yield
    except RingRiftError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as e:
        raise RingRiftError(f"{name}: bad value ({type(e).__name__}: {e})") from None


ENGINE_KEY = "ringriftEngine"


def _engine_fields(s: GameState) -> JSON:
    """Turn and game facts the reference shape has no field for; saved so a round trip is exact."""
    return {
        "acted": s.acted,
        "realActionTaken": s.real_taken,
        "recoveryTurn": s.recovery_turn,
        "swapUsed": s.swap_used,
        "moveCount": s.move_count,
        "lastActor": s.last_actor,
        "eliminationTurn": [None if t >= NEVER else t for t in s.elimination_turn[1:]],
        "lps": {
            "actors": sorted(s.lps_actors),
            "candidate": s.lps_candidate,
            "rounds": s.lps_rounds,
            "valid": s.lps_valid,
        },
        "victoryType": s.victory.value if s.victory else None,
        "ranks": list(s.ranks) if s.ranks else None,
    }


def _load_engine_fields(s: GameState, e: JSON) -> None:
    try:
        s.acted = bool(e.get("acted", s.acted))
        s.real_taken = bool(e.get("realActionTaken", s.real_taken))
        s.recovery_turn = bool(e.get("recoveryTurn", s.recovery_turn))
        s.swap_used = bool(e.get("swapUsed", s.swap_used))
        s.move_count = int(e.get("moveCount", s.move_count))
        s.last_actor = int(e.get("lastActor", s.last_actor))
        turns = e.get("eliminationTurn")
        if turns is not None:
            s.elimination_turn = [NEVER] + [NEVER if t is None else int(t) for t in turns]
        lps = e.get("lps")
        if isinstance(lps, dict):
            s.lps_actors = {int(p) for p in lps.get("actors", [])}
            s.lps_candidate = int(lps.get("candidate", 0))
            s.lps_rounds = int(lps.get("rounds", 0))
            s.lps_valid = bool(lps.get("valid", True))
        if e.get("victoryType"):
            s.victory = VictoryType(e["victoryType"])
        if e.get("ranks"):
            s.ranks = tuple(int(r) for r in e["ranks"])
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as err:
        raise RingRiftError(f"{ENGINE_KEY}: bad value: {err}") from None


def _last_landing(geo: Geometry, history: list[JSON]) -> int:
    for m in reversed(history):
        if m.get("to"):
            return cell_of(geo, m["to"], "moveHistory[-1].to")
    raise RingRiftError("a capture phase needs chainCapturePosition or a move history")


def _infer_turn(s: GameState, history: list[JSON], data: JSON) -> None:
    """Recover turn-local facts (stack that must move, whether the player acted) from the
    current player's trailing moves in the history."""
    must = data.get("mustMoveFromStackKey")
    if must:
        s.must_move = cell_of(s.geo, must, "mustMoveFromStackKey")
    for m in reversed(history):
        if int(m.get("player", 0)) != s.current:
            break
        kind = m.get("type")
        if kind in (
            "place_ring",
            "move_stack",
            "overtaking_capture",
            "continue_capture_segment",
            "recovery_slide",
            "process_line",
            "choose_line_option",
            "choose_territory_option",
            "choose_line_reward",
            "process_territory_region",
        ):
            s.acted = True
        if kind in ("place_ring", "move_stack", "overtaking_capture", "continue_capture_segment"):
            s.real_taken = True
        if kind == "recovery_slide":
            s.recovery_turn = True
        if kind == "place_ring" and s.phase is Phase.MOVEMENT and not must:
            s.must_move = cell_of(s.geo, m["to"], "moveHistory place_ring.to")
        if kind in ("no_territory_action", "skip_territory_processing", "forced_elimination"):
            break


def state_to_json(s: GameState) -> JSON:
    """Save a state in the reference shape (stacks top first)."""
    geo = s.geo
    keys = geo.keys
    stacks: JSON = {}
    for c in sorted(s.stack_cells):
        st = s.stacks[c]
        stacks[keys[c]] = {
            "position": position_json(geo, c),
            "rings": list(reversed(st)),
            "stackHeight": len(st),
            "capHeight": cap_height(st),
            "controllingPlayer": st[-1],
        }
    markers = {
        keys[c]: {"player": o, "position": position_json(geo, c), "type": "regular"}
        for c, o in enumerate(s.markers)
        if o
    }
    collapsed = {keys[c]: o for c, o in enumerate(s.collapsed) if o}
    n = s.num_players
    out: JSON = {
        "boardType": geo.board.value,
        "board": {
            "type": geo.board.value,
            "size": geo.size,
            "stacks": stacks,
            "markers": markers,
            "collapsedSpaces": collapsed,
            "eliminatedRings": {str(p): s.eliminated[p] for p in range(1, n + 1)},
            "formedLines": [],
        },
        "players": [
            {
                "playerNumber": p,
                "ringsInHand": s.hand[p],
                "eliminatedRings": s.eliminated[p],
                "territorySpaces": s.territory[p],
                "isActive": not s.is_permanently_eliminated(p),
            }
            for p in range(1, n + 1)
        ],
        "currentPlayer": s.current,
        "currentPhase": s.phase.value,
        "gameStatus": s.status,
        "turnNumber": s.turn_number,
        "moveHistory": [],
        "victoryThreshold": s.config.victory_threshold,
        "territoryVictoryMinimum": s.config.territory_victory_minimum,
        "totalRingsEliminated": s.total_eliminated(),
        "swapRuleEnabled": s.config.swap_rule,
        "pendingLineRewardElimination": s.pending_line,
        "pendingTerritorySelfElimination": s.pending_territory,
    }
    if s.chain_at >= 0:
        out["chainCapturePosition"] = position_json(geo, s.chain_at)
    if s.must_move >= 0:
        out["mustMoveFromStackKey"] = keys[s.must_move]
    if s.winner is not None:
        out["winner"] = s.winner
    if s.victory is not None:
        out["victoryType"] = s.victory.value
    out[ENGINE_KEY] = _engine_fields(s)
    return out


def move_type_of(name: Any) -> MoveType:
    try:
        return MOVE_TYPE_ALIASES.get(name) or MoveType(name)
    except ValueError:
        raise RingRiftError(f"unknown move type {name!r}") from None


def move_to_json(geo: Geometry, m: Move) -> JSON:
    """A reference-shaped move object."""
    out: JSON = {"type": m.type.value, "player": m.player}
    if m.frm >= 0:
        out["from"] = position_json(geo, m.frm)
    if m.to >= 0:
        out["to"] = position_json(geo, m.to)
    t = m.type
    if t is MT.PLACE_RING:
        out["placementCount"] = m.rings
    elif t in (MT.OVERTAKING_CAPTURE, MT.CONTINUE_CAPTURE_SEGMENT):
        out["captureTarget"] = position_json(geo, m.target)
    elif t in (MT.PROCESS_LINE, MT.CHOOSE_LINE_OPTION):
        out["formedLines"] = [{"positions": [position_json(geo, c) for c in m.cells]}]
        out["collapsedMarkers"] = [position_json(geo, c) for c in m.collapse]
        out["to"] = position_json(geo, m.cells[0])
    elif t is MT.CHOOSE_TERRITORY_OPTION:
        out["disconnectedRegions"] = [{"spaces": [position_json(geo, c) for c in m.cells]}]
    elif t is MT.RECOVERY_SLIDE:
        out["recoveryMode"] = m.mode
        if m.mode == "line":
            out["recoveryOption"] = m.option
            if m.option == 2:
                out["collapsePositions"] = [position_json(geo, c) for c in m.collapse]
        out["extractionStacks"] = [geo.keys[m.target]] if m.target >= 0 else []
    return out


def _positions(geo: Geometry, items: Any, what: str) -> tuple[int, ...]:
    if not isinstance(items, list):
        raise RingRiftError(f"{what}: expected a list of positions")
    return tuple(cell_of(geo, p, what) for p in items)


def move_from_json(state: GameState, obj: JSON) -> Move:
    """Read a reference-shaped move in the context of ``state``.

    Moves whose JSON leaves a choice implicit (a line named only by its markers, a region by its
    spaces, a recovery without its extraction stack) are matched against the legal moves of
    ``state``; if nothing matches, the move is still built from its fields so that
    ``apply_move`` rejects it with a message naming it.
    """
    from ringrift.game.movegen import legal_moves

    if not isinstance(obj, dict) or "type" not in obj:
        raise RingRiftError(f"move JSON needs a 'type': {obj!r}")
    geo = state.geo
    with _field("type"):
        t = move_type_of(obj["type"])
    with _field("player"):
        player = int(obj.get("player", state.current))

    def pos(field: str) -> int:
        if obj.get(field) is None:
            raise RingRiftError(f"{t.value} move needs '{field}'")
        return cell_of(geo, obj[field], f"{t.value}.{field}")

    if t is MT.PLACE_RING:
        with _field("placementCount"):
            rings = int(obj.get("placementCount") or 1)
        return Move(t, player, to=pos("to"), rings=rings)
    if t is MT.MOVE_STACK:
        return Move(t, player, pos("from"), pos("to"))
    if t in (MT.OVERTAKING_CAPTURE, MT.CONTINUE_CAPTURE_SEGMENT):
        return Move(t, player, pos("from"), pos("to"), pos("captureTarget"))
    if t in (MT.ELIMINATE_RINGS_FROM_STACK, MT.FORCED_ELIMINATION):
        return Move(t, player, to=pos("to"))
    legal = [m for m in legal_moves(state) if m.type is t and m.player == player]
    if t in (MT.PROCESS_LINE, MT.CHOOSE_LINE_OPTION):
        lines = obj.get("formedLines") or []
        if not isinstance(lines, list) or not lines or not isinstance(lines[0], dict):
            raise RingRiftError(f"{t.value} move needs formedLines[0].positions")
        if "positions" not in lines[0]:
            raise RingRiftError(f"{t.value} move needs formedLines[0].positions")
        cells = _positions(geo, lines[0]["positions"], f"{t.value}.formedLines[0]")
        collapse = (
            _positions(geo, obj["collapsedMarkers"], f"{t.value}.collapsedMarkers")
            if obj.get("collapsedMarkers")
            else cells
        )
        for m in legal:
            if set(m.cells) == set(cells) and set(m.collapse) == set(collapse):
                return m
        option = 1 if set(collapse) == set(cells) else 2
        return Move(t, player, cells=cells, collapse=collapse, option=option)
    if t is MT.CHOOSE_TERRITORY_OPTION:
        regions = obj.get("disconnectedRegions") or []
        if isinstance(regions, list) and regions and not isinstance(regions[0], dict):
            raise RingRiftError(f"disconnectedRegions must be a list of regions, got {regions!r}")
        if not isinstance(regions, list) or not regions or not regions[0].get("spaces"):
            return Move(t, player)  # names no region: leaves territory processing
        cells = _positions(geo, regions[0]["spaces"], "disconnectedRegions[0].spaces")
        for m in legal:
            if set(m.cells) == set(cells):
                return m
        return Move(t, player, to=min(cells), cells=tuple(sorted(cells)))
    if t is MT.RECOVERY_SLIDE:
        frm, to = pos("from"), pos("to")
        mode = obj.get("recoveryMode") or "line"
        if mode not in ("line", "fallback", "stack_strike"):
            raise RingRiftError(f"unknown recoveryMode {mode!r}")
        with _field("recoveryOption"):
            option = int(
                obj.get("recoveryOption") or obj.get("option") or (1 if mode == "line" else 0)
            )
        wanted: tuple[int, ...] | None = (
            _positions(geo, obj["collapsePositions"], "recovery_slide.collapsePositions")
            if obj.get("collapsePositions")
            else None
        )
        stacks = obj.get("extractionStacks") or []
        if not isinstance(stacks, list):
            raise RingRiftError(f"extractionStacks must be a list of positions, got {stacks!r}")
        target = cell_of(geo, stacks[0], "recovery_slide.extractionStacks") if stacks else None
        found = [
            m
            for m in legal
            if m.frm == frm
            and m.to == to
            and m.mode == mode
            and (mode != "line" or m.option == option)
            and (wanted is None or set(m.collapse) == set(wanted))
            and (target is None or m.target == target)
        ]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AmbiguousMoveError(
                "recovery_slide is ambiguous: more than one stack holds a buried ring to "
                "extract; name one in extractionStacks",
                found,
            )
        return Move(
            t,
            player,
            frm,
            to,
            -1 if target is None else target,
            collapse=wanted or (),
            option=option,
            mode=mode,
        )
    return Move(t, player)
