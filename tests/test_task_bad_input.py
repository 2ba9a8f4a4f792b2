"""Bad input gives a clear error and writes nothing.

Tasks run in real worker subprocesses on a private Redis with a SQLite ledger. Each bad delivery
must end in FAILURE with a message (in the exception and the worker's traceback) that names what
was wrong, and leave the ledger and the artifact store as they were (a failed training run may
record its error: that is the one write a person needs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringrift.ai.encoding import ENCODER_VERSION
from ringrift.ai.selfplay import PlayedGame
from ringrift.chaos.scenarios import HOSTILE_IDS, REFUSED_PICKLE, send_pickle
from ringrift.pipeline.presets import TINY
from ringrift.pipeline.quarantine import quarantine_rows
from ringrift.pipeline.state import shard_name
from ringrift.store.models import Artifact, Model, PipelineState, TrainingRun
from tests.pipeline_fixtures import (
    Pipe,
    assert_unchanged,
    diff,
    live_pipeline,
    play_shard,
    save_network,
    scratch_dir,
)

CONFIG = "square8_2p"
UNKNOWN = "square9_2p"
WRONG_ARCH = "b2c16"  # the preset trains TINY.arch (b4c64)

SELFPLAY = "ringrift.selfplay.play_games"
COLLECT = "ringrift.sync.collect"
EXPORT = "ringrift.export.build_dataset"
TRAIN = "ringrift.train.train_model"
MATCH = "ringrift.evaluate.play_match"
VERIFY = "ringrift.promote.verify_promotion"
PROMOTE = "ringrift.promote.promote_model"
PULL = "ringrift.sync.pull"

# Model ids (and artifact ids) of the models below.
GOOD_MODEL = "model-square8_2p-good"  # a b4c64 file, recorded as b4c64
MISLABELED = "model-square8_2p-mislabeled"  # a b2c16 file, recorded as b4c64
OTHER_ARCH = "model-square8_2p-b2c16"  # a b2c16 file, recorded as b2c16


def MISMATCH(model_file: str) -> tuple[str, ...]:  # noqa: N802 - reads as a constant
    """What a load of ``model_file`` (b2c16 weights) as the preset's b4c64 must say."""
    return (f"/model/{model_file}: stored architecture is '{WRONG_ARCH}', expected '{TINY.arch}'",)


@pytest.fixture(scope="module")
def pipe(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipe]:
    with live_pipeline(redis_url, tmp_path_factory.mktemp("bad-input")) as p:
        p.add(PipelineState(config=CONFIG, preset="tiny", enabled=False))
        yield p


def _failure(pipe: Pipe, name: str, *args: Any, error: str | None, expect: tuple[str, ...]) -> str:
    """Deliver a task that must fail with an ``error`` (exception class name); every ``expect``
    text must be in the message the caller gets back and in the worker's traceback.

    The caller's exception is rebuilt from JSON, so its class may come back as a base class
    (``ArtifactCorrupt`` arrives as ``ValueError``); the worker's traceback names the real one.
    """
    exc, traceback = pipe.fail(name, *args, queue="gpu0")
    assert isinstance(exc, ValueError), f"{type(exc).__name__}: {exc}"
    if error is not None:
        assert f"{error}: " in traceback, f"{error} is not in the worker's traceback:\n{traceback}"
    message = str(exc)
    for text in expect:
        assert text in message, f"{text!r} is not in the error {message!r}"
        assert text in traceback, f"{text!r} is not in the worker's traceback:\n{traceback}"
    return message


def _no_games_from(pipe: Pipe, *shards: str) -> None:
    for shard in shards:
        assert pipe.count("games", "shard_artifact_id = :s", s=shard) == 0, shard


# --- (a) an unknown configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "args"),
    [
        (SELFPLAY, (UNKNOWN, 0, "bad", 0, 2, None, "tiny")),
        (COLLECT, ([{"artifact_id": shard_name(UNKNOWN, 0, "bad", 0)}], UNKNOWN, 0)),
        (EXPORT, (UNKNOWN, 0, "tiny")),
        (MATCH, (UNKNOWN, f"model-{UNKNOWN}-g1", "random", 2, "tiny")),
        (PROMOTE, (UNKNOWN, 0, f"model-{UNKNOWN}-g1")),
    ],
    ids=["selfplay", "collect", "export", "play_match", "promote"],
)
def test_unknown_config_is_named_and_nothing_written(
    pipe: Pipe, task: str, args: tuple[Any, ...]
) -> None:
    before = pipe.snapshot()
    _failure(
        pipe, task, *args, error="RingRiftError", expect=(f"unknown configuration '{UNKNOWN}'",)
    )
    assert_unchanged(before, pipe.snapshot(), f"{task} with an unknown config")


