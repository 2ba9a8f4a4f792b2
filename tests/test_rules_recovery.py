"""Rules-derived tests for the recovery action (COMPACT_RULES 2.4; RULES_CANONICAL_SPEC
R110-R115).

Each test builds a small square8 position in P1's movement phase and checks the recovery moves
offered and the exact resulting position. Expectations come from the rules text, not from the
engine.
"""

from __future__ import annotations

import pytest

from ringrift.game import (
    GameState,
    MoveType,
    legal_moves,
)
from tests.rules_helpers import build, expected, legal, play, snapshot, texts

MT = MoveType


def slide(
    frm: str,
    to: str,
    mode: str,
    target: str = "",
    cells: str = "",
    collapse: str = "",
    option: int = 0,
) -> str:
    """A ``recovery_slide`` for player 1: ``target`` is the extraction stack (none for a line's
    option 2), ``cells`` the line formed, ``collapse`` what it collapses."""
    text = f"recovery_slide p1 from={frm} to={to}"
    if target:
        text += f" target={target}"
    if cells:
        text += f" cells={cells} collapse={collapse or cells}"
    if option:
        text += f" option={option}"
    return text + f" mode={mode}"


def finish_turn(state: GameState) -> None:
    """After a recovery that leaves nothing to process: the two bookkeeping moves."""
    assert legal(state) == texts(state, "no_line_action p1")
    play(state, "no_line_action p1")
    assert legal(state) == texts(state, "no_territory_action p1")
    play(state, "no_territory_action p1")


# ----- eligibility (COMPACT 2.4, R110) --------------------------------------------------------


@pytest.mark.parametrize(
    ("stacks", "markers", "eligible"),
    [
        ({"6,6": [2, 1]}, {"3,3": 1}, True),
        ({"6,6": [2, 2, 1]}, {"3,3": 1}, True),  # buried deeper
        ({"6,6": [2, 1]}, {"3,3": 2}, False),  # no marker of P1's own
        ({"6,6": [2]}, {"3,3": 1}, False),  # no P1 ring on the board at all
    ],
    ids=["eligible", "deep", "no-marker", "no-buried-ring"],
)
def test_recovery_needs_no_stack_a_marker_and_a_buried_ring(
    stacks: dict[str, list[int]], markers: dict[str, int], eligible: bool
) -> None:
    state = build(stacks=stacks, markers=markers)
    kinds = {m.type for m in legal_moves(state)}
    if eligible:
        assert kinds == {MT.RECOVERY_SLIDE, MT.SKIP_RECOVERY}
    else:
        assert legal(state) == texts(state, "no_movement_action p1")


def test_controlling_a_stack_means_normal_movement_not_recovery() -> None:
    state = build(stacks={"6,6": [2, 1], "0,7": [1]}, markers={"3,3": 1})
    assert {m.type for m in legal_moves(state)} == {MT.MOVE_STACK}


def test_rings_in_hand_do_not_prevent_recovery() -> None:
    # Eligibility is independent of rings in hand: P1 may skip placement to recover.
    state = build(stacks={"6,6": [2, 1]}, markers={"3,3": 1}, phase="ring_placement", hand={1: 3})
    assert "skip_placement p1" in legal(state)
    play(state, "skip_placement p1")
    assert {m.type for m in legal_moves(state)} == {MT.RECOVERY_SLIDE, MT.SKIP_RECOVERY}


# ----- line-forming slides (R112(a), R113, R115) ----------------------------------------------

ROW = "0,0|1,0|2,0|3,0"


def test_exact_line_slide_collapses_and_extracts_bottommost_buried_ring() -> None:
    state = build(
        stacks={"6,6": [2, 1, 2, 1], "5,3": [2, 1]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1, "3,1": 1},
    )
    assert legal(state) == texts(
        state,
        slide("3,1", "3,0", "line", "6,6", ROW, option=1),
        slide("3,1", "3,0", "line", "5,3", ROW, option=1),
        "skip_recovery p1",
    )
    play(state, slide("3,1", "3,0", "line", "6,6", ROW, option=1))
    assert snapshot(state) == expected(
        # 6,6 was (top first) P2 P1 P2 P1: the bottom P1 ring goes, not the upper one
        stacks={"6,6": [2, 1, 2], "5,3": [2, 1]},
        collapsed={c: 1 for c in ROW.split("|")},  # 3,1 is left empty: no departure marker
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[4, 0],
        phase="line_processing",
        current=1,
    )
    finish_turn(state)
    assert (state.current, state.phase.value) == (2, "ring_placement")


OVER = "0,0|1,0|2,0|3,0|4,0"


def _overlength() -> GameState:
    # 3,1 -> 3,0 makes a line of five; 4,0 -> 3,0 makes a line of exactly four
    return build(
        stacks={"6,6": [2, 1]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1, "4,0": 1, "3,1": 1},
    )


