"""The `ringrift` command: output shapes that scripts rely on."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringrift.cli", *args], capture_output=True, text=True, check=False
    )


def test_bench_engine_json_last_line() -> None:
    out = _run("bench", "engine", "--config", "hex8_2p", "--seconds", "1", "--seed", "3", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"moves_per_s", "games_per_s", "avg_moves", "games"} <= data.keys()
    assert data["moves_per_s"] > 0 and data["games"] >= 1
    assert sum(data["victory_types"].values()) == data["games"]


def test_bench_heuristic_json_last_line() -> None:
    out = _run("bench", "heuristic", "--games", "4", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["games"] == 4
    assert data["heuristic_wins"] + data["heuristic_losses"] + data["draws"] == 4


def test_bench_evaluate_json_last_line() -> None:
    out = _run(
        "bench", "evaluate", "--model", "b1c8", "--sims", "4", "--games", "4",
        "--max-moves", "16", "--opponent", "random", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert (data["games"], data["opponent"], data["simulations"]) == (4, "random", 4)
    assert data["games_per_hour"] > 0 and data["ratio"] > 0 and data["mean_batch"] >= 1
    c = data["candidate"]
    assert c["wins"] + c["losses"] + c["draws"] == 4 and 0 <= c["score"] <= 1


def test_demo_plays_a_game() -> None:
    out = _run("demo", "--seconds", "0.5")
    assert out.returncode == 0, out.stderr
    assert "game over after" in out.stdout and "moves/s" in out.stdout


def test_unknown_config_is_a_clear_error() -> None:
    out = _run("bench", "engine", "--config", "square9_2p", "--seconds", "1")
    assert out.returncode == 2
    assert "unknown configuration 'square9_2p'" in out.stderr


def test_bad_arguments_are_one_error_line_and_status_2() -> None:
    for args, message in (
        (("bench", "engine", "--seconds", "soon"), "'soon' is not a number of seconds"),
        (("bench", "nope"), "No such command 'nope'"),
        ((), "Missing command"),
        (("rules", "check"), "Missing argument"),
    ):
        out = _run(*args)
        assert out.returncode == 2, (args, out.stderr)
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("ringrift: error: ") and message in last, (args, out.stderr)
        assert "Traceback" not in out.stderr and out.stdout == ""
    helped = _run("bench", "engine", "-h")
    assert helped.returncode == 0 and "--seconds" in helped.stdout


def test_bench_train_json_last_line() -> None:
    out = _run(
        "bench",
        "train",
        "--model",
        "b1c16",
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--json",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["steps"] == 3 and data["model"] == "b1c16" and data["device"] == "cpu"
    assert data["samples_per_s"] > 0 and data["bare_samples_per_s"] > 0
