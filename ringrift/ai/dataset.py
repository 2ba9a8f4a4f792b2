"""Training samples: the file format, its writer (from selfplay games) and its checked reader.

A dataset is one uncompressed ``.npz`` file. Row ``i`` is one training sample, a position seen
from the player to move (``encoding.encode_state``), possibly under a board symmetry. Rows come
game by game (input order), target by target (move order), symmetry by symmetry
(``symmetry.symmetries`` order, the identity first):

================  =================  ========================================================
array             dtype, shape       meaning
================  =================  ========================================================
``planes``        float16 (N,C,S,S)  encoded input planes
``globals``       float32 (N, G)     encoded global features
``policy_index``  int32 (P,)         soft policy target as CSR: the action indices of row
``policy_prob``   float32 (P,)       ``i`` are ``policy_index[policy_offset[i]:
``policy_offset`` int64 (N+1,)       policy_offset[i+1]]``, their probabilities (sum 1) alike
``legal_index``   int32 (L,)         the legal action indices of row ``i`` (ascending), CSR
``legal_offset``  int64 (N+1,)       with ``legal_offset``
``value``         float32 (N, 4)     the game's result per seat slot, in the player to move's
                                     rotated order (``encoding.seat_players``): first place
                                     +1, last -1, linear between, shared ranks shared (the
                                     values ``mcts.terminal_values`` gives); absent seats 0
``value_mask``    uint8 (N, 4)       1 where ``value`` is a target: slots of seats in the
                                     game, and only for games that reached a result
``game_index``    int32 (N,)         index of the source game in ``meta["game_ids"]``, so that
                                     a train/validation split can keep games whole
``sym_offset``    int64 (N+1,)       only in files written without ``augment`` (meta
``sym_action``    int32 (E,)         ``symmetry_maps`` true): for on-the-fly augmentation,
``sym_mapped``    int32 (E, K)       row ``i``'s legal actions that ``cell_action_tables``
                                     cannot map (line and territory actions, entries -1), CSR
                                     with ``sym_offset``, ascending in ``sym_action``, and
                                     each one's index under every symmetry in ``sym_mapped``
                                     (``symmetry.symmetries`` order, ``K`` of them; column 0
                                     is the identity)
``meta``          str (0-d)          JSON: ``format``, ``version``, ``encoder_version``,
                                     ``board``, ``action_size``, ``num_samples``,
                                     ``num_games``, ``game_ids``, ``augmented``,
                                     ``symmetries``, ``symmetry_maps`` and the writer's
                                     caller's keys
================  =================  ========================================================

With ``augment`` every symmetric copy is a row of its own (8 times the rows on square boards,
4 on hex8, 12 on hexagonal); without it
each position is one row and a trainer draws a symmetry per sample as it builds a batch: the
planes move by ``Symmetry.grid_gather`` (the globals do not depend on the orientation), the
action indices by ``cell_action_tables`` and, where those give -1, by the row's ``sym_*`` maps.
Files written before the maps existed lack the three arrays (and ``symmetry_maps``); they load
as before, with ``Dataset.has_symmetry_maps`` false.

``write_dataset`` keeps its memory bounded whatever the number of games: a cheap first pass
over the policy targets counts the rows, the arrays are allocated as ``.npy`` memory maps in a
temporary folder beside the output, filled a chunk of rows at a time, and streamed into the
``.npz`` (``np.savez`` copies memory maps in buffered pieces) under a temporary name that
``os.replace`` moves into place; a reader never sees a half-written file.

``load_dataset`` checks everything a trainer relies on (format, version, encoder version, board,
array shapes and CSR consistency, the symmetry maps' too when present) and raises
``DatasetError`` naming the file. Because the ``.npz`` is uncompressed, it maps the arrays from
the file instead of reading them into memory.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import struct
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ringrift.ai.encoding import (
    ENCODER_VERSION,
    NUM_GLOBALS,
    NUM_PLANES,
    SEAT_SLOTS,
    encode_state,
    seat_players,
)
from ringrift.ai.selfplay import iter_positions
from ringrift.ai.symmetry import Symmetry, symmetries, transform_move, transform_planes
from ringrift.atomic import atomic_file
from ringrift.game import GameConfig, RingRiftError
from ringrift.game.actions import action_space, legal_action_moves
from ringrift.game.boards import BoardType, geometry
from ringrift.game.fingerprint import fingerprint
from ringrift.game.moves import Move
from ringrift.game.rules_version import RULES_VERSION, UNVERSIONED
from ringrift.game.state import GameState

DATASET_FORMAT = "ringrift-dataset"
DATASET_VERSION = 1

ARRAYS: dict[str, np.dtype[Any]] = {
    "planes": np.dtype(np.float16),
    "globals": np.dtype(np.float32),
    "policy_index": np.dtype(np.int32),
    "policy_prob": np.dtype(np.float32),
    "policy_offset": np.dtype(np.int64),
    "legal_index": np.dtype(np.int32),
    "legal_offset": np.dtype(np.int64),
    "value": np.dtype(np.float32),
    "value_mask": np.dtype(np.uint8),
    "game_index": np.dtype(np.int32),
}
# Written without ``augment`` only (meta ``symmetry_maps``); older files lack them.
SYMMETRY_ARRAYS: dict[str, np.dtype[Any]] = {
    "sym_offset": np.dtype(np.int64),
    "sym_action": np.dtype(np.int32),
    "sym_mapped": np.dtype(np.int32),
}


class DatasetError(ValueError):
    """A dataset that cannot be written or trusted; the message names the game or the file."""


@dataclass(frozen=True)
class DatasetStats:
    path: Path
    num_samples: int
    num_positions: int  # policy targets exported (samples / symmetries)
    num_games: int
    symmetries: int
    bytes: int
    seconds: float

    @property
    def samples_per_s(self) -> float:
        return self.num_samples / self.seconds if self.seconds > 0 else float("inf")


# ---------------------------------------------------------------------------------------------
# Game facts shared by both passes


def result_values(ranks: Sequence[int]) -> np.ndarray:
    """Values per player 1..n from competition ranks, exactly as ``mcts.terminal_values``."""
    n = len(ranks)
    if n == 1:
        return np.ones(1)
    return np.array([1.0 - 2.0 * (r - 1) / (n - 1) for r in ranks])


def _game_id(game: dict[str, Any], gi: int) -> str:
    return str(game.get("id", f"#{gi}"))


def _game_config(game: dict[str, Any], gi: int, board: BoardType) -> GameConfig:
    where = f"game {_game_id(game, gi)}"
    try:
        record = game["record"]
        cfg = GameConfig.parse(str(record["config"]))
    except (KeyError, TypeError, RingRiftError) as e:
        raise DatasetError(f"{where}: no readable game record ({e})") from None
    if "config" in game and game["config"] != cfg.name:
        raise DatasetError(f"{where}: game config {game['config']!r} but record {cfg.name!r}")
    if cfg.board is not board:
        raise DatasetError(f"{where}: a {cfg.name} game in a {board.value} dataset")
    return cfg


def _targets(game: dict[str, Any], gi: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """``(move index, actions, probabilities)`` per target, in move order.

    Probabilities are renormalised to sum 1 (shards round them to 6 digits) and entries of
    probability 0 dropped; repeated actions are merged. Raises on anything else that is odd.
    """
    where = f"game {_game_id(game, gi)}"
    try:
        num_moves = len(game["record"]["moves"])
        raw = game["targets"]
        out: list[tuple[int, np.ndarray, np.ndarray]] = []
        seen: set[int] = set()
        for i, pol in raw:
            i = int(i)
            if not 0 <= i < num_moves or i in seen:
                raise DatasetError(f"{where}: bad or repeated policy target at move {i}")
            seen.add(i)
            acc: dict[int, float] = {}
            for a, p in pol:
                p = float(p)
                if not p >= 0 or not np.isfinite(p):
                    raise DatasetError(f"{where}: move {i}: policy probability {p!r}")
                if p > 0:
                    acc[int(a)] = acc.get(int(a), 0.0) + p
            total = sum(acc.values())
            if total <= 0:
                raise DatasetError(f"{where}: move {i}: empty policy target")
            actions = np.fromiter(sorted(acc), dtype=np.int64, count=len(acc))
            probs = np.array([acc[a] / total for a in actions.tolist()], dtype=np.float64)
            out.append((i, actions, probs))
    except DatasetError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{where}: unreadable policy targets ({e})") from None
    out.sort(key=lambda t: t[0])
    return out


def _seat_values(game: dict[str, Any], gi: int, n: int) -> np.ndarray | None:
    """Values per player 1..n, or None for a game without a result (cut short)."""
    ranks = game.get("ranks") or []
    if game.get("termination") == "unfinished" or not ranks:
        return None
    if len(ranks) != n:
        raise DatasetError(f"game {_game_id(game, gi)}: {len(ranks)} ranks for {n} players")
    return result_values([int(r) for r in ranks])


# ---------------------------------------------------------------------------------------------
# Writing


class _Chunk:
    """Rows buffered in memory until they are copied into the memory maps."""

    def __init__(self) -> None:
        self.planes: list[np.ndarray] = []
        self.globals: list[np.ndarray] = []
        self.policy_index: list[np.ndarray] = []
        self.policy_prob: list[np.ndarray] = []
        self.legal_index: list[np.ndarray] = []
        self.value: list[np.ndarray] = []
        self.value_mask: list[np.ndarray] = []
        self.game_index: list[int] = []
        self.sym_action: list[np.ndarray] = []  # per row, when writing symmetry maps
        self.sym_mapped: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.game_index)


@functools.cache
def _cell_action_tables(board: BoardType) -> tuple[np.ndarray, ...]:
    """Per symmetry: action -> transformed action for actions fixed by a cell and a direction.

    Placements, stack moves and captures, recovery slides, eliminations and the singletons are
    indexed by one cell (and a direction and distance), so a symmetry maps their indices
    through a fixed table. Line and territory actions are indexed by a line's first or a
    region's lowest cell, which only the move itself determines; their entries are -1 and are
    mapped through ``transform_move`` (see ``symmetry``).
    """
    space = action_space(board)
    geo = space.geo
    grid = np.asarray(geo.grid_index, dtype=np.int64)
    area, reach, dirs = space.grid, geo.max_distance, geo.num_directions
    tables = []
    for sym in symmetries(board):
        perm = np.asarray(sym.perm, dtype=np.int64)
        table = np.full(space.size, -1, dtype=np.int64)

        def plane(src: int, dst: int) -> None:
            table[src * area + grid] = dst * area + grid[perm]  # noqa: B023

        for rings in range(3):
            plane(rings, rings)
        for d in range(dirs):
            for k in range(reach):
                plane(space.move0 + d * reach + k, space.move0 + sym.dirs[d] * reach + k)
            for option in (0, dirs):
                plane(space.recovery0 + option + d, space.recovery0 + option + sym.dirs[d])
        plane(space.eliminate_plane, space.eliminate_plane)
        singles = np.arange(space.num_planes * area, space.size)
        table[singles] = singles
        tables.append(table)
    return tuple(tables)


@functools.cache
def cell_action_tables(board: BoardType) -> np.ndarray:
    """``int64 (K, A)``: row ``k`` maps an action index to its index under ``symmetries(board)[k]``.

    -1 for line and territory actions, which only the move itself determines: a dataset written
    without ``augment`` stores those per row (``Dataset.sym_action``, ``Dataset.sym_mapped``).
    Read-only.
    """
    out = np.stack(_cell_action_tables(board))
    out.setflags(write=False)
    return out


def _action_maps(
    state: GameState, groups: dict[int, list[Move]], group: Sequence[Symmetry]
) -> list[np.ndarray]:
    """Per symmetry, the transformed index of each legal action (``groups`` order).

    The same mapping as ``symmetry.transform_actions``, from one legal-move listing for all
    symmetries, with the cell-indexed actions mapped by table (``_cell_action_tables``).
    """
    geo = state.geo
    encode = action_space(geo.board).encode
    legal = np.fromiter(groups, dtype=np.int64, count=len(groups))
    tables = _cell_action_tables(geo.board)
    all_syms = symmetries(geo.board)
    out: list[np.ndarray] = []
    for sym in group:
        if sym.is_identity:
            out.append(legal)
            continue
        mapped = tables[all_syms.index(sym)][legal]
        for i in np.flatnonzero(mapped < 0).tolist():
            mapped[i] = encode(transform_move(geo, groups[int(legal[i])][0], sym))
        out.append(mapped)
    return out


def _append(f: BinaryIO, arr: np.ndarray) -> None:
    """``arr``'s bytes at the end of ``f``. Through the file object, a full disk is
    ``OSError`` ENOSPC; ``ndarray.tofile`` says only "N requested and 0 written"."""
    f.write(arr.tobytes())  # C order, as tofile wrote it


def _reserve(path: Path) -> None:
    """Give the (sparse) file at ``path`` its blocks now. A write through a memory map into a
    hole the disk has no room for kills the process with SIGBUS; with the blocks reserved
    first, a full disk is an ``OSError`` (ENOSPC) here, before anything is written."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:  # not on this platform: the map's pages are written as before
        return
    with path.open("r+b") as f:
        size = os.fstat(f.fileno()).st_size
        if size:
            fallocate(f.fileno(), 0, size)


