"""A password-protected Redis, plain (``redis://:password@``) and over TLS (``rediss://``), is
reached by URL alone: real workers serve tasks through it, the CLI reads through it, and the
password (like the database's and the object store's) never shows in logs, command output,
task results or errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ringrift.infra.localredis import find_server, free_port
from ringrift.store import migrate
from ringrift.store.db import database_url
from tests.celery_harness import REPO, run_cli, worker

PASSWORD = "Redis-Pa55word-7f3a9c"
DB_PASSWORD = "Db-Pa55word-c41d2e"
S3_SECRET = "S3-Secret-Key-9b8e7d"
SECRETS = (PASSWORD, DB_PASSWORD, S3_SECRET)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(folder: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=ringrift-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=folder,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
        cwd=folder,
    )


class SecureRedis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.tls_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        _certificates(self.folder)
        args = [
            find_server().path,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            "--tls-port",
            str(self.tls_port),
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
        ]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            args, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        client = redis.Redis(port=self.port, password=PASSWORD, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = (self.folder / "redis.log").read_text(errors="replace")
                pytest.skip(f"{args[0]} cannot serve TLS here: {said.strip()[-300:]}")
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise TimeoutError("the password-protected Redis did not answer")

    def url(self, tls: bool) -> str:
        if tls:
            query = f"ssl_cert_reqs=required&ssl_ca_certs={self.folder / 'ca.pem'}"
            return f"rediss://:{PASSWORD}@127.0.0.1:{self.tls_port}/{{db}}?{query}"
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/{{db}}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    s = SecureRedis(tmp_path_factory.mktemp("secure-redis"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _env(url: str, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGRIFT_")}
    env.update(
        RINGRIFT_BROKER_URL=url.format(db=0),
        RINGRIFT_RESULT_BACKEND=url.format(db=1),
        RINGRIFT_DATA_DIR=str(data),
        AWS_SECRET_ACCESS_KEY=S3_SECRET,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return env


def _no_secret(what: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{what} shows a secret:\n{text[-3000:]}"


_CLIENT = """
import json
from ringrift.celery import app
print(json.dumps({"ping": app.send_task("ringrift.health.ping", queue="cpu").get(timeout=60)}))
failed = app.send_task("ringrift.export.build_dataset", args=("square9_2p", 0, "tiny"))
failed.get(timeout=60, propagate=False)
print(json.dumps({"state": failed.state, "result": str(failed.result), "tb": failed.traceback}))
"""


@pytest.mark.parametrize("tls", [False, True], ids=["password", "tls+password"])
def test_a_protected_broker_is_reached_by_url_and_its_password_is_never_shown(
    server: SecureRedis, tmp_path: Path, tls: bool
) -> None:
    data = tmp_path / "data"
    env = _env(server.url(tls), data)
    migrate(database_url(data))
    with worker(env, "cpu", "secure", tmp_path):
        client = subprocess.run(
            [sys.executable, "-c", _CLIENT], env=env, capture_output=True, text=True, timeout=180
        )
        assert client.returncode == 0, client.stderr[-3000:]
        ping, failed = (json.loads(line) for line in client.stdout.splitlines()[-2:])
        assert ping["ping"], ping
        assert failed["state"] == "FAILURE" and "square9_2p" in failed["result"], failed
        _no_secret("a client and a failed task's result", client.stdout + client.stderr)
        outputs = [
            run_cli(env, "pipeline", "start", "square8_2p", "--preset", "tiny"),
            run_cli(env, "pipeline", "list"),
            run_cli(env, "status"),
            run_cli(env, "health", "--json"),
        ]
        assert outputs[0].returncode == 0, outputs[0].stderr
        for out in outputs:
            _no_secret(f"`ringrift {out.args[3:]}`", out.stdout + out.stderr)
        wrong = dict(env, RINGRIFT_BROKER_URL=env["RINGRIFT_BROKER_URL"].replace(PASSWORD, "x"))
        refused = run_cli(wrong, "health")
        assert refused.returncode == 1
        _no_secret("health with a wrong password", refused.stdout + refused.stderr)
    _no_secret("the worker's log", (tmp_path / "worker-secure.log").read_text())


def test_a_database_url_password_is_never_shown(tmp_path: Path) -> None:
    url = f"postgresql://ringrift:{DB_PASSWORD}@127.0.0.1:1/ringrift"  # nothing listens on 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGRIFT_")}
    env.update(RINGRIFT_DATABASE_URL=url, RINGRIFT_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    for args in (["status"], ["pipeline", "list"], ["health"]):
        out = subprocess.run(
            [sys.executable, "-m", "ringrift.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode != 0
        _no_secret(
            f"`ringrift {' '.join(args)}` with an unreachable database", out.stdout + out.stderr
        )
