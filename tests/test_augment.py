"""On-the-fly symmetry augmentation: a dataset exported once per position (with its symmetry
maps) gives, sample for sample, what the augmented export writes; the draws are a pure function
of ``(seed, step)``; training with it resumes exactly; the refusals; older files still load."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ringrift.ai.dataset import (
    Dataset,
    DatasetError,
    cell_action_tables,
    load_dataset,
    write_dataset,
)
from ringrift.ai.encoding import ENCODER_VERSION
from ringrift.ai.mcts import SearchConfig, UniformEvaluator
from ringrift.ai.selfplay import SelfplaySettings, play_game
from ringrift.ai.symmetry import symmetries
from ringrift.game import GameConfig
from ringrift.game.boards import BoardType
from tests.training_fixtures import FAST
from training.data import Batch, TrainingError, draw_symmetries, make_batch
from training.loop import SEGMENT, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = ["square8_2p", "hex8_2p"]
CPU = torch.device("cpu")
# Whole uniform-search games: long enough to reach line and territory decisions.
SEEDS = range(4)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Per config: the same games exported ``(augment=True, augment=False)``."""
    settings = SelfplaySettings(SearchConfig(simulations=4))
    out = {}
    for config in CONFIGS:
        cfg = GameConfig.parse(config)
        games = [
            play_game(cfg, UniformEvaluator(), settings, seed, f"{config}-{seed}").to_json()
            for seed in SEEDS
        ]
        folder = tmp_path_factory.mktemp(config)
        board = cfg.board.value
        write_dataset(games, folder / "aug.npz", board, augment=True)
        write_dataset(games, folder / "flat.npz", board, augment=False)
        out[config] = (folder / "aug.npz", folder / "flat.npz")
    return out


def _load(path: Path, board: BoardType | str, **kw: Any) -> Dataset:
    return load_dataset(path, expect_encoder_version=ENCODER_VERSION, expect_board=board, **kw)


