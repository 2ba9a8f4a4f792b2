"""``ringrift rules check``: replay reference fixtures and compare what they state.

Recognised kinds: contract-vector bundles (``{"vectors": [{input, expectedOutput}]}``),
rules-parity ``state_action`` (``{state, move, expected}``), ``trace``
(``{initialState, steps}``), ``state_only`` (``{state}``), golden games
(``{boardType, numPlayers, moves}``) and phase-machine bundles (``fsm``, whose abstract events
have no board to replay). Every case runs; a case listed in the skip file is reported as
skipped whatever its result (and noted if it now passes).

Two adaptations of the data, both allowed by the reference notes: the fixture states do not
record a pending self-elimination, so one is assumed when the replayed move is an elimination;
and after a move, forced bookkeeping moves (``no_line_action``/``no_territory_action``, the only
legal move) are applied while the state does not yet match the expected phase and player.
"""

from __future__ import annotations

import functools
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from ringrift.game.apply import apply_move
from ringrift.game.boards import BoardType, GameConfig
from ringrift.game.errors import AmbiguousMoveError, IllegalMoveError, RingRiftError
from ringrift.game.fingerprint import fingerprint
from ringrift.game.movegen import legal_moves
from ringrift.game.moves import Move, MoveType
from ringrift.game.serialize import move_from_json, state_from_json
from ringrift.game.state import GameState, Phase

MT = MoveType
JSON = dict[str, Any]
_FORCED_BOOKKEEPING = (MT.NO_LINE_ACTION, MT.NO_TERRITORY_ACTION)
_DECISION_PHASES = {
    "line_processing",
    "territory_processing",
    "chain_capture",
    "capture",
    "forced_elimination",
}


class Mismatch(Exception):
    """The first difference between the engine and a fixture."""


@dataclass
class Case:
    id: str
    run: Callable[[], None]


# ----- helpers ---------------------------------------------------------------------------


def _expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise Mismatch(f"{what}: engine {got!r}, fixture {want!r}")


def _load(state_json: JSON) -> GameState:
    return state_from_json(state_json)


def prepare_for_fixture_move(state: GameState, move_json: JSON) -> None:
    """Fixture states omit pending self-eliminations; an elimination move implies one."""
    if move_json.get("type") == "eliminate_rings_from_stack":
        if state.phase is Phase.LINE_PROCESSING:
            state.pending_line = True
        elif state.phase is Phase.TERRITORY_PROCESSING:
            state.pending_territory = True
    if state.phase in (Phase.CAPTURE, Phase.CHAIN_CAPTURE) and state.chain_at < 0:
        frm = move_json.get("from")
        if frm:
            from ringrift.game.serialize import cell_of

            state.chain_at = cell_of(state.geo, frm, "move.from")


def _play(state: GameState, move_json: JSON) -> None:
    prepare_for_fixture_move(state, move_json)
    apply_move(state, move_from_json(state, move_json))


def _advance_bookkeeping(state: GameState, done: Callable[[GameState], bool]) -> None:
    """Apply forced no-op bookkeeping moves until ``done`` or a real decision is due."""
    while not state.is_over and not done(state):
        moves = legal_moves(state)
        if len(moves) != 1 or moves[0].type not in _FORCED_BOOKKEEPING:
            return
        apply_move(state, moves[0])


def _normalise_fp(state: GameState, want: str) -> str:
    """Our fingerprint in the expected form (3-field meta; 2-coordinate hex keys)."""
    meta = want.split("#", 1)[0]
    fp = fingerprint(state, with_pending_line=meta.count(":") >= 3)
    if state.geo.board.is_hex and not _has_cube_keys(want):
        fp = _drop_z(fp)
    return fp


def _fp_matches(state: GameState, want: str) -> bool:
    return _normalise_fp(state, want) == want


def _has_cube_keys(fp: str) -> bool:
    for part in fp.split("#")[2:]:
        for item in filter(None, part.split("|")):
            return item.split(":")[0].count(",") == 2
    return True


