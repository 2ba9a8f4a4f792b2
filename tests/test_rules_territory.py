"""Rules-derived tests for territory processing (COMPACT_RULES 6; RULES_CANONICAL_SPEC
R140-R145).

Each test builds a small square8 position, makes a move, and checks the territory decisions
offered and the exact resulting position. Expectations come from the rules text, not from the
engine. Territory adjacency on square boards is orthogonal (COMPACT 1.1).
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


def region(cells: str, border: str = "", colour: int = 0, player: int = 1) -> str:
    """A ``choose_territory_option`` for ``player``: the region, its collapsing border markers
    and their colour (0: enclosed by collapsed spaces and edges only)."""
    first = cells.split("|")[0]
    text = f"choose_territory_option p{player} to={first} cells={cells}"
    if border:
        text += f" collapse={border}"
    if colour:
        text += f" option={colour}"
    return text


def to_territory(state: GameState, move: str) -> None:
    """Play ``move`` (one that forms no line), then the line phase's bookkeeping move."""
    play(state, move)
    assert legal(state) == texts(state, f"no_line_action p{state.current}")
    play(state, f"no_line_action p{state.current}")
    assert state.phase.value == "territory_processing"


def claims(state: GameState) -> set[frozenset[str]]:
    """What each offered region decision would collapse (region and border markers together).

    Compared instead of the exact moves where the engine also offers the same collapse under a
    second border colour (a stray marker of colour B in a region cut off by collapsed spaces
    also yields "the region less that marker, bordered by B")."""
    keys = state.geo.keys
    return {
        frozenset(keys[c] for c in m.cells + m.collapse)
        for m in legal_moves(state)
        if m.type is MT.CHOOSE_TERRITORY_OPTION
    }


def cells_except(*excluded: str) -> str:
    """Every square8 cell not listed (each argument a ``|``-separated list)."""
    out = {c for group in excluded for c in group.split("|") if c}
    return "|".join(f"{x},{y}" for y in range(8) for x in range(8) if f"{x},{y}" not in out)


# ----- regions cut off by collapsed spaces only (COMPACT 6.1-6.4, R140-R145) -----------------

POCKET_WALL = {"2,0": 2, "5,0": 2}  # with 3,1 and 4,1 this walls off 3,0 and 4,0 on the edge


def _edge_pocket() -> GameState:
    # P1's stack slides along row 1 over its own markers at 4,1 and 3,1, collapsing them: the
    # cells 3,0 and 4,0 are then cut off by collapsed spaces and the board edge. Inside: a P2
    # stack holding a P1 ring, and an empty cell.
    state = build(
        stacks={"6,1": [1, 1], "0,6": [1, 2], "3,0": [2, 1], "7,7": [2]},
        markers={"3,1": 1, "4,1": 1},
        collapsed=POCKET_WALL,
    )
    to_territory(state, "move_stack p1 from=6,1 to=2,1")
    return state


@pytest.mark.parametrize(
    ("pay", "stacks_after", "eliminated"),
    [
        ("2,1", {"0,6": [1, 2], "7,7": [2]}, 4),  # the whole two-ring cap, stack gone
        ("0,6", {"2,1": [1, 1], "0,6": [2], "7,7": [2]}, 3),  # cap of one; control passes
    ],
)
def test_region_enclosed_by_collapsed_spaces_and_edge(
    pay: str, stacks_after: dict[str, list[int]], eliminated: int
) -> None:
    state = _edge_pocket()
    assert legal(state) == texts(state, region("3,0|4,0"), "skip_territory_processing p1")
    play(state, region("3,0|4,0"))
    # both rings inside (P2's and P1's own) are eliminated and credited to P1
    assert snapshot(state)["eliminated"] == [2, 0]
    assert legal(state) == texts(
        state, "eliminate_rings_from_stack p1 to=2,1", "eliminate_rings_from_stack p1 to=0,6"
    )
    play(state, f"eliminate_rings_from_stack p1 to={pay}")
    assert snapshot(state) == expected(
        stacks=stacks_after,
        markers={"6,1": 1},
        collapsed={**POCKET_WALL, "3,1": 1, "4,1": 1, "3,0": 1, "4,0": 1},
        hand=[5, 5],
        eliminated=[eliminated, 0],
        territory=[4, 2],
        phase="ring_placement",
        current=2,
    )


