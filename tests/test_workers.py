"""Worker start-up with a real broker: queues, device binding, ping round trip."""

from __future__ import annotations

from pathlib import Path

from tests.celery_harness import celery_env, point_app_at, wait_for_worker, worker
from workers.devices import device_for_queues, gpu_index


def test_gpu_queue_names() -> None:
    assert gpu_index(["cpu", "gpu1"]) == 1
    assert gpu_index(["cpu"]) is None
    assert device_for_queues(["cpu"]) == "cpu"


def test_worker_binds_its_device_from_its_queue(redis_url: str, tmp_path: Path) -> None:
    env = celery_env(redis_url, tmp_path)
    point_app_at(env)
    with worker(env, "gpu0", "gpu0", tmp_path) as proc:
        answer = wait_for_worker("gpu0")
        assert answer["queues"] == ["gpu0"]
        assert answer["device"] in ("cpu", "cuda:0")
        assert answer["pid"] != proc.pid  # ran in a pool child, not the parent
    assert proc.poll() is not None