def _drop_z(fp: str) -> str:
    parts = fp.split("#")
    out = parts[:2]
    for part in parts[2:]:
        items = []
        for item in filter(None, part.split("|")):
            key, rest = item.split(":", 1)
            items.append(",".join(key.split(",")[:2]) + ":" + rest)
        out.append("|".join(sorted(items)))
    return "#".join(out)


# ----- contract vectors ------------------------------------------------------------------


def _s_value(state: GameState) -> int:
    return state.progress()


def _contract_case(v: JSON) -> None:
    inp = v["input"]
    out = v["expectedOutput"]
    a: JSON = out.get("assertions", {})
    state = _load(inp["state"])
    before_s = _s_value(state)
    before_markers = state.marker_count()
    before_stacks = set(state.stack_cells)
    start_player = state.current
    segments = 0
    if "initialMove" in inp:
        chain = inp.get("expectedChainSequence", [])
        _play(state, inp["initialMove"])
        segments = 1
        _check_segment(state, chain, 0)
        for i, step in enumerate(chain[1:], 1):
            if state.phase is not Phase.CHAIN_CAPTURE:
                raise Mismatch(f"chain ended after {segments} segments; fixture lists {len(chain)}")
            want = {
                "type": "continue_capture_segment",
                "player": state.current,
                "from": step["from"],
                "captureTarget": step["captureTarget"],
                "to": step["landing"],
            }
            _play(state, want)
            segments += 1
            _check_segment(state, chain, i)
    else:
        _play(state, inp["move"])
    status = out.get("status")
    want_phase = a.get("currentPhase")
    # The generator skipped empty phases by itself, so a vector that names whose turn or which
    # phase follows may expect the state after the bookkeeping moves; one that names neither
    # is compared right after its move (going on could end the turn, or the game).
    names_turn = "currentPhase" in a or "currentPlayer" in a
    if status != "awaiting_decision" and want_phase not in _DECISION_PHASES and names_turn:
        _advance_bookkeeping(state, lambda s: s.phase.value == want_phase if want_phase else False)
    n = state.num_players
    checks: dict[str, Callable[[], object]] = {
        "currentPlayer": lambda: state.current,
        "currentPhase": lambda: state.phase.value,
        "gameStatus": lambda: state.status if state.is_over else "active",
        "stackCount": lambda: len(state.stack_cells),
        "markerCount": lambda: state.marker_count(),
        "collapsedCount": lambda: state.collapsed_count(),
        "sInvariantDelta": lambda: _s_value(state) - before_s,
        "victoryWinner": lambda: state.winner,
        "victoryReason": lambda: state.victory.value if state.victory else None,
        "totalCapturesInChain": lambda: segments,
        "markersCreated": lambda: state.marker_count() - before_markers,
        "extractionCount": lambda: state.eliminated[start_player] - _base_elim(inp, start_player),
        "noLineCollapse": lambda: state.collapsed_count() == _base_collapsed(inp),
        "pendingDecisionType": lambda: _decision_type(state),
    }
    for p in range(1, n + 1):
        checks[f"player{p}RingsInHand"] = functools.partial(state.hand.__getitem__, p)
        checks[f"player{p}EliminatedRings"] = functools.partial(state.eliminated.__getitem__, p)
        checks[f"player{p}TerritorySpaces"] = functools.partial(state.territory.__getitem__, p)
    landing = _last_landing(inp, state)
    checks["finalStackHeight"] = lambda: len(state.stacks[landing]) if landing >= 0 else 0
    checks["finalStackController"] = lambda: state.controller(landing) if landing >= 0 else 0
    checks["targetStacksRemaining"] = lambda: sum(
        1 for c in state.stack_cells if c in before_stacks and state.controller(c) != start_player
    )
    for key, want in a.items():
        if key not in checks:
            raise Mismatch(f"assertion {key!r} is not understood by the checker")
        _expect(key, checks[key](), want)
    final = out.get("finalState")
    if final:
        from ringrift.game.serialize import cell_of

        if "finalStackPosition" in final:
            _expect(
                "finalStackPosition",
                landing,
                cell_of(state.geo, final["finalStackPosition"], "finalStackPosition"),
            )
        if "markerPositions" in final:
            want_markers = {
                cell_of(state.geo, p, "markerPositions") for p in final["markerPositions"]
            }
            got = {c for c, o in enumerate(state.markers) if o}
            _expect(
                "markerPositions",
                sorted(state.geo.keys[c] for c in got),
                sorted(state.geo.keys[c] for c in want_markers),
            )


