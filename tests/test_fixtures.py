"""The reference fixtures replay through `ringrift rules check` with no failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ringrift.game.checker import check, discover, load_skips
from tests.test_canonical_traces import DIVERGES

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_fixture_passes_or_is_skipped_with_a_reason() -> None:
    # The canonical games are read straight from their archive; the ones that still diverge
    # are the strict expected failures of tests/test_canonical_traces.py, and nothing else fails.
    res = check([str(FIXTURES)])
    diverging = {f"canonical-random-2026-12-03/trace.{game}" for game in DIVERGES}
    unexpected = [(cid, err) for cid, err in res.failed if cid not in diverging]
    assert unexpected == [], "\n".join(f"{cid}: {err}" for cid, err in unexpected)
    assert {cid for cid, _ in res.failed} == diverging
    assert res.stale_skips == [], f"skipped cases that pass now: {res.stale_skips}"
    assert (len(res.passed), len(res.skipped)) == (156, 54)
    assert all(reason.strip() for _, reason in res.skipped)


def test_every_skip_names_an_existing_case() -> None:
    ids = {case.id for case in discover([str(FIXTURES)])}
    unknown = sorted(set(load_skips(None)) - ids)
    assert unknown == []


def test_cli_summary_line_and_exit_status(tmp_path: Path) -> None:
    golden = FIXTURES / "golden-games" / "smoke_hex8_2p_mjk8qhtj.json"
    ok = subprocess.run(
        [sys.executable, "-m", "ringrift.cli", "rules", "check", str(golden)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().splitlines()[-1] == "1 passed, 0 failed, 0 skipped"

    broken = tmp_path / "broken.json"
    text = golden.read_text().replace('"place_ring"', '"move_stack"', 1)
    broken.write_text(text)
    bad = subprocess.run(
        [sys.executable, "-m", "ringrift.cli", "rules", "check", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    lines = bad.stdout.strip().splitlines()
    assert lines[-1] == "0 passed, 1 failed, 0 skipped"
    assert lines[0].startswith("FAIL golden/broken: move 1")
