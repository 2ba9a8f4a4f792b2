"""Files are data, never code: a model, checkpoint or dataset that carries a pickled object is
refused with an error naming the file, and the object is never built (its unpickling would
create a marker file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ringrift.ai.dataset import ARRAYS, DatasetError, load_dataset
from ringrift.ai.network import ModelMismatchError, load_model
from training.checkpoint import CheckpointError, load_checkpoint


class Payload:
    """Unpickling this opens ``path`` for writing: the file appearing would prove code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_a_model_file_carrying_a_pickled_object_is_refused(tmp_path: Path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "model.pt"
    torch.save({"state_dict": {}, "meta": {"arch": "b2c16", "evil": Payload(marker)}}, path)
    with pytest.raises(ModelMismatchError, match=f"{path}: not a readable model file"):
        load_model(path, "square8", "b2c16")
    assert not marker.exists()


def test_a_checkpoint_carrying_a_pickled_object_is_refused(tmp_path: Path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "step_00000010.pt"
    torch.save({"format": "ringrift-checkpoint", "step": 10, "model": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=f"{path}: unreadable checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_dataset_carrying_pickled_arrays_is_refused(tmp_path: Path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "dataset.npz"
    objects = np.empty(1, dtype=object)
    objects[0] = Payload(marker)
    np.savez(path, **{name: objects for name in ("meta", *ARRAYS)})
    with pytest.raises(DatasetError, match=f"{path}: not a readable dataset file"):
        load_dataset(path, expect_encoder_version=1, expect_board="square8", mmap=False)
    assert not marker.exists()