def _check_segment(state: GameState, chain: list[JSON], i: int) -> None:
    """The attacking stack's height after segment ``i`` of an expected chain."""
    if i >= len(chain) or "attackerHeightAfter" not in chain[i]:
        return
    from ringrift.game.serialize import cell_of

    landing = cell_of(state.geo, chain[i]["landing"], "expectedChainSequence.landing")
    _expect(
        f"segment {i + 1} attackerHeightAfter",
        len(state.stacks[landing]),
        chain[i]["attackerHeightAfter"],
    )


def _base_elim(inp: JSON, player: int) -> int:
    for p in inp["state"]["players"]:
        if int(p["playerNumber"]) == player:
            return int(p.get("eliminatedRings", 0))
    return 0


def _base_collapsed(inp: JSON) -> int:
    return len(inp["state"]["board"].get("collapsedSpaces") or {})


def _last_landing(inp: JSON, state: GameState) -> int:
    from ringrift.game.serialize import cell_of

    seq = inp.get("expectedChainSequence")
    if seq:
        return cell_of(state.geo, seq[-1]["landing"], "landing")
    mv = inp.get("initialMove") or inp.get("move") or {}
    if mv.get("to") and mv.get("type") in (
        "move_stack",
        "overtaking_capture",
        "continue_capture_segment",
    ):
        return cell_of(state.geo, mv["to"], "move.to")
    return -1


def _decision_type(state: GameState) -> str | None:
    if state.phase is Phase.LINE_PROCESSING and not state.pending_line:
        kinds = {m.type for m in legal_moves(state)}
        if MT.PROCESS_LINE in kinds or MT.CHOOSE_LINE_OPTION in kinds:
            return "select_line_to_process"
    return None


# ----- rules-parity ----------------------------------------------------------------------


def _compare_ts_next(state: GameState, nxt: JSON) -> None:
    want_fp: str | None = nxt.get("stateHash")

    def matches(s: GameState) -> bool:
        return want_fp is not None and _normalise_fp(s, want_fp) == want_fp

    _advance_bookkeeping(state, matches)
    if want_fp is not None:
        _expect("stateHash", _normalise_fp(state, want_fp), want_fp)
    fields: dict[str, Callable[[], object]] = {
        "currentPhase": lambda: state.phase.value,
        "currentPlayer": lambda: state.current,
        "markers": lambda: state.marker_count(),
        "collapsed": lambda: state.collapsed_count(),
        "eliminated": lambda: state.total_eliminated(),
        "totalRingsEliminated": lambda: state.total_eliminated(),
        "S": lambda: state.progress(),
        "boardType": lambda: state.geo.board.value,
        "gameStatus": lambda: state.status,
    }
    for key, get in fields.items():
        if key in nxt:
            _expect(f"tsNext.{key}", get(), nxt[key])


def _rejects(state: GameState, move_json: JSON) -> None:
    try:
        _play(state, move_json)
    except IllegalMoveError:
        return
    except RingRiftError as e:
        raise Mismatch(f"move rejected with a non-legality error: {e}") from None
    raise Mismatch("fixture says the move is illegal (tsValid false); the engine accepted it")


def _state_action_case(d: JSON) -> None:
    state = _load(d["state"])
    exp = d["expected"]
    if not exp.get("tsValid", True):
        _rejects(state, d["move"])
        return
    _play(state, d["move"])
    if exp.get("tsNext"):
        _compare_ts_next(state, exp["tsNext"])