def test_overlength_line_slide_offers_option_one_and_each_segment() -> None:
    state = _overlength()
    assert legal(state) == texts(
        state,
        slide("3,1", "3,0", "line", "6,6", OVER, option=1),
        slide("3,1", "3,0", "line", "", OVER, "0,0|1,0|2,0|3,0", option=2),
        slide("3,1", "3,0", "line", "", OVER, "1,0|2,0|3,0|4,0", option=2),
        slide("4,0", "3,0", "line", "6,6", ROW, option=1),
        "skip_recovery p1",
    )


@pytest.mark.parametrize(
    ("segment", "left"), [("0,0|1,0|2,0|3,0", "4,0"), ("1,0|2,0|3,0|4,0", "0,0")]
)
def test_overlength_option_two_extracts_nothing(segment: str, left: str) -> None:
    state = _overlength()
    play(state, slide("3,1", "3,0", "line", "", OVER, segment, option=2))
    assert snapshot(state) == expected(
        stacks={"6,6": [2, 1]},
        markers={left: 1},
        collapsed={c: 1 for c in segment.split("|")},
        hand=[5, 5],
        eliminated=[0, 0],
        territory=[4, 0],
        phase="line_processing",
        current=1,
    )
    finish_turn(state)


def test_overlength_option_one_collapses_all_and_extracts() -> None:
    state = _overlength()
    play(state, slide("3,1", "3,0", "line", "6,6", OVER, option=1))
    assert snapshot(state) == expected(
        stacks={"6,6": [2]},
        collapsed={c: 1 for c in OVER.split("|")},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[5, 0],
        phase="line_processing",
        current=1,
    )


def test_three_player_recovery_line_is_three_long() -> None:
    state = build(
        stacks={"6,6": [2, 1], "7,7": [3]},
        markers={"0,0": 1, "1,0": 1, "2,1": 1},
        players=3,
    )
    line3 = "0,0|1,0|2,0"
    assert legal(state) == texts(
        state, slide("2,1", "2,0", "line", "6,6", line3, option=1), "skip_recovery p1"
    )


# ----- fallback-class recovery (R112(b)) ------------------------------------------------------


def test_no_fallback_or_strike_while_a_line_slide_exists() -> None:
    # The P2 stack at 0,1 is next to P1 markers and 3,1 has empty neighbours, but a line-forming
    # slide exists, so only line slides (and skip) are legal.
    state = build(
        stacks={"6,6": [2, 1], "0,1": [2]},
        markers={"0,0": 1, "1,0": 1, "2,0": 1, "3,1": 1},
    )
    assert legal(state) == texts(
        state, slide("3,1", "3,0", "line", "6,6", ROW, option=1), "skip_recovery p1"
    )


def _no_line() -> GameState:
    # A lone P1 marker at 3,3: 2,2 is collapsed and 4,4 holds a P2 marker (no destination),
    # 3,4 holds a stack (strike only), the other five neighbours are empty.
    return build(
        stacks={"3,4": [2, 1], "7,7": [2, 1]},
        markers={"3,3": 1, "4,4": 2},
        collapsed={"2,2": 2},
    )


def test_without_a_line_slide_every_fallback_slide_and_strike_is_legal() -> None:
    state = _no_line()
    want = ["skip_recovery p1"]
    for x in ("3,4", "7,7"):
        want += [slide("3,3", to, "fallback", x) for to in ("3,2", "4,2", "2,3", "4,3", "2,4")]
        want.append(slide("3,3", "3,4", "stack_strike", x))
    assert legal(state) == texts(state, *want)


def test_fallback_slide_moves_the_marker_and_extracts_a_buried_ring() -> None:
    state = _no_line()
    play(state, slide("3,3", "2,3", "fallback", "7,7"))
    assert snapshot(state) == expected(
        stacks={"3,4": [2, 1], "7,7": [2]},
        markers={"2,3": 1, "4,4": 2},  # no departure marker at 3,3
        collapsed={"2,2": 2},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[0, 1],
        phase="line_processing",
        current=1,
    )
    finish_turn(state)
    assert (state.current, state.phase.value) == (2, "ring_placement")


def test_stack_strike_removes_top_ring_and_the_marker() -> None:
    state = build(
        stacks={"3,4": [2, 2], "7,7": [2, 1]},
        markers={"3,3": 1},
    )
    play(state, slide("3,3", "3,4", "stack_strike", "7,7"))
    assert snapshot(state) == expected(
        stacks={"3,4": [2], "7,7": [2]},
        markers={},  # the marker is spent: neither at 3,3 nor at 3,4
        hand=[5, 5],
        eliminated=[2, 0],  # the struck ring and the extracted ring
        territory=[0, 0],
        phase="line_processing",
        current=1,
    )
    finish_turn(state)


