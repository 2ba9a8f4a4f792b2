"""The reference state fingerprint and its 64-bit hash, as recorded game databases store it."""

from __future__ import annotations

from ringrift.game.state import GameState, Phase, cap_height

_M32 = 0xFFFFFFFF


def fingerprint(state: GameState, *, with_pending_line: bool = True) -> str:
    """``meta # players # stacks # markers # collapsed``, each part sorted as text."""
    keys = state.geo.keys
    if state.phase is Phase.GAME_OVER:
        meta = "0:game_over:completed"
    else:
        meta = f"{state.current}:{state.phase.value}:{state.status}"
    if with_pending_line:
        meta += ":1" if state.pending_line else ":0"
    players = "|".join(
        sorted(
            f"{p}:{state.hand[p]}:{state.eliminated[p]}:{state.territory[p]}"
            for p in range(1, state.num_players + 1)
        )
    )
    stacks = "|".join(
        sorted(
            f"{keys[c]}:{s[-1]}:{len(s)}:{cap_height(s)}"
            for c in state.stack_cells
            for s in (state.stacks[c],)
        )
    )
    markers = "|".join(sorted(f"{keys[c]}:{o}" for c, o in enumerate(state.markers) if o))
    collapsed = "|".join(sorted(f"{keys[c]}:{o}" for c, o in enumerate(state.collapsed) if o))
    return "#".join((meta, players, stacks, markers, collapsed))


def fingerprint_hash(text: str) -> str:
    """The 2x32-bit multiplicative hash of a fingerprint, as 16 hex digits (``h2`` then ``h1``).

    This is the well-known cyrb53 construction the upstream engine uses: the two multiplications
    run per UTF-16 code unit, and the two cross-mixing steps run once at the end.
    """
    h1, h2 = 0xDEADBEEF, 0x41C6CE57
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        code = units[i] | units[i + 1] << 8
        h1 = ((h1 ^ code) * 2654435761) & _M32
        h2 = ((h2 ^ code) * 1597334677) & _M32
    h1 = (((h1 ^ (h1 >> 16)) * 2246822507) & _M32) ^ (((h2 ^ (h2 >> 13)) * 3266489909) & _M32)
    h2 = (((h2 ^ (h2 >> 16)) * 2246822507) & _M32) ^ (((h1 ^ (h1 >> 13)) * 3266489909) & _M32)
    return f"{h2:08x}{h1:08x}"


def state_hash(state: GameState) -> str:
    return fingerprint_hash(fingerprint(state))
