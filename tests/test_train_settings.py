"""Training settings from the environment, and the segment length the broker allows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ringrift.errors import ServiceError
from ringrift.infra.settings import Settings
from ringrift.tasks.train import segment_budget


def service_with(**train: int) -> Any:
    root = Path("/nonexistent")
    settings = Settings(root, "sqlite://", root, root, **train)
    return SimpleNamespace(settings=settings)


def test_segments_must_end_well_before_the_broker_redelivers() -> None:
    assert segment_budget(service_with(train_segment_seconds=1800)) == 1800
    with pytest.raises(ServiceError, match="half the broker's visibility timeout"):
        segment_budget(service_with(train_segment_seconds=3601))  # the timeout is 7200 s


def test_training_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RINGRIFT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RINGRIFT_TRAIN_LEASE_SECONDS", "30")
    monkeypatch.setenv("RINGRIFT_TRAIN_SEGMENT_SECONDS", "600")
    monkeypatch.setenv("RINGRIFT_TRAIN_RANKS", "4")
    s = Settings.from_env()
    assert (s.train_lease_seconds, s.train_segment_seconds, s.train_ranks) == (30, 600, 4)
    monkeypatch.delenv("RINGRIFT_TRAIN_RANKS")
    assert Settings.from_env().train_ranks == 1


@pytest.mark.parametrize("value", ["0", "-5", "ten", "1.5"])
def test_a_bad_training_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("RINGRIFT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RINGRIFT_TRAIN_LEASE_SECONDS", value)
    with pytest.raises(ValueError, match="RINGRIFT_TRAIN_LEASE_SECONDS"):
        Settings.from_env()


def test_scheduler_caps_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RINGRIFT_DATA_DIR", str(tmp_path))
    defaults = Settings.from_env()
    assert (defaults.max_trainings, defaults.eval_share, defaults.task_heartbeat_seconds) == (
        0,
        0.5,
        60,
    )
    monkeypatch.setenv("RINGRIFT_MAX_TRAININGS", "3")
    monkeypatch.setenv("RINGRIFT_EVAL_SHARE", "0.25")
    s = Settings.from_env()
    assert (s.max_trainings, s.eval_share) == (3, 0.25)
    for name, bad in (("RINGRIFT_EVAL_SHARE", "0"), ("RINGRIFT_EVAL_SHARE", "1.5")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name):
            Settings.from_env()
