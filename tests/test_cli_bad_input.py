"""Every ``ringrift`` command refuses bad values with one clear error line, before it starts
anything: property-based tests (hypothesis) over each command's options, run through the
command's own entry point in this process against a ledger of its own, which must be unchanged
afterwards."""

from __future__ import annotations

import contextlib
import io
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import ringrift.infra.service as service
from ringrift.ai.network import parse_arch
from ringrift.chaos.scenarios import FAULTS
from ringrift.cli.main import main
from ringrift.game import GameConfig, RingRiftError
from ringrift.pipeline.presets import PRESETS
from ringrift.pipeline.state import enable_pipeline
from ringrift.store import make_engine, migrate, session_factory
from ringrift.store.models import Artifact, PipelineState, QuarantinedArtifact, TrainingRun

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ledger holding one pipeline, which every command is pointed at; the process's
    service is put back as it was afterwards."""
    home = tmp_path_factory.mktemp("cli-home")
    url = f"sqlite:///{home / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as s:
        enable_pipeline(s, "square8_2p", "tiny", 1)
        s.commit()
    engine.dispose()
    saved_env = dict(os.environ)
    saved = (service._current, service._redis, service._patient)
    os.environ.update(
        RINGRIFT_DATA_DIR=str(home),
        RINGRIFT_DATABASE_URL=url,
        RINGRIFT_BROKER_URL="redis://127.0.0.1:1/0",  # nothing answers: no command needs it
    )
    service._current = None
    try:
        yield url
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        service._current, service._redis, service._patient = saved


def _counts(url: str) -> tuple[int, ...]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            return tuple(
                int(s.scalar(select(func.count()).select_from(table)) or 0)
                for table in (Artifact, PipelineState, QuarantinedArtifact, TrainingRun)
            ) + (int(s.scalar(select(func.max(PipelineState.version))) or 0),)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _no_process_started(args: list[str]) -> Iterator[None]:
    """A command refusing its input starts nothing: a loop or a benchmark that started after
    all would fail the test here at once, instead of running on in this process."""

    def tripwire(*_: object, **__: object) -> None:
        raise AssertionError(f"ringrift {args!r} started a process instead of refusing")

    saved = subprocess.Popen
    subprocess.Popen = tripwire  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        subprocess.Popen = saved  # type: ignore[misc]


def refused(url: str, args: list[str], *fragments: str) -> None:
    """``ringrift ARGS`` gives status 2 and one ``ringrift: error:`` line naming the fault,
    prints nothing on stdout, and leaves the ledger as it was."""
    before = _counts(url)
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        _no_process_started(args),
    ):
        status = main(args)
    last = (err.getvalue().strip().splitlines() or [""])[-1]
    assert status == 2, (args, err.getvalue())
    assert last.startswith("ringrift: error: "), (args, err.getvalue())
    assert all(f in last for f in fragments), (args, fragments, last)
    assert "Traceback" not in err.getvalue() and out.getvalue() == "", args
    assert _counts(url) == before, args


def _not_a_config(text: str) -> bool:
    try:
        GameConfig.parse(text)
    except RingRiftError:
        return True
    return False


HOSTILE = st.sampled_from(["../../etc/passwd", "/etc/passwd", "a\x00b", "x" * 10_000, "", " "])
NOT_CONFIGS = (st.text(max_size=30) | HOSTILE).filter(_not_a_config)
CONFIG_COMMANDS = [
    ["bench", "engine", "--config"],
    ["bench", "heuristic", "--config"],
    ["bench", "train", "--config"],
    ["bench", "selfplay", "--config"],
    ["bench", "evaluate", "--config"],
    ["bench", "strength", "--config"],
    ["loop", "--config"],
    ["demo", "--config"],
    ["ratings", "--config"],
    ["quarantine", "--config"],
    ["plot", "ratings", "--config"],
    ["pipeline", "start"],
    ["pipeline", "stop"],
]


@SETTINGS
@given(command=st.sampled_from(CONFIG_COMMANDS), name=NOT_CONFIGS)
def test_every_command_refuses_an_unknown_configuration(
    ledger: str, command: list[str], name: str
) -> None:
    refused(ledger, [*command, name], "unknown configuration")


# (command, option, least, most): a whole number outside [least, most] is refused
COUNTS = [
    (["bench", "heuristic"], "--games", 1, 1_000_000),
    (["bench", "train"], "--steps", 1, 10_000_000),
    (["bench", "train"], "--batch-size", 1, 65_536),
    (["bench", "train"], "--threads", 0, 1024),
    (["bench", "selfplay"], "--sims", 1, 100_000),
    (["bench", "selfplay"], "--games", 1, 1_000_000),
    (["bench", "selfplay"], "--max-moves", 1, 100_000),
    (["bench", "selfplay"], "--threads", 0, 1024),
    (["bench", "selfplay"], "--procs", 1, 256),
    (["bench", "evaluate"], "--sims", 1, 100_000),
    (["bench", "evaluate"], "--games", 1, 1_000_000),
    (["bench", "evaluate"], "--max-moves", 1, 100_000),
    (["bench", "cluster"], "--workers", 1, 256),
    (["bench", "faults"], "--runs", 1, 1000),
    (["bench", "faults"], "--generations", 1, 1000),
    (["bench", "strength"], "--workers", 1, 256),
    (["bench", "strength"], "--games", 1, 1_000_000),
    (["bench", "strength"], "--sims", 1, 100_000),
    (["bench", "strength"], "--jobs", 1, 256),
    (["loop"], "--broker-port", 1, 65_535),
]
# the same, checked by the command itself with a message of its own (no upper bound: None)
OWN_CHECKS = [
    (["loop"], "--generations", 1, None, "--generations must be at least 1"),
    (["loop"], "--workers", 1, 64, "--workers must be between 1 and 64"),
    (["pipeline", "start", "square8_2p"], "--generations", 1, None, "generations must be a whole"),
]


@SETTINGS
@given(case=st.sampled_from(COUNTS), data=st.data())
def test_every_count_outside_its_range_is_refused(
    ledger: str, case: tuple[list[str], str, int, int], data: st.DataObject
) -> None:
    command, option, least, most = case
    value = data.draw(
        st.integers(max_value=least - 1) | st.integers(min_value=most + 1) | st.just("many")
    )
    refused(ledger, [*command, option, str(value)], f"Invalid value for '{option}'")


@SETTINGS
@given(case=st.sampled_from(OWN_CHECKS), data=st.data())
def test_every_count_a_command_checks_itself_is_refused_with_its_reason(
    ledger: str, case: tuple[list[str], str, int, int | None, str], data: st.DataObject
) -> None:
    command, option, least, most, message = case
    below = st.integers(max_value=least - 1)
    value = data.draw(below if most is None else below | st.integers(min_value=most + 1))
    refused(ledger, [*command, option, str(value)], message)


# (command, option, most): a number of seconds or minutes that is not finite, not above 0 or
# above ``most`` is refused
DURATIONS = [
    (["bench", "engine"], "--seconds", 86_400.0),
    (["demo"], "--seconds", 86_400.0),
    (["bench", "cluster"], "--minutes", 1_440.0),
    (["bench", "cluster"], "--tick-seconds", 86_400.0),
    (["loop"], "--timeout", 30 * 86_400.0),
    (["watch"], "--interval", 86_400.0),
]


@SETTINGS
@given(case=st.sampled_from(DURATIONS), data=st.data())
def test_every_duration_that_is_not_a_positive_finite_number_is_refused(
    ledger: str, case: tuple[list[str], str, float], data: st.DataObject
) -> None:
    command, option, most = case
    value = data.draw(
        st.floats(max_value=0)
        | st.floats(min_value=most, exclude_min=True)
        | st.sampled_from([math.nan, math.inf, -math.inf, "soon", ""])
    )
    refused(ledger, [*command, option, str(value)], f"Invalid value for '{option}'")


NOT_PRESETS = (st.text(max_size=20) | HOSTILE).filter(lambda t: t not in PRESETS)


@SETTINGS
@given(
    command=st.sampled_from(
        [["bench", "cluster"], ["bench", "strength"], ["loop"], ["pipeline", "start", "hex8_2p"]]
    ),
    name=NOT_PRESETS,
)
def test_every_command_refuses_an_unknown_preset(
    ledger: str, command: list[str], name: str
) -> None:
    refused(ledger, [*command, "--preset", name], "unknown preset")


@SETTINGS
@given(
    weight=st.floats(max_value=0)
    | st.floats(min_value=100, exclude_min=True)
    | st.sampled_from([math.nan, math.inf])
)
def test_a_curriculum_weight_out_of_range_is_refused(ledger: str, weight: float) -> None:
    refused(ledger, ["pipeline", "start", "square8_2p", "--weight", str(weight)], "weight must")


@SETTINGS
@given(action=st.sampled_from(["cancel", "resume"]), run_id=st.text(max_size=40) | HOSTILE)
def test_training_controls_refuse_a_run_the_ledger_does_not_hold(
    ledger: str, action: str, run_id: str
) -> None:
    refused(ledger, ["train", action, run_id], "training run")


@SETTINGS
@given(
    command=st.sampled_from([["bench", "train"], ["bench", "selfplay"], ["bench", "evaluate"]]),
    device=(st.text(max_size=12) | st.sampled_from(["tpu", "cpu:0", "cuda:x", "gpu"])).filter(
        lambda d: d not in ("cpu", "cuda") and not d.startswith("cuda:")
    ),
)
def test_a_device_that_is_not_one_is_refused(ledger: str, command: list[str], device: str) -> None:
    refused(ledger, [*command, "--device", device], "Invalid value for '--device'")


def _not_an_architecture(text: str) -> bool:
    try:
        parse_arch(text)
    except ValueError:
        return True
    return False


@SETTINGS
@given(
    command=st.sampled_from([["bench", "train"], ["bench", "selfplay"], ["bench", "evaluate"]]),
    model=(
        st.text(max_size=12) | st.sampled_from(["b0c0", "b99c8", "b4c9999", "b4", "c64"])
    ).filter(_not_an_architecture),
)
def test_an_architecture_that_is_not_one_is_refused(
    ledger: str, command: list[str], model: str
) -> None:
    refused(ledger, [*command, "--model", model], "architecture")


@SETTINGS
@given(only=(st.text(max_size=20) | HOSTILE).filter(lambda t: t.strip() not in FAULTS))
def test_bench_faults_refuses_a_fault_it_does_not_know(ledger: str, only: str) -> None:
    refused(ledger, ["bench", "faults", "--only", only], "--only")


@SETTINGS
@given(marks=st.sampled_from(["", ",", "x", "-1", "0", "30,10", "10,10", "nan", "inf"]))
def test_bench_strength_refuses_marks_that_are_not_increasing_minutes(
    ledger: str, marks: str
) -> None:
    refused(ledger, ["bench", "strength", "--marks", marks], "--marks")


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "selfplay", "--model-path"],
        ["bench", "evaluate", "--model-path"],
        ["bench", "evaluate", "--opponent-path"],
        ["rules", "check", ".", "--skip-file"],
    ],
)
def test_a_file_option_naming_no_file_is_refused(
    ledger: str, args: list[str], tmp_path: Path
) -> None:
    for missing in (str(tmp_path / "absent.pt"), "../absent", str(tmp_path)):
        refused(ledger, [*args, missing], f"Invalid value for '{args[-1]}'")
