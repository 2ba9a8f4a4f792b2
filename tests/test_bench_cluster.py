"""``ringrift bench cluster``: its log parsing on hand-written excerpts, and one real run."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from ringrift.cli.bench_cluster import (
    beat_sent,
    busy_intervals,
    busy_seconds,
    discarded,
    duplicate_starts,
    idle_share,
    idle_time,
    median,
    parse_configs,
    pending_tasks,
    percentile,
    problem_lines,
    ready_at,
    task_counts,
    task_durations,
    tasks_per_hour,
    tick_gaps,
)
from ringrift.game import ALL_CONFIGS
from tests.celery_harness import REPO
from tests.loop_harness import (
    MARKER,
    describe,
    kill_marked,
    loop_env,
    ringrift_command,
    wait_gone,
)

GPU_LOG = """\
 -------------- gpu0@vm v5.7.0 (collider)
[2026-12-04 10:00:00,000: INFO/MainProcess] Connected to redis://127.0.0.1:40887/0
[2026-12-04 10:00:00,000: INFO/MainProcess] gpu0@vm ready.
[2026-12-04 10:00:10,000: INFO/MainProcess] Task ringrift.selfplay.play_games[a1] received
[2026-12-04 10:00:20,000: INFO/ForkPoolWorker-1] Task ringrift.selfplay.play_games[a1] \
succeeded in 10.0s: {'artifact_id': 'shard-square8_2p-g0-b1-00', 'games': 4}
[2026-12-04 10:00:20,000: INFO/MainProcess] Task ringrift.sync.collect[a2] received
[2026-12-04 10:00:25,000: INFO/ForkPoolWorker-1] Task ringrift.sync.collect[a2] succeeded \
in 5.0s: {'ingested': 4, 'shards': 1}
[2026-12-04 10:00:40,000: INFO/MainProcess] Task ringrift.evaluate.play_match[a3] received
[2026-12-04 10:00:50,000: ERROR/ForkPoolWorker-1] Task ringrift.evaluate.play_match[a3] \
raised unexpected: ValueError('boom')
Traceback (most recent call last):
  File "x.py", line 1, in <module>
