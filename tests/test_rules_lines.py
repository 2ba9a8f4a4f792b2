"""Rules-derived tests for line processing (COMPACT_RULES 5; RULES_CANONICAL_SPEC R120-R123).

Each test builds a small square8 position, makes the move that forms the line(s), and checks the
legal decisions and the exact resulting position. Expectations come from the rules text, not
from the engine.
"""

from __future__ import annotations

from typing import Any

import pytest

from ringrift.game import (
    GameState,
    MoveType,
    legal_moves,
)
from tests.rules_helpers import build, expected, legal, play, snapshot, texts

MT = MoveType


def line(kind: str, cells: str, collapse: str | None = None, option: int = 1) -> str:
    """A line decision for player 1: ``process_line`` or ``choose_line_option``."""
    return f"{kind} p1 cells={cells} collapse={collapse or cells} option={option}"


def whole(cells: str) -> tuple[str, str]:
    """The two ways to collapse a whole line (then one ring is owed): ``process_line``, or
    ``choose_line_option`` option 1; the canonical engine offers both for every line."""
    return line("process_line", cells), line("choose_line_option", cells)


# ----- exact-length lines (COMPACT 5.3 case 1, R122 case 1, R123) -------------------------------


@pytest.mark.parametrize(
    ("target", "after"),
    [
        ("3,2", {"3,2": [1], "6,6": [1, 2]}),  # one ring off a two-ring cap, not the whole cap
        ("6,6", {"3,2": [1, 1], "6,6": [2]}),  # a mixed stack is eligible; control passes
    ],
)
def test_exact_line_collapses_and_costs_one_ring(target: str, after: dict[str, list[int]]) -> None:
    state = build(
        stacks={"3,0": [1, 1], "6,6": [1, 2], "5,6": [2, 1], "7,6": [2]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1},
    )
    play(state, "move_stack p1 from=3,0 to=3,2")  # the departure marker completes the line
    # no silent processing: the markers are still there, a decision is due
    assert snapshot(state)["markers"] == {"0,0": 1, "1,0": 1, "2,0": 1, "3,0": 1}
    assert snapshot(state)["phase"] == "line_processing"
    assert legal(state) == texts(state, *whole("0,0|1,0|2,0|3,0"))

    play(state, line("process_line", "0,0|1,0|2,0|3,0"))
    # P1 must pay one ring from any stack it controls (5,6 is P2's although it holds a P1 ring)
    assert legal(state) == texts(
        state, "eliminate_rings_from_stack p1 to=3,2", "eliminate_rings_from_stack p1 to=6,6"
    )
    assert snapshot(state)["phase"] == "line_processing"

    play(state, f"eliminate_rings_from_stack p1 to={target}")
    # the ring is paid and line processing goes on (R123): no line is left, so it says so
    assert snapshot(state)["phase"] == "line_processing"
    assert legal(state) == texts(state, "no_line_action p1")
    play(state, "no_line_action p1")
    assert snapshot(state) == expected(
        stacks={**after, "5,6": [2, 1], "7,6": [2]},
        collapsed={"0,0": 1, "1,0": 1, "2,0": 1, "3,0": 1},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[4, 0],
        phase="territory_processing",
        current=1,
    )
    assert legal(state) == texts(state, "no_territory_action p1")
    play(state, "no_territory_action p1")
    assert (state.current, state.phase.value) == (2, "ring_placement")


@pytest.mark.parametrize("length", [4, 5])
def test_line_cost_waived_when_mover_controls_no_stack(length: int) -> None:
    # P1's only stack lands on a P2 marker: its top ring (P1's) is eliminated and the stack
    # passes to P2, so the line (exact, or option 1 of an overlength one) costs nothing.
    row = [f"{x},0" for x in range(length)]
    state = build(
        stacks={f"{length - 1},0": [1, 2], "7,6": [2]},
        markers={**{c: 1 for c in row[:-1]}, f"{length - 1},2": 2},
    )
    play(state, f"move_stack p1 from={length - 1},0 to={length - 1},2")
    assert snapshot(state)["stacks"] == {f"{length - 1},2": [2], "7,6": [2]}
    cells = "|".join(row)
    kind = "process_line" if length == 4 else "choose_line_option"
    play(state, line(kind, cells))
    assert snapshot(state) == expected(
        stacks={f"{length - 1},2": [2], "7,6": [2]},
        collapsed={c: 1 for c in row},
        hand=[5, 5],
        eliminated=[1, 0],  # only the ring lost by landing on the marker
        territory=[length, 0],
        phase="territory_processing",
        current=1,
    )


