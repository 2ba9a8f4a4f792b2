"""Territory: regions cut off by collapsed spaces and one player's markers.

A region is a connected set (territory adjacency) of cells that are neither collapsed nor
markers of the border colour B. It is disconnected when the board splits into more than one
such component and the stacks inside it lack at least one colour that still has rings on the
board. Border colour 0 means the region is enclosed by collapsed spaces and edges alone.

When a region is processed, the markers that collapse with it are, as the canonical engine
plays it, the whole group of markers joined to its border: the border-colour markers touching
the region and every marker, of any colour, linked to them through a chain of
neighbouring markers (``Geometry.marker_link_neighbors``: the 8 cells around (x, y), which
on hex boards reaches two cells beyond the 6 hex neighbours).
"""

from __future__ import annotations

from typing import NamedTuple

from ringrift.game.bitboard import BitBoard, bitboard
from ringrift.game.state import GameState


class Region(NamedTuple):
    cells: tuple[int, ...]  # ascending cell order
    border_color: int
    border_markers: tuple[int, ...]  # the markers that collapse with it (see the module doc)


def find_disconnected_regions(state: GameState) -> list[Region]:
    """All physically and colour-disconnected regions, in a stable order; the same cells
    enclosed for several border colours are listed once (the first found: collapsed-only
    borders before marker borders, then by border colour)."""
    stacks = state.stacks
    if not state.stack_cells:
        return []
    bb = bitboard(state.geo.board)
    cell_bit = bb.cell_bit
    active: set[int] = set()
    control_bits: dict[int, int] = {}
    for c in state.stack_cells:
        s = stacks[c]
        active.update(s)
        top = s[-1]
        control_bits[top] = control_bits.get(top, 0) | cell_bit[c]

    collapsed_bits = 0
    marker_bits: dict[int, int] = {}
    for c, owner in enumerate(state.collapsed):
        if owner:
            collapsed_bits |= cell_bit[c]
    for c, owner in enumerate(state.markers):
        if owner:
            marker_bits[owner] = marker_bits.get(owner, 0) | cell_bit[c]

    found: list[Region] = []
    seen: set[int] = set()
    open_cells = bb.on_board & ~collapsed_bits
    for border in [0, *sorted(marker_bits)]:
        border_bits = marker_bits.get(border, 0)
        allowed = open_cells & ~border_bits
        components = []
        rest = allowed
        while rest:
            comp = bb.flood(rest & -rest, allowed)
            components.append(comp)
            rest &= ~comp
        if len(components) < 2:
            continue
        for comp in components:
            colours = {p for p, bits in control_bits.items() if bits & comp}
            if not colours < active:
                continue
            if comp in seen:  # the same cells enclosed for more than one border colour
                continue
            seen.add(comp)
            touching = bb.spread(comp) & border_bits if border else 0
            if touching:
                touching = _linked_markers(state, touching, bb) & ~comp
            found.append(
                Region(tuple(sorted(bb.cells(comp))), border, tuple(sorted(bb.cells(touching))))
            )
    return found


def named_region_markers(state: GameState, cells: tuple[int, ...]) -> tuple[int, ...]:
    """The markers that collapse with a region a move names (see ``named_territory_decision``):
    the markers of any colour touching it, and the markers linked to them."""
    bb = bitboard(state.geo.board)
    inside = set(cells)
    touching = {
        n
        for c in cells
        for n in state.geo.territory_neighbors[c]
        if n not in inside and state.markers[n]
    }
    if not touching:
        return ()
    group = _linked_markers(state, bb.of(sorted(touching)), bb) & ~bb.of(sorted(inside))
    return tuple(sorted(bb.cells(group)))


def _linked_markers(state: GameState, seeds: int, bb: BitBoard) -> int:
    """The markers, of any colour, joined to the ``seeds`` markers through chains of
    markers that are neighbours under ``Geometry.marker_link_neighbors``."""
    links = state.geo.marker_link_neighbors
    markers = state.markers
    todo = bb.cells(seeds)
    group = set(todo)
    while todo:
        c = todo.pop()
        for n in links[c]:
            if markers[n] and n not in group:
                group.add(n)
                todo.append(n)
    return bb.of(sorted(group))