def test_skip_territory_processing_ends_the_turn() -> None:
    state = _edge_pocket()
    before = snapshot(state)
    play(state, "skip_territory_processing p1")
    assert snapshot(state) == {**before, "phase": "ring_placement", "current": 2}


# ----- regions cut off by one player's markers ------------------------------------------------


@pytest.mark.parametrize("colour", [1, 2])
def test_region_enclosed_by_one_players_markers(colour: int) -> None:
    # Corner 0,0 1,0 0,1 1,1 walled off by markers of one colour at 2,0 2,1 0,2 1,2 (2,2 is only
    # diagonal to the region, but diagonal to the wall too). Inside: a P2 stack and a marker of
    # the other colour.
    other = 3 - colour
    wall = {"2,0": colour, "2,1": colour, "0,2": colour, "1,2": colour}
    state = build(
        stacks={"5,0": [1, 1], "0,0": [2], "7,7": [2]},
        markers={**wall, "2,2": colour, "1,1": other},
    )
    to_territory(state, "move_stack p1 from=5,0 to=5,2")
    inside = "0,0|1,0|0,1|1,1"
    border = "2,0|2,1|0,2|1,2|2,2"
    assert legal(state) == texts(
        state, region(inside, border, colour), "skip_territory_processing p1"
    )
    play(state, region(inside, border, colour))
    play(state, "eliminate_rings_from_stack p1 to=5,2")
    assert snapshot(state) == expected(
        stacks={"7,7": [2]},
        # the wall collapses to the mover whatever its colour, and with it 2,2, a marker joined
        # to the wall diagonally; the interior marker goes with the region
        markers={"5,0": 1},
        collapsed={c: 1 for c in (inside + "|" + border).split("|")},
        hand=[5, 5],
        eliminated=[3, 0],  # the P2 ring inside + P1's two-ring cap
        territory=[9, 0],
        phase="ring_placement",
        current=2,
    )


def test_departure_marker_can_complete_the_enclosure() -> None:
    state = build(
        stacks={"1,2": [1], "0,0": [2], "7,7": [2]},
        markers={"2,0": 1, "2,1": 1, "0,2": 1},
    )
    to_territory(state, "move_stack p1 from=1,2 to=1,3")
    inside = "0,0|1,0|0,1|1,1"
    border = "2,0|2,1|0,2|1,2"
    assert legal(state) == texts(state, region(inside, border, 1), "skip_territory_processing p1")
    play(state, region(inside, border, 1))
    play(state, "eliminate_rings_from_stack p1 to=1,3")
    assert snapshot(state) == expected(
        stacks={"7,7": [2]},
        collapsed={c: 1 for c in (inside + "|" + border).split("|")},
        hand=[5, 5],
        eliminated=[2, 0],
        territory=[8, 0],
        phase="ring_placement",
        current=2,
    )


def test_collapsed_spaces_and_one_colour_of_markers_together_enclose() -> None:
    state = build(
        stacks={"5,0": [1, 1], "0,0": [2], "7,7": [2]},
        markers={"2,1": 1, "0,2": 1},
        collapsed={"2,0": 2, "1,2": 2},
    )
    to_territory(state, "move_stack p1 from=5,0 to=5,2")
    assert legal(state) == texts(
        state, region("0,0|1,0|0,1|1,1", "2,1|0,2", 1), "skip_territory_processing p1"
    )


def test_pocket_bordered_by_two_marker_colours_is_not_disconnected() -> None:
    state = build(
        stacks={"5,0": [1, 1], "0,0": [2], "7,7": [2]},
        markers={"2,0": 1, "2,1": 2, "0,2": 1, "1,2": 1},
    )
    to_territory(state, "move_stack p1 from=5,0 to=5,2")
    assert legal(state) == texts(state, "no_territory_action p1")
    play(state, "no_territory_action p1")
    assert (state.current, state.phase.value) == (2, "ring_placement")