# ----- overlength lines (COMPACT 5.3 case 2, R122 case 2) ----------------------------------------

OVER = "0,0|1,0|2,0|3,0|4,0"


def _overlength() -> GameState:
    state = build(
        stacks={"4,0": [1, 1], "7,6": [2]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1, "3,0": 1},
    )
    play(state, "move_stack p1 from=4,0 to=4,2")  # a line of five
    return state


def test_overlength_line_offers_option_one_and_every_segment() -> None:
    state = _overlength()
    assert legal(state) == texts(
        state,
        *whole(OVER),
        line("choose_line_option", OVER, "0,0|1,0|2,0|3,0", 2),
        line("choose_line_option", OVER, "1,0|2,0|3,0|4,0", 2),
    )


def test_overlength_option_one_collapses_all_and_costs_a_ring() -> None:
    state = _overlength()
    play(state, line("choose_line_option", OVER))
    assert legal(state) == texts(state, "eliminate_rings_from_stack p1 to=4,2")
    play(state, "eliminate_rings_from_stack p1 to=4,2")
    play(state, "no_line_action p1")  # line processing goes on after the ring is paid
    assert snapshot(state) == expected(
        stacks={"4,2": [1], "7,6": [2]},
        collapsed={f"{x},0": 1 for x in range(5)},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[5, 0],
        phase="territory_processing",
        current=1,
    )


@pytest.mark.parametrize(
    ("segment", "left"),
    [("0,0|1,0|2,0|3,0", "4,0"), ("1,0|2,0|3,0|4,0", "0,0")],
)
def test_overlength_option_two_collapses_a_segment_for_free(segment: str, left: str) -> None:
    state = _overlength()
    play(state, line("choose_line_option", OVER, segment, 2))
    assert snapshot(state) == expected(
        stacks={"4,2": [1, 1], "7,6": [2]},
        markers={left: 1},
        collapsed={c: 1 for c in segment.split("|")},
        hand=[5, 5],
        eliminated=[0, 0],
        territory=[4, 0],
        phase="territory_processing",
        current=1,
    )


# ----- several lines (COMPACT 5.2, R121) -------------------------------------------------------

LINE_A = "0,0|1,0|2,0|3,0"  # completed by the departure marker
LINE_B = "3,2|4,2|5,2|6,2"  # completed by flipping P2's marker at 3,2


@pytest.mark.parametrize("order", [(LINE_A, LINE_B), (LINE_B, LINE_A)])
def test_two_lines_from_one_move_are_processed_one_after_the_other(
    order: tuple[str, str],
) -> None:
    state = build(
        stacks={"3,0": [1, 1, 1], "7,6": [2]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1, "3,2": 2, "4,2": 1, "5,2": 1, "6,2": 1},
    )
    play(state, "move_stack p1 from=3,0 to=3,3")
    assert legal(state) == texts(state, *whole(LINE_A), *whole(LINE_B))
    first, second = order
    play(state, line("process_line", first))
    # the cost of the first line is paid before the next line is chosen
    assert legal(state) == texts(state, "eliminate_rings_from_stack p1 to=3,3")
    play(state, "eliminate_rings_from_stack p1 to=3,3")
    assert legal(state) == texts(state, *whole(second))
    play(state, line("process_line", second))
    play(state, "eliminate_rings_from_stack p1 to=3,3")
    play(state, "no_line_action p1")  # line processing goes on after the ring is paid
    assert snapshot(state) == expected(
        stacks={"3,3": [1], "7,6": [2]},
        collapsed={c: 1 for c in (LINE_A + "|" + LINE_B).split("|")},
        hand=[5, 5],
        eliminated=[2, 0],
        territory=[8, 0],
        phase="territory_processing",
        current=1,
    )


@pytest.mark.parametrize(
    ("first", "rest"),
    [
        ("3,3|4,3|5,3|6,3", {"3,0": 1, "3,1": 1, "3,2": 1}),
        ("3,0|3,1|3,2|3,3", {"4,3": 1, "5,3": 1, "6,3": 1}),
    ],
)
def test_collapsing_a_shared_cell_breaks_the_crossing_line(
    first: str, rest: dict[str, int]
) -> None:
    state = build(
        stacks={"3,3": [1, 1], "7,6": [2]},
        markers={"4,3": 1, "5,3": 1, "6,3": 1, "3,0": 1, "3,1": 1, "3,2": 1},
    )
    play(state, "move_stack p1 from=3,3 to=3,5")
    assert legal(state) == texts(
        state,
        *whole("3,3|4,3|5,3|6,3"),
        *whole("3,0|3,1|3,2|3,3"),
    )
    play(state, line("process_line", first))
    play(state, "eliminate_rings_from_stack p1 to=3,5")
    # the other line lost its shared cell: three markers are no longer a line
    assert legal(state) == texts(state, "no_line_action p1")
    play(state, "no_line_action p1")
    assert snapshot(state) == expected(
        stacks={"3,5": [1], "7,6": [2]},
        markers=rest,
        collapsed={c: 1 for c in first.split("|")},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[4, 0],
        phase="territory_processing",
        current=1,
    )


