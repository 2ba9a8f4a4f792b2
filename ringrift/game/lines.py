"""Line detection: maximal runs of one player's markers along a line axis."""

from __future__ import annotations

from ringrift.game.state import GameState


def find_lines(
    state: GameState, player: int, min_length: int | None = None
) -> list[tuple[int, ...]]:
    """Every maximal run of ``player``'s markers of at least the line length, in board order.

    A run is listed from its lowest end along the axis direction, so each line appears once.
    """
    length = state.config.line_length if min_length is None else min_length
    geo = state.geo
    rays = geo.rays
    half = geo.num_directions // 2
    markers = state.markers
    lines: list[tuple[int, ...]] = []
    for c, owner in enumerate(markers):
        if owner != player:
            continue
        for axis in geo.line_axes:
            back = rays[c][axis + half]
            if back and markers[back[0]] == player:
                continue  # not the start of a run
            run = [c]
            for nxt in rays[c][axis]:
                if markers[nxt] != player:
                    break
                run.append(nxt)
            if len(run) >= length:
                lines.append(tuple(run))
    return lines


def line_through(state: GameState, cell: int, player: int, axis: int) -> tuple[int, ...]:
    """The maximal run of ``player`` markers through ``cell`` along ``axis`` (cell included)."""
    rays = state.geo.rays[cell]
    half = state.geo.num_directions // 2
    markers = state.markers
    back = []
    for c in rays[axis + half]:
        if markers[c] != player:
            break
        back.append(c)
    fwd = []
    for c in rays[axis]:
        if markers[c] != player:
            break
        fwd.append(c)
    return tuple(reversed(back)) + (cell,) + tuple(fwd)
