"""`chronos-tui` entry point; the dashboard itself lands with its own issue."""

from __future__ import annotations

import sys


def main() -> None:
    print(
        "chronos-tui: the terminal dashboard is not built yet (see the TUI issue).", file=sys.stderr
    )
    sys.exit(2)