@pytest.mark.parametrize(
    ("task", "args", "expected"),
    [
        (SELFPLAY, (CONFIG, 0, "bad", 0, 0, None, "tiny"), "games must be between"),
        (SELFPLAY, (CONFIG, 0, "../x", 0, 2, None, "tiny"), "batch must be an alphanumeric id"),
        (SELFPLAY, (CONFIG, -1, "bad", 0, 2, None, "tiny"), "generation must be a non-negative"),
        (SELFPLAY, (CONFIG, 0, "bad", 0, 2, None, "huge"), "unknown preset 'huge'"),
        (SELFPLAY, (CONFIG, 0, "bad", 0, 2, "model-nowhere", "tiny"), "'model-nowhere'"),
        (COLLECT, ([{"artifact_id": "shard-nowhere"}], CONFIG, 0), "'shard-nowhere'"),
        (TRAIN, ("run-nowhere",), "'run-nowhere'"),
        (MATCH, (CONFIG, "model-nowhere", "random", 2, "tiny"), "'model-nowhere'"),
        (MATCH, (CONFIG, "model-nowhere", "random", 2, "tiny", -4), "first_game must be between"),
        (MATCH, (CONFIG, "model-nowhere", "random", 0, "tiny", 0), "games must be between"),
        (MATCH, (CONFIG, "model-x", "random", 2, "tiny", 0, "eval-y"), "evaluation must be"),
        (VERIFY, (CONFIG, 0, "model-nowhere"), "'model-nowhere' is not a square8_2p model"),
        (PROMOTE, (CONFIG, 0, "model-nowhere"), "model-nowhere"),
    ],
    ids=[
        "selfplay-games",
        "selfplay-batch",
        "selfplay-generation",
        "selfplay-preset",
        "selfplay-model",
        "collect-shard",
        "train-run",
        "match-candidate",
        "match-first-game",
        "match-games",
        "match-evaluation",
        "verify-model",
        "promote-candidate",
    ],
)
def test_bad_arguments_are_named_and_nothing_written(
    pipe: Pipe, task: str, args: tuple[Any, ...], expected: str
) -> None:
    before = pipe.snapshot()
    _failure(pipe, task, *args, error="ServiceError", expect=(expected,))
    assert_unchanged(before, pipe.snapshot(), f"{task}{args}")


# --- (b) corrupt shards -------------------------------------------------------------------------


def _store_shard(pipe: Pipe, batch: str, seeds: list[int], **kw: Any) -> str:
    name = shard_name(CONFIG, 0, batch, 0)
    path = scratch_dir(pipe) / "shard.jsonl.gz"
    play_shard(path, CONFIG, seeds, name, **kw)
    return pipe.put_artifact("shard", path, name, CONFIG)


def _set_aside(pipe: Pipe, shard: str) -> dict[str, Any]:
    """The quarantine record of ``shard``; its ledger row is gone and its file moved."""
    with pipe.svc.session() as s:
        rows = [r for r in quarantine_rows(s) if r["artifact_id"] == shard]
        assert s.get(Artifact, shard) is None, "its games must count as never played"
    assert len(rows) == 1, rows
    assert not (pipe.store_root / "shard" / shard).exists()
    assert (pipe.store_root / str(rows[0]["moved_to"])).is_file()
    return rows[0]


def test_collect_sets_aside_a_shard_whose_bytes_changed_and_keeps_the_others(pipe: Pipe) -> None:
    good = _store_shard(pipe, "intact", [1])
    bad = _store_shard(pipe, "flipped", [2])
    stored = pipe.store_root / "shard" / bad
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pipe.svc.session() as s:
        recorded = s.get(Artifact, bad)
        assert recorded is not None
        sha = recorded.sha256

    result = pipe.run(COLLECT, [{"artifact_id": good}, {"artifact_id": bad}], CONFIG, 0)
    assert result == {"ingested": 1, "shards": 2, "set_aside": [bad]}
    row = _set_aside(pipe, bad)
    assert f"artifact {stored} is corrupt: expected sha256 {sha}" in row["reason"]
    assert row["found_by"].startswith("collect on ")
    _no_games_from(pipe, bad)
    assert pipe.count("games", "shard_artifact_id = :s", s=good) == 1
    cached = list((pipe.data_dir / "cache").glob(f"*/shard/{bad}"))
    assert cached == [], "a copy that failed its checksum must not stay in a worker's cache"
    # Delivered again (the broker hands a message back): the shard reads as set aside.
    again = pipe.run(COLLECT, [{"artifact_id": good}, {"artifact_id": bad}], CONFIG, 0)
    assert again == {"ingested": 0, "shards": 2, "set_aside": [bad]}


