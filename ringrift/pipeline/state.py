"""The loop's state machine, read from the ledger: what is due for a configuration, and the
idempotent steps that move it on.

Iteration ``k`` of a configuration (``PipelineState.generation``) plays selfplay games with the
current best model, exports a dataset from the newest games, trains candidate
``model-<config>-g<k+1>`` from it, evaluates the candidate and lets the gate promote or reject
it; then iteration ``k+1`` starts. Every artifact and row of iteration ``k`` has a fixed name,
so a repeated step finds its own finished work. ``reconcile`` is both the chord callbacks' fast
path and the beat tick's guarantee: it derives everything from the ledger, and a Redis claim
(SET NX with a time-out) makes sure two callers never start the same stage twice.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ringrift.ai.selfplay import ShardError, ShardHeader, read_shard
from ringrift.errors import ServiceError
from ringrift.game import RULES_VERSION, GameConfig
from ringrift.infra.service import Service
from ringrift.infra.unacked import taken_before, task_ids_taken_before
from ringrift.pipeline.gate import GateDecision, MatchScore, decide, opponent_kind
from ringrift.pipeline.heartbeat import (
    FAILED_RETRY_SECONDS,
    STARTED,
    Dispatch,
    Member,
    beating,
    dispatched,
    forget_dispatch,
    is_lost,
    record_dispatch,
    retry_delay,
    take_over,
)
from ringrift.pipeline.presets import Preset, preset
from ringrift.pipeline.quarantine import SetAside, verified
from ringrift.pipeline.repairs import MATCH_RESENT, SHARD_COLLECTED, STAGE_RESTARTED, count
from ringrift.pipeline.sprt import sprt
from ringrift.store import ingest_games
from ringrift.store.db import insert_ignoring_duplicates
from ringrift.store.models import (
    Artifact,
    EvaluationMatch,
    Game,
    Model,
    PipelineState,
    ScheduleChange,
    TrainingRun,
    utcnow,
)

log = logging.getLogger(__name__)
CLAIM_PREFIX = "ringrift:claim:"
STAGE_STARTED = "ringrift:stage-started:"  # + stage key: it was started once (a second is a repair)
STAGE_STARTED_SECONDS = 30 * 24 * 3600
FIXED_OPPONENTS = ("random", "heuristic")
MATCHES_PER_EVALUATION = len(FIXED_OPPONENTS) + 1  # and the best model, once there is one
CHUNK_MARK = "@"  # a chunk's name: ``<evaluation>/<opponent>@<first game>``


# ----- names: one per (config, iteration) ------------------------------------------------


def shard_name(config: str, generation: int, batch: str, index: int) -> str:
    return f"shard-{config}-g{generation}-{batch}-{index:02d}"


def dataset_name(config: str, generation: int) -> str:
    return f"dataset-{config}-g{generation}"


def dataset_generation(artifact_id: str) -> int:
    """The generation in a ``dataset_name``; ``ValueError`` for an id not of that form."""
    head, sep, generation = artifact_id.rpartition("-g")
    if not (head.startswith("dataset-") and sep and generation.isascii() and generation.isdigit()):
        raise ValueError(f"{artifact_id!r} is not a dataset name (dataset-<config>-g<N>)")
    return int(generation)


def run_name(config: str, generation: int) -> str:
    return f"run-{config}-g{generation}"


def candidate_name(config: str, generation: int) -> str:
    return f"model-{config}-g{generation + 1}"


def evaluation_name(candidate_id: str) -> str:
    return f"eval-{candidate_id}"


def check_name(model_id: str) -> str:
    """The short match a newly promoted model plays against the best it replaced."""
    return f"check-{model_id}"


def match_name(
    candidate_id: str, opponent: str, first_game: int = 0, evaluation: str | None = None
) -> str:
    """One chunk of a match of an evaluation (from game ``first_game`` on; the candidate's
    gate evaluation unless ``evaluation`` names its check): the id its heartbeat and its place
    in the dispatched group go by."""
    return chunk_name(evaluation or evaluation_name(candidate_id), opponent, first_game)


def chunk_name(evaluation_id: str, opponent: str, first_game: int) -> str:
    """The name of one chunk of evaluation ``evaluation_id`` (``parse_match_name`` reads it)."""
    return f"{evaluation_id}/{opponent}{CHUNK_MARK}{first_game}"


def parse_match_name(name: str) -> tuple[str, str, int]:
    """(evaluation id, opponent, first game) of a ``match_name``."""
    rest, _, first = name.rpartition(CHUNK_MARK)
    evaluation_id, _, opponent = rest.rpartition("/")
    if not evaluation_id or not opponent or not first.isdigit():
        raise ServiceError(f"not an evaluation chunk's name: {name!r}")
    return evaluation_id, opponent, int(first)


def chunks(games: int, size: int) -> list[tuple[int, int]]:
    """(first game, games) of each chunk of a ``games``-game match."""
    return [(first, min(size, games - first)) for first in range(0, games, size)]


def missing_chunks(
    opponent: str, games: int, size: int, recorded: set[tuple[str, int]]
) -> list[list[Any]]:
    """``[opponent, first game, games]`` of each chunk of a ``games``-game match against
    ``opponent`` that has no (opponent, first game) in ``recorded``."""
    todo = [(first, n) for first, n in chunks(games, size) if (opponent, first) not in recorded]
    return [[opponent, first, n] for first, n in todo]


# ----- validation shared by the tasks --------------------------------------------------------


def check_config(name: Any) -> GameConfig:
    if not isinstance(name, str):
        raise ServiceError(f"config must be a string like 'square8_2p', got {name!r}")
    return GameConfig.parse(name)


def check_count(field: str, value: Any, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (a JSON true is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ServiceError(f"{field} must be between {low} and {high}, got {value!r}")
    return value


MAX_ID = 200  # the longest id a task accepts (the ledger's id columns are shorter still)


def check_id(field: str, value: Any, *, optional: bool = False) -> str | None:
    """An id argument (a model's, a run's, a shard's): a non-empty string of at most
    ``MAX_ID`` characters and no control character such as NUL, which no id holds and some
    databases cannot even compare (or None, when optional)."""
    if value is None and optional:
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ID
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)
    ):
        kind = f"an id (1 to {MAX_ID} characters, none of them a control character)"
        raise ServiceError(f"{field} must be {kind}{' or null' if optional else ''}, got {value!r}")
    return value


def check_generation(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ServiceError(f"generation must be a non-negative integer, got {value!r}")
    return value


# ----- the public controls: start, stop, list -------------------------------------------------


def enable_pipeline(
    s: Session,
    config: Any,
    preset_name: Any = "default",
    generations: Any = None,
    weight: Any = None,
) -> PipelineState:
    """Enable ``config``'s loop on ``preset_name``; ``generations`` more iterations from where it
    stands (None: no end); ``weight``, its curriculum weight (None: keep it). The beat's next
    tick starts what is due."""
    check_config(config)
    if not isinstance(preset_name, str):
        raise ServiceError(f"preset must be a preset name, got {preset_name!r}")
    preset(preset_name)  # an unknown name is an error naming the known ones
    if generations is not None and (
        not isinstance(generations, int) or isinstance(generations, bool) or generations < 1
    ):
        raise ServiceError(f"generations must be a whole number of 1 or more, got {generations!r}")
    if weight is not None and (
        not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 < weight <= 100
    ):
        raise ServiceError(f"weight must be a number above 0 and at most 100, got {weight!r}")
    st = s.get(PipelineState, config)
    if st is None:
        st = PipelineState(config=config, generation=0, stage="selfplay")
        s.add(st)
    st.enabled = True
    st.preset = preset_name
    st.target_generations = None if generations is None else int(st.generation) + generations
    if weight is not None:
        st.weight = float(weight)
    s.flush()
    return st


def disable_pipeline(s: Session, config: Any) -> PipelineState:
    """Stop starting new work for ``config``; tasks already running finish."""
    check_config(config)
    st = s.get(PipelineState, config)
    if st is None:
        raise ServiceError(f"no pipeline for {config}; start one first")
    st.enabled = False
    s.flush()
    return st


def pipeline_rows(s: Session) -> list[dict[str, Any]]:
    """Every configuration that has a pipeline, enabled or not."""
    rows = s.scalars(select(PipelineState).order_by(PipelineState.config))
    return [
        {
            "config": st.config,
            "enabled": st.enabled,
            "preset": st.preset,
            "generation": st.generation,
            "target_generations": st.target_generations,
            "stage": st.stage,
            "best_model": st.best_model_id,
            "weight": st.weight,
            "exploration": st.exploration,
        }
        for st in rows
    ]


def load_state(s: Session, config: str) -> PipelineState:
    st = s.get(PipelineState, config)
    if st is None:
        raise ServiceError(f"no pipeline for config {config!r}: start one with `ringrift loop`")
    return st


# ----- claims: at most one start per stage --------------------------------------------------


# A fresh claim lasts this long, time enough to send its work; once the work is queued the
# sender extends it (``confirm``), so a sender that dies or fails in between leaves no claim
# guarding nothing for longer than this.
SEND_SECONDS = 120

_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"
)
_DROP = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end"
)


def claim(r: redis.Redis, key: str, seconds: int) -> str | None:
    """Take the claim on ``key`` for ``seconds``; its token if this caller got it."""
    token = secrets.token_hex(8)
    if r.set(CLAIM_PREFIX + key, token, nx=True, ex=seconds):
        return token
    held = r.get(CLAIM_PREFIX + key)  # a retried SET whose first reply was lost is still ours
    return token if held is not None and _text(held) == token else None


def confirm(r: redis.Redis, key: str, token: str, seconds: int) -> bool:
    """The claim's work is queued: keep the claim ``seconds`` more, if it is still ours (the
    work may have finished and released it already)."""
    return bool(r.eval(_EXTEND, 1, CLAIM_PREFIX + key, token, seconds))


def drop(r: redis.Redis, key: str, token: str) -> None:
    """Give up a claim whose work could not be sent, if it is still ours."""
    r.eval(_DROP, 1, CLAIM_PREFIX + key, token)


def release(r: redis.Redis, key: str) -> None:
    r.delete(CLAIM_PREFIX + key)


@contextmanager
def running_stage(svc: Service, r: redis.Redis, key: str) -> Iterator[None]:
    """The body of a one-task stage (export, decide, verify): it beats under the stage's key,
    so a tick finds a worker killed mid-task as soon as the beat stops and starts the stage
    again. Its claim, sent for the preset's ``pickup_seconds``, lasts ``claim_seconds`` from
    the moment the body begins; when the body ends the claim is released, and if it raised,
    the claim lapses after ``retry_delay`` (the rule chunks and training segments follow)."""
    config = key.split(":", 1)[0]
    with svc.session() as s:
        st = s.get(PipelineState, config)
        seconds = preset(st.preset if st is not None else "default", config).claim_seconds
    r.expire(CLAIM_PREFIX + key, seconds)  # begun: no longer waiting to be picked up
    beat = svc.settings.task_heartbeat_seconds
    with beating(r, key, beat, svc.settings.host, retry_failed_after=FAILED_RETRY_SECONDS):
        try:
            yield
        except Exception as e:
            r.expire(CLAIM_PREFIX + key, retry_delay(e))
            raise
    release(r, key)


def hold(r: redis.Redis, key: str, seconds: int) -> None:
    """(Re)take the claim on ``key`` for ``seconds`` from now: a long task that is alive keeps
    the beat from starting its stage again."""
    r.set(CLAIM_PREFIX + key, "held", ex=seconds)


# ----- selfplay and collection ----------------------------------------------------------------


def shard_game_rows(
    artifact: Artifact, games: list[dict[str, Any]], generation: int, model_id: str | None
) -> list[dict[str, Any]]:
    rows = []
    for g in games:
        rows.append(
            {
                "id": g["id"],
                "config": g["config"],
                "generation": generation,
                "model_id": model_id,
                "seed": int(g["seed"]),
                "record": json.dumps(g["record"], separators=(",", ":")),
                "targets": json.dumps(g["targets"], separators=(",", ":")),
                "winner": g["winner"],
                "ranking": list(g["ranks"]),
                "length": int(g["length"]),
                "termination": g["termination"],
                "rules_version": RULES_VERSION,  # read_shard refuses shards of other rules
                "search": json.dumps(g["search"], separators=(",", ":")) if "search" in g else None,
                "shard_artifact_id": artifact.id,
            }
        )
    return rows


def ingest_shard(svc: Service, s: Session, artifact: Artifact, found_by: str) -> int | None:
    """Verify a shard (checksum, then replay of every game) and ingest its games once; the
    number of games new to the ledger.

    A shard that proves bad (checksum, structure, another configuration's games, or no file)
    is set aside with its reason and replaced from its source (``pipeline.quarantine``):
    None, nothing ingested. ``found_by`` names the stage and host for that record."""
    if artifact.kind != "shard":
        raise ServiceError(f"artifact {artifact.id} is a {artifact.kind}, not a shard")
    artifact_id, recorded = artifact.id, artifact.config

    def read(path: Path) -> tuple[ShardHeader, list[dict[str, Any]]]:
        header, games = read_shard(path)
        if recorded and header.config != recorded:
            raise ShardError(
                f"shard {artifact_id} holds {header.config} games, recorded as {recorded}"
            )
        return header, games

    try:
        header, games = verified(svc, s, artifact, found_by, read)
    except SetAside:
        return None  # dropped (its games are played again), or rebuilt and still unusable
    return ingest_games(s, shard_game_rows(artifact, games, header.generation, header.model_id))


ORPHAN_SHARD_SECONDS = 120  # a shard uncollected this long lost its chained collect
# (the tick's own threshold is two task heartbeats: 120 s by default)


def uncollected_shards(
    s: Session, config: str, older_than_s: float = ORPHAN_SHARD_SECONDS
) -> list[Artifact]:
    """Stored shards of ``config`` whose games are not in the ledger yet, stored more than
    ``older_than_s`` seconds ago: their own collect, chained after the task that played them,
    was lost (a worker that died between storing a shard and sending its collect). Younger ones
    are left to that collect, which keeps shard verification out of the tick."""
    prefix = f"shard-{config}-g"
    collected = select(Game.shard_artifact_id).where(Game.config == config).distinct()
    before = utcnow() - timedelta(seconds=older_than_s)
    q = (
        select(Artifact)
        .where(
            Artifact.kind == "shard",
            Artifact.id.startswith(prefix),
            Artifact.id.not_in(collected),
            Artifact.created_at < before,
        )
        .order_by(Artifact.id)
    )
    return list(s.scalars(q))


def collect_shards(
    svc: Service, s: Session, config: str, older_than_s: float | None = None
) -> list[str]:
    """Ingest ``uncollected_shards`` (by default those older than two heartbeats: a chained
    collect that long overdue went with its worker); returns the shards collected. One that
    proves bad (corrupt, another rules version) is set aside and recorded by ``ingest_shard``
    (``ringrift quarantine`` lists them) and is not among those returned."""
    if older_than_s is None:
        older_than_s = 2 * svc.settings.task_heartbeat_seconds
    collected = []
    for artifact in uncollected_shards(s, config, older_than_s):
        artifact_id = artifact.id
        n = ingest_shard(svc, s, artifact, f"the tick's collect on {svc.settings.host}")
        if n is None:
            continue  # set aside: its games are played again
        log.info("%s: collected %d games from %s", config, n, artifact_id)
        collected.append(artifact_id)
    return collected


def game_count(s: Session, config: str, generation: int | None = None) -> int:
    """Games of the current rules version (the only ones export takes)."""
    q = (
        select(func.count())
        .select_from(Game)
        .where(Game.config == config, Game.rules_version == RULES_VERSION)
    )
    if generation is not None:
        q = q.where(Game.generation == generation)
    return int(s.scalar(q) or 0)


# ----- the evaluation decision: the only way to promote --------------------------------------


def current_best(s: Session, st: PipelineState) -> str | None:
    """The best model, if it was trained under the current rules: one of another rules version
    is neither played nor trained from (``load_model`` would refuse it), so the configuration
    starts again from no model, as at generation 0."""
    if st.best_model_id is None:
        return None
    model = s.get(Model, st.best_model_id)
    if model is None or model.rules_version != RULES_VERSION:
        return None
    return st.best_model_id


def opponents_for(best: str | None) -> list[str]:
    return [*FIXED_OPPONENTS, *([best] if best else [])]


def match_rows(
    s: Session, candidate_id: str, evaluation: str | None = None
) -> list[EvaluationMatch]:
    """Every recorded chunk of ``candidate_id``'s evaluation (or of ``evaluation``)."""
    return list(
        s.scalars(
            select(EvaluationMatch)
            .where(EvaluationMatch.evaluation_id == (evaluation or evaluation_name(candidate_id)))
            .order_by(EvaluationMatch.opponent, EvaluationMatch.first_game)
        )
    )


def match_scores(rows: list[EvaluationMatch]) -> dict[str, MatchScore]:
    """Each opponent's chunks added up into one match score (games per score value merged);
    rows recorded before chunks count their wins, draws and losses."""
    out: dict[str, MatchScore] = {}
    for row in rows:
        counts: dict[float, int] = (
            {float(k): int(v) for k, v in json.loads(row.histogram).items()}
            if row.histogram is not None
            else {1.0: row.wins, 0.5: row.draws, 0.0: row.losses}
        )
        total = row.wins + 0.5 * row.draws if row.score is None else row.score
        old = out.get(row.opponent)
        if old is not None:
            assert old.histogram is not None and old.score_sum is not None
            for value, n in old.histogram.items():
                counts[value] = counts.get(value, 0) + n
            total += old.score_sum
        out[row.opponent] = MatchScore(
            row.opponent,
            row.games + (old.games if old else 0),
            row.wins + (old.wins if old else 0),
            row.losses + (old.losses if old else 0),
            row.draws + (old.draws if old else 0),
            total,
            {v: n for v, n in sorted(counts.items()) if n},
        )
    return out


def due_chunks(p: Preset, rows: list[EvaluationMatch], best: str | None) -> list[list[Any]]:
    """The chunks still to play, ``[opponent, first game, games]`` each: the next
    ``p.sprt_wave`` against the best while its test is undecided (first, as the test is the
    long pole), then every missing chunk of the fixed opponents."""
    recorded = {(row.opponent, row.first_game) for row in rows}
    out: list[list[Any]] = []
    if best is not None:
        score = match_scores([row for row in rows if row.opponent == best]).get(best)
        if not sprt(score.counts() if score else {}, p.sprt).decided:
            todo = missing_chunks(best, p.match_games("best"), p.eval_chunk_games, recorded)
            out += todo[: p.sprt_wave]
    for opponent in FIXED_OPPONENTS:
        games = p.match_games(opponent_kind(opponent))
        out += missing_chunks(opponent, games, p.eval_chunk_games, recorded)
    return out


def gate_decision(s: Session, st: PipelineState, candidate_id: str, p: Preset) -> GateDecision:
    scores = list(match_scores(match_rows(s, candidate_id)).values())
    return decide(scores, p.gate, has_best=current_best(s, st) is not None, test=p.sprt)


def apply_decision(s: Session, config: str, generation: int, candidate_id: str) -> str:
    """Decide a fully evaluated candidate once, and start iteration ``generation + 1``.

    Promotion moves the best-model pointer by compare-and-set from the best the candidate was
    evaluated against. Returns "promoted", "rejected" or "already decided".
    """
    st = load_state(s, config)
    model = s.get(Model, candidate_id)
    if model is None:
        raise ServiceError(f"candidate {candidate_id} is not in the ledger")
    if st.generation != generation or model.status != "candidate":
        return "already decided"
    p = preset(st.preset, config)
    decision = gate_decision(s, st, candidate_id, p)
    outcome = "rejected"
    replaced = current_best(s, st)
    if decision.promote:
        from ringrift.store import cas_best_model

        if cas_best_model(s, config, st.best_model_id, candidate_id):
            outcome = "promoted"
            s.refresh(st)
    model.status = outcome
    model.decision = json.dumps(
        {
            "promote": decision.promote,
            "reasons": decision.reasons,
            "sprt": decision.sprt.to_dict() if decision.sprt else None,
            # the best it replaced, which it plays again before its generation trains
            "replaced": replaced if outcome == "promoted" else None,
        }
    )
    model.decided_at = utcnow()
    st.generation = generation + 1
    st.stage = "selfplay"
    s.flush()
    adjust_exploration(s, st, p, candidate_id, outcome)
    log.info("%s: candidate %s %s (%s)", config, candidate_id, outcome, "; ".join(decision.reasons))
    return outcome


def apply_check(s: Session, config: str, model_id: str) -> str:
    """Judge a new best's check match against the best it replaced, once: when the check's 95%
    upper bound is below the preset's ``rollback_below``, the best-model pointer moves back by
    compare-and-set and the model is marked ``rolled_back`` (never a candidate again; only
    candidates are promoted). The evidence goes into the model's decision and a
    ``schedule_changes`` row. Returns "kept", "rolled back", "kept: the best moved on" or
    "already checked"."""
    st = load_state(s, config)
    model = s.get(Model, model_id)
    if model is None or model.config != config:
        raise ServiceError(f"{model_id!r} is not a {config} model in the ledger")
    decision = json.loads(model.decision or "{}")
    replaced = decision.get("replaced")
    if "check" in decision:
        return "already checked"
    if not replaced:
        raise ServiceError(f"{model_id} replaced no best model: there is nothing to check")
    p = preset(st.preset, config)
    score = match_scores(match_rows(s, model_id, check_name(model_id))).get(replaced)
    if score is None or score.games < p.rollback_games:
        raise ServiceError(f"the check of {model_id} against {replaced} is not all recorded")
    low, high = score.interval()
    outcome = "kept"
    if high < p.rollback_below:
        from ringrift.store import cas_best_model

        if cas_best_model(s, config, model_id, replaced):
            outcome = "rolled back"
            model.status = "rolled_back"
            s.refresh(st)
        else:
            outcome = "kept: the best moved on"
    evidence = (
        f"{model_id} scored {score.score:.3f} over {score.games} games against {replaced}, "
        f"95% interval [{low:.3f}, {high:.3f}]; rolls back below {p.rollback_below}: {outcome}"
    )
    decision["check"] = {
        "opponent": replaced,
        "games": score.games,
        "score": round(score.score, 6),
        "low": round(low, 6),
        "high": round(high, 6),
        "bound": p.rollback_below,
        "outcome": outcome,
    }
    model.decision = json.dumps(decision)
    if outcome == "rolled back":
        s.add(ScheduleChange(config=config, kind="rollback", reason=evidence))
    s.flush()
    (log.warning if outcome == "rolled back" else log.info)("%s: %s", config, evidence)
    return outcome


def target_reached(st: PipelineState) -> bool:
    """The loop has made the generations it was asked for (never, without a target)."""
    return st.target_generations is not None and st.generation >= st.target_generations


def is_done(s: Session, st: PipelineState) -> bool:
    """The loop has reached its target and its last new best has been checked."""
    return target_reached(st) and check_due(s, st, preset(st.preset, st.config)) is None


def check_due(s: Session, st: PipelineState, p: Preset) -> Due | None:
    """The check a newly promoted best still owes before its generation exports and trains:
    its missing chunks against the best it replaced, or the verdict once they are in."""
    best = current_best(s, st)
    if best is None or p.rollback_games <= 0:
        return None
    model = s.get(Model, best)
    decision = json.loads(model.decision or "{}") if model else {}
    replaced = decision.get("replaced")
    if not replaced or "check" in decision:
        return None
    name = check_name(best)
    recorded = {(r.opponent, r.first_game) for r in match_rows(s, best, name)}
    todo = missing_chunks(replaced, p.rollback_games, p.eval_chunk_games, recorded)
    k = st.generation
    if todo:
        detail = {"candidate_id": best, "matches": todo, "evaluation": name, "preset": p.name}
        return Due("check", st.config, k, detail)
    return Due("verify", st.config, k, {"model_id": best})


MAX_EXPLORATION = 3


def rejected_in_a_row(s: Session, config: str) -> int:
    """Decided candidates of ``config`` rejected since its last promotion."""
    statuses = s.scalars(
        select(Model.status)
        .where(Model.config == config, Model.status.in_(("promoted", "rejected")))
        .order_by(Model.generation.desc(), Model.id.desc())
    )
    n = 0
    for status in statuses:
        if status != "rejected":
            break
        n += 1
    return n


def adjust_exploration(
    s: Session, st: PipelineState, p: Preset, candidate_id: str, outcome: str
) -> None:
    """The feedback loop: every ``exploration_patience`` rejections in a row (the rating has
    not improved over that many evaluations) raise selfplay exploration one level; a promotion
    lowers it one level. A rejection short of the patience changes nothing. Each change is a
    ``ScheduleChange`` row with its reason."""
    level = st.exploration
    if outcome == "promoted" and level > 0:
        level, reason = level - 1, f"{candidate_id} promoted: exploration lowered"
    elif outcome == "rejected":
        streak = rejected_in_a_row(s, st.config)
        if streak % p.exploration_patience or level >= MAX_EXPLORATION:
            return
        level, reason = (
            level + 1,
            f"{streak} candidates rejected in a row (patience {p.exploration_patience}): "
            "no rating gain, exploration raised",
        )
    else:
        return
    st.exploration = level
    s.add(ScheduleChange(config=st.config, kind="exploration", exploration=level, reason=reason))
    s.flush()
    log.info("%s: exploration level %d (%s)", st.config, level, reason)


# ----- what is due ------------------------------------------------------------------------------


@dataclass
class Due:
    """One thing ``reconcile`` found to do; ``tasks.pipeline.start`` enqueues it."""

    stage: str
    config: str
    generation: int
    detail: dict[str, Any]
    claim: str | None = None  # the token of the claim ``reconcile`` took for it
    claim_seconds: int = 0  # how long that claim lasts once the work is queued

    @property
    def key(self) -> str:
        return f"{self.config}:{self.generation}:{self.stage}"


def group_for(due: Due) -> Dispatch:
    """The chord an evaluate or check item is sent as: one member per chunk, named as its
    result will be, and the callback that moves the loop on."""
    d = due.detail
    if due.stage in MATCH_STAGES:
        cand, evaluation = d["candidate_id"], d.get("evaluation")
        extra = [evaluation] if evaluation else []
        members = [
            Member(
                match_name(cand, opp, first, evaluation),
                "ringrift.evaluate.play_match",
                [due.config, cand, opp, games, d["preset"], first, *extra],
            )
            for opp, first, games in d["matches"]
        ]
        args = [due.config, due.generation, cand, *([due.stage] if due.stage != "evaluate" else [])]
        decide = Member("decide", "ringrift.evaluate.decide", args)
        return Dispatch(due.stage, members, decide)
    raise ServiceError(f"stage {due.stage!r} is not sent as a group")


def _plan(svc: Service, r: redis.Redis, config: str) -> tuple[str | None, Due | None]:
    """The stage ``config`` is in and the task it needs, from the ledger as it is now.

    Cheap, idempotent repairs happen on the way: finished shards are ingested and the training
    run row is created. Nothing is claimed or started here.
    """
    with svc.session() as s:
        st = s.get(PipelineState, config)
        if st is None or not st.enabled:
            return None, None
        k = st.generation
        p = preset(st.preset, config)
        for _ in collect_shards(svc, s, config):
            count(r, SHARD_COLLECTED)
        s.flush()
        check = check_due(s, st, p)
        if check is not None:  # selfplay goes on meanwhile; export waits for the verdict
            return "checking the new best", check  # the last generation's best is checked too
        if target_reached(st):
            return "done", None
        dataset = s.get(Artifact, dataset_name(config, k))
        if dataset is None:
            new = game_count(s, config) - st.last_export_game_count
            if new < p.games_per_generation:
                return "selfplay", None  # the scheduler feeds it (``pipeline.scheduler``)
            return "export", Due("export", config, k, {"preset": p.name})
        run = s.get(TrainingRun, run_name(config, k))
        if run is None:
            s.execute(
                insert_ignoring_duplicates(s, TrainingRun.__table__),  # type: ignore[arg-type]
                [
                    {
                        "id": run_name(config, k),
                        "config": config,
                        "generation": k,
                        "dataset_artifact_id": dataset.id,
                        "init_model_id": current_best(s, st),
                        "status": "pending",
                        "total_steps": p.train_config().steps,
                        "train_config": p.train_config().to_json(),
                    }
                ],
            )
            run = s.get(TrainingRun, run_name(config, k))
            assert run is not None
        if run.status in ("failed", "cancelled"):
            # waits for a person (`ringrift status` shows why; `ringrift train resume`)
            return f"training {run.status}", None
        if run.status != "done":
            return "training", Due("train", config, k, {"run_id": run.id, "segment": run.segment})
        candidate_id = run.result_model_id
        if candidate_id is None:
            raise ServiceError(f"training run {run.id} is done but names no model")
        missing = due_chunks(p, match_rows(s, candidate_id), current_best(s, st))
        if missing:
            return "evaluating", Due(
                "evaluate",
                config,
                k,
                {"candidate_id": candidate_id, "matches": missing, "preset": p.name},
            )
        return "evaluating", Due("decide", config, k, {"candidate_id": candidate_id})


def _record_stage(svc: Service, config: str, stage: str) -> None:
    """Informational, for `ringrift status`; a plain UPDATE so it never races the CAS writes."""
    with svc.session() as s:
        s.execute(
            update(PipelineState)
            .where(PipelineState.config == config, PipelineState.stage != stage)
            .values(stage=stage)
        )


MATCH_STAGES = ("evaluate", "check")  # stages that play evaluation chunks: one cap, one line


@dataclass(frozen=True)
class Limits:
    """Caps over all configurations (None: no cap): trainings at once, and evaluation matches
    in flight, a new best's check matches included (an evaluation or check sends as many of its
    matches as there is room for, the rest once those are in). ``tasks.pipeline`` sets them
    from the live queues."""

    trainings: int | None = None
    eval_matches: int | None = None

    def of(self, stage: str) -> int | None:
        if stage in MATCH_STAGES:
            return self.eval_matches
        return self.trainings if stage == "train" else None


def slot_line(stage: str) -> str:
    """The stage whose slots ``stage`` waits for: a check waits in the evaluations' line."""
    return "evaluate" if stage in MATCH_STAGES else stage


SLOT_WAIT = "ringrift:slot-wait:"  # + stage: a sorted set, configuration -> when it began waiting
SLOT_WAIT_SECONDS = 120  # a waiter no reconcile has seen for this long has stopped waiting


def in_flight(svc: Service, r: redis.Redis, stage: str) -> int:
    """How much of ``stage``'s cap is taken now, all configurations together: one per held
    training claim; for evaluations and checks (one cap), one per match sent whose result is
    not in yet (a claim whose matches are not recorded as sent yet counts one), so each match
    frees its slot as soon as it ends."""
    stages = MATCH_STAGES if stage in MATCH_STAGES else (stage,)
    keys = [_text(k) for st in stages for k in r.scan_iter(f"{CLAIM_PREFIX}*:{st}", count=1000)]
    if stage not in MATCH_STAGES:
        return len(keys)
    groups = [dispatched(r, key.removeprefix(CLAIM_PREFIX)) for key in keys]
    with svc.session() as s:
        return sum(1 if g is None else len(g.members) - len(_finished(s, g)) for g in groups)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def waiting_place(r: redis.Redis, stage: str, config: str) -> int:
    """``config``'s place (0: next) among the configurations waiting for one of ``stage``'s
    slots. First come, first served: a configuration that became ready later, or that the tick
    happens to reconcile first, does not overtake one that has waited longer."""
    line, mine = SLOT_WAIT + stage, f"{SLOT_WAIT}{stage}:{config}"
    # (re)joins at the back when unseen for a while; otherwise keeps its place, and is put back
    # at the back if a concurrent ``stop_waiting`` (another reconcile of the same
    # configuration that won the claim) took it out
    r.zadd(line, {config: time.time()}, nx=bool(r.exists(mine)))
    r.set(mine, 1, ex=SLOT_WAIT_SECONDS)
    waiters = [_text(c) for c in r.zrange(line, 0, -1)]  # type: ignore[arg-type]
    seen = r.mget([f"{SLOT_WAIT}{stage}:{c}" for c in waiters])
    gone = [c for c, alive in zip(waiters, seen, strict=True) if alive is None]
    if gone:
        r.zrem(line, *gone)
    alive = [c for c in waiters if c not in gone]
    return alive.index(config) if config in alive else len(alive)


def stop_waiting(r: redis.Redis, stage: str, config: str) -> None:
    r.zrem(SLOT_WAIT + stage, config)
    r.delete(f"{SLOT_WAIT}{stage}:{config}")


def reconcile(svc: Service, r: redis.Redis, config: str, limits: Limits | None = None) -> list[Due]:
    """What ``config`` needs started now, each item already claimed.

    The claim comes first and the ledger is read again after it: a task that finishes a stage
    commits before the claim is released, so whoever wins the claim afterwards sees the
    finished work and starts nothing twice. While the claim is held, members of the stage's
    group whose worker died are sent again (``resend``). A capped stage waits its turn for room
    (``waiting_place``); an evaluation is sent with as many matches as there is room for.
    """
    stage, due = _plan(svc, r, config)
    if stage is not None:
        _record_stage(svc, config, stage)
    if due is None:
        return []
    p = preset(due.detail.get("preset") or _preset_name(svc, config), config)
    release_if_finished(svc, r, due.key)
    if due.stage != "evaluate":  # an evaluation whose matches are all in frees its slot
        release_if_finished(svc, r, f"{config}:{due.generation}:evaluate")
    cap = (limits or Limits()).of(due.stage)
    room: int | None = None
    if cap is not None and not r.exists(CLAIM_PREFIX + due.key):
        room = cap - in_flight(svc, r, due.stage)
        place = waiting_place(r, slot_line(due.stage), config)
        if room <= 0 or place > 0:
            ahead = f", {place} ahead" if place else ""
            _record_stage(svc, config, f"{due.stage}: waits for a slot{ahead}")
            return []
    restarted = r.exists(STAGE_STARTED + due.key)
    token = claim(r, due.key, SEND_SECONDS)
    beat = svc.settings.task_heartbeat_seconds
    if token is None and (_lost_single(r, due) or _stranded_single(r, due, beat)):
        release(r, due.key)
        token = claim(r, due.key, SEND_SECONDS)
        restarted = 1
    if token is None:
        return _resend_lost(svc, r, due, p.claim_seconds)
    if room is not None:
        stop_waiting(r, slot_line(due.stage), config)
    _, again = _plan(svc, r, config)
    if again is None or again.key != due.key:
        release(r, due.key)
        return []
    if restarted:
        log.warning("%s: %s started again (its claim lapsed)", config, due.key)
        count(r, STAGE_RESTARTED)
    r.set(STAGE_STARTED + due.key, 1, ex=STAGE_STARTED_SECONDS)
    if room is not None and again.stage in MATCH_STAGES:
        again.detail["matches"] = again.detail["matches"][: max(1, room)]
    # a one-task stage's claim lasts until its task begins (which extends it to the preset's
    # claim_seconds): a task taken by a worker that died before starting it is sent again
    seconds = p.pickup_seconds if single_task_id(again) is not None else p.claim_seconds
    return [replace(again, claim=token, claim_seconds=seconds)]


def finished_members(s: Session, stage: str, member_ids: list[str]) -> set[str]:
    """The members of a dispatched group that left their result in the ledger: one query for
    a selfplay group, one per evaluation for chunks."""
    if stage == "selfplay":
        if not member_ids:
            return set()
        return set(s.scalars(select(Artifact.id).where(Artifact.id.in_(member_ids))))
    if stage in MATCH_STAGES:
        wanted: dict[str, set[tuple[str, int]]] = {}
        for member_id in member_ids:
            evaluation_id, opponent, first = parse_match_name(member_id)
            wanted.setdefault(evaluation_id, set()).add((opponent, first))
        done: set[str] = set()
        for evaluation_id, chunks_wanted in wanted.items():
            recorded = s.execute(
                select(EvaluationMatch.opponent, EvaluationMatch.first_game).where(
                    EvaluationMatch.evaluation_id == evaluation_id
                )
            ).all()
            done.update(
                chunk_name(evaluation_id, opponent, first)
                for opponent, first in recorded
                if (opponent, first) in chunks_wanted
            )
        return done
    raise ServiceError(f"no group members in stage {stage!r}")


def _finished(s: Session, group: Dispatch) -> set[str]:
    return finished_members(s, group.stage, [m.id for m in group.members])


def release_if_finished(svc: Service, r: redis.Redis, key: str) -> None:
    """Every member of the group sent for ``key`` left its result: the stage is free again
    (its chord callback may never run if a member was sent a second time)."""
    group = dispatched(r, key)
    if group is None:
        return
    with svc.session() as s:
        if len(_finished(s, group)) == len(group.members):
            release(r, key)
            forget_dispatch(r, key)
            r.delete(STAGE_STARTED + key)  # claiming the rest of an evaluation is no repair


def segment_task_id(run_id: str) -> str:
    """The heartbeat id of a training run's current segment (``ringrift health`` reads it)."""
    return f"{run_id}/segment"


def single_task_id(due: Due) -> str | None:
    """The heartbeat id of a stage run by one task (None for a stage of several): the stage's
    key, or for training the run's segment."""
    if due.stage == "train":
        return segment_task_id(due.detail["run_id"])
    return due.key if due.stage in ("export", "decide", "verify") else None


SENT = "ringrift:sent:"  # + stage key: the id of the task sent for a one-task stage


def note_sent(r: redis.Redis, key: str, task_id: str, seconds: int) -> None:
    """Remember the message sent for one-task stage ``key`` while it waits to begin, so that a
    tick can tell when a worker took it and died before beginning it (``_stranded_single``)."""
    r.set(SENT + key, task_id, ex=max(1, seconds))


def _stranded_single(r: redis.Redis, due: Due, older_than: int) -> bool:
    """``due``'s claimed one-task stage was taken by a worker that died before beginning it:
    the message sent for it has sat unacknowledged ``older_than`` seconds or more (the broker
    would hand it back only after hours) and its task never began. True for exactly one
    caller, who sends the stage again; the stale copy, if ever handed back, finds it done."""
    task_id = single_task_id(due)
    if task_id is None or r.exists(STARTED + task_id):
        return False
    sent = r.get(SENT + due.key)
    if sent is None:
        return False
    sent_id = sent.decode() if isinstance(sent, bytes) else str(sent)
    if sent_id not in task_ids_taken_before(r, older_than) or not r.delete(SENT + due.key):
        return False
    log.warning(
        "%s: %s was taken by a worker that died before beginning it; sending it again",
        due.config,
        due.key,
    )
    return True


def _lost_single(r: redis.Redis, due: Due) -> bool:
    """``due``'s claimed one-task stage lost its worker (started, no longer beating); true for
    exactly one caller, who starts it again."""
    task_id = single_task_id(due)
    if task_id is None or not is_lost(r, task_id) or not take_over(r, task_id):
        return False
    log.warning("%s: %s lost its worker; starting it again", due.config, due.key)
    return True


NEVER_BEGUN = "ringrift:never-begun:"  # + member id: sent again once for that


def _never_begun(
    r: redis.Redis, members: list[Member], older_than: int, hold_for: int
) -> list[Member]:
    """The ``members`` whose message a worker took ``older_than`` seconds ago or more and
    that never began (no start marker): that worker died first, and the broker would hand the
    message back only after hours. Each is returned to one caller only (a marker held
    ``hold_for`` seconds); the copy the broker hands back later finds its work done."""
    unbegun = [m for m in members if not r.exists(STARTED + m.id)]
    if not unbegun:  # every member began: nothing to read from the broker
        return []
    taken = {(task, json.dumps(args)) for task, args in taken_before(r, older_than)}
    out = []
    for m in unbegun:
        if (m.task, json.dumps(list(m.args))) not in taken:
            continue
        if r.set(NEVER_BEGUN + m.id, 1, nx=True, ex=hold_for):
            out.append(m)
    return out


def _resend_lost(svc: Service, r: redis.Redis, due: Due, seconds: int) -> list[Due]:
    """The members of ``due``'s running group whose worker died, to be sent again now."""
    group = dispatched(r, due.key)
    if group is None:
        return []
    with svc.session() as s:
        finished = _finished(s, group)
    lost = [m for m in group.members if is_lost(r, m.id) and m.id not in finished]
    lost = [m for m in lost if take_over(r, m.id)]
    waiting = [m for m in group.members if m.id not in finished and m not in lost]
    lost += _never_begun(r, waiting, svc.settings.task_heartbeat_seconds, seconds)
    if not lost:
        return []
    hold(r, due.key, seconds)  # the stage is at work again
    record_dispatch(r, due.key, group, seconds)
    for m in lost:
        log.warning("%s: %s lost its worker; sending it again", due.config, m.id)
    count(r, MATCH_RESENT, len(lost))
    resend = dict(group.__dict__, members=lost, seconds=seconds)
    return [Due("resend", due.config, due.generation, resend)]


def _preset_name(svc: Service, config: str) -> str:
    with svc.session() as s:
        return load_state(s, config).preset