ValueError: boom
[2026-12-04 10:01:30,000: INFO/MainProcess] Task ringrift.selfplay.play_games[a4] received
"""
# ready at 10:00:00; busy 10:00:10-10:00:25 (15 s) and 10:00:40-10:00:50 (10 s, the raised
# task from its receipt); a4 runs from 10:01:30 to whatever end is given.


def _at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def test_busy_intervals_from_durations_receipts_and_unfinished_tasks() -> None:
    end = _at("2026-12-04 10:01:40")
    assert busy_intervals(GPU_LOG, end) == [
        (_at("2026-12-04 10:00:10"), _at("2026-12-04 10:00:20")),
        (_at("2026-12-04 10:00:20"), _at("2026-12-04 10:00:25")),
        (_at("2026-12-04 10:00:40"), _at("2026-12-04 10:00:50")),
        (_at("2026-12-04 10:01:30"), end),
    ]
    assert len(busy_intervals(GPU_LOG)) == 3  # without an end, the unfinished task is left out
    assert pending_tasks(GPU_LOG) == ["a4"]
    assert pending_tasks(GPU_LOG, ["ringrift.sync.collect"]) == []
    assert ready_at(GPU_LOG) == _at("2026-12-04 10:00:00")


def test_busy_seconds_merges_overlaps_and_clips_to_the_window() -> None:
    t = _at
    intervals = [
        (t("2026-12-04 10:00:00"), t("2026-12-04 10:00:10")),
        (t("2026-12-04 10:00:05"), t("2026-12-04 10:00:15")),  # overlaps the first
        (t("2026-12-04 10:00:50"), t("2026-12-04 10:01:10")),  # past the window's end
    ]
    assert busy_seconds(intervals, t("2026-12-04 10:00:02"), t("2026-12-04 10:01:00")) == 23.0


def test_idle_share_over_workers_from_ready_to_the_end() -> None:
    end = _at("2026-12-04 10:01:40")
    # window 100 s; busy 15 + 10 + 10 (a4 from 10:01:30) = 35 s
    assert idle_time(GPU_LOG, end) == (65.0, 100.0)
    idle_worker = (
        "[2026-12-04 10:01:00,000: INFO/MainProcess] gpu1@vm ready.\n"
        "[2026-12-04 10:01:05,000: INFO/MainProcess] Discarding revoked task: "
        "ringrift.pipeline.tick[t9]\n"
    )
    assert idle_time(idle_worker, end) == (40.0, 40.0)  # a discarded task is no work
    assert idle_share([GPU_LOG, idle_worker], end) == pytest.approx(105 / 140)
    assert idle_share(["no ready line here"], end) is None
    busy_all_along = (
        "[2026-12-04 10:00:00,000: INFO/MainProcess] gpu2@vm ready.\n"
        "[2026-12-04 10:02:00,000: INFO/ForkPoolWorker-1] Task ringrift.train.train_model[x] "
        "succeeded in 130.5s: {'run_id': 'run-hex8_2p-g0'}\n"
    )
    assert idle_share([busy_all_along], end) == 0.0
    share = idle_share([GPU_LOG, idle_worker, busy_all_along], end)
    assert share is not None and 0.0 <= share <= 1.0


CPU_LOG = """\
[2026-12-04 10:00:00,100: INFO/MainProcess] cpu@vm ready.
[2026-12-04 10:00:02,000: INFO/ForkPoolWorker-1] Task ringrift.pipeline.tick[t1] succeeded \
in 0.5s: {'started': {'square8_2p': []}, 'selfplay': {'square8_2p': 2}}
[2026-12-04 10:00:04,000: INFO/ForkPoolWorker-1] ringrift.pipeline.tick[t2]: square8_2p g0: \
started export {'preset': 'tiny'}
[2026-12-04 10:00:04,010: INFO/ForkPoolWorker-1] Task ringrift.pipeline.tick[t2] succeeded \
in 0.1s: {'started': {'square8_2p': ['export']}, 'selfplay': {}}
[2026-12-04 10:00:06,000: INFO/ForkPoolWorker-1] Task ringrift.pipeline.tick[t3] succeeded \
in 2.5e-02s: {'started': {}, 'selfplay': {}}
[2026-12-04 10:00:08,000: INFO/ForkPoolWorker-1] Task ringrift.pipeline.tick[t4] succeeded \
in 1.5s: {'started': {}, 'selfplay': {}}
[2026-12-04 10:00:09,000: INFO/ForkPoolWorker-1] ringrift.sync.collect[c1]: hex8_3p g2: \
started evaluate {'candidate_id': 'model-hex8_3p-g3', 'opponents': ['random', 'heuristic']}
[2026-12-04 10:00:09,500: WARNING/ForkPoolWorker-1] ringrift.pipeline.tick[t5]: hex8_3p: \
model-hex8_3p-g3/random lost its worker; sending it again
[2026-12-04 10:00:09,600: INFO/ForkPoolWorker-1] ringrift.pipeline.tick[t5]: hex8_3p g2: \
started resend {'stage': 'evaluate'}
[2026-12-04 10:00:10,000: INFO/ForkPoolWorker-1] Task ringrift.sync.collect[c1] succeeded \
in 0.2s: {'ingested': 4, 'shards': 1}
"""

OTHER_LOG = """\
[2026-12-04 10:00:30,000: INFO/ForkPoolWorker-1] ringrift.pipeline.tick[t9]: square8_2p g0: \
started export {'preset': 'tiny'}
[2026-12-04 10:00:31,000: INFO/ForkPoolWorker-1] ringrift.export.build_dataset[e1]: \
square8_2p g0: started train {'run_id': 'run-square8_2p-g0', 'segment': 0}
[2026-12-04 10:00:32,000: INFO/ForkPoolWorker-1] ringrift.pipeline.tick[t10]: hex8_3p g2: \
started evaluate {'candidate_id': 'model-hex8_3p-g3', 'opponents': ['model-hex8_3p-g2']}
"""


def test_tick_median_and_p90() -> None:
    ticks = task_durations(CPU_LOG, "ringrift.pipeline.tick")
    assert ticks == [0.5, 0.1, 0.025, 1.5]
    assert median(ticks) == pytest.approx(0.3)
    assert percentile(ticks, 90) == 1.5
    assert percentile([3.0], 90) == 3.0 and percentile([], 50) is None and median([]) is None
    assert percentile([float(i) for i in range(1, 11)], 90) == 9.0


def test_tick_gaps_expired_ticks_and_beat_sends_within_the_window() -> None:
    # tick starts (end - duration): 10:00:01.5, 10:00:03.91, 10:00:05.975, 10:00:06.5
    gaps = tick_gaps(CPU_LOG)
    assert gaps == pytest.approx([2.41, 2.065, 0.525])
    start, end = _at("2026-12-04 10:00:00"), _at("2026-12-04 10:00:30")
    assert max(tick_gaps(CPU_LOG, start, end)) == pytest.approx(23.5)  # the last to the end
    assert tick_gaps("", start, end) == [30.0]
    starved = (
        "[2026-12-04 10:00:20,000: INFO/MainProcess] Task ringrift.pipeline.tick[t7] received\n"
        "[2026-12-04 10:00:20,001: INFO/MainProcess] Discarding revoked task: "
        "ringrift.pipeline.tick[t7]\n"
        "[2026-12-04 10:00:50,000: INFO/MainProcess] Discarding revoked task: "
        "ringrift.pipeline.tick[t8]\n"
    )
    assert discarded(starved, "ringrift.pipeline.tick") == 2
    assert discarded(starved, "ringrift.pipeline.tick", start, end) == 1
    assert pending_tasks(starved) == []
    beat = (
        "celery beat v5.7.0 (collider) is starting.\n"
        "[2026-12-04 09:59:58,000: INFO/MainProcess] Scheduler: Sending due task pipeline-tick "
        "(ringrift.pipeline.tick)\n"
        "[2026-12-04 10:00:00,000: INFO/MainProcess] Scheduler: Sending due task pipeline-tick "
        "(ringrift.pipeline.tick)\n"
        "[2026-12-04 10:00:02,000: INFO/MainProcess] Scheduler: Sending due task other "
        "(x.y)\n"
    )
    assert beat_sent(beat) == 2 and beat_sent(beat, start=start, end=end) == 1


def test_problem_lines_by_level_and_time() -> None:
    assert problem_lines(GPU_LOG) == [
        "[2026-12-04 10:00:50,000: ERROR/ForkPoolWorker-1] Task ringrift.evaluate.play_match[a3] "
        "raised unexpected: ValueError('boom')"
    ]
    assert problem_lines(GPU_LOG, end=_at("2026-12-04 10:00:49")) == []
    assert problem_lines(CPU_LOG, ("WARNING",))[0].endswith("sending it again")


def test_duplicate_starts_count_a_stage_started_twice_and_ignore_resends() -> None:
    assert duplicate_starts([CPU_LOG]) == {}
    # an evaluation sent in two parts is no duplicate; a match sent twice is
    assert duplicate_starts([CPU_LOG, OTHER_LOG]) == {"square8_2p g0 export": 2}
    again = OTHER_LOG.replace("'model-hex8_3p-g2'", "'random'")
    assert duplicate_starts([CPU_LOG, again]) == {
        "hex8_3p g2 evaluate random": 2,
        "square8_2p g0 export": 2,
    }


def test_task_counts_and_rates_within_the_window() -> None:
    counts = task_counts([GPU_LOG, CPU_LOG])
    assert counts["ringrift.pipeline.tick"] == {"succeeded": 4, "raised": 0}
    assert counts["ringrift.evaluate.play_match"] == {"succeeded": 0, "raised": 1}
    assert counts["ringrift.sync.collect"] == {"succeeded": 2, "raised": 0}
    later = task_counts([GPU_LOG], start=_at("2026-12-04 10:00:21"))
    assert "ringrift.selfplay.play_games" not in later
    rates = tasks_per_hour({"a": {"succeeded": 3, "raised": 1}}, 1800)
    assert rates == {"a": 8.0}


def test_configs_all_or_a_checked_list() -> None:
    assert parse_configs("all") == list(ALL_CONFIGS) and len(ALL_CONFIGS) == 12
    assert parse_configs(" square8_2p, hex8_2p,square8_2p ") == ["square8_2p", "hex8_2p"]
    with pytest.raises(ValueError, match="square9_2p"):
        parse_configs("square8_2p,square9_2p")
    with pytest.raises(ValueError):
        parse_configs(" , ")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_half_minute_run_measures_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = loop_env(tmp_path / "home")
    marker = env[MARKER]
    try:
        done = subprocess.run(
            [
                *ringrift_command(),
                "bench",
                "cluster",
                "--configs",
                "square8_2p,hex8_2p",
                "--workers",
                "3",
                "--minutes",
                "0.5",
                "--data-dir",
                str(tmp_path / "bench"),
                "--json",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        left = wait_gone(marker)
    finally:
        kill_marked(marker)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not left, describe(left)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "idle_share",
        "tick_median_s",
        "duplicates",
        "configs_advanced",
        "tasks_per_hour",
        "configs",
        "workers",
        "minutes",
        "child_pids",
    ):
        assert key in report, key
    assert report["duplicates"] == 0, report["duplicate_detail"]
    assert 0 <= report["idle_share"] <= 1
    assert report["tick_median_s"] is not None and report["ticks"] > 0
    assert report["tick_p90_s"] >= report["tick_median_s"]
    assert report["workers"] == 3 and report["minutes"] == 0.5
    assert set(report["configs"]) == {"square8_2p", "hex8_2p"}
    assert report["tasks_per_hour"].get("ringrift.selfplay.play_games", 0) > 0
    assert report["duplicate_detail"]["games_in_shards"] > 0
    assert len(report["child_pids"]) == 5  # the broker, three workers and beat
    assert not [pid for pid in report["child_pids"] if _alive(pid)]
    assert os.path.exists(tmp_path / "bench" / "logs" / "worker-gpu1.log")