def _trace_case(d: JSON) -> None:
    state = _load(d["initialState"])
    steps = d["steps"]
    for i, step in enumerate(steps):
        exp = step.get("expected", {})
        try:
            if not exp.get("tsValid", True):
                _rejects(state.copy(), step["move"])
                continue
            want_fp = exp.get("tsStateHash") or step.get("stateHash")
            try:
                _play(state, step["move"])
            except AmbiguousMoveError as e:
                _play_the_recorded_choice(state, e.candidates, want_fp)
            nxt_type = steps[i + 1]["move"].get("type") if i + 1 < len(steps) else None
            if want_fp and nxt_type not in ("no_line_action", "no_territory_action"):
                _advance_bookkeeping(state, functools.partial(_fp_matches, want=want_fp))
            if want_fp:
                _expect("stateHash", _normalise_fp(state, want_fp), want_fp)
            if "tsS" in exp:
                _expect("S", state.progress(), exp["tsS"])
        except Mismatch as e:
            raise Mismatch(
                f"step {i + 1} ({step.get('label', step['move'].get('type'))}): {e}"
            ) from None


def _play_the_recorded_choice(
    state: GameState, candidates: list[Move], want_fp: str | None
) -> None:
    """A trace move that leaves a choice unnamed (a recovery's extraction stack): play the one
    candidate whose result is the recorded fingerprint."""
    matching = []
    for move in candidates:
        trial = state.copy()
        apply_move(trial, move)
        if want_fp and _normalise_fp(trial, want_fp) == want_fp:
            matching.append(move)
    if len(matching) != 1:
        raise Mismatch(
            f"the move names no extraction stack and {len(matching)} of the "
            f"{len(candidates)} candidates give the recorded state"
        )
    apply_move(state, matching[0])


def _golden_case(d: JSON) -> None:
    cfg = GameConfig(BoardType(d["boardType"]), int(d["numPlayers"]))
    state = GameState.initial(cfg)
    for i, mv in enumerate(d["moves"]):
        try:
            apply_move(state, move_from_json(state, mv))
        except RingRiftError as e:
            raise Mismatch(f"move {i + 1} ({mv.get('type')}): {e}") from None


# ----- discovery -------------------------------------------------------------------------


def _cases_in(path: Path) -> Iterator[Case]:
    try:
        text = path.read_text()
    except OSError as e:
        yield Case(f"file:{path}", _raise(f"cannot read fixture file: {e}"))
        return
    yield from _cases_of(path, text)


def _cases_in_archive(path: Path) -> Iterator[Case]:
    """The JSON fixtures inside a ``.tar.gz`` (the canonical games ship as one), as if unpacked."""
    try:
        with tarfile.open(path) as tar:
            members = sorted(
                (m for m in tar.getmembers() if m.isfile() and m.name.endswith(".json")),
                key=lambda m: m.name,
            )
            texts = []
            for m in members:
                f = tar.extractfile(m)
                assert f is not None  # a regular file
                texts.append((PurePosixPath(m.name), f.read().decode("utf-8")))
    except (OSError, tarfile.TarError, UnicodeDecodeError) as e:
        yield Case(f"file:{path}", _raise(f"cannot read fixture archive: {e}"))
        return
    for name, text in texts:
        yield from _cases_of(name, text)


def _cases_of(path: Path | PurePosixPath, text: str) -> Iterator[Case]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        yield Case(f"file:{path}", _raise(f"cannot read fixture file: {e}"))
        return
    stem = path.name.removesuffix(".json")
    if isinstance(data, dict) and isinstance(data.get("vectors"), list):
        for v in data["vectors"]:
            if "input" in v and "state" in v["input"]:
                yield Case(str(v["id"]), functools.partial(_contract_case, v))
            elif "input" in v and "event" in v["input"]:
                yield Case(f"fsm/{v['id']}", _raise("abstract phase-machine vector"))
            else:
                yield Case(f"{stem}/{v.get('id')}", _raise("unrecognised vector shape"))
    elif isinstance(data, dict) and "steps" in data and "initialState" in data:
        yield Case(f"{path.parent.name}/{stem}", lambda: _trace_case(data))
    elif isinstance(data, dict) and "expected" in data and "state" in data:
        yield Case(f"{path.parent.name}/{stem}", lambda: _state_action_case(data))
    elif isinstance(data, dict) and "state" in data:
        yield Case(f"{path.parent.name}/{stem}", functools.partial(_load_only, data["state"]))
    elif isinstance(data, dict) and "moves" in data and "boardType" in data:
        yield Case(f"golden/{stem}", lambda: _golden_case(data))
    else:
        yield Case(f"file:{path}", _raise("not a recognised fixture kind"))