# ----- colour representation (COMPACT 6.2, R142) ----------------------------------------------

SEALED = {"2,0": 2, "5,0": 2, "3,1": 2, "4,1": 2}  # 3,0 and 4,0 sealed off on the top edge


@pytest.mark.parametrize(
    ("inside", "claimable"),
    [
        ({"3,0": [1], "4,0": [2]}, False),  # both colours present: never disconnected
        ({"3,0": [2], "4,0": [2]}, True),  # P1 missing
        ({"3,0": [2, 1], "4,0": [2]}, True),  # a buried P1 ring does not represent P1
        ({"3,0": [1, 2], "4,0": [1]}, True),  # P2 missing
        ({}, True),  # empty region
    ],
    ids=["both", "only-p2", "p1-buried", "only-p1", "empty"],
)
def test_region_must_lack_a_colour_that_has_rings_on_the_board(
    inside: dict[str, list[int]], claimable: bool
) -> None:
    state = build(stacks={"0,7": [1], "6,6": [1], "7,7": [2], **inside}, collapsed=SEALED)
    to_territory(state, "move_stack p1 from=0,7 to=1,7")
    if claimable:
        assert legal(state) == texts(state, region("3,0|4,0"), "skip_territory_processing p1")
    else:
        assert legal(state) == texts(state, "no_territory_action p1")


def test_empty_region_is_claimable_and_collapses_with_no_rings_eliminated() -> None:
    state = build(stacks={"0,7": [1], "7,7": [2]}, collapsed={"2,0": 2, "4,0": 2, "3,1": 2})
    to_territory(state, "move_stack p1 from=0,7 to=1,7")
    play(state, region("3,0"))
    assert legal(state) == texts(state, "eliminate_rings_from_stack p1 to=1,7")
    play(state, "eliminate_rings_from_stack p1 to=1,7")
    assert snapshot(state) == expected(
        stacks={"7,7": [2]},
        markers={"0,7": 1},
        collapsed={"2,0": 2, "4,0": 2, "3,1": 2, "3,0": 1},
        hand=[5, 5],
        eliminated=[1, 0],  # only the self-elimination
        territory=[1, 3],
        phase="ring_placement",
        current=2,
    )


def test_empty_corner_enclosed_by_opponent_markers() -> None:
    state = build(stacks={"0,7": [1], "7,7": [2]}, markers={"1,0": 2, "0,1": 2})
    to_territory(state, "move_stack p1 from=0,7 to=1,7")
    assert legal(state) == texts(state, region("0,0", "1,0|0,1", 2), "skip_territory_processing p1")
    play(state, region("0,0", "1,0|0,1", 2))
    play(state, "eliminate_rings_from_stack p1 to=1,7")
    assert snapshot(state) == expected(
        stacks={"7,7": [2]},
        markers={"0,7": 1},
        collapsed={"0,0": 1, "1,0": 1, "0,1": 1},
        hand=[5, 5],
        eliminated=[1, 0],
        territory=[3, 0],
        phase="ring_placement",
        current=2,
    )


@pytest.mark.parametrize("p3_on_board", [True, False])
def test_buried_rings_count_as_having_rings_on_the_board(p3_on_board: bool) -> None:
    # Three players. The sealed pocket holds P1 and P2 stacks; P3 controls nothing. With a P3
    # ring buried under P2 at 6,6, P3 is an active colour, so the pocket lacks a colour and is
    # disconnected (and so, by the same definition, is the rest of the board, which holds no P3
    # stack either; P1 controls a stack outside each). Without it, nothing is disconnected.
    outside = {"0,7": [1], "7,7": [2], "6,6": [2, 3] if p3_on_board else [2]}
    state = build(stacks={**outside, "3,0": [1], "4,0": [2]}, collapsed=SEALED, players=3)
    to_territory(state, "move_stack p1 from=0,7 to=1,7")
    if p3_on_board:
        rest = cells_except("3,0|4,0", "|".join(SEALED))
        assert claims(state) == {frozenset(["3,0", "4,0"]), frozenset(rest.split("|"))}
        assert "skip_territory_processing p1" in legal(state)
    else:
        assert legal(state) == texts(state, "no_territory_action p1")


