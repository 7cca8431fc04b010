"""SVG snapshots of the overview with fixed data and a fixed clock.

A snapshot that differs fails and leaves the new rendering beside the test's tmp files; after
checking it, regenerate the committed files with

    CHRONOS_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/tui/test_snapshot.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.pilot import Pilot

from chronos_tui.app import ChronosApp
from tests.tui.fakes import demo_api
from tests.tui.helpers import drive

SNAPSHOTS = Path(__file__).parent / "snapshots"


def render_overview(size: tuple[int, int]) -> str:
    shot: list[str] = []

    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        shot.append(app.export_screenshot(title="Chronos overview"))

    drive(demo_api(), scenario, size=size, refresh_seconds=1.0)
    return shot[0]


@pytest.mark.parametrize(("name", "size"), [("overview", (100, 30)), ("overview-80x24", (80, 24))])
def test_overview_snapshot(name: str, size: tuple[int, int], tmp_path: Path) -> None:
    actual = render_overview(size)
    expected_path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("CHRONOS_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.exists(), "no snapshot yet: run with CHRONOS_UPDATE_SNAPSHOTS=1"
    if actual != expected_path.read_text(encoding="utf-8"):
        new = tmp_path / f"{name}.svg"
        new.write_text(actual, encoding="utf-8")
        pytest.fail(f"{name} differs from {expected_path}; new rendering: {new}")
    assert "send-report" in actual and "1m 35s" in actual.replace("&#160;", " ")
