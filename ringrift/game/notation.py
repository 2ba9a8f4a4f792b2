"""A short, exact text form of moves, for logs, error messages and game records.

Examples: ``place 3,3 x2``, ``move 3,3>3,6``, ``capture 1,2>4,2 over 2,2``, ``line 0,0|1,1|2,2``
``opt2 1,1|2,2|3,3``, ``territory 0,0|1,0 border 2,0``, ``eliminate 3,3``,
``recover 2,2>2,3 line opt1 from 4,4``, ``no_line_action``. ``move_from_str`` parses exactly what
``move_to_str`` writes.
"""

from __future__ import annotations

from ringrift.game.boards import Geometry
from ringrift.game.errors import RingRiftError
from ringrift.game.moves import MOVE_TYPE_ALIASES, Move, MoveType

MT = MoveType

_CELLS_KINDS = {MT.PROCESS_LINE, MT.CHOOSE_LINE_OPTION, MT.CHOOSE_TERRITORY_OPTION}


def _cells(geo: Geometry, cells: tuple[int, ...]) -> str:
    return "|".join(geo.keys[c] for c in cells) if cells else "-"


def _parse_cells(geo: Geometry, text: str) -> tuple[int, ...]:
    return () if text == "-" else tuple(geo.cell(k) for k in text.split("|"))


def move_to_str(geo: Geometry, m: Move) -> str:
    k = geo.keys
    parts = [m.type.value, f"p{m.player}"]
    if m.frm >= 0:
        parts.append(f"from={k[m.frm]}")
    if m.to >= 0:
        parts.append(f"to={k[m.to]}")
    if m.target >= 0:
        parts.append(f"target={k[m.target]}")
    if m.rings != 1:
        parts.append(f"rings={m.rings}")
    if m.cells:
        parts.append(f"cells={_cells(geo, m.cells)}")
    if m.collapse:
        parts.append(f"collapse={_cells(geo, m.collapse)}")
    if m.option:
        parts.append(f"option={m.option}")
    if m.mode:
        parts.append(f"mode={m.mode}")
    return " ".join(parts)


def move_from_str(geo: Geometry, text: str) -> Move:
    words = text.split()
    if len(words) < 2 or not words[1].startswith("p"):
        raise RingRiftError(
            f"bad move text {text!r}: expected '<type> p<player> [field=value ...]'"
        )
    name = words[0]
    try:
        mtype = MOVE_TYPE_ALIASES.get(name) or MoveType(name)
        player = int(words[1][1:])
        fields: dict[str, str] = dict(w.split("=", 1) for w in words[2:])
        return Move(
            mtype,
            player,
            frm=geo.cell(fields["from"]) if "from" in fields else -1,
            to=geo.cell(fields["to"]) if "to" in fields else -1,
            target=geo.cell(fields["target"]) if "target" in fields else -1,
            rings=int(fields.get("rings", 1)),
            cells=_parse_cells(geo, fields.get("cells", "-")),
            collapse=_parse_cells(geo, fields.get("collapse", "-")),
            option=int(fields.get("option", 0)),
            mode=fields.get("mode", ""),
        )
    except (ValueError, KeyError) as e:
        raise RingRiftError(f"bad move text {text!r}: {e}") from None