# ----- self-elimination prerequisite (COMPACT 6.3, R143) --------------------------------------


@pytest.mark.parametrize("loses_control", [True, False])
def test_region_needs_a_controlled_stack_outside_it(loses_control: bool) -> None:
    # P1's only stack lands on a P2 marker (or on an empty cell): its P1 top ring is eliminated
    # and P2 gains the stack, so P1 controls nothing and cannot pay for the pocket. P1 still has
    # a ring buried at 7,7, so the pocket (P2 only) does lack a colour.
    markers = {"5,5": 2} if loses_control else {}
    state = build(
        stacks={"5,3": [1, 2], "3,0": [2], "7,7": [2, 1]},
        markers=markers,
        collapsed={"2,0": 2, "4,0": 2, "3,1": 2},
    )
    to_territory(state, "move_stack p1 from=5,3 to=5,5")
    if loses_control:
        assert snapshot(state)["stacks"]["5,5"] == [2]
        assert legal(state) == texts(state, "no_territory_action p1")
    else:
        assert legal(state) == texts(state, region("3,0"), "skip_territory_processing p1")


def test_region_holding_my_only_stack_is_not_claimable() -> None:
    # P1's only stack is inside pocket A (3,0 4,0): A lacks P2 but P1 has no stack outside it.
    # Pocket B (0,7) holds P2 only and P1's stack is outside it. The rest of the board holds no
    # P1 stack and is cut off from A by collapsed spaces, so by R141-R143 it is a region P1
    # may claim, paying with its stack in A.
    b_wall = {"0,6": 2, "1,7": 2}
    state = build(stacks={"3,0": [1], "0,7": [2], "7,7": [2]}, collapsed={**SEALED, **b_wall})
    to_territory(state, "move_stack p1 from=3,0 to=4,0")
    rest = cells_except("3,0|4,0|0,7", "|".join(SEALED), "|".join(b_wall))
    assert legal(state) == texts(state, region("0,7"), region(rest), "skip_territory_processing p1")


# ----- several regions in one turn (COMPACT 6.4, R143-R144) -----------------------------------

TWO_POCKETS = {"2,0": 2, "4,0": 2, "3,1": 2, "0,6": 2, "1,7": 2}  # pockets 3,0 and 0,7


def test_second_region_is_processed_after_the_first() -> None:
    state = build(
        stacks={"5,3": [1], "6,0": [1, 1], "3,0": [2], "0,7": [2], "7,7": [2]},
        collapsed=TWO_POCKETS,
    )
    to_territory(state, "move_stack p1 from=5,3 to=5,4")
    assert legal(state) == texts(
        state, region("3,0"), region("0,7"), "skip_territory_processing p1"
    )
    play(state, region("3,0"))
    play(state, "eliminate_rings_from_stack p1 to=6,0")
    # still P1's territory phase, with the other region still on offer
    assert snapshot(state)["phase"] == "territory_processing"
    assert legal(state) == texts(state, region("0,7"), "skip_territory_processing p1")
    play(state, region("0,7"))
    assert legal(state) == texts(state, "eliminate_rings_from_stack p1 to=5,4")
    play(state, "eliminate_rings_from_stack p1 to=5,4")
    assert snapshot(state) == expected(
        stacks={"7,7": [2]},
        markers={"5,3": 1},
        collapsed={**TWO_POCKETS, "3,0": 1, "0,7": 1},
        hand=[5, 5],
        eliminated=[5, 0],  # 1 + 2 (first region) and 1 + 1 (second)
        territory=[2, 5],
        phase="ring_placement",
        current=2,
    )


def test_each_cap_pays_for_one_region_only() -> None:
    # One P1-controlled stack outside both pockets; once its cap has paid for the first region
    # P1 controls nothing (its other ring is buried under P2 at 6,0) and the second region
    # cannot be processed.
    state = build(
        stacks={"5,3": [1], "6,0": [2, 1], "3,0": [2], "0,7": [2], "7,7": [2]},
        collapsed=TWO_POCKETS,
    )
    to_territory(state, "move_stack p1 from=5,3 to=5,4")
    play(state, region("3,0"))
    play(state, "eliminate_rings_from_stack p1 to=5,4")
    assert snapshot(state) == expected(
        stacks={"6,0": [2, 1], "0,7": [2], "7,7": [2]},
        markers={"5,3": 1},
        collapsed={**TWO_POCKETS, "3,0": 1},
        hand=[5, 5],
        eliminated=[2, 0],
        territory=[1, 5],
        phase="ring_placement",
        current=2,
    )


