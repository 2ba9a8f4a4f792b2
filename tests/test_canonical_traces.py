"""Games played by the canonical RingRift engine replay move for move, fingerprint for
fingerprint (tests/fixtures/generated-traces: 60 random games, all 12 configurations).

The canonical engine is the arbiter of the rules. A game listed in ``DIVERGES`` is one our
engine does not yet replay: each is marked as an expected failure with the divergence it shows,
strictly, so the test fails as soon as one replays and the list must shrink with it. None of them
is a fixture error.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from ringrift.game.checker import Mismatch, discover
from ringrift.game.errors import RingRiftError

TARBALL = (
    Path(__file__).parent / "fixtures" / "generated-traces" / "canonical-random-2026-12-03.tar.gz"
)

# Games our engine does not yet replay, each with its divergence: none at present.
DIVERGES: dict[str, str] = {}


def _games() -> list[str]:
    with tarfile.open(TARBALL) as tar:
        names = [Path(m.name).name for m in tar.getmembers() if m.name.endswith(".json")]
    return sorted(n.removeprefix("trace.").removesuffix(".json") for n in names)


GAMES = _games()


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("traces")
    with tarfile.open(TARBALL) as tar:
        tar.extractall(root, filter="data")
    (folder,) = root.iterdir()
    return folder


def test_the_tarball_holds_sixty_games_of_every_configuration() -> None:
    assert len(GAMES) == 60
    assert len({g.split(".")[0] for g in GAMES}) == 12
    assert set(DIVERGES) <= set(GAMES)


@pytest.mark.parametrize(
    "game",
    [
        pytest.param(g, marks=pytest.mark.xfail(reason=DIVERGES[g], strict=True, raises=Mismatch))
        if g in DIVERGES
        else g
        for g in GAMES
    ],
)
def test_canonical_game_replays(traces: Path, game: str) -> None:
    (case,) = discover([str(traces / f"trace.{game}.json")])
    try:
        case.run()
    except RingRiftError as e:  # an illegal move is a divergence like any other
        raise Mismatch(str(e)) from None