def test_corrupt_artifact_error_keeps_its_class(pipe: Pipe) -> None:
    bad = _store_shard(pipe, "flipclass", [6])
    stored = pipe.store_root / "shard" / bad
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    _failure(
        pipe,
        PULL,
        bad,
        error="ArtifactCorrupt",
        expect=(f"artifact {stored} is corrupt",),
    )


def test_collect_sets_aside_a_shard_with_an_illegal_move(pipe: Pipe) -> None:
    def break_second_game(games: list[PlayedGame]) -> None:
        moves = games[1].record.moves
        moves[2] = moves[0]  # the opening placement again, where it is not legal

    good = _store_shard(pipe, "legal", [3])
    bad = _store_shard(pipe, "illegal", [4, 5], edit=break_second_game)
    result = pipe.run(COLLECT, [{"artifact_id": good}, {"artifact_id": bad}], CONFIG, 0)
    assert result == {"ingested": 1, "shards": 2, "set_aside": [bad]}
    # The shard's header is line 1, so the second game is line 3.
    row = _set_aside(pipe, bad)
    assert row["reason"].startswith("ShardError: ")
    assert f"shard/{bad}: line 3: move 'place_ring" in row["reason"]
    assert "is not legal" in row["reason"]
    _no_games_from(pipe, bad)


# --- (c) a model of the wrong architecture --------------------------------------------------


@pytest.fixture(scope="module")
def models(pipe: Pipe) -> dict[str, str]:
    """Three model rows: right, mislabeled (b2c16 weights recorded as b4c64), other arch."""
    tmp = scratch_dir(pipe)
    files = {
        GOOD_MODEL: (TINY.arch, save_network(tmp / "good.pt", "square8", TINY.arch)),
        MISLABELED: (TINY.arch, save_network(tmp / "small.pt", "square8", WRONG_ARCH)),
        OTHER_ARCH: (WRONG_ARCH, save_network(tmp / "other.pt", "square8", WRONG_ARCH, seed=1)),
    }
    for model_id, (recorded_arch, path) in files.items():
        artifact = pipe.put_artifact("model", path, model_id, CONFIG)
        pipe.add(
            Model(
                id=model_id,
                config=CONFIG,
                generation=1,
                architecture=recorded_arch,
                encoder_version=ENCODER_VERSION,
                artifact_id=artifact,
                status="candidate",
            )
        )
    return {model_id: arch for model_id, (arch, _) in files.items()}


@pytest.mark.parametrize(
    ("candidate", "opponent"),
    [(MISLABELED, "random"), (GOOD_MODEL, MISLABELED)],
    ids=["candidate", "opponent"],
)
def test_play_match_refuses_a_mislabeled_model(
    pipe: Pipe, models: dict[str, str], candidate: str, opponent: str
) -> None:
    before = pipe.snapshot()
    _failure(
        pipe,
        MATCH,
        CONFIG,
        candidate,
        opponent,
        2,
        "tiny",
        error="ModelMismatchError",
        expect=MISMATCH(MISLABELED),
    )
    assert_unchanged(before, pipe.snapshot(), "a match with a mislabeled model")
    assert pipe.count("evaluation_matches") == 0


def test_selfplay_refuses_a_mislabeled_model(pipe: Pipe, models: dict[str, str]) -> None:
    before = pipe.snapshot()
    args = (CONFIG, 0, "mislabeled", 0, 2, MISLABELED, "tiny")
    _failure(pipe, SELFPLAY, *args, error="ModelMismatchError", expect=MISMATCH(MISLABELED))
    assert_unchanged(before, pipe.snapshot(), "selfplay with a mislabeled model")


@pytest.fixture(scope="module")
def dataset(pipe: Pipe) -> str:
    from ringrift.ai.dataset import write_dataset

    tmp = scratch_dir(pipe)
    games = play_shard(tmp / "games.jsonl.gz", CONFIG, [11, 12], "ds")
    write_dataset(
        games,
        tmp / "dataset.npz",
        "square8",
        augment=False,
        meta={"config": CONFIG, "generation": 0},
    )
    return pipe.put_artifact("dataset", tmp / "dataset.npz", "dataset-square8_2p-test", CONFIG)


