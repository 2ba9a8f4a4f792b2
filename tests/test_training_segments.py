"""Training in segments: a deadline or ``should_stop`` ends a call with a checkpoint and no model,
the next call continues exactly; checkpoint checksums go to ``on_checkpoint`` before a file goes
live and ``verify_checkpoint`` may reject one on resume; the recency-weighted batch order."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ringrift.ai.network import load_model, read_metadata
from ringrift.store.artifacts import sha256_file
from tests.training_fixtures import FAST
from training.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
)
from training.config import TrainConfig
from training.data import BatchOrder, recency_weights
from training.loop import CANCELLED, SEGMENT, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROGRESS_EVERY = 10  # train()'s default, which these tests rely on


class HookFailed(Exception):
    pass


def _assert_equal_weights(a: Path, b: Path, arch: str) -> None:
    sa = load_model(a, "square8", arch).state_dict()
    sb = load_model(b, "square8", arch).state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _steps_on_disk(directory: Path) -> list[int]:
    return [s for s, _ in list_checkpoints(directory)]


def _segmented_run_matches_whole_run(config: TrainConfig, dataset: Path, tmp_path: Path) -> None:
    """A call past its deadline stops at its first report; the next call finishes the run with
    exactly the weights of an uninterrupted run."""
    seg_dir, seg_model = tmp_path / "seg", tmp_path / "seg.pt"
    first = train(
        config,
        dataset,
        seg_model,
        board="square8",
        checkpoint_dir=seg_dir,
        deadline=time.monotonic() - 1,
    )
    assert first.stopped == SEGMENT and not first.finished
    assert first.model_path is None and not seg_model.exists()
    assert first.final_losses == {}
    assert 0 < first.steps < config.steps and first.steps % PROGRESS_EVERY == 0
    assert first.steps_this_call == first.steps and first.resumed_from_step is None
    assert first.steps in _steps_on_disk(seg_dir)
    ckpt = latest_checkpoint(seg_dir)
    assert ckpt is not None and ckpt.step == first.steps

    second = train(config, dataset, seg_model, board="square8", checkpoint_dir=seg_dir)
    assert second.finished and second.stopped is None
    assert second.resumed_from_step == first.steps
    assert second.steps == config.steps
    assert second.steps_this_call == config.steps - first.steps
    assert second.model_path == seg_model and seg_model.is_file()

    whole_model = tmp_path / "whole.pt"
    whole = train(config, dataset, whole_model, board="square8", checkpoint_dir=tmp_path / "whole")
    assert whole.finished and whole.resumed_from_step is None
    _assert_equal_weights(seg_model, whole_model, config.arch)
    assert second.final_losses["train_total"] == whole.final_losses["train_total"]


def test_deadline_stops_a_segment_and_the_next_call_resumes_exactly(
    dataset: Path, tmp_path: Path
) -> None:
    _segmented_run_matches_whole_run(FAST.replace(steps=40), dataset, tmp_path)


def test_should_stop_cancels_and_none_never_stops(dataset: Path, tmp_path: Path) -> None:
    config = FAST.replace(steps=40)
    seen = [0]
    asked: list[int] = []

    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        seen[0] = step

    def cancel_from_20() -> str | None:
        asked.append(seen[0])
        return CANCELLED if seen[0] >= 20 else None

    out = tmp_path / "c.pt"
    result = train(
        config,
        dataset,
        out,
        board="square8",
        checkpoint_dir=tmp_path / "c",
        progress=progress,
        should_stop=cancel_from_20,
    )
    assert result.stopped == "cancelled" and not result.finished
    assert result.steps in (20, 30) and result.steps_this_call == result.steps
    assert result.model_path is None and not out.exists()
    assert asked and asked[-1] >= 20
    ckpt = latest_checkpoint(tmp_path / "c")
    assert ckpt is not None and ckpt.step == result.steps

    asked.clear()

    def never() -> str | None:
        asked.append(seen[0])
        return None

    out = tmp_path / "n.pt"
    result = train(
        config,
        dataset,
        out,
        board="square8",
        checkpoint_dir=tmp_path / "n",
        progress=progress,
        should_stop=never,
    )
    assert result.finished and result.stopped is None and result.steps == 40
    assert result.model_path == out and out.is_file()
    # Asked at every report before the last step (10, 20, 30), never at the end.
    assert len(asked) == 3


def test_on_checkpoint_sees_every_checksum_and_a_failing_hook_writes_nothing(
    dataset: Path, tmp_path: Path
) -> None:
    config = FAST.replace(steps=30, keep_checkpoints=2)
    assert config.checkpoint_every == 10
    recorded: dict[int, tuple[str, int]] = {}

    def record(step: int, sha: str, size: int) -> None:
        assert step not in recorded
        # The hook runs before the file takes its name.
        assert not checkpoint_path(tmp_path / "a", step).exists()
        recorded[step] = (sha, size)

    train(
        config,
        dataset,
        tmp_path / "a.pt",
        board="square8",
        checkpoint_dir=tmp_path / "a",
        on_checkpoint=record,
    )
    assert sorted(recorded) == [10, 20, 30]
    on_disk = list_checkpoints(tmp_path / "a")
    assert [s for s, _ in on_disk] == [20, 30]
    for step, path in on_disk:
        sha, size = recorded[step]
        assert sha256_file(path) == sha, path
        assert path.stat().st_size == size, path
    assert len({sha for sha, _ in recorded.values()}) == 3

    calls: list[int] = []

    def fail_at_20(step: int, sha: str, size: int) -> None:
        calls.append(step)
        if step == 20:
            raise HookFailed(f"no record for step {step}")

    out = tmp_path / "b.pt"
    with pytest.raises(HookFailed, match="no record for step 20"):
        train(
            config,
            dataset,
            out,
            board="square8",
            checkpoint_dir=tmp_path / "b",
            on_checkpoint=fail_at_20,
        )
    assert calls == [10, 20]
    assert _steps_on_disk(tmp_path / "b") == [10]
    assert not checkpoint_path(tmp_path / "b", 20).exists()
    assert not list((tmp_path / "b").glob(".ckpt_*"))  # no temporary file left either
    assert not out.exists()


def test_verify_checkpoint_rejects_the_newest_and_resume_falls_back(
    dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = FAST.replace(steps=30, keep_checkpoints=2)
    ckpt_dir = tmp_path / "ckpt"
    train(config, dataset, tmp_path / "a.pt", board="square8", checkpoint_dir=ckpt_dir)
    assert _steps_on_disk(ckpt_dir) == [20, 30]
    newest = checkpoint_path(ckpt_dir, 30)
    verified: list[Path] = []

    def reject_newest(path: Path) -> None:
        verified.append(path)
        if path == newest:
            raise CheckpointError(f"{path}: checksum does not match the ledger")

    set_aside: list[tuple[Path, int, str]] = []
    caplog.set_level(logging.WARNING, logger="training.checkpoint")
    result = train(
        config.replace(steps=40),
        dataset,
        tmp_path / "b.pt",
        board="square8",
        checkpoint_dir=ckpt_dir,
        verify_checkpoint=reject_newest,
        set_aside_checkpoint=lambda path, step, why: set_aside.append((path, step, why)),
    )
    assert set_aside == [(newest, 30, f"{newest}: checksum does not match the ledger")]
    assert result.resumed_from_step == 20
    assert result.finished and result.steps == 40 and result.steps_this_call == 20
    assert verified == [newest, checkpoint_path(ckpt_dir, 20)]
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "training.checkpoint"
    ]
    assert any(newest.name in m and "checksum does not match" in m for m in warnings), warnings
    # The rejected checkpoint was superseded by the resumed run's own.
    assert _steps_on_disk(ckpt_dir) == [30, 40]


def _game_index(num_games: int = 100, rows_per_game: int = 10) -> np.ndarray:
    return np.repeat(np.arange(num_games), rows_per_game)


def test_recency_weights() -> None:
    game_index = _game_index()
    rows = np.arange(len(game_index))
    assert recency_weights(game_index, rows, 100, 0.0) is None
    assert recency_weights(game_index[:10], rows[:10], 1, 3.0) is None  # one game: uniform
    w = recency_weights(game_index, rows, 100, 3.0)
    assert w is not None and w.shape == rows.shape
    assert w[-1] == pytest.approx(1.0) and w[0] == pytest.approx(np.exp(-3.0))
    assert np.all(np.diff(w) >= 0)  # never lighter for a newer game
    sub = rows[::7]
    w_sub = recency_weights(game_index, sub, 100, 3.0)
    assert w_sub is not None and np.array_equal(w_sub, w[sub])


def test_weighted_batch_order_is_pure_and_favours_recent_games() -> None:
    game_index = _game_index()
    # A training subset, as after the validation split: some games held out.
    held_out = np.isin(game_index, [3, 50, 97])
    rows = np.flatnonzero(~held_out)
    weights = recency_weights(game_index, rows, 100, 3.0)
    assert weights is not None
    a = BatchOrder(rows, 64, seed=5, weights=weights)
    b = BatchOrder(rows, 64, seed=5, weights=weights)
    steps = list(range(300))
    forward = {k: a.indices(k) for k in steps}
    backward = {k: b.indices(k) for k in reversed(steps)}
    for k in steps:
        assert np.array_equal(forward[k], backward[k]), k
        assert np.array_equal(a.indices(k), forward[k]), k  # again, after other steps
        assert len(forward[k]) == 64
    drawn = np.concatenate([forward[k] for k in steps])
    assert set(drawn.tolist()) <= set(rows.tolist())
    assert not np.isin(game_index[drawn], [3, 50, 97]).any()
    assert not np.array_equal(forward[0], forward[1])
    other_seed = BatchOrder(rows, 64, seed=6, weights=weights)
    assert not np.array_equal(other_seed.indices(0), forward[0])

    games = game_index[drawn]
    newest = int(np.count_nonzero(games >= 75))
    oldest = int(np.count_nonzero(games < 25))
    # Expected ratio about 9.5 (mean weight 0.70 against 0.074); uniform would be about 1.
    assert newest > 5 * oldest > 0, (newest, oldest)

    # Uniform order, for contrast: each epoch a permutation, so the quarters draw alike.
    uniform = BatchOrder(rows, 64, seed=5)
    flat = game_index[np.concatenate([uniform.indices(k) for k in range(uniform.per_epoch)])]
    assert abs(np.count_nonzero(flat >= 75) - np.count_nonzero(flat < 25)) < 64


def test_batch_order_refuses_bad_weights() -> None:
    rows = np.arange(100)
    for bad in (np.ones(99), np.ones(101), np.zeros(100), np.full(100, np.nan)):
        with pytest.raises(ValueError, match="weights must be"):
            BatchOrder(rows, 32, seed=0, weights=bad)
    negative = np.ones(100)
    negative[5] = -1.0
    with pytest.raises(ValueError, match="weights must be"):
        BatchOrder(rows, 32, seed=0, weights=negative)


def test_recency_weighted_training_resumes_exactly(dataset: Path, tmp_path: Path) -> None:
    config = FAST.replace(steps=20, recency_weight=2.0)
    _segmented_run_matches_whole_run(config, dataset, tmp_path)
    assert read_metadata(tmp_path / "seg.pt")["config"]["recency_weight"] == 2.0


def test_a_time_budget_counts_from_the_first_step(dataset: Path, tmp_path: Path) -> None:
    """``budget_s`` stops a call like a deadline, but loading before the first step is free:
    a zero budget still trains up to the first progress report."""
    config = FAST.replace(steps=40)
    result = train(
        config,
        dataset,
        tmp_path / "model.pt",
        board="square8",
        checkpoint_dir=tmp_path / "ckpt",
        budget_s=0.0,
    )
    assert result.stopped == SEGMENT and result.steps == 10
    assert list_checkpoints(tmp_path / "ckpt")[-1][0] == 10
    assert not (tmp_path / "model.pt").exists()
