"""Training-sample files: counts, CSR consistency, symmetric copies, values and refusals."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ringrift.ai.dataset import (
    ARRAYS,
    DatasetError,
    _action_maps,
    load_dataset,
    result_values,
    write_dataset,
)
from ringrift.ai.encoding import ENCODER_VERSION, encode_state, seat_players
from ringrift.ai.mcts import SearchConfig, UniformEvaluator, terminal_values
from ringrift.ai.selfplay import SelfplaySettings, iter_positions, play_game
from ringrift.ai.symmetry import symmetries, transform_actions, transform_state
from ringrift.game import GameConfig, GameRecord
from ringrift.game.actions import legal_action_moves, legal_actions
from tests.test_symmetry import _fallback_position, _line_position, _recovery_position

SHORT = SelfplaySettings(SearchConfig(simulations=4), max_moves=60)
FULL = SelfplaySettings(SearchConfig(simulations=4))
CONFIGS = ["square8_2p", "hex8_2p"]


def _games(config: str) -> list[dict[str, Any]]:
    cfg = GameConfig.parse(config)
    ev = UniformEvaluator()
    games = [play_game(cfg, ev, SHORT, seed, f"{config}-s{seed}").to_json() for seed in (1, 2)]
    games.append(play_game(cfg, ev, FULL, 3, f"{config}-f3").to_json())  # one with a result
    return games


@pytest.fixture(scope="module")
def games() -> dict[str, list[dict[str, Any]]]:
    return {c: _games(c) for c in CONFIGS}


@pytest.fixture(scope="module")
def written(
    games: dict[str, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    out = {}
    for config in CONFIGS:
        path = tmp_path_factory.mktemp(config) / "data.npz"
        write_dataset(games[config], path, config.split("_")[0], meta={"generation": 3})
        out[config] = path
    return out


def _load(path: Path, board: str, **kw: Any) -> Any:
    return load_dataset(path, expect_encoder_version=ENCODER_VERSION, expect_board=board, **kw)


@pytest.mark.parametrize("config", CONFIGS)
def test_counts_metadata_and_csr(
    config: str, games: dict[str, list[dict[str, Any]]], written: dict[str, Path], tmp_path: Path
) -> None:
    board = config.split("_")[0]
    group = symmetries(GameConfig.parse(config).board)
    targets = sum(len(g["targets"]) for g in games[config])
    ds = _load(written[config], board)
    assert len(ds) == targets * len(group) == ds.meta["num_samples"]
    assert ds.meta["format"] == "ringrift-dataset" and ds.meta["version"] == 1
    assert ds.meta["encoder_version"] == ENCODER_VERSION and ds.meta["board"] == board
    assert ds.meta["game_ids"] == [g["id"] for g in games[config]]
    assert ds.meta["augmented"] is True and ds.meta["generation"] == 3
    assert isinstance(ds.planes, np.memmap), "an uncompressed file is mapped, not read"
    for name, dtype in ARRAYS.items():
        assert getattr(ds, name).dtype == dtype, name
    counts = np.bincount(ds.game_index, minlength=len(games[config]))
    assert counts.tolist() == [len(g["targets"]) * len(group) for g in games[config]]
    for i in range(len(ds)):
        actions, probs = ds.policy(i)
        legal = ds.legal(i)
        assert np.all(np.diff(legal) > 0)
        assert np.isin(actions, legal).all(), f"row {i}: a policy entry outside its legal set"
        assert abs(float(probs.sum()) - 1.0) < 1e-5 and np.all(probs > 0)

    plain = tmp_path / "plain.npz"
    stats = write_dataset(games[config], plain, board, augment=False)
    assert stats.num_samples == stats.num_positions == targets and stats.symmetries == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.npz"], "no temporary files left"
    flat = _load(plain, board, mmap=False)
    assert not isinstance(flat.planes, np.memmap) and flat.meta["augmented"] is False
    np.testing.assert_array_equal(flat.planes, ds.planes[:: len(group)])
    np.testing.assert_array_equal(
        flat.legal_offset[1:] - flat.legal_offset[:-1],
        [len(ds.legal(i)) for i in range(0, len(ds), len(group))],
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_symmetric_copies_match_the_transformed_positions(
    config: str, games: dict[str, list[dict[str, Any]]], written: dict[str, Path]
) -> None:
    ds = _load(written[config], config.split("_")[0])
    group = symmetries(GameConfig.parse(config).board)
    game = games[config][2]
    first_row = int(np.flatnonzero(ds.game_index == 2)[0])
    positions = list(iter_positions(game))
    for k in (0, len(positions) // 2, len(positions) - 1):
        state, target = positions[k]
        for j, sym in enumerate(group):
            row = first_row + k * len(group) + j
            moved = transform_state(state, sym)
            planes, glob = encode_state(moved)
            np.testing.assert_array_equal(ds.planes[row], planes.astype(np.float16))
            np.testing.assert_array_equal(ds.globals[row], glob)
            assert ds.legal(row).tolist() == sorted(legal_actions(moved))
            mapping = transform_actions(state, sym)
            total = sum(p for _, p in target)
            expected = sorted((mapping[a], p / total) for a, p in target)
            actions, probs = ds.policy(row)
            assert actions.tolist() == [a for a, _ in expected]
            np.testing.assert_allclose(probs, [p for _, p in expected], rtol=1e-6)


@pytest.mark.parametrize("config", CONFIGS)
def test_values_are_the_result_in_the_movers_order(
    config: str, games: dict[str, list[dict[str, Any]]], written: dict[str, Path]
) -> None:
    ds = _load(written[config], config.split("_")[0])
    n = GameConfig.parse(config).num_players
    # Games cut short by max_moves have no result: no value target at all.
    short = np.isin(ds.game_index, [0, 1])
    assert not ds.value_mask[short].any() and not ds.value[short].any()
    game = games[config][2]
    final = GameRecord.from_json(json.dumps(game["record"])).replay()
    seat_values = terminal_values(final)
    np.testing.assert_allclose(result_values(game["ranks"]), seat_values)
    rows = np.flatnonzero(ds.game_index == 2)[:: len(symmetries(final.geo.board))]
    for row, (state, _) in zip(rows, iter_positions(game), strict=True):
        slots = seat_players(n, state.current)
        want = [seat_values[p - 1] if p else 0.0 for p in slots]
        np.testing.assert_allclose(ds.value[row], want)
        assert ds.value_mask[row].tolist() == [1 if p else 0 for p in slots]
    assert result_values([1, 1, 3]).tolist() == [1.0, 1.0, -1.0]
    assert result_values([2, 1, 3, 4]).tolist() == pytest.approx([1 / 3, 1, -1 / 3, -1])


@pytest.mark.parametrize("config", ["square8_2p", "hex8_3p", "square19_2p", "hexagonal_2p"])
def test_action_tables_agree_with_transform_actions(config: str) -> None:
    cfg = GameConfig.parse(config)
    group = symmetries(cfg.board)
    states = [_fallback_position(cfg)]
    for axis in cfg.geometry.line_axes:
        states += [_line_position(cfg, axis), _recovery_position(cfg, axis)]
    for state in states:
        groups = legal_action_moves(state)
        for sym, mapped in zip(group, _action_maps(state, groups, group), strict=True):
            expected = transform_actions(state, sym)
            assert mapped.tolist() == [expected[a] for a in groups], (sym.name, state.phase)


def test_refusals_when_writing(games: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    out = tmp_path / "d.npz"
    sq = games["square8_2p"]
    with pytest.raises(DatasetError, match="square8_2p game in a hex8 dataset"):
        write_dataset(sq, out, "hex8")
    with pytest.raises(DatasetError, match="no positions to export"):
        write_dataset([], out, "square8")
    no_targets = copy.deepcopy(sq[:1])
    no_targets[0]["targets"] = []
    with pytest.raises(DatasetError, match="no positions to export"):
        write_dataset(iter(no_targets), out, "square8")
    bad = copy.deepcopy(sq)
    move_i, policy = bad[1]["targets"][5]
    bad[1]["targets"][5] = [move_i, [[5704, 1.0]]]  # the last singleton, swap_sides: never legal
    with pytest.raises(DatasetError, match=rf"{bad[1]['id']}.*move {move_i} names action 5704"):
        write_dataset(bad, out, "square8")
    assert list(tmp_path.iterdir()) == [], "a refused export leaves nothing behind"
    dup = copy.deepcopy(sq[:1]) * 2
    with pytest.raises(DatasetError, match="repeated game ids"):
        write_dataset(dup, out, "square8")


def _rewrite(src: Path, dst: Path, **changes: Any) -> None:
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"][()]))
    meta.update(changes.pop("meta", {}))
    arrays["meta"] = np.array(json.dumps(meta))
    arrays.update(changes)
    with dst.open("wb") as f:
        np.savez(f, **arrays)


def test_refusals_when_loading(written: dict[str, Path], tmp_path: Path) -> None:
    src = written["square8_2p"]
    with pytest.raises(DatasetError, match="board 'square8', expected 'hex8'"):
        _load(src, "hex8")
    with pytest.raises(DatasetError, match="encoder_version"):
        load_dataset(src, expect_encoder_version=ENCODER_VERSION + 1, expect_board="square8")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match=f"{junk}: not a readable dataset"):
        _load(junk, "square8")
    bad = tmp_path / "bad.npz"
    n = len(_load(src, "square8"))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"meta": {"format": "other"}}, "not a ringrift dataset"),
        ({"meta": {"version": 2}}, "dataset version 2"),
        ({"meta": {"rules_version": 1}}, "games of rules version 1; this engine plays rules"),
        ({"meta": {"num_samples": n + 1}}, "samples"),
        ({"game_index": np.zeros(n - 1, dtype=np.int32)}, "game_index has shape"),
        ({"policy_offset": np.zeros(n + 1, dtype=np.int64)}, "policy_offset does not span"),
        ({"value": np.zeros((n, 4), dtype=np.float64)}, "value has dtype"),
    ]
    for changes, message in cases:
        _rewrite(src, bad, **changes)
        with pytest.raises(DatasetError, match=message) as err:
            _load(bad, "square8")
        assert str(bad) in str(err.value)


WRITE_INTO = """
import json, sys
from ringrift.ai.dataset import write_dataset
games = json.loads(open(sys.argv[1]).read())
write_dataset(games, sys.argv[2], "square8")
"""


def test_a_full_disk_is_an_error_not_a_crash(
    games: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Some arrays are written through memory maps, whose pages a full disk cannot back: that
    killed the export with SIGBUS. With the free space anywhere short of what the export needs
    (the arrays reserved, the appended files, the zip), it fails with ENOSPC naming the
    dataset, leaves nothing behind, and succeeds once there is room."""
    from ringrift.chaos.runner import Unavailable, small_disk

    src = tmp_path / "games.json"
    src.write_text(json.dumps(games["square8_2p"]))
    disk = tmp_path / "disk"
    out = disk / "d.npz"

    def export() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WRITE_INTO, str(src), str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    failed = 0
    try:
        with small_disk(disk, megabytes=16):
            # in steps small enough to meet every write on the way: the reserved arrays, the
            # appended files (a window of about 256 KiB), the zip
            for free_kib in (512, *range(3072, 16 * 1024 + 1, 128)):
                filler = disk / "filler"
                with filler.open("wb") as f:
                    f.write(b"\0" * (16 * 1024 - free_kib) * 1024)
                done = export()
                if done.returncode == 0:
                    assert len(_load(out, "square8")) > 0
                    break
                else:
                    failed += 1
                    assert done.returncode == 1, (free_kib, done.returncode, done.stderr[-2000:])
                    assert f"no room to write the dataset {out}" in done.stderr, done.stderr
                    assert "No space left on device" in done.stderr
                assert sorted(p.name for p in disk.iterdir()) == ["filler"]
                filler.unlink()
    except Unavailable as e:
        pytest.skip(str(e))
    assert failed >= 3 and done.returncode == 0, "a few sizes too small, then room"