def test_line_collapse_can_create_the_region() -> None:
    # The line 0,2..3,2 collapses and, with the collapsed 2,0 2,1, seals the corner 2x2.
    state = build(
        stacks={"3,2": [1, 1], "0,0": [2], "7,7": [2]},
        markers={"0,2": 1, "1,2": 1, "2,2": 1},
        collapsed={"2,0": 2, "2,1": 2},
    )
    play(state, "move_stack p1 from=3,2 to=3,4")
    cells = "0,2|1,2|2,2|3,2"
    play(state, f"process_line p1 cells={cells} collapse={cells} option=1")
    play(state, "eliminate_rings_from_stack p1 to=3,4")
    play(state, "no_line_action p1")
    assert legal(state) == texts(state, region("0,0|1,0|0,1|1,1"), "skip_territory_processing p1")
    play(state, region("0,0|1,0|0,1|1,1"))
    play(state, "eliminate_rings_from_stack p1 to=3,4")
    assert snapshot(state) == expected(
        stacks={"7,7": [2]},
        collapsed={
            "2,0": 2,
            "2,1": 2,
            **{c: 1 for c in cells.split("|")},
            **{c: 1 for c in ("0,0", "1,0", "0,1", "1,1")},
        },
        hand=[5, 5],
        eliminated=[3, 0],  # line ring, the P2 ring inside, the last P1 ring as the cap
        territory=[8, 2],
        phase="ring_placement",
        current=2,
    )


def test_the_whole_marker_group_joined_to_the_border_collapses() -> None:
    # A wall two markers thick, and markers of the other colour touching it: the canonical
    # engine collapses the border markers touching the region and every marker, of any colour,
    # joined to them through a chain of adjacent markers (diagonals included on square boards).
    # 6,6 and 7,7 are not joined to that group and stay.
    state = build(
        stacks={"5,0": [1, 1], "0,0": [2], "7,7": [2]},
        markers={"1,0": 1, "0,1": 1, "2,0": 1, "1,1": 1, "0,2": 1, "3,1": 2, "6,6": 1},
    )
    to_territory(state, "move_stack p1 from=5,0 to=5,2")
    group = "1,0|0,1|2,0|1,1|0,2|3,1"
    assert legal(state) == texts(state, region("0,0", group, 1), "skip_territory_processing p1")
    play(state, region("0,0", group, 1))
    play(state, "eliminate_rings_from_stack p1 to=5,2")
    assert snapshot(state) == expected(
        stacks={"7,7": [2]},
        markers={"5,0": 1, "6,6": 1},
        collapsed={c: 1 for c in ("0,0|" + group).split("|")},
        hand=[5, 5],
        eliminated=[3, 0],
        territory=[7, 0],
        phase="ring_placement",
        current=2,
    )


def test_skipping_after_the_first_region_leaves_the_second() -> None:
    state = build(
        stacks={"5,3": [1], "6,0": [1, 1], "3,0": [2], "0,7": [2], "7,7": [2]},
        collapsed=TWO_POCKETS,
    )
    to_territory(state, "move_stack p1 from=5,3 to=5,4")
    play(state, region("0,7"))
    play(state, "eliminate_rings_from_stack p1 to=5,4")
    assert legal(state) == texts(state, region("3,0"), "skip_territory_processing p1")
    play(state, "skip_territory_processing p1")
    assert snapshot(state) == expected(
        stacks={"6,0": [1, 1], "3,0": [2], "7,7": [2]},
        markers={"5,3": 1},
        collapsed={**TWO_POCKETS, "0,7": 1},
        hand=[5, 5],
        eliminated=[2, 0],
        territory=[1, 5],
        phase="ring_placement",
        current=2,
    )
