"""``ringrift.export.build_dataset``: the newest games of a configuration, as a training dataset
(NPZ, each position once with its symmetry maps: training applies a random board symmetry per
sample), streamed from the ledger so memory stays bounded."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from celery.utils.log import get_task_logger

from ringrift.celery import app
from ringrift.infra.service import current, redis_client
from ringrift.pipeline.ledger_games import export_window
from ringrift.pipeline.presets import preset
from ringrift.pipeline.state import (
    check_config,
    check_generation,
    dataset_name,
    game_count,
    running_stage,
)
from ringrift.store import record_artifact
from ringrift.store.models import Artifact, PipelineState

log = get_task_logger(__name__)


@app.task(name="ringrift.export.build_dataset")
def build_dataset(config: str, generation: int, preset_name: str) -> dict[str, Any]:
    cfg = check_config(config)
    check_generation(generation)
    p = preset(preset_name, config)
    name = dataset_name(config, generation)
    svc, r = current(), redis_client()
    key = f"{config}:{generation}:export"
    with running_stage(svc, r, key), svc.session() as s:
        if s.get(Artifact, name) is not None:
            log.info("dataset %s already exported (redelivery)", name)
        else:
            with tempfile.TemporaryDirectory(dir=svc.settings.data_dir) as tmp:
                path = Path(tmp) / "dataset.npz"
                stats = export_window(s, cfg, generation, p.window_games, path)
                ref = svc.store.put_file("dataset", path, name=name, config=config)
            record_artifact(s, ref, config)
            st = s.get(PipelineState, config)
            if st is not None:
                st.last_export_game_count = game_count(s, config)
            log.info("exported %s: %s", name, stats)
    from ringrift.tasks.pipeline import hand_on

    hand_on(config)
    return {"artifact_id": name}
