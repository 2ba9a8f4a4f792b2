"""Data-parallel training under ``torchrun``, for real: two Gloo ranks on the CPU.

Each test starts ``python -m torch.distributed.run --nproc-per-node 2 --standalone -m
training.run`` (or plain ``python -m training.run``) as a subprocess, the way a worker with
several GPUs starts a run, and checks what it leaves on disk and prints.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from ringrift.ai.network import load_model, read_metadata
from tests.training_fixtures import FAST
from training.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint
from training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parent.parent
CONFIG = FAST.replace(steps=30, keep_checkpoints=3)  # checkpoints at 10, 20 and 30, all kept
TIMEOUT_S = 120


@dataclass(frozen=True)
class Run:
    proc: subprocess.CompletedProcess[str]
    out: Path
    checkpoints: Path

    @property
    def result(self) -> dict[str, Any]:
        """The one JSON line the run printed (rank 0 only)."""
        lines = [ln for ln in self.proc.stdout.splitlines() if ln.startswith("{")]
        assert len(lines) == 1, f"expected one JSON line:\n{self.proc.stdout}"
        data: dict[str, Any] = json.loads(lines[0])
        return data


def _train(
    tmp: Path,
    name: str,
    dataset: Path,
    *,
    ranks: int,
    config: TrainConfig | None = CONFIG,
    extra: tuple[str, ...] = (),
    checkpoints: Path | None = None,
) -> Run:
    args = [
        "--dataset", str(dataset),
        "--out", str(tmp / f"{name}.pt"),
        "--checkpoints", str(checkpoints or tmp / f"{name}_ckpt"),
        "--board", "square8",
        "--json",
        *extra,
    ]  # fmt: skip
    if config is not None:
        cfg = tmp / f"{name}.json"
        cfg.write_text(config.to_json())
        args += ["--config", str(cfg)]
    launcher = ["-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--standalone"]
    cmd = [sys.executable, *(launcher if ranks > 1 else []), "-m", "training.run", *args]
    env = {k: v for k, v in os.environ.items() if k not in {"WORLD_SIZE", "RANK", "LOCAL_RANK"}}
    env |= {"RINGRIFT_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    return Run(proc, tmp / f"{name}.pt", checkpoints or tmp / f"{name}_ckpt")


def _ok(run: Run) -> Run:
    assert run.proc.returncode == 0, f"exit {run.proc.returncode}\n{run.proc.stderr[-4000:]}"
    return run


@pytest.fixture(scope="module")
def whole(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One uninterrupted 2-rank, 30-step run."""
    return _train(tmp_path_factory.mktemp("ddp"), "whole", dataset, ranks=2)


def test_two_ranks_train_save_and_checkpoint(whole: Run) -> None:
    _ok(whole)
    res = whole.result
    assert res["world_size"] == 2 and res["steps"] == 30
    assert res["resumed_from_step"] is None
    assert res["samples_seen"] == 30 * CONFIG.batch_size  # global batches, not per rank
    assert res["final_losses"] and all(math.isfinite(v) for v in res["final_losses"].values())
    assert res["steps_per_s"] > 0
    load_model(whole.out, "square8", CONFIG.arch)  # checks arch, board and encoder
    assert read_metadata(whole.out)["steps"] == 30
    assert [s for s, _ in list_checkpoints(whole.checkpoints)] == [10, 20, 30]
    assert TrainConfig.from_json((whole.checkpoints / "config.json").read_text()) == CONFIG
    # Only rank 0 reports: one human-readable progress stream, no second copy from rank 1.
    assert "[rank 1] INFO" not in whole.proc.stderr


def test_resume_under_ddp_is_exact(whole: Run, dataset: Path, tmp_path: Path) -> None:
    """A 2-rank run killed after its step-20 checkpoint, then re-run, ends where one that was
    never interrupted does, bit for bit.

    The interrupted run is the whole run's own ``ckpt_20`` alone in a fresh folder: exactly what
    a run that died between its checkpoints at 20 and 30 leaves. (A first run with ``--steps
    20`` would not do: the cosine schedule depends on the run's length, so its first 20 steps
    take other learning rates than a 30-step run's, and the weights differ by ~3e-2.)

    Exact equality holds on the CPU: every rank restores the same weights, optimiser state
    and RNG from rank 0's checkpoint, DDP re-broadcasts rank 0's weights and buffers, the batch
    of a step is a pure function of the step, each rank runs one thread, and a two-rank
    all-reduce adds the same two numbers in either order.
    """
    _ok(whole)
    folder = tmp_path / "resumed_ckpt"
    folder.mkdir()
    shutil.copy2(checkpoint_path(whole.checkpoints, 20), checkpoint_path(folder, 20))
    resumed = _ok(_train(tmp_path, "resumed", dataset, ranks=2, checkpoints=folder))
    assert resumed.result["resumed_from_step"] == 20 and resumed.result["steps"] == 30
    assert resumed.result["world_size"] == 2

    a = load_model(whole.out, "square8", CONFIG.arch).state_dict()
    b = load_model(resumed.out, "square8", CONFIG.arch).state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"weights differ after resume under DDP: {differ}"
    # The optimiser ends in the same state too (Adam moments and step counts).
    oa = load_checkpoint(checkpoint_path(whole.checkpoints, 30)).optimizer_state["state"]
    ob = load_checkpoint(checkpoint_path(folder, 30)).optimizer_state["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for key in oa[i]:
            assert torch.equal(oa[i][key], ob[i][key]), f"optimizer state {i}.{key} differs"


def test_single_process_run(dataset: Path, tmp_path: Path) -> None:
    run = _ok(_train(tmp_path, "single", dataset, ranks=1, extra=("--steps", "12")))
    res = run.result
    assert res["world_size"] == 1 and res["steps"] == 12 and res["resumed_from_step"] is None
    assert all(math.isfinite(v) for v in res["final_losses"].values())
    load_model(run.out, "square8", CONFIG.arch)
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [10, 12]


def test_bad_config_file_exits_2_naming_it(dataset: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("steps: 30\n")  # YAML-ish, not JSON
    run = _train(tmp_path, "bad", dataset, ranks=1, config=None, extra=("--config", str(bad)))
    assert run.proc.returncode == 2, run.proc.stderr
    lines = run.proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "not JSON" in lines[0], lines
    assert not run.out.exists() and not run.checkpoints.exists()


def test_missing_dataset_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.npz"
    run = _train(tmp_path, "missing", missing, ranks=1)
    assert run.proc.returncode == 2, run.proc.stderr
    assert str(missing) in run.proc.stderr and "Traceback" not in run.proc.stderr
