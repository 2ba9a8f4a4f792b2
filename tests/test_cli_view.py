"""``ringrift status``'s table, ``ringrift watch`` and the ``rules check`` progress bar."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from ringrift.cli.progress import rules_check
from ringrift.cli.view import render_status
from ringrift.game.checker import run_check
from tests.celery_harness import REPO, celery_env, run_cli

FIXTURES = Path(__file__).parent / "fixtures"

REPORT = {
    "configs": [
        {  # a configuration the ledger knows nothing of yet: most keys absent
            "config": "hexagonal_4p",
            "generation": 0,
            "stage": "not started",
            "games_total": 0,
            "games_new": 0,
            "games_this_generation": 0,
            "best_model": None,
            "training": None,
        },
        {  # everything, the figures another part of the service adds included
            "config": "square8_2p",
            "enabled": True,
            "preset": "default",
            "generation": 12,
            "target_generations": 20,
            "stage": "train",
            "games_total": 12345,
            "games_new": 678,
            "games_this_generation": 678,
            "games_per_hour": 2400.4,
            "rating": 1523.7,
            "priority": 0.75,
            "share": 0.6,
            "best_model": "model-square8_2p-g12",
            "best_evaluation": {
                "decision": None,
                "matches": {"heuristic": {"games": 20, "wins": 12, "losses": 6, "draws": 2}},
            },
            "last_decision": {
                "model": "model-square8_2p-g13",
                "status": "rejected",
                "sprt": {
                    "verdict": "fail",
                    "llr": -2.9512,
                    "lower": -2.944,
                    "upper": 2.944,
                    "games": 96,
                },
            },
            "training": {
                "run": "run-square8_2p-g12",
                "status": "running",
                "step": 1200,
                "total_steps": 4000,
                "loss": 1.23456,
                "samples_per_s": 5120.4,
                "eta_s": 3725,
                "segment": 2,
                "cancel_requested": True,
                "error": None,
            },
            "host_caches": {
                "gpu-a": {"model_id": "model-square8_2p-g12"},
                "gpu-b": {"model_id": "model-square8_2p-g11"},
            },
        },
        {  # the figures not produced yet; a failed run whose error has [brackets] in it
            "config": "hex8_2p",
            "enabled": False,
            "preset": "tiny",
            "generation": 3,
            "target_generations": None,
            "stage": "evaluate",
            "games_total": 40,
            "games_new": 0,
            "games_this_generation": 8,
            "best_model": None,
            "best_evaluation": None,
            "training": {
                "run": "run-hex8_2p-g3",
                "status": "failed",
                "step": 10,
                "total_steps": 40,
                "loss": None,
                "samples_per_s": None,
                "eta_s": None,
                "segment": 0,
                "cancel_requested": False,
                "error": "CUDA out of memory [gpu0]",
            },
        },
    ],
    "models": 14,
    "queues": {"cpu": 3, "gpu0": 0},
}


def _text(report: dict[str, object], width: int = 200) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(render_status(report))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def _row(text: str, config: str) -> list[str]:
    """The cells of the first line of ``config``'s row."""
    (line,) = [ln for ln in text.splitlines() if ln.startswith(config + " ")]
    return line.split()


def test_the_table_has_a_row_per_config_and_a_dash_for_each_absent_key() -> None:
    text = _text(REPORT)
    header = text.splitlines()[0].split()
    assert header[:6] == ["config", "enabled", "preset", "gen", "stage", "games"]
    assert header[-3:] == ["rating", "priority", "share"]

    # config, enabled, preset, generation, stage, games, training, best, rating, priority, share
    assert (
        _row(text, "hexagonal_4p")
        == ["hexagonal_4p", "-", "-", "0", "not", "started", "0"] + ["-"] * 5
    )
    assert _row(text, "square8_2p") == [
        "square8_2p",
        "yes",
        "default",
        "12/20",
        "train",
        "12345",
        "run-square8_2p-g12",
        "g12",
        "1524",
        "0.75",
        "60%",
    ]
    hex8 = _row(text, "hex8_2p")
    assert hex8[:6] == ["hex8_2p", "no", "tiny", "3", "evaluate", "40"]
    assert hex8[-4:] == ["-", "-", "-", "-"]  # best model, rating, priority, share

    # the rest of the cells, on the rows' later lines
    assert text.count("-/h") == 2 and "2400/h" in text and "678 new" in text
    for shown in (
        "running 1200/4000",
        "loss 1.2346",
        "5120 samples/s",
        "ETA 1h02m",
        "segment 2",
        "cancel requested",
        "vs heuristic 12-6-2",
        "g13 rejected",
        "SPRT fail after 96",
        "LLR -2.95 of -2.94..2.94",
        "failed 10/40",
        "error: CUDA out of memory [gpu0]",  # rich markup would have eaten "[gpu0]"
    ):
        assert shown in text, shown
    assert "queues: cpu 3, gpu0 0" in text and "models in the ledger: 14" in text
    caches = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.startswith("gpu-")}
    assert caches == {
        "gpu-a": ["square8_2p", "model-square8_2p-g12"],
        "gpu-b": ["square8_2p", "model-square8_2p-g11", "(not", "the", "best)"],
    }