def test_skip_recovery_changes_nothing_and_ends_the_turn() -> None:
    state = _no_line()
    before = snapshot(state)
    play(state, "skip_recovery p1")
    finish_turn(state)
    assert snapshot(state) == {**before, "phase": "ring_placement", "current": 2}


# ----- recovery and territory (R114, R143 exception) ------------------------------------------


@pytest.mark.parametrize("second_buried", [True, False])
def test_recovery_territory_costs_one_buried_ring_per_region(second_buried: bool) -> None:
    # The fallback slide 0,2 -> 0,1 walls the corner 0,0 (a P2 stack) off with P1 markers at
    # 1,0 and 0,1. The slide's own cost comes from 5,5; the region's cost must be another
    # buried P1 ring outside the region: one ring (the bottommost) from 6,6, not a cap.
    stacks = {"0,0": [2], "5,5": [2, 1]}
    if second_buried:
        stacks["6,6"] = [2, 1, 1]
    state = build(stacks=stacks, markers={"1,0": 1, "0,2": 1})
    play(state, slide("0,2", "0,1", "fallback", "5,5"))
    play(state, "no_line_action p1")
    if not second_buried:
        # P1 has no ring left on the board: nothing lacks a colour, nothing to pay with
        assert legal(state) == texts(state, "no_territory_action p1")
        return
    assert legal(state) == texts(
        state,
        "choose_territory_option p1 to=0,0 cells=0,0 collapse=1,0|0,1 option=1",
        "skip_territory_processing p1",
    )
    play(state, "choose_territory_option p1 to=0,0 cells=0,0 collapse=1,0|0,1 option=1")
    # only 6,6 still holds a buried P1 ring (5,5 paid for the slide)
    assert legal(state) == texts(state, "eliminate_rings_from_stack p1 to=6,6")
    play(state, "eliminate_rings_from_stack p1 to=6,6")
    assert snapshot(state) == expected(
        stacks={"5,5": [2], "6,6": [2, 1]},
        collapsed={"0,0": 1, "1,0": 1, "0,1": 1},
        hand=[5, 5],
        eliminated=[3, 0],  # slide extraction, the P2 ring inside, region extraction
        territory=[3, 0],
        phase="ring_placement",
        current=2,
    )


def test_recovery_region_needs_a_buried_ring_outside_it() -> None:
    # After the fallback slide (paid from 5,5) P1's only buried ring is inside the corner 0,0
    # that P1's markers now wall off, so the corner cannot be paid for and is not claimable
    # (R114). The rest of the board is cut off from the corner by the same markers, holds no
    # P1-controlled stack and has P1's buried ring outside it (in the corner): under R141-R143
    # as written it is the one claimable region.
    state = build(stacks={"0,0": [2, 1], "5,5": [2, 1]}, markers={"1,0": 1, "0,2": 1})
    play(state, slide("0,2", "0,1", "fallback", "5,5"))
    play(state, "no_line_action p1")
    claimed = {
        frozenset(state.geo.keys[c] for c in m.cells + m.collapse)
        for m in legal_moves(state)
        if m.type is MT.CHOOSE_TERRITORY_OPTION
    }
    assert frozenset({"0,0", "1,0", "0,1"}) not in claimed
    everything_but_corner = frozenset(
        f"{x},{y}" for y in range(8) for x in range(8) if (x, y) != (0, 0)
    )
    assert claimed == {everything_but_corner}


def test_further_line_after_a_recovery_slide_follows_the_line_rules() -> None:
    # The slide 2,2 -> 3,3 forms two lines through 3,3: the row 3,3..7,3 (five) and the column
    # 3,3..3,6 (exactly four). The slide's own cost covers the line it resolves (option 2 on
    # the row: 4,3..7,3, no extraction). The column is then an ordinary line in
    # line_processing (R115): its cost is one ring from a controlled stack (R122), waived
    # because P1 controls none. The engine documents this reading (README, rules decisions).
    state = build(
        stacks={"6,6": [2, 1]},
        markers={c: 1 for c in ("4,3", "5,3", "6,3", "7,3", "3,4", "3,5", "3,6", "2,2")},
    )
    row = "3,3|4,3|5,3|6,3|7,3"
    play(state, slide("2,2", "3,3", "line", "", row, "4,3|5,3|6,3|7,3", option=2))
    column = "3,3|3,4|3,5|3,6"
    play(state, f"process_line p1 cells={column} collapse={column} option=1")
    assert snapshot(state) == expected(
        stacks={"6,6": [2, 1]},
        collapsed={c: 1 for c in (row + "|" + column).split("|")},
        hand=[5, 5],
        eliminated=[0, 0],
        territory=[8, 0],
        phase="territory_processing",
        current=1,
    )
