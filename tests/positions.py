"""Move sequences several tests start from."""

from __future__ import annotations

# Player 1's whole first turn on square8: place one ring at 3,3, move it to 3,4, no line, no
# territory. Player 2 is then to place.
SQUARE8_FIRST_TURN = (
    "place_ring p1 to=3,3",
    "move_stack p1 from=3,3 to=3,4",
    "no_line_action p1",
    "no_territory_action p1",
)