def _policy(batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Policy entries as (row, action, prob), sorted by row then action."""
    row, action = batch.policy_row.numpy(), batch.policy_action.numpy()
    order = np.lexsort((action, row))
    return row[order], action[order], batch.policy_prob.numpy()[order]


def _assert_same_samples(got: Batch, want: Batch) -> None:
    for name in ("planes", "globals", "legal", "value", "value_mask"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    for a, b, name in zip(_policy(got), _policy(want), ("row", "action", "prob"), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"policy {name}")


@pytest.mark.parametrize("config", CONFIGS)
def test_on_the_fly_copies_equal_the_exported_ones(
    config: str, exported: dict[str, tuple[Path, Path]]
) -> None:
    board = GameConfig.parse(config).board
    k = len(symmetries(board))
    aug_path, flat_path = exported[config]
    aug, flat = _load(aug_path, board), _load(flat_path, board)
    assert aug.meta["augmented"] is True and aug.meta["symmetry_maps"] is False
    assert flat.meta["augmented"] is False and flat.meta["symmetry_maps"] is True
    assert not aug.has_symmetry_maps and flat.has_symmetry_maps
    n = len(flat)
    # Augmented rows: game by game, target by target, symmetry by symmetry.
    assert len(aug) == n * k
    np.testing.assert_array_equal(aug.game_index, np.repeat(flat.game_index, k))

    rows, syms = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)
    _assert_same_samples(make_batch(flat, rows, CPU, syms), make_batch(aug, np.arange(n * k), CPU))

    # The stored maps were needed: line or territory actions, legal and targeted, were moved
    # by a symmetry other than the identity.
    tables = cell_action_tables(board)
    table_gaps = {"legal": 0, "policy": 0}
    for r in range(n):
        actions, mapped = flat.symmetry_maps(r)
        legal = flat.legal(r)
        np.testing.assert_array_equal(actions, legal[tables[1, legal] < 0])
        table_gaps["legal"] += actions.size * (k - 1)
        table_gaps["policy"] += int(np.isin(flat.policy(r)[0], actions).sum()) * (k - 1)
        np.testing.assert_array_equal(mapped[:, 0], actions)
    assert table_gaps["legal"] > 0 and table_gaps["policy"] > 0, table_gaps

    # Any subset, in any order, with any symmetries: the same samples as those rows of `aug`.
    rng = np.random.default_rng(7)
    rows = rng.permutation(n)[: min(n, 150)]
    syms = rng.integers(k, size=rows.size)
    _assert_same_samples(make_batch(flat, rows, CPU, syms), make_batch(aug, rows * k + syms, CPU))
    # The identity everywhere is the plain batch.
    _assert_same_samples(
        make_batch(flat, rows, CPU, np.zeros_like(syms)), make_batch(flat, rows, CPU)
    )


def test_an_unmapped_action_is_refused(exported: dict[str, tuple[Path, Path]]) -> None:
    flat = _load(exported["square8_2p"][1], "square8")
    k = len(symmetries(flat.board))
    row = next(r for r in range(len(flat)) if flat.symmetry_maps(r)[0].size)
    stripped = dataclasses.replace(
        flat,
        sym_offset=np.zeros(len(flat) + 1, dtype=np.int64),
        sym_action=np.zeros(0, dtype=np.int32),
        sym_mapped=np.zeros((0, k), dtype=np.int32),
    )
    with pytest.raises(DatasetError, match=rf"row {row}: no stored symmetry map for action"):
        make_batch(stripped, np.array([row]), CPU, np.array([1]))
    no_maps = dataclasses.replace(flat, sym_offset=None, sym_action=None, sym_mapped=None)
    with pytest.raises(DatasetError, match=rf"{flat.path}: row {row} has line or territory"):
        make_batch(no_maps, np.array([row]), CPU, np.array([3]))
    make_batch(no_maps, np.array([row]), CPU, np.array([0]))  # the identity needs no map


def test_symmetry_draws_are_a_function_of_seed_and_step() -> None:
    for board in (BoardType("square8"), BoardType("hex8")):
        k = len(symmetries(board))
        a = draw_symmetries(3, 17, 256, board)
        assert a.shape == (256,) and a.min() >= 0 and a.max() < k
        assert set(a.tolist()) == set(range(k))
        np.testing.assert_array_equal(a, draw_symmetries(3, 17, 256, board))
        want = np.random.default_rng([3, 0x5A11, 17]).integers(k, size=256)
        np.testing.assert_array_equal(a, want)
        assert not np.array_equal(a, draw_symmetries(3, 18, 256, board))
        assert not np.array_equal(a, draw_symmetries(4, 17, 256, board))


def _weights(path: Path, arch: str) -> dict[str, torch.Tensor]:
    from ringrift.ai.network import load_model

    return load_model(path, "square8", arch).state_dict()


def _same_weights(a: Path, b: Path, arch: str) -> bool:
    wa, wb = _weights(a, arch), _weights(b, arch)
    assert wa.keys() == wb.keys()
    return all(torch.equal(wa[key], wb[key]) for key in wa)


def test_training_with_augmentation_resumes_exactly(
    exported: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    aug_path, flat_path = exported["square8_2p"]
    config = FAST.replace(steps=20, augment=True)

    seg_dir, seg_model = tmp_path / "seg", tmp_path / "seg.pt"
    first = train(
        config, flat_path, seg_model, board="square8", checkpoint_dir=seg_dir,
        deadline=time.monotonic() - 1,
    )  # fmt: skip
    assert first.stopped == SEGMENT and 0 < first.steps < config.steps
    second = train(config, flat_path, seg_model, board="square8", checkpoint_dir=seg_dir)
    assert second.finished and second.resumed_from_step == first.steps
    assert second.metadata["config"]["augment"] is True

    whole_model = tmp_path / "whole.pt"
    whole = train(config, flat_path, whole_model, board="square8", checkpoint_dir=tmp_path / "w")
    assert whole.finished and all(np.isfinite(v) for v in whole.final_losses.values())
    assert _same_weights(seg_model, whole_model, config.arch)

    plain_model = tmp_path / "plain.pt"
    plain = config.replace(augment=False)
    train(plain, flat_path, plain_model, board="square8", checkpoint_dir=tmp_path / "p")
    assert not _same_weights(plain_model, whole_model, config.arch), "the symmetries were used"

    # A resume may not switch augmentation on or off (it is not a resumable change).
    with pytest.raises(TrainingError, match=r"augment: True -> False"):
        train(plain, flat_path, seg_model, board="square8", checkpoint_dir=seg_dir)

    with pytest.raises(TrainingError, match=rf"{aug_path}: already augmented at export"):
        train(config, aug_path, tmp_path / "x.pt", board="square8", checkpoint_dir=tmp_path / "x")


def test_two_ranks_shard_rows_and_symmetries_together(
    exported: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    """Under DDP (two Gloo ranks, as ``test_distributed`` runs them) augmented training runs,
    and a run resumed from its step-10 checkpoint ends bit for bit where the whole run does."""
    import shutil

    from ringrift.ai.network import load_model
    from tests.test_distributed import _ok, _train
    from training.checkpoint import checkpoint_path

    flat_path = exported["square8_2p"][1]
    config = FAST.replace(steps=20, augment=True)
    whole = _ok(_train(tmp_path, "whole", flat_path, ranks=2, config=config))
    assert whole.result["world_size"] == 2 and whole.result["steps"] == 20
    folder = tmp_path / "resumed_ckpt"
    folder.mkdir()
    shutil.copy2(checkpoint_path(whole.checkpoints, 10), checkpoint_path(folder, 10))
    resumed = _ok(
        _train(tmp_path, "resumed", flat_path, ranks=2, config=config, checkpoints=folder)
    )
    assert resumed.result["resumed_from_step"] == 10 and resumed.result["steps"] == 20
    a = load_model(whole.out, "square8", config.arch).state_dict()
    b = load_model(resumed.out, "square8", config.arch).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _rewrite(src: Path, dst: Path, drop: tuple[str, ...] = (), **changes: Any) -> None:
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    meta = json.loads(str(arrays["meta"][()]))
    for key in changes.pop("meta_drop", ()):
        meta.pop(key)
    meta.update(changes.pop("meta", {}))
    arrays["meta"] = np.array(json.dumps(meta))
    arrays.update(changes)
    with dst.open("wb") as f:
        np.savez(f, **arrays)


def test_files_without_maps_load_and_bad_maps_are_refused(
    exported: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    _, flat_path = exported["square8_2p"]
    sym = ("sym_offset", "sym_action", "sym_mapped")
    old = tmp_path / "old.npz"  # as written before the maps existed
    _rewrite(flat_path, old, drop=sym, meta_drop=("symmetry_maps",))
    ds = _load(old, "square8")
    assert not ds.has_symmetry_maps and ds.sym_offset is None and len(ds) > 0
    config = FAST.replace(steps=4, checkpoint_every=4)
    result = train(config, old, tmp_path / "m.pt", board="square8", checkpoint_dir=tmp_path / "c")
    assert result.finished
    with pytest.raises(TrainingError, match=rf"{old}: no symmetry maps"):
        train(
            config.replace(augment=True), old, tmp_path / "a.pt", board="square8",
            checkpoint_dir=tmp_path / "a",
        )  # fmt: skip

    flat = _load(flat_path, "square8")
    assert flat.sym_offset is not None and flat.sym_action is not None
    n, e = len(flat), len(flat.sym_action)
    bad = tmp_path / "bad.npz"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"drop": ("sym_mapped",)}, "symmetry maps without sym_mapped"),
        ({"meta": {"symmetry_maps": False}}, "maps are stored"),
        ({"drop": sym}, "maps are not stored"),
        ({"meta": {"augmented": True}}, "symmetry maps in an augmented dataset"),
        ({"sym_offset": np.zeros(n, dtype=np.int64)}, "sym_offset has shape"),
        ({"sym_offset": np.zeros(n + 1, dtype=np.int64)}, "sym_offset does not span"),
        ({"sym_mapped": np.zeros((e, 3), dtype=np.int32)}, "sym_mapped has shape"),
        ({"sym_action": np.asarray(flat.sym_action, np.int64)}, "sym_action has dtype"),
        ({"sym_mapped": np.full((e, 8), -1, dtype=np.int32)}, "sym_mapped outside"),
        ({"sym_mapped": np.zeros((e, 8), dtype=np.int32)}, "identity column"),
    ]
    for changes, message in cases:
        _rewrite(flat_path, bad, **changes)
        with pytest.raises(DatasetError, match=message) as err:
            _load(bad, "square8")
        assert str(bad) in str(err.value)