@pytest.mark.parametrize(
    ("generation", "init_model"), [(0, MISLABELED), (1, OTHER_ARCH)], ids=["mislabeled", "b2c16"]
)
def test_train_refuses_an_init_model_of_another_architecture(
    pipe: Pipe, models: dict[str, str], dataset: str, generation: int, init_model: str
) -> None:
    run_id = f"run-{CONFIG}-g{generation}"
    pipe.add(
        TrainingRun(
            id=run_id,
            config=CONFIG,
            generation=generation,
            dataset_artifact_id=dataset,
            init_model_id=init_model,
            status="pending",
            total_steps=TINY.train_config().steps,
        )
    )
    before = pipe.snapshot()
    _failure(pipe, TRAIN, run_id, error="ModelMismatchError", expect=MISMATCH(init_model))

    after = pipe.snapshot()
    changes = diff(before, after)
    assert set(changes) == {"training_runs"}, f"only the run's status may change: {changes}"
    with pipe.svc.session() as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None
        assert run.status == "failed" and run.result_model_id is None and run.step == 0
        assert run.error is not None and run.error.startswith("ModelMismatchError: ")
        assert all(text in run.error for text in MISMATCH(init_model)), run.error
    assert pipe.count("models", "training_run_id = :r", r=run_id) == 0
    # A late copy of the message does not try again: the run waits for a person.
    late = pipe.run(TRAIN, run_id, queue="cpu", timeout=60)
    assert late["status"] == "failed"
    assert not diff(after, pipe.snapshot())
    # No checkpoint or model file appeared in the store (the run's folder may exist, empty).
    run_dir = pipe.store_root / "runs" / run_id
    assert not run_dir.exists() or not any(p.is_file() for p in run_dir.rglob("*"))


# --- (e) hostile ids and huge messages -----------------------------------------------------------


def _outside(pipe: Pipe) -> dict[str, int]:
    """Every file beside and above the store in the test's folder, with its size."""
    base = pipe.data_dir.parent
    return {
        str(p.relative_to(base)): p.stat().st_size
        for p in base.rglob("*")
        if p.is_file()
        and "logs" not in p.parts
        and pipe.store_root not in p.parents
        and not p.name.startswith("ledger")
    }


@pytest.mark.parametrize("kind", list(HOSTILE_IDS))
@pytest.mark.parametrize(
    ("task", "make_args"),
    [
        (COLLECT, lambda bad: ([{"artifact_id": bad}], CONFIG, 0)),
        (TRAIN, lambda bad: (bad,)),
        (MATCH, lambda bad: (CONFIG, bad, "random", 2, "tiny")),
        (VERIFY, lambda bad: (CONFIG, 0, bad)),
        (PROMOTE, lambda bad: (CONFIG, 0, bad)),
        (SELFPLAY, lambda bad: (CONFIG, 0, "batch", 0, 2, bad, "tiny")),
    ],
    ids=["collect", "train", "play_match", "verify", "promote", "selfplay-model"],
)
def test_hostile_ids_are_refused_and_nothing_outside_the_store_is_touched(
    pipe: Pipe, task: str, make_args: Any, kind: str
) -> None:
    bad = HOSTILE_IDS[kind]
    before, outside = pipe.snapshot(), _outside(pipe)
    exc, traceback = pipe.fail(task, *make_args(bad), queue="gpu0")
    assert isinstance(exc, ValueError), f"{type(exc).__name__}: {exc}"
    assert len(str(exc)) < 2_000 and len(traceback) < 20_000, "the bad value is quoted, cut short"
    if kind == "nul" and task != TRAIN:  # refused by its shape, before any database sees it
        field = {COLLECT: "results[0].artifact_id", MATCH: "candidate_id", PROMOTE: "candidate_id"}
        assert f"{field.get(task, 'model_id')} must be an id" in str(exc), str(exc)
        assert "control character" in str(exc)
    assert_unchanged(before, pipe.snapshot(), f"{task} with a {kind} id")
    assert _outside(pipe) == outside