# ----- whose lines, and what breaks them (COMPACT 5.1, R120) ------------------------------------


def test_opponent_line_is_not_processed_on_my_turn() -> None:
    state = build(
        stacks={"6,0": [1], "7,6": [2]},
        markers={"0,5": 2, "1,5": 2, "2,5": 2, "3,5": 2},
    )
    play(state, "move_stack p1 from=6,0 to=6,1")
    assert legal(state) == texts(state, "no_line_action p1")
    play(state, "no_line_action p1")
    play(state, "no_territory_action p1")
    assert snapshot(state) == expected(
        stacks={"6,1": [1], "7,6": [2]},
        markers={"0,5": 2, "1,5": 2, "2,5": 2, "3,5": 2, "6,0": 1},
        hand=[5, 5],
        eliminated=[0, 0],
        territory=[0, 0],
        phase="ring_placement",
        current=2,
    )
    # on its own turn P2 processes it
    play(state, "skip_placement p2")
    play(state, "move_stack p2 from=7,6 to=7,7")
    cells = "0,5|1,5|2,5|3,5"
    assert legal(state) == texts(
        state,
        f"process_line p2 cells={cells} collapse={cells} option=1",
        f"choose_line_option p2 cells={cells} collapse={cells} option=1",
    )


@pytest.mark.parametrize(
    "blocker",
    [
        {"stacks": {"2,0": [2]}},
        {"stacks": {"2,0": [1]}},
        {"collapsed": {"2,0": 1}},
        {"collapsed": {"2,0": 2}},
        {"markers": {"2,0": 2}},
        {},  # an empty cell
    ],
    ids=["p2-stack", "p1-stack", "p1-collapsed", "p2-collapsed", "p2-marker", "empty"],
)
def test_line_is_broken_by_stacks_collapsed_spaces_and_other_markers(
    blocker: dict[str, dict[str, Any]],
) -> None:
    # 0,0 1,0 [2,0] 3,0 4,0: four P1 markers on the row, but not consecutive
    stacks = {"4,0": [1], "7,6": [2], **blocker.get("stacks", {})}
    markers = {"0,0": 1, "1,0": 1, "3,0": 1, **blocker.get("markers", {})}
    state = build(stacks=stacks, markers=markers, collapsed=blocker.get("collapsed"))
    play(state, "move_stack p1 from=4,0 to=4,1")
    assert state.markers[state.geo.cell("4,0")] == 1
    assert legal(state) == texts(state, "no_line_action p1")


@pytest.mark.parametrize(
    ("markers", "frm", "land", "cells"),
    [
        (("0,0", "1,1", "2,2"), "3,3", "3,5", "0,0|1,1|2,2|3,3"),
        (("7,0", "6,1", "5,2"), "4,3", "4,5", "7,0|6,1|5,2|4,3"),
    ],
    ids=["down-right", "down-left"],
)
def test_diagonal_lines(markers: tuple[str, ...], frm: str, land: str, cells: str) -> None:
    state = build(stacks={frm: [1, 1], "7,6": [2]}, markers={c: 1 for c in markers})
    play(state, f"move_stack p1 from={frm} to={land}")
    assert legal(state) == texts(state, *whole(cells))
    play(state, line("process_line", cells))
    play(state, f"eliminate_rings_from_stack p1 to={land}")
    play(state, "no_line_action p1")  # line processing goes on after the ring is paid
    assert snapshot(state) == expected(
        stacks={land: [1], "7,6": [2]},
        collapsed={c: 1 for c in cells.split("|")},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[4, 0],
        phase="territory_processing",
        current=1,
    )


# ----- line length by player count (COMPACT 1.1, R120) ------------------------------------------