def write_dataset(
    games: Iterable[dict[str, Any]],
    out_path: Path,
    board: BoardType | str,
    *,
    augment: bool = True,
    chunk_positions: int = 2048,
    meta: dict[str, Any] | None = None,
) -> DatasetStats:
    """Export every policy target of ``games`` (shard game dicts) as training samples.

    One row per target and per board symmetry (8 on square boards, 4 on hex8, 12 on hexagonal) when
    ``augment``; otherwise the identity only, with the symmetry maps of the line and territory
    actions (``sym_*``, see the module doc) for augmenting on the fly. ``chunk_positions`` is
    the number of rows held in memory before they are copied into the memory-mapped arrays.
    ``games`` is read twice (count, then fill): a one-shot iterable is turned into a list of the
    game dicts first.

    Raises ``DatasetError`` for a game of another board, a policy target naming an action that
    is not legal in its position, unreadable targets, or no positions at all.
    """
    started = time.perf_counter()
    out_path = Path(out_path)
    board = BoardType(board)
    if chunk_positions < 1:
        raise ValueError(f"chunk_positions must be positive, got {chunk_positions}")
    game_list = games if isinstance(games, Sequence) else list(games)
    group = symmetries(board) if augment else symmetries(board)[:1]
    maps = not augment  # store the symmetry maps for augmenting on the fly
    num_syms = len(symmetries(board))
    space = action_space(board)
    size = geometry(board).size

    # Pass 1: count rows and policy entries from the targets alone (no replay).
    num_positions = 0
    num_policy = 0
    game_ids: list[str] = []
    for gi, game in enumerate(game_list):
        if not isinstance(game, dict):
            raise DatasetError(f"game #{gi}: not a game object")
        _game_config(game, gi, board)
        targets = _targets(game, gi)
        num_positions += len(targets)
        num_policy += sum(len(actions) for _, actions, _ in targets)
        game_ids.append(_game_id(game, gi))
    if num_positions == 0:
        raise DatasetError(f"{out_path}: no positions to export ({len(game_list)} games)")
    if len(set(game_ids)) != len(game_ids):
        raise DatasetError(f"{out_path}: repeated game ids in the input")
    rows = num_positions * len(group)
    num_policy *= len(group)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".work"))
    try:
        mm: dict[str, np.ndarray] = {}

        def alloc(name: str, shape: tuple[int, ...]) -> np.ndarray:
            dtype = ARRAYS[name] if name in ARRAYS else SYMMETRY_ARRAYS[name]
            arr = np.lib.format.open_memmap(
                work / f"{name}.npy", mode="w+", dtype=dtype, shape=shape
            )
            _reserve(work / f"{name}.npy")
            mm[name] = arr
            return arr

        alloc("planes", (rows, NUM_PLANES, size, size))
        alloc("globals", (rows, NUM_GLOBALS))
        alloc("policy_index", (num_policy,))
        alloc("policy_prob", (num_policy,))
        alloc("policy_offset", (rows + 1,))
        alloc("legal_offset", (rows + 1,))
        alloc("value", (rows, SEAT_SLOTS))
        alloc("value_mask", (rows, SEAT_SLOTS))
        alloc("game_index", (rows,))
        mm["policy_offset"][0] = 0
        mm["legal_offset"][0] = 0
        if maps:
            alloc("sym_offset", (rows + 1,))
            mm["sym_offset"][0] = 0
        # The legal sets' total size (and the symmetry maps') is known only after replaying
        # every position, so they are appended to raw files and mapped once complete.
        legal_raw = work / "legal_index.raw"
        sym_action_raw = work / "sym_action.raw"
        sym_mapped_raw = work / "sym_mapped.raw"
        row = 0
        policy_pos = 0
        legal_pos = 0
        sym_pos = 0

        with (
            legal_raw.open("wb") as legal_file,
            sym_action_raw.open("wb") as sym_action_file,
            sym_mapped_raw.open("wb") as sym_mapped_file,
        ):

            def flush(chunk: _Chunk) -> None:
                nonlocal row, policy_pos, legal_pos, sym_pos
                k = len(chunk)
                if k == 0:
                    return
                end = row + k
                mm["planes"][row:end] = np.stack(chunk.planes)
                mm["globals"][row:end] = np.stack(chunk.globals)
                mm["value"][row:end] = np.stack(chunk.value)
                mm["value_mask"][row:end] = np.stack(chunk.value_mask)
                mm["game_index"][row:end] = chunk.game_index
                p_idx = np.concatenate(chunk.policy_index)
                p_end = policy_pos + p_idx.size
                mm["policy_index"][policy_pos:p_end] = p_idx
                mm["policy_prob"][policy_pos:p_end] = np.concatenate(chunk.policy_prob)
                lens = np.fromiter((a.size for a in chunk.policy_index), np.int64, count=k)
                mm["policy_offset"][row + 1 : end + 1] = policy_pos + np.cumsum(lens)
                l_idx = np.concatenate(chunk.legal_index).astype(np.int32)
                _append(legal_file, l_idx)
                lens = np.fromiter((a.size for a in chunk.legal_index), np.int64, count=k)
                mm["legal_offset"][row + 1 : end + 1] = legal_pos + np.cumsum(lens)
                if maps:
                    s_act = np.concatenate(chunk.sym_action).astype(np.int32)
                    _append(sym_action_file, s_act)
                    _append(sym_mapped_file, np.concatenate(chunk.sym_mapped).astype(np.int32))
                    lens = np.fromiter((a.size for a in chunk.sym_action), np.int64, count=k)
                    mm["sym_offset"][row + 1 : end + 1] = sym_pos + np.cumsum(lens)
                    sym_pos += s_act.size
                row, policy_pos, legal_pos = end, p_end, legal_pos + l_idx.size

            chunk = _Chunk()
            for gi, game in enumerate(game_list):
                cfg = _game_config(game, gi, board)
                n = cfg.num_players
                targets = _targets(game, gi)
                seat_values = _seat_values(game, gi, n)
                produced = 0
                try:
                    positions = iter_positions(game)
                    # A replay that stops short is caught by the count below.
                    for (state, _), (move_i, actions, probs) in zip(
                        positions, targets, strict=False
                    ):
                        produced += 1
                        _add_position(
                            chunk,
                            state,
                            actions,
                            probs,
                            move_i,
                            gi,
                            game,
                            group,
                            space.size,
                            seat_values,
                            maps,
                        )
                        if len(chunk) >= chunk_positions:
                            flush(chunk)
                            chunk = _Chunk()
                except RingRiftError as e:
                    raise DatasetError(
                        f"game {_game_id(game, gi)}: does not replay ({e})"
                    ) from None
                if produced != len(targets):
                    raise DatasetError(
                        f"game {_game_id(game, gi)}: {len(targets)} policy targets but the "
                        f"replay reached {produced}"
                    )
            flush(chunk)
        if row != rows or policy_pos != num_policy:
            raise AssertionError(
                f"dataset export miscounted: {row}/{rows} rows, {policy_pos}/{num_policy} "
                "policy entries"
            )
        for arr in mm.values():
            arr.flush()  # type: ignore[attr-defined]
        legal_index = (
            np.memmap(legal_raw, dtype=np.int32, mode="r", shape=(legal_pos,))
            if legal_pos
            else np.zeros(0, dtype=np.int32)
        )
        sym_arrays: dict[str, Any] = {}
        if maps:
            sym_arrays["sym_offset"] = mm["sym_offset"]
            sym_arrays["sym_action"] = (
                np.memmap(sym_action_raw, dtype=np.int32, mode="r", shape=(sym_pos,))
                if sym_pos
                else np.zeros(0, dtype=np.int32)
            )
            sym_arrays["sym_mapped"] = (
                np.memmap(sym_mapped_raw, dtype=np.int32, mode="r", shape=(sym_pos, num_syms))
                if sym_pos
                else np.zeros((0, num_syms), dtype=np.int32)
            )

        info = {
            **(meta or {}),
            "format": DATASET_FORMAT,
            "version": DATASET_VERSION,
            "encoder_version": ENCODER_VERSION,
            "rules_version": RULES_VERSION,
            "board": board.value,
            "action_size": space.size,
            "num_samples": rows,
            "num_games": len(game_list),
            "game_ids": game_ids,
            "augmented": bool(augment),
            "symmetries": len(group),
            "symmetry_maps": maps,
        }
        arrays: dict[str, Any] = {name: mm[name] for name in ARRAYS if name != "legal_index"}
        arrays["legal_index"] = legal_index
        arrays |= sym_arrays
        with atomic_file(out_path) as f:
            _write_npz(f, {"meta": np.array(json.dumps(info)), **arrays})
        del arrays, legal_index, sym_arrays
        mm.clear()
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise OSError(
            e.errno, f"no room to write the dataset {out_path} ({rows} rows): {e.strerror}"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return DatasetStats(
        path=out_path,
        num_samples=rows,
        num_positions=num_positions,
        num_games=len(game_list),
        symmetries=len(group),
        bytes=out_path.stat().st_size,
        seconds=time.perf_counter() - started,
    )


NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest: members carry no clock time


def _write_npz(f: BinaryIO, arrays: dict[str, Any]) -> None:
    """``np.savez``'s layout (uncompressed ``.npy`` members, zip64) with a fixed member date, so
    that the same games export to the same bytes: a dataset exported again from its games
    checks against the sha256 the ledger recorded for the first export."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=NPZ_DATE)
            with zf.open(member, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(arr), allow_pickle=False)


def _add_position(
    chunk: _Chunk,
    state: GameState,
    actions: np.ndarray,
    probs: np.ndarray,
    move_i: int,
    gi: int,
    game: dict[str, Any],
    group: Sequence[Symmetry],
    action_size: int,
    seat_values: np.ndarray | None,
    maps: bool = False,
) -> None:
    groups = legal_action_moves(state)
    for a in actions.tolist():
        if a not in groups:
            raise DatasetError(
                f"game {_game_id(game, gi)}: the policy target at move {move_i} names action "
                f"{a}, which is not legal in {fingerprint(state)}"
            )
    planes, glob = encode_state(state)
    n = state.num_players
    value = np.zeros(SEAT_SLOTS, dtype=np.float32)
    mask = np.zeros(SEAT_SLOTS, dtype=np.uint8)
    if seat_values is not None:
        for slot, player in enumerate(seat_players(n, state.current)):
            if player:
                value[slot] = seat_values[player - 1]
                mask[slot] = 1
    position = {a: i for i, a in enumerate(groups)}
    target_pos = np.fromiter((position[a] for a in actions.tolist()), np.int64, actions.size)
    prob32 = probs.astype(np.float32)
    for sym, mapped in zip(group, _action_maps(state, groups, group), strict=True):
        p_idx = mapped[target_pos]
        order = np.argsort(p_idx)
        p_idx, p_prob = p_idx[order], prob32[order]
        l_idx = np.sort(mapped)
        sym_planes = planes if sym.is_identity else transform_planes(planes, sym)
        if l_idx[0] < 0 or l_idx[-1] >= action_size or np.any(l_idx[1:] == l_idx[:-1]):
            raise AssertionError(f"{sym.name} maps legal actions badly in {fingerprint(state)}")
        chunk.planes.append(sym_planes)
        chunk.globals.append(glob)
        chunk.policy_index.append(p_idx)
        chunk.policy_prob.append(p_prob)
        chunk.legal_index.append(l_idx)
        chunk.value.append(value)
        chunk.value_mask.append(mask)
        chunk.game_index.append(gi)
    if maps:
        _add_symmetry_maps(chunk, state, groups)


def _add_symmetry_maps(chunk: _Chunk, state: GameState, groups: dict[int, list[Move]]) -> None:
    """The row's ``sym_action`` and ``sym_mapped``: every symmetry's index of each legal action
    that ``cell_action_tables`` leaves -1, from the same maps an augmented export writes."""
    board = state.geo.board
    group = symmetries(board)
    legal = np.fromiter(groups, dtype=np.int64, count=len(groups))
    unmapped = np.flatnonzero((cell_action_tables(board)[:, legal] < 0).any(axis=0))
    if unmapped.size == 0:
        chunk.sym_action.append(np.zeros(0, dtype=np.int64))
        chunk.sym_mapped.append(np.zeros((0, len(group)), dtype=np.int64))
        return
    unmapped = unmapped[np.argsort(legal[unmapped])]
    mapped = np.stack(_action_maps(state, groups, group), axis=1)  # (legal, K)
    chunk.sym_action.append(legal[unmapped])
    chunk.sym_mapped.append(mapped[unmapped])


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: the arrays of the module docstring (memory maps when possible)."""

    path: Path
    meta: dict[str, Any]
    planes: np.ndarray
    globals: np.ndarray
    policy_index: np.ndarray
    policy_prob: np.ndarray
    policy_offset: np.ndarray
    legal_index: np.ndarray
    legal_offset: np.ndarray
    value: np.ndarray
    value_mask: np.ndarray
    game_index: np.ndarray
    # The symmetry maps (module doc); None in augmented files and in files older than them.
    sym_offset: np.ndarray | None = None
    sym_action: np.ndarray | None = None
    sym_mapped: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.planes.shape[0])

    @property
    def has_symmetry_maps(self) -> bool:
        """Whether rows can be augmented on the fly (written without ``augment``, with maps)."""
        return self.sym_offset is not None

    def symmetry_maps(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``'s stored maps: (actions ``(E,)``, their indices per symmetry ``(E, K)``)."""
        if self.sym_offset is None or self.sym_action is None or self.sym_mapped is None:
            raise DatasetError(f"{self.path}: no symmetry maps in this dataset")
        a, b = int(self.sym_offset[i]), int(self.sym_offset[i + 1])
        return np.asarray(self.sym_action[a:b]), np.asarray(self.sym_mapped[a:b])

    @property
    def board(self) -> BoardType:
        return BoardType(self.meta["board"])

    @property
    def action_size(self) -> int:
        return int(self.meta["action_size"])

    @property
    def num_games(self) -> int:
        return int(self.meta["num_games"])

    def policy(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``'s policy target: (action indices, probabilities)."""
        a, b = int(self.policy_offset[i]), int(self.policy_offset[i + 1])
        return np.asarray(self.policy_index[a:b]), np.asarray(self.policy_prob[a:b])

    def legal(self, i: int) -> np.ndarray:
        """Row ``i``'s legal action indices, ascending."""
        a, b = int(self.legal_offset[i]), int(self.legal_offset[i + 1])
        return np.asarray(self.legal_index[a:b])


def _map_member(path: Path, info: zipfile.ZipInfo) -> np.ndarray | None:
    """Memory-map a stored (uncompressed) ``.npy`` member of a zip file; None if it cannot."""
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with path.open("rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        offset = f.tell()
    if dtype.hasobject:
        return None
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(
        path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )


def load_dataset(
    path: str | os.PathLike[str],
    *,
    expect_encoder_version: int,
    expect_board: BoardType | str,
    mmap: bool = True,
) -> Dataset:
    """Open and check a dataset written by ``write_dataset``.

    Raises ``DatasetError`` naming the file on an unreadable or foreign file, another format
    version, encoder version or board, or arrays whose shapes or CSR offsets disagree.
    With ``mmap`` (the default) the arrays are memory maps of the file, not copies in memory.
    """
    path = Path(path)
    board = BoardType(expect_board)
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename.removesuffix(".npy"): info for info in zf.infolist()}
            missing = [n for n in ("meta", *ARRAYS) if n not in members]
            if missing:
                raise DatasetError(f"{path}: not a ringrift dataset (missing {', '.join(missing)})")
            with zf.open(members["meta"]) as f:
                meta_arr = np.lib.format.read_array(f, allow_pickle=False)
            present = [n for n in SYMMETRY_ARRAYS if n in members]
            if present and len(present) != len(SYMMETRY_ARRAYS):
                missing = [n for n in SYMMETRY_ARRAYS if n not in members]
                raise DatasetError(
                    f"{path}: inconsistent dataset: symmetry maps without {', '.join(missing)}"
                )
            for name in (*ARRAYS, *present):
                arr = _map_member(path, members[name]) if mmap else None
                if arr is None:
                    with zf.open(members[name]) as f:
                        arr = np.lib.format.read_array(f, allow_pickle=False)
                arrays[name] = arr
    except FileNotFoundError:
        raise
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{path}: not a readable dataset file ({e})") from None
    try:
        meta = json.loads(str(meta_arr[()]))
    except (json.JSONDecodeError, TypeError, IndexError) as e:
        raise DatasetError(f"{path}: unreadable dataset metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path}: not a ringrift dataset (format {meta.get('format')!r})")
    if meta.get("version") != DATASET_VERSION:
        raise DatasetError(
            f"{path}: dataset version {meta.get('version')!r}, this code reads {DATASET_VERSION}"
        )
    if meta.get("encoder_version") != expect_encoder_version:
        raise DatasetError(
            f"{path}: encoder_version {meta.get('encoder_version')!r}, expected "
            f"{expect_encoder_version!r}"
        )
    if meta.get("board") != board.value:
        raise DatasetError(f"{path}: board {meta.get('board')!r}, expected {board.value!r}")
    rules = meta.get("rules_version", UNVERSIONED)
    if rules != RULES_VERSION:
        raise DatasetError(
            f"{path}: made from games of rules version {rules!r}; this engine plays rules "
            f"version {RULES_VERSION}: export the dataset again from current games"
        )
    _check_arrays(path, meta, arrays, board)
    _check_symmetry_maps(path, meta, arrays, board)
    return Dataset(path=path, meta=meta, **arrays)


def _check_arrays(
    path: Path, meta: dict[str, Any], a: dict[str, np.ndarray], board: BoardType
) -> None:
    def bad(what: str) -> DatasetError:
        return DatasetError(f"{path}: inconsistent dataset: {what}")

    for name, dtype in ARRAYS.items():
        if a[name].dtype != dtype:
            raise bad(f"{name} has dtype {a[name].dtype}, expected {dtype}")
    n = a["planes"].shape[0]
    size = geometry(board).size
    action_size = action_space(board).size
    if meta.get("action_size") != action_size:
        raise bad(
            f"action_size {meta.get('action_size')!r}, the {board.value} board has {action_size}"
        )
    if meta.get("num_samples") != n:
        raise bad(f"meta says {meta.get('num_samples')!r} samples, planes hold {n}")
    game_ids = meta.get("game_ids")
    if not isinstance(game_ids, list) or meta.get("num_games") != len(game_ids):
        raise bad("num_games and game_ids disagree")
    expected = {
        "planes": (n, NUM_PLANES, size, size),
        "globals": (n, NUM_GLOBALS),
        "policy_offset": (n + 1,),
        "legal_offset": (n + 1,),
        "value": (n, SEAT_SLOTS),
        "value_mask": (n, SEAT_SLOTS),
        "game_index": (n,),
    }
    for name, shape in expected.items():
        if a[name].shape != shape:
            raise bad(f"{name} has shape {a[name].shape}, expected {shape}")
    if a["policy_prob"].shape != a["policy_index"].shape:
        raise bad(f"policy_prob {a['policy_prob'].shape} vs policy_index {a['policy_index'].shape}")
    for kind in ("policy", "legal"):
        offset, index = a[f"{kind}_offset"], a[f"{kind}_index"]
        if index.ndim != 1 or offset[0] != 0 or offset[-1] != index.shape[0]:
            raise bad(f"{kind}_offset does not span {kind}_index")
        if n and (np.diff(offset) <= 0).any():
            raise bad(f"{kind}_offset has an empty or decreasing row")
        if index.size and (int(index.min()) < 0 or int(index.max()) >= action_size):
            raise bad(f"{kind}_index outside the action space [0, {action_size})")
    gidx = a["game_index"]
    if n and (int(gidx.min()) < 0 or int(gidx.max()) >= len(game_ids)):
        raise bad("game_index outside the game list")


def _check_symmetry_maps(
    path: Path, meta: dict[str, Any], a: dict[str, np.ndarray], board: BoardType
) -> None:
    def bad(what: str) -> DatasetError:
        return DatasetError(f"{path}: inconsistent dataset: {what}")

    has = "sym_offset" in a
    if bool(meta.get("symmetry_maps", False)) != has:
        stored = "stored" if has else "not stored"
        raise bad(f"meta symmetry_maps is {meta.get('symmetry_maps')!r} but the maps are {stored}")
    if not has:
        return
    if meta.get("augmented"):
        raise bad("symmetry maps in an augmented dataset")
    for name, dtype in SYMMETRY_ARRAYS.items():
        if a[name].dtype != dtype:
            raise bad(f"{name} has dtype {a[name].dtype}, expected {dtype}")
    n = a["planes"].shape[0]
    k = len(symmetries(board))
    offset, action, mapped = a["sym_offset"], a["sym_action"], a["sym_mapped"]
    if offset.shape != (n + 1,):
        raise bad(f"sym_offset has shape {offset.shape}, expected {(n + 1,)}")
    if action.ndim != 1 or mapped.shape != (action.shape[0], k):
        raise bad(f"sym_mapped has shape {mapped.shape}, expected {(action.shape[0], k)}")
    if offset[0] != 0 or offset[-1] != action.shape[0]:
        raise bad("sym_offset does not span sym_action")
    if n and (np.diff(offset) < 0).any():
        raise bad("sym_offset decreases")
    if action.size:
        action_size = action_space(board).size
        if int(action.min()) < 0 or int(action.max()) >= action_size:
            raise bad(f"sym_action outside the action space [0, {action_size})")
        if int(mapped.min()) < 0 or int(mapped.max()) >= action_size:
            raise bad(f"sym_mapped outside the action space [0, {action_size})")
        if not np.array_equal(mapped[:, 0], action):
            raise bad("sym_mapped's identity column differs from sym_action")
