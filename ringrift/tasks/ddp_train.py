"""One segment of a ledger training run on several devices of one worker: DDP through torchrun.

A worker started with ``RINGRIFT_TRAIN_RANKS=N`` (N > 1) trains each segment in N processes:
the training task writes the segment's job to a JSON file and runs
``python -m torch.distributed.run --standalone --nproc-per-node N -m ringrift.tasks.ddp_train JOB``,
then waits, renewing the run's lease meanwhile. Rank 0 of the group renews it too (with the
task's token) and writes the ledger through the same ``RunHooks`` as a one-process segment,
so leases, checkpoint records, cancel and hand-off work the same; the task reads rank 0's
result line and finishes or hands off as usual. On CUDA, rank ``i`` trains on GPU ``k + i``
where ``cuda:k`` is the worker's own device; on the CPU the ranks use Gloo (slower than one
process: for tests and trials).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ringrift.infra.processes import stop_process_group
from ringrift.pipeline.lease import LeaseLost

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.loop import TrainResult

HANG_SECONDS = 600  # beyond twice the segment budget, a torchrun is taken to be hung
RESULT_TAG = "RINGRIFT_DDP_RESULT "
ERROR_TAG = "RINGRIFT_DDP_ERROR "


@dataclass(frozen=True)
class SegmentJob:
    """Everything the ranks need to train one segment of ``run_id``."""

    run_id: str
    segment: int
    lease_token: int
    lease_seconds: int
    stage_key: str
    claim_seconds: int
    task_id: str | None  # whose PROGRESS state rank 0 publishes
    config_json: str  # the run's TrainConfig, device included
    dataset_path: str
    out_path: str
    board: str
    init_model_path: str | None
    seconds: float  # the segment's time budget
    generation: int
    meta: dict[str, Any]


@dataclass(frozen=True)
class SegmentResult:
    """What the task needs of a trained segment, from one process or from torchrun's rank 0."""

    steps: int
    stopped: str | None  # training.loop.SEGMENT or CANCELLED; None: finished, model written
    resumed_from_step: int | None
    final_losses: dict[str, float]
    world_size: int = 1

    @classmethod
    def of(cls, result: TrainResult, world_size: int = 1) -> SegmentResult:
        return cls(
            result.steps,
            result.stopped,
            result.resumed_from_step,
            result.final_losses,
            world_size,
        )


class SegmentRefused(ValueError):
    """Rank 0 refused the segment's data, model or config (a person must look)."""


class TorchrunFailed(RuntimeError):
    """torchrun failed for another reason (a rank crashed or hung): the run is not at fault,
    so it stays running and the beat starts the segment again once its lease lapses."""


def launch(job: SegmentJob, ranks: int, work: Path, keepalive: Callable[[], None]) -> SegmentResult:
    """Run ``job`` on ``ranks`` processes under torchrun; rank 0's result.

    While torchrun runs, ``keepalive`` (the lease's renewal) is called every third of a lease
    period, so the ranks' start-up (imports, rendezvous, data loading) cannot outlast the
    lease; if it raises, torchrun is stopped. A torchrun still running after twice the segment
    budget plus ``HANG_SECONDS`` is stopped as hung. Raises ``SegmentRefused`` (bad input),
    ``LeaseLost`` (the lease was lost) or ``TorchrunFailed`` (anything else, with the output's
    tail).
    """
    if ranks < 2:
        raise ValueError(f"DDP needs at least 2 ranks, got {ranks}")
    path = work / "ddp_job.json"
    path.write_text(json.dumps(asdict(job)))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    device = json.loads(job.config_json).get("device", "cpu")
    if device.startswith("cuda"):
        first = int(device.split(":")[1]) if ":" in device else 0
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + i) for i in range(ranks))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={ranks}",
        "-m",
        "ringrift.tasks.ddp_train",
        str(path),
    ]
    out_path, err_path = work / "ddp.out", work / "ddp.err"
    deadline = time.monotonic() + 2 * job.seconds + HANG_SECONDS
    every = max(job.lease_seconds / 3, 0.2)
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        try:
            while True:
                try:
                    proc.wait(timeout=every)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() > deadline:
                    raise TorchrunFailed(f"{job.run_id}: torchrun ran past its time: hung")
                keepalive()
        finally:
            if proc.poll() is None:
                stop_process_group(proc)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    result: SegmentResult | None = None
    for line in stdout.splitlines():
        if line.startswith(ERROR_TAG):
            error = json.loads(line[len(ERROR_TAG) :])
            kind = SegmentRefused if error["kind"] == "value" else LeaseLost
            raise kind(error["message"])
        if line.startswith(RESULT_TAG):
            result = SegmentResult(**json.loads(line[len(RESULT_TAG) :]))
    if proc.returncode != 0 or result is None:
        # The first exception a rank printed says what went wrong; torchrun's summary follows.
        raised = re.search(r"^\w[\w.]*(?:Error|Exception): .*$", stderr, re.MULTILINE)
        cause = f"{raised.group(0)}\n" if raised else ""
        tail = (stderr or stdout)[-1500:]
        raise TorchrunFailed(
            f"{job.run_id}: torchrun with {ranks} ranks exited {proc.returncode}: {cause}{tail}"
        )
    return result