def test_a_100_mb_message_is_refused_with_a_short_error_and_nothing_written(pipe: Pipe) -> None:
    before = pipe.snapshot()
    huge = "x" * 100_000_000
    exc, traceback = pipe.fail(EXPORT, huge, 0, "tiny", timeout=180)
    assert "unknown configuration 'xxx" in str(exc) and "more characters" in str(exc)
    assert len(str(exc)) < 2_000 and len(traceback) < 20_000
    assert_unchanged(before, pipe.snapshot(), "a 100 MB config name")


# --- (f) a pickle message, sent by hand ----------------------------------------------------------


def test_a_pickle_message_is_refused_unread(pipe: Pipe) -> None:
    import time

    marker = scratch_dir(pipe) / "pickle-ran"
    before = pipe.snapshot()
    log_size = len(pipe.worker_log("cpu"))
    send_pickle(pipe.env["RINGRIFT_BROKER_URL"], "cpu", marker, CONFIG)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "pickle" not in pipe.worker_log("cpu")[log_size:]:
        time.sleep(0.2)
    said = pipe.worker_log("cpu")[log_size:]
    assert REFUSED_PICKLE in said, said[-2000:]
    assert not marker.exists(), "the pickle was loaded"
    assert_unchanged(before, pipe.snapshot(), "a pickle message")
    # the worker goes on serving JSON messages
    assert pipe.run("ringrift.pipeline.list", queue="cpu", timeout=30) is not None


# --- (g) property-based: any argument of the wrong type ----------------------------------------

# Each public task with arguments that pass validation, and for each position the words its
# error must use to name that argument.
VALID_CALLS: dict[str, tuple[tuple[Any, ...], tuple[tuple[str, ...], ...]]] = {
    SELFPLAY: (
        (CONFIG, 0, "fuzz", 0, 2, None, "tiny", 0),
        (
            ("config",),
            ("generation",),
            ("batch",),
            ("index",),
            ("games",),
            ("model",),
            ("preset",),
            ("exploration",),
        ),
    ),
    COLLECT: (
        ([], CONFIG, 0),
        (("results", "selfplay"), ("config",), ("generation",)),
    ),
    EXPORT: ((CONFIG, 0, "tiny"), (("config",), ("generation",), ("preset",))),
    TRAIN: (("run-fuzz", None), (("run_id",), ("segment",))),
    MATCH: (
        (CONFIG, "model-fuzz", "random", 2, "tiny", 0, None),
        (
            ("config",),
            ("candidate",),
            ("opponent",),
            ("games",),
            ("preset",),
            ("first_game",),
            ("evaluation",),
        ),
    ),
    VERIFY: ((CONFIG, 0, "model-fuzz"), (("config",), ("generation",), ("model_id", "model"))),
    PROMOTE: ((CONFIG, 0, "model-fuzz"), (("config",), ("generation",), ("candidate",))),
    "ringrift.sync.broadcast_model": (("model-fuzz",), (("model_id", "model"),)),
    "ringrift.evaluate.rate": ((CONFIG,), (("config",),)),
    "ringrift.pipeline.stop": ((CONFIG,), (("config",),)),
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _wrong_type(valid: Any) -> st.SearchStrategy[Any]:
    """JSON values of another type than ``valid`` (an optional argument's None counts as valid:
    its non-None type is the str, so ints, lists and dicts are wrong for it)."""
    if isinstance(valid, bool) or valid is None:
        return JSON.filter(lambda v: not isinstance(v, str) and v is not None)
    kind = type(valid)
    return JSON.filter(lambda v: not isinstance(v, kind) or isinstance(v, bool))


@st.composite
def _bad_call(draw: st.DrawFn) -> tuple[str, tuple[Any, ...], int]:
    task = draw(st.sampled_from(sorted(VALID_CALLS)))
    args, _ = VALID_CALLS[task]
    at = draw(st.integers(0, len(args) - 1))
    bad = draw(_wrong_type(args[at]))
    return task, (*args[:at], bad, *args[at + 1 :]), at


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(call=_bad_call())
def test_any_argument_of_the_wrong_type_is_named_and_nothing_written(
    pipe: Pipe, call: tuple[str, tuple[Any, ...], int]
) -> None:
    task, args, at = call
    before = pipe.snapshot()
    exc, _ = pipe.fail(task, *args, queue="cpu", timeout=60)
    words = VALID_CALLS[task][1][at]
    message = str(exc)
    assert isinstance(exc, ValueError), f"{task}{args!r}: {type(exc).__name__}: {message}"
    assert any(w in message for w in words), f"{task}{args!r}: {message!r} names none of {words}"
    assert_unchanged(before, pipe.snapshot(), f"{task}{args!r}")
