"""A model's weights written again from its training run's final checkpoint.

What replaces a model file found corrupt or missing (``pipeline.quarantine``). A finished run's
newest checkpoint holds the weights its model file was written from (the averaged ones too,
for a run that keeps an average) and everything that file's metadata was computed from: the
run's config, its early-stopping state, the last losses reported. Resuming from it trains no
step and writes the model file again. On the device that trained it the bytes come out the
same; the caller keeps the file only if it hashes to the recorded sha256, so a host whose
arithmetic differs reports that rather than passing off other weights under the same id.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

from sqlalchemy.orm import Session

from ringrift.infra.service import Service
from ringrift.pipeline import runs
from ringrift.store.models import Model, TrainingRun


class FinalCheckpoint(NamedTuple):
    """The finished run that made a model, and its final checkpoint in the store."""

    run: TrainingRun
    path: str
    sha256: str
    step: int


def final_checkpoint_of(s: Session, model: Model) -> FinalCheckpoint:
    """The finished run that made ``model`` and its final checkpoint; ``ValueError`` saying
    what is missing when there is none."""
    run = s.get(TrainingRun, model.training_run_id) if model.training_run_id else None
    if run is None:
        raise ValueError(f"no training run is recorded for {model.id}")
    if run.status != "done" or run.result_model_id != model.id:
        raise ValueError(f"{run.id} is {run.status}; it did not finish {model.id}")
    ckpt = runs.newest_checkpoint(s, run.id)
    if ckpt is None or ckpt.step != run.step:
        raise ValueError(f"{run.id}: its final checkpoint (step {run.step}) is not recorded")
    return FinalCheckpoint(run, ckpt.path, ckpt.sha256, ckpt.step)


def write_model_again(
    svc: Service,
    model: Model,
    final: FinalCheckpoint,
    dataset_path: Path,
    out: Path,
) -> None:
    """Write ``model``'s file to ``out`` from its run's final checkpoint (``final``) and
    dataset (a verified local copy at ``dataset_path``). ``ValueError`` when it cannot be done
    here."""
    from training.checkpoint import checkpoint_path, load_checkpoint
    from training.config import TrainConfig
    from training.loop import train

    run_id, generation, config = final.run.id, model.generation, model.config
    # a checkpoint that fails its checksum raises ArtifactCorrupt, a ValueError
    local = svc.cache.pull(f"{run_id}@{final.step}", final.path, final.sha256)
    with tempfile.TemporaryDirectory(dir=svc.settings.data_dir) as tmp:
        folder = Path(tmp)
        copy = checkpoint_path(folder, final.step)
        shutil.copyfile(local, copy)
        train_config = TrainConfig.from_dict(load_checkpoint(copy).config)
        try:
            train(
                train_config,
                dataset_path,
                out,
                board=config.split("_")[0],
                checkpoint_dir=folder,
                generation=generation,
                meta={"config": config, "run_id": run_id},  # what the training task adds
            )
        except (RuntimeError, AssertionError) as e:  # a device this host lacks, say
            raise ValueError(
                f"{run_id}'s final checkpoint could not be resumed here "
                f"({train_config.device}): {type(e).__name__}: {e}"
            ) from None