def train_segment(job: SegmentJob, config: TrainConfig, **hooks: Any) -> TrainResult:
    """``training.loop.train`` on ``job``'s data for its time budget of training; ``hooks`` are the
    loop's callbacks (``RunHooks.loop_kwargs``) and ``dist``."""
    from training.loop import train

    return train(
        config,
        job.dataset_path,
        job.out_path,
        board=job.board,
        init_model_path=job.init_model_path,
        generation=job.generation,
        meta=job.meta,
        budget_s=job.seconds,  # of training: start-up and loading come on top
        **hooks,
    )


def _publisher(task_id: str | None) -> Any:
    if task_id is None:
        return None
    from ringrift.celery import app

    def publish(meta: dict[str, Any]) -> None:
        app.backend.store_result(task_id, meta, "PROGRESS")

    return publish


def main(argv: list[str] | None = None) -> int:
    """The program torchrun starts on every rank (``python -m ringrift.tasks.ddp_train JOB``)."""
    from ringrift.infra.service import current, redis_client
    from ringrift.pipeline.lease import Lease
    from ringrift.pipeline.run_hooks import RunHooks
    from training.config import TrainConfig
    from training.distributed import from_env, shutdown

    args = sys.argv[1:] if argv is None else argv
    job = SegmentJob(**json.loads(Path(args[0]).read_text()))
    config = TrainConfig.from_json(job.config_json)
    threads = os.environ.get("RINGRIFT_TORCH_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    ctx = from_env(config.device)
    main_rank = ctx is None or ctx.is_main
    try:
        svc = current()
        lease = Lease(redis_client(), job.run_id, job.lease_seconds, token=job.lease_token)
        hooks = RunHooks(
            svc,
            job.run_id,
            job.segment,
            lease,
            job.stage_key,
            job.claim_seconds,
            publish=_publisher(job.task_id) if main_rank else None,
            keep_checkpoints=config.keep_checkpoints,
        )
        if main_rank:
            kwargs = hooks.loop_kwargs()
        else:  # the others read the same checkpoints and trust the same records
            kwargs = {"checkpoint_dir": hooks.checkpoint_dir, "verify_checkpoint": hooks.verify}
        result = train_segment(job, config, dist=ctx, **kwargs)
    except LeaseLost as e:
        if main_rank:
            print(ERROR_TAG + json.dumps({"kind": "lease", "message": str(e)}), flush=True)
        return 3
    except ValueError as e:
        if main_rank:
            message = f"{type(e).__name__}: {e}"
            print(ERROR_TAG + json.dumps({"kind": "value", "message": message}), flush=True)
        return 2
    finally:
        shutdown(ctx)
    if main_rank:
        out = SegmentResult.of(result, ctx.world_size if ctx is not None else 1)
        print(RESULT_TAG + json.dumps(asdict(out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
