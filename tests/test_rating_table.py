"""A configuration's rating table in the ledger: one fit of every recorded chunk, each model
keyed by its weights, written only over an older fit, and ``ringrift ratings`` showing it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from ringrift.infra.service import Service
from ringrift.pipeline.rating_table import refit, table
from ringrift.store.models import EvaluationMatch, RatingFit
from tests.celery_harness import REPO, run_cli
from tests.ledger_harness import add_model, ledger_service

CONFIG = "square8_2p"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with ledger_service(tmp_path) as service:
        yield service


def _model(svc: Service, generation: int, sha: str, status: str = "promoted") -> str:
    with svc.session() as s:
        return add_model(s, CONFIG, generation, status=status, sha256=sha * 64)


def _chunk(svc: Service, candidate: str, opponent: str, wins: int, games: int = 16) -> None:
    with svc.session() as s:
        first = sum(
            1 for _ in s.query(EvaluationMatch).filter_by(candidate_id=candidate, opponent=opponent)
        )
        s.add(
            EvaluationMatch(
                evaluation_id=f"eval-{candidate}",
                config=CONFIG,
                candidate_id=candidate,
                opponent=opponent,
                first_game=first * games,
                games=games,
                wins=wins,
                losses=games - wins,
                draws=0,
                score=float(wins),
            )
        )


def test_every_chunk_is_fitted_once_per_model_with_random_at_zero(svc: Service) -> None:
    g1 = _model(svc, 1, "a")
    g2 = _model(svc, 2, "b")
    _chunk(svc, g1, "random", 12)
    _chunk(svc, g1, "heuristic", 4)
    _chunk(svc, g2, "random", 15)
    _chunk(svc, g2, "heuristic", 10)
    _chunk(svc, g2, g1, 12)
    _chunk(svc, g2, g1, 11)  # a second chunk of the same match counts as well
    with svc.session() as s:
        assert refit(s, CONFIG) == 4
    with svc.session() as s:
        stored = table(s, CONFIG)
        rows = {r.model_id or r.player: r for r in stored}
        assert set(rows) == {g1, g2, "random", "heuristic"}
        assert [r.rating for r in stored] == sorted((r.rating for r in stored), reverse=True)
        assert rows["heuristic"].rating > rows[g1].rating  # g1 scored 4 of 16 against it
        assert rows["random"].rating == 0 and rows["random"].low == rows["random"].high == 0
        assert rows[g2].player == "b" * 64 and rows[g2].generation == 2
        assert rows[g2].rating > rows[g1].rating > 0
        assert rows[g2].low < rows[g2].rating < rows[g2].high
        assert rows[g2].games == 16 * 4 and rows[g1].games == 32 + 32
        fit = s.get(RatingFit, CONFIG)
        assert fit is not None and fit.matches == 6


def test_a_fit_is_written_only_over_an_older_one(svc: Service) -> None:
    g1 = _model(svc, 1, "a")
    _chunk(svc, g1, "random", 12)
    with svc.session() as s:
        assert refit(s, CONFIG) == 2
    with svc.session() as s:
        assert refit(s, CONFIG) is None  # the same chunks: the stored fit stands
    _chunk(svc, g1, "random", 16)
    with svc.session() as s:  # a fit that read more chunks got there first
        s.execute(update(RatingFit).values(matches=99, last_match_id=10**6))
    with svc.session() as s:
        assert refit(s, CONFIG) is None
        assert s.get(RatingFit, CONFIG).matches == 99  # type: ignore[union-attr]
    with svc.session() as s:
        s.execute(update(RatingFit).values(matches=1, last_match_id=1))
    with svc.session() as s:
        assert refit(s, CONFIG) == 2
        [model] = [r for r in table(s, CONFIG) if r.model_id]
        assert model.games == 32


def test_the_same_weights_under_two_names_are_one_player(svc: Service) -> None:
    g1 = _model(svc, 1, "a")
    g2 = _model(svc, 2, "a", status="rejected")  # trained to the very same weights
    _chunk(svc, g1, "random", 12)
    _chunk(svc, g2, "random", 13)
    _chunk(svc, g2, g1, 8)  # against itself: no information, left out
    with svc.session() as s:
        assert refit(s, CONFIG) == 2
        [model] = [r for r in table(s, CONFIG) if r.model_id]
        assert model.model_id == g1 and model.player == "a" * 64 and model.games == 32


def test_ringrift_ratings_prints_the_table_and_json(svc: Service, tmp_path: Path) -> None:
    g1 = _model(svc, 1, "a")
    _chunk(svc, g1, "random", 14)
    _chunk(svc, g1, "heuristic", 9)
    env = dict(os.environ)
    env.update(
        RINGRIFT_DATA_DIR=str(tmp_path),
        RINGRIFT_DATABASE_URL=svc.settings.database_url,
        PYTHONPATH=str(REPO),
    )
    empty = run_cli(env, "ratings", "--config", CONFIG)
    assert empty.returncode == 0, empty.stderr
    assert f"no ratings for {CONFIG} yet" in empty.stdout
    shown = run_cli(env, "ratings", "--config", CONFIG, "--refit", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout.strip().splitlines()[-1])
    assert [r["model_id"] or r["player"] for r in rows][0] == g1
    assert {r["player"] for r in rows} == {"a" * 64, "random", "heuristic"}
    for r in rows:
        assert r["low"] <= r["rating"] <= r["high"] and r["chunks_fitted"] == 2
    text = run_cli(env, "ratings", "--config", CONFIG)
    assert text.returncode == 0, text.stderr
    assert "g1" not in text.stdout.split() and g1 in text.stdout and "random" in text.stdout
    assert "fitted from 2 recorded chunks" in text.stdout
    bad = run_cli(env, "ratings", "--config", "square9_2p")
    assert bad.returncode == 2 and "square9_2p" in bad.stderr


def test_ringrift_plot_ratings_draws_a_png(svc: Service, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        RINGRIFT_DATA_DIR=str(tmp_path),
        RINGRIFT_DATABASE_URL=svc.settings.database_url,
        PYTHONPATH=str(REPO),
    )
    out = tmp_path / "charts" / "ratings.png"
    none = run_cli(env, "plot", "ratings", "--config", CONFIG, "--out", str(out))
    assert none.returncode == 2 and f"no rated models for {CONFIG}" in none.stderr
    assert not out.exists()
    g1 = _model(svc, 1, "a")
    g2 = _model(svc, 2, "b", status="rejected")
    g3 = _model(svc, 3, "c")
    for model, wins in ((g1, 11), (g2, 12), (g3, 15)):
        _chunk(svc, model, "random", wins)
        _chunk(svc, model, "heuristic", wins - 6)
    _chunk(svc, g3, g1, 12)
    with svc.session() as s:
        assert refit(s, CONFIG) == 5
    drawn = run_cli(env, "plot", "ratings", "--config", CONFIG, "--out", str(out))
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.strip() == f"{out}: 3 models of {CONFIG}"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
