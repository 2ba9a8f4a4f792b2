"""``ringrift plot ratings``: a configuration's rated models over generations and over
wall-clock time, from the stored rating table, as a PNG (matplotlib, no display needed).

Each model is a point with its 95% interval; promoted models are filled, the others hollow; random
(0) and the heuristic are horizontal lines. Time runs from the configuration's first model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ringrift.errors import ServiceError
from ringrift.infra.service import Service
from ringrift.pipeline.rating_table import table
from ringrift.pipeline.state import check_config
from ringrift.store.models import Model


@dataclass(frozen=True)
class Point:
    model_id: str
    generation: int
    at: datetime  # when the model was made
    rating: float
    low: float
    high: float
    promoted: bool


def rating_points(svc: Service, config: str) -> tuple[list[Point], dict[str, float]]:
    """The rated models of ``config`` by generation, and the baselines' ratings."""
    check_config(config)
    points, baselines = [], {}
    with svc.session() as s:
        for r in table(s, config):
            model = s.get(Model, r.model_id) if r.model_id else None
            if model is None:
                baselines[r.player] = r.rating
                continue
            points.append(
                Point(
                    model.id,
                    model.generation,
                    model.created_at,
                    r.rating,
                    r.low,
                    r.high,
                    model.status == "promoted",
                )
            )
    return sorted(points, key=lambda p: (p.generation, p.model_id)), baselines


def plot_ratings(svc: Service, config: str, out: Path) -> int:
    """Draw ``config``'s ratings into ``out`` (PNG); returns the number of models drawn."""
    points, baselines = rating_points(svc, config)
    if not points:
        raise ServiceError(
            f"no rated models for {config}: ratings are fitted after each evaluation "
            f"(`ringrift ratings --config {config} --refit` fits them from the ledger)"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = min(p.at for p in points)
    hours = [(p.at - start).total_seconds() / 3600 for p in points]
    fig, (by_gen, by_time) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, xs, label in (
        (by_gen, [p.generation for p in points], "generation"),
        (by_time, hours, "hours since the first model"),
    ):
        for promoted in (True, False):
            sel = [i for i, p in enumerate(points) if p.promoted is promoted]
            if not sel:
                continue
            ax.errorbar(
                [xs[i] for i in sel],
                [points[i].rating for i in sel],
                yerr=[
                    [points[i].rating - points[i].low for i in sel],
                    [points[i].high - points[i].rating for i in sel],
                ],
                fmt="o",
                mfc="tab:blue" if promoted else "white",
                mec="tab:blue",
                ecolor="tab:blue" if promoted else "lightsteelblue",
                capsize=2,
                label="promoted" if promoted else "not promoted",
            )
        best = [i for i, p in enumerate(points) if p.promoted]
        ax.plot([xs[i] for i in best], [points[i].rating for i in best], "-", color="tab:blue")
        for name, value in sorted(baselines.items()):
            color = "gray" if name == "random" else "tab:orange"
            ax.axhline(value, linestyle="--", color=color, linewidth=1, label=name)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    by_gen.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_gen.set_ylabel("Elo (random = 0), 95% interval")
    by_gen.legend(loc="best", fontsize="small")
    fig.suptitle(f"{config}: ratings of every evaluated model")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return len(points)
