"""``ringrift.export.build_dataset``: the newest games of a configuration, as a training dataset
(NPZ, each position once with its symmetry maps: training applies a random board symmetry per
sample), streamed from the ledger so memory stays bounded."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from celery.utils.log import get_task_logger
from sqlalchemy import select
from sqlalchemy.orm import Session

from ringrift.ai.dataset import write_dataset
from ringrift.celery import app
from ringrift.game import RULES_VERSION
from ringrift.infra.service import current, redis_client
from ringrift.pipeline.presets import preset
from ringrift.pipeline.state import (
    check_config,
    check_generation,
    dataset_name,
    game_count,
    running_stage,
)
from ringrift.store import record_artifact
from ringrift.store.models import Artifact, Game, PipelineState

log = get_task_logger(__name__)


def _as_shard_game(g: Game) -> dict[str, Any]:
    return {
        "id": g.id,
        "config": g.config,
        "record": json.loads(g.record),
        "targets": json.loads(g.targets),
        "ranks": list(g.ranking),
        "winner": g.winner,
    }


class LedgerGames(Sequence[dict[str, Any]]):
    """The export window as a re-iterable sequence: each pass streams rows from the ledger."""

    def __init__(self, session: Session, config: str, generation: int, limit: int) -> None:
        self.session = session
        newest = (
            select(Game.id)
            .where(
                Game.config == config,
                Game.generation <= generation,
                Game.rules_version == RULES_VERSION,  # older games teach other rules
            )
            .order_by(Game.created_at.desc(), Game.id.desc())
            .limit(limit)
        )
        # oldest first: the trainer's recency weighting reads a game's position as its age
        self.ids = list(reversed(session.scalars(newest).all()))

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for start in range(0, len(self.ids), 256):
            chunk = self.ids[start : start + 256]
            rows = {g.id: g for g in self.session.scalars(select(Game).where(Game.id.in_(chunk)))}
            for gid in chunk:
                yield _as_shard_game(rows[gid])
            self.session.expunge_all()

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        g = self.session.get(Game, self.ids[i])
        assert g is not None
        return _as_shard_game(g)


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
            games = LedgerGames(s, config, generation, p.window_games)
            with tempfile.TemporaryDirectory(dir=svc.settings.data_dir) as tmp:
                path = Path(tmp) / "dataset.npz"
                stats = write_dataset(
                    games,
                    path,
                    cfg.board,
                    augment=False,  # 8-12x smaller; the trainer draws symmetries on the fly
                    meta={"config": config, "generation": generation},
                )
                ref = svc.store.put_file("dataset", path, name=name, config=config)
            record_artifact(s, ref, config)
            st = s.get(PipelineState, config)
            if st is not None:
                st.last_export_game_count = game_count(s, config)
            log.info("exported %s: %s", name, stats)
    from ringrift.tasks.pipeline import hand_on

    hand_on(config)
    return {"artifact_id": name}
