"""Starting, stopping and listing configuration loops: from the shell (``ringrift pipeline``) and
from Python (``start_pipeline.delay(...)`` through a real broker and worker)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ringrift.infra.localredis import LocalRedis
from tests.celery_harness import REPO, celery_env, run_cli, worker


def test_the_pipeline_command_starts_stops_and_lists(tmp_path: Path) -> None:
    env = celery_env("redis://127.0.0.1:1", tmp_path)  # the ledger alone: no broker needed
    empty = run_cli(env, "pipeline", "list")
    assert empty.returncode == 0 and "no pipelines" in empty.stdout

    started = run_cli(
        env, "pipeline", "start", "square8_2p", "--preset", "tiny", "--generations", "2"
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == (
        "square8_2p: enabled, preset tiny, generation 0 (to 2), stage selfplay, best model none"
    )
    for bad, message in (
        (("start", "square9_2p"), "unknown configuration 'square9_2p'"),
        (("start", "hex8_2p", "--preset", "huge"), "unknown preset 'huge'"),
        (("start", "hex8_2p", "--generations", "0"), "generations must be a whole number"),
        (("stop", "hex8_2p"), "no pipeline for hex8_2p"),
    ):
        refused = run_cli(env, "pipeline", *bad)
        assert refused.returncode == 2 and message in refused.stderr, (bad, refused.stderr)

    stopped = run_cli(env, "pipeline", "stop", "square8_2p", "--json")
    assert json.loads(stopped.stdout)["enabled"] is False
    listed = json.loads(run_cli(env, "pipeline", "list", "--json").stdout)
    assert [(r["config"], r["enabled"], r["target_generations"]) for r in listed] == [
        ("square8_2p", False, 2)
    ]


# The one worker also plays the selfplay the start sends out, between these calls: room for it.
_DRIVE = """
import json, sys
from ringrift.tasks.pipeline import list_pipelines, start_pipeline, stop_pipeline
out = {"start": start_pipeline.delay("square8_2p", preset="tiny", generations=1).get(timeout=300)}
try:
    start_pipeline.delay("square8_2p", preset="tiny", generations=-1).get(timeout=300)
except Exception as e:
    out["refused"] = f"{type(e).__name__}: {e}"
out["stop"] = stop_pipeline.delay("square8_2p").get(timeout=300)
out["list"] = list_pipelines.delay().get(timeout=300)
print(json.dumps(out))
"""


def test_start_pipeline_from_python_through_a_worker(tmp_path: Path) -> None:
    # A broker of its own: the selfplay this start sends out dies with it, never reaching
    # another test's workers.
    with LocalRedis(tmp_path / "redis") as url:
        env = celery_env(url, tmp_path / "data")
        with worker(env, "cpu", "controls", tmp_path):
            run = subprocess.run(
                [sys.executable, "-c", _DRIVE],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    start = out["start"]
    assert (start["config"], start["enabled"], start["preset"]) == ("square8_2p", True, "tiny")
    assert start["target_generations"] == 1 and start["started"] == ["selfplay"]
    assert out["refused"].startswith("ServiceError: generations must be a whole number")
    assert out["stop"]["enabled"] is False
    assert [r["config"] for r in out["list"]] == ["square8_2p"]