def _load_only(state_json: JSON) -> None:
    _load(state_json)


def _raise(msg: str) -> Callable[[], None]:
    def run() -> None:
        raise Mismatch(msg)

    return run


def discover(paths: list[str]) -> Iterator[Case]:
    for p in paths:
        root = Path(p)
        if root.is_dir():
            for f in sorted([*root.rglob("*.json"), *root.rglob("*.tar.gz")]):
                yield from _cases_in_archive(f) if f.name.endswith(".tar.gz") else _cases_in(f)
        elif root.name.endswith(".tar.gz") and root.is_file():
            yield from _cases_in_archive(root)
        elif root.exists():
            yield from _cases_in(root)
        else:
            yield Case(f"file:{p}", _raise("no such file or folder"))


def load_skips(skip_file: str | None) -> dict[str, str]:
    """``id  reason`` per line; ``#`` starts a comment. Every skip needs a reason."""
    if skip_file:
        text = Path(skip_file).read_text()
    else:
        text = resources.files("ringrift.game").joinpath("data/fixture_skips.txt").read_text()
    skips: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise RingRiftError(f"skip file line {n}: {parts[0]!r} has no reason")
        skips[parts[0]] = parts[1]
    return skips


@dataclass
class CheckResult:
    passed: list[str]
    failed: list[tuple[str, str]]
    skipped: list[tuple[str, str]]
    stale_skips: list[str]  # skipped cases that pass now


def check(
    paths: list[str],
    skip_file: str | None = None,
    *,
    on_total: Callable[[int], None] | None = None,
    on_case: Callable[[str], None] | None = None,
) -> CheckResult:
    """Run every case under ``paths``. ``on_total`` (given: every fixture is read first) hears
    how many cases there are; ``on_case`` hears each case's id before it runs (progress)."""
    skips = load_skips(skip_file)
    res = CheckResult([], [], [], [])
    cases: Iterable[Case] = discover(paths)
    if on_total is not None:
        cases = list(cases)
        on_total(len(cases))
    for case in cases:
        if on_case is not None:
            on_case(case.id)
        try:
            case.run()
            error = None
        except (Mismatch, RingRiftError) as e:
            error = str(e)
        except Exception as e:  # an engine bug must show as a failure, not a crash
            error = f"{type(e).__name__}: {e}"
        if case.id in skips:
            res.skipped.append((case.id, skips[case.id]))
            if error is None:
                res.stale_skips.append(case.id)
        elif error is None:
            res.passed.append(case.id)
        else:
            res.failed.append((case.id, error))
    return res


def run_check(paths: list[str], skip_file: str | None = None, verbose: bool = False) -> int:
    return print_report(check(paths, skip_file), verbose)


def print_report(res: CheckResult, verbose: bool = False) -> int:
    """Print a check's failures (every case with ``verbose``) and its summary line; returns
    the exit status: 0 only if nothing failed."""
    for cid, err in res.failed:
        print(f"FAIL {cid}: {err}")
    if verbose:
        for cid in res.passed:
            print(f"ok   {cid}")
        for cid, why in res.skipped:
            print(f"skip {cid}: {why}")
    for cid in res.stale_skips:
        print(f"note: skipped case {cid} passes now; its skip entry can go")
    print(f"{len(res.passed)} passed, {len(res.failed)} failed, {len(res.skipped)} skipped")
    return 0 if not res.failed else 1
