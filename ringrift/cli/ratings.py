"""``ringrift ratings``: a configuration's rating table as rows, one per rated model or baseline,
best first, from the stored fit (``--refit`` fits it again from the ledger first)."""

from __future__ import annotations

from typing import Any

from ringrift.infra.service import Service
from ringrift.pipeline.rating_table import refit, stored_fit, table
from ringrift.pipeline.state import check_config
from ringrift.store.models import Model


def ratings_report(svc: Service, config: str, *, again: bool = False) -> list[dict[str, Any]]:
    """The rows of ``config``'s table: player (sha256 or baseline), model id, generation,
    status, rating with its 95% interval, games, and when the fit was stored."""
    check_config(config)
    with svc.session() as s:
        if again:
            refit(s, config)
    with svc.session() as s:
        fitted = stored_fit(s, config)
        rows = []
        for r in table(s, config):
            model = s.get(Model, r.model_id) if r.model_id else None
            rows.append(
                {
                    "player": r.player,
                    "model_id": r.model_id,
                    "generation": r.generation,
                    "status": model.status if model else "baseline",
                    "rating": round(r.rating, 1),
                    "low": round(r.low, 1),
                    "high": round(r.high, 1),
                    "games": r.games,
                    "chunks_fitted": fitted.matches if fitted else None,
                    "fitted_at": fitted.updated_at.isoformat() if fitted else None,
                }
            )
    return rows