@pytest.mark.parametrize(("players", "is_line"), [(2, False), (3, True), (4, True)])
def test_three_markers_are_a_line_only_with_three_or_more_players(
    players: int, is_line: bool
) -> None:
    state = build(
        stacks={"2,0": [1], "7,6": [2]},
        markers={"0,0": 1, "1,0": 1},
        players=players,
    )
    play(state, "move_stack p1 from=2,0 to=2,1")
    if not is_line:
        assert legal(state) == texts(state, "no_line_action p1")
        return
    assert legal(state) == texts(state, *whole("0,0|1,0|2,0"))
    play(state, line("process_line", "0,0|1,0|2,0"))
    play(state, "eliminate_rings_from_stack p1 to=2,1")
    play(state, "no_line_action p1")  # line processing goes on after the ring is paid
    assert snapshot(state) == expected(
        stacks={"7,6": [2]},
        collapsed={"0,0": 1, "1,0": 1, "2,0": 1},
        hand=[5] * players,
        eliminated=[1] + [0] * (players - 1),
        territory=[3] + [0] * (players - 1),
        phase="territory_processing",
        current=1,
    )
    play(state, "no_territory_action p1")
    assert (state.current, state.phase.value) == (2, "ring_placement")


def test_four_markers_are_overlength_with_three_players() -> None:
    state = build(
        stacks={"3,0": [1], "7,6": [2]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1},
        players=3,
    )
    play(state, "move_stack p1 from=3,0 to=3,1")
    cells = "0,0|1,0|2,0|3,0"
    assert legal(state) == texts(
        state,
        *whole(cells),
        line("choose_line_option", cells, "0,0|1,0|2,0", 2),
        line("choose_line_option", cells, "1,0|2,0|3,0", 2),
    )
    play(state, line("choose_line_option", cells, "1,0|2,0|3,0", 2))
    assert snapshot(state) == expected(
        stacks={"3,1": [1], "7,6": [2]},
        markers={"0,0": 1},
        collapsed={"1,0": 1, "2,0": 1, "3,0": 1},
        hand=[5, 5, 5],
        eliminated=[0, 0, 0],
        territory=[3, 0, 0],
        phase="territory_processing",
        current=1,
    )


@pytest.mark.parametrize(
    ("segment", "then"),
    [
        ("0,0|1,0|2,0|3,0", "4,0|5,0|6,0|7,0"),  # the rest is still a line: processed next
        ("2,0|3,0|4,0|5,0", None),  # two pairs left: no line
    ],
)
def test_option_two_remainder_is_rechecked_for_lines(segment: str, then: str | None) -> None:
    state = build(stacks={"7,0": [1, 1], "0,7": [2]}, markers={f"{x},0": 1 for x in range(7)})
    play(state, "move_stack p1 from=7,0 to=7,2")
    full = "|".join(f"{x},0" for x in range(8))
    assert len(legal(state)) == 2 + 5  # the whole line (two ways) and five segments
    play(state, line("choose_line_option", full, segment, 2))
    if then is None:
        assert legal(state) == texts(state, "no_territory_action p1")
        assert snapshot(state)["markers"] == {"0,0": 1, "1,0": 1, "6,0": 1, "7,0": 1}
        return
    assert legal(state) == texts(state, *whole(then))
    play(state, line("process_line", then))
    play(state, "eliminate_rings_from_stack p1 to=7,2")
    play(state, "no_line_action p1")  # line processing goes on after the ring is paid
    assert snapshot(state) == expected(
        stacks={"7,2": [1], "0,7": [2]},
        collapsed={f"{x},0": 1 for x in range(8)},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[8, 0],
        phase="territory_processing",
        current=1,
    )


def test_line_waits_until_the_capture_phase_is_over() -> None:
    # The departure marker at 3,0 completes a line, but a capture is available from 3,1: lines
    # are processed only once movement and capture are done.
    state = build(
        stacks={"3,0": [1], "3,2": [2], "7,6": [2]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1},
    )
    play(state, "move_stack p1 from=3,0 to=3,1")
    assert state.phase.value == "capture"
    assert MT.PROCESS_LINE not in {m.type for m in legal_moves(state)}
    play(state, "overtaking_capture p1 from=3,1 to=3,3 target=3,2")
    assert legal(state) == texts(state, *whole("0,0|1,0|2,0|3,0"))
    play(state, line("process_line", "0,0|1,0|2,0|3,0"))
    play(state, "eliminate_rings_from_stack p1 to=3,3")
    play(state, "no_line_action p1")  # line processing goes on after the ring is paid
    assert snapshot(state) == expected(
        stacks={"3,3": [2], "7,6": [2]},  # P1's ring off the top; the captured P2 ring remains
        markers={"3,1": 1},
        collapsed={"0,0": 1, "1,0": 1, "2,0": 1, "3,0": 1},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[4, 0],
        phase="territory_processing",
        current=1,
    )
