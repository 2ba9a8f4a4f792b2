"""Launching a training segment under torchrun: how its failures come back to the task."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringrift.tasks.ddp_train import SegmentJob, TorchrunFailed, launch


def job(config_json: str) -> SegmentJob:
    return SegmentJob(
        run_id="run-square8_2p-g0",
        segment=0,
        lease_token=1,
        lease_seconds=30,
        stage_key="square8_2p:0:train",
        claim_seconds=90,
        task_id=None,
        config_json=config_json,
        dataset_path="/nonexistent/dataset.npz",
        out_path="/nonexistent/model.pt",
        board="square8",
        init_model_path=None,
        seconds=5.0,
        generation=1,
        meta={},
    )


def test_a_crashed_torchrun_is_a_failure_of_its_own(tmp_path: Path) -> None:
    """Ranks that die before answering are not the run's fault (the beat retries it), and the
    error carries the ranks' output."""
    kept: list[int] = []
    with pytest.raises(TorchrunFailed, match="exited") as caught:
        launch(job('{"steps": -1}'), 2, tmp_path, keepalive=lambda: kept.append(1))
    assert "ConfigError" in str(caught.value)


def test_one_rank_is_not_distributed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2 ranks"):
        launch(job("{}"), 1, tmp_path, keepalive=lambda: None)