def test_an_empty_ledger_and_an_unreachable_broker() -> None:
    text = _text({"configs": [], "models": 0, "queues": {"error": "broker unreachable: no"}})
    assert "no pipelines; start one with: ringrift pipeline start square8_2p" in text
    assert "queues: broker unreachable: no" in text


def test_a_narrow_terminal_still_shows_every_config() -> None:
    text = _text(REPORT, width=100)
    for config in ("hexagonal_4p", "square8_2p", "hex8_2p"):
        assert any(line.startswith(config + " ") for line in text.splitlines()), text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_watch_once_shows_a_started_pipeline(tmp_path: Path) -> None:
    env = celery_env("redis://127.0.0.1:1", tmp_path)  # the ledger alone: no broker needed
    started = run_cli(env, "pipeline", "start", "square8_2p", "--preset", "tiny")
    assert started.returncode == 0, started.stderr
    shown = run_cli(env, "watch", "--once")
    assert shown.returncode == 0, shown.stderr
    assert _row(shown.stdout, "square8_2p")[:5] == ["square8_2p", "yes", "tiny", "0", "selfplay"]
    assert "queues: broker unreachable" in shown.stdout
    assert "Ctrl-C" not in shown.stdout  # one frame: no live caption

    status = run_cli(env, "status")
    assert status.returncode == 0, status.stderr
    assert _row(status.stdout, "square8_2p") == _row(shown.stdout, "square8_2p")


def test_watch_stops_on_ctrl_c_with_status_0(tmp_path: Path) -> None:
    env = celery_env("redis://127.0.0.1:1", tmp_path)
    assert run_cli(env, "pipeline", "start", "hex8_2p", "--preset", "tiny").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "ringrift.cli", "watch", "--interval", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    framed = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                framed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert framed.wait(120), "".join(lines)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    out = "".join(lines)
    assert rc == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert any(line.startswith("hex8_2p ") for line in lines), out[-3000:]


def test_help_lists_watch_and_a_bad_interval_is_refused() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "ringrift.cli", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0
    commands = [ln.split()[0] for ln in helped.stdout.split("Commands:")[1].splitlines() if ln]
    assert "watch" in commands and "status" in commands
    bad = subprocess.run(
        [sys.executable, "-m", "ringrift.cli", "watch", "--interval", "0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("ringrift: error: ")


@pytest.mark.parametrize("verbose", [False, True])
def test_rules_check_with_its_bar_says_what_run_check_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    golden = FIXTURES / "golden-games"
    broken = tmp_path / "broken.json"
    text = (golden / "smoke_hex8_2p_mjk8qhtj.json").read_text()
    broken.write_text(text.replace('"place_ring"', '"move_stack"', 1))
    skips = tmp_path / "skips.txt"  # two failing cases skipped, and a passing one (noted)
    skips.write_text(
        "golden/captures_square8_2p_272ed96f  diverges\n"
        "golden/captures_square8_2p_8916c9a6  diverges\n"
        "golden/captures_square8_2p_8840e2e0  passes: a stale skip\n"
    )
    paths = [str(golden), str(broken), str(tmp_path / "missing.json")]

    want_rc = run_check(paths, skip_file=str(skips), verbose=verbose)
    want = capsys.readouterr().out
    got_rc = rules_check(paths, skip_file=str(skips), verbose=verbose, show_progress=True)
    got = capsys.readouterr()
    assert (got_rc, got.out) == (want_rc, want)
    assert want_rc == 1 and want.splitlines()[-1] == "1 passed, 2 failed, 3 skipped"
    assert "note: skipped case golden/captures_square8_2p_8840e2e0 passes now" in want
    assert got.err == ""  # stderr is no terminal here: no bar drawn
