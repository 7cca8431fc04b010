"""The import layering of docs/architecture.md, checked over every module with `ast`.

`MAY_IMPORT` says, for each unit (a package of chronos_server, one of its top-level modules, or a
top-level package), which other units of this repository it may import; any other import of a
Chronos unit fails. `MAY_NOT_IMPORT_LIBRARIES` keeps the pure core free of I/O and the dashboard
off Trio. Imports inside functions and under `TYPE_CHECKING` count too: a layer that needs another
only for a type still depends on it.

A new package or top-level module needs a row here (the failure says which), and the table in
docs/architecture.md ("Package map") says the same in prose; `test_architecture_md_names_every_unit`
keeps the two together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("chronos_server", "chronos_worker", "chronos_tui", "chronos_cli")
S = "chronos_server"

# unit -> the units it may import (besides itself)
MAY_IMPORT: dict[str, frozenset[str]] = {
    f"{S}.errors": frozenset(),
    f"{S}.clock": frozenset(),
    f"{S}.settings": frozenset({f"{S}.core"}),  # the job states a retention rule names
    # metrics and structured log lines: what every layer reports through (exposition: the
    # /metrics listener, on the web server)
    f"{S}.telemetry": frozenset(
        {f"{S}.core", f"{S}.store", f"{S}.settings", f"{S}.errors", f"{S}.clock", f"{S}.web"}
    ),
    f"{S}.prune": frozenset(
        {f"{S}.loops", f"{S}.store", f"{S}.settings", f"{S}.clock", f"{S}.core", f"{S}.errors"}
    ),
    f"{S}.core": frozenset({f"{S}.errors"}),
    f"{S}.store": frozenset({f"{S}.core", f"{S}.errors"}),
    f"{S}.pipeline": frozenset(
        {f"{S}.core", f"{S}.store", f"{S}.clock", f"{S}.errors", f"{S}.telemetry"}
    ),
    f"{S}.delivery": frozenset(
        # api.timefmt only: the wire format of an instant, shared with the push body
        {
            f"{S}.core",
            f"{S}.store",
            f"{S}.pipeline",
            f"{S}.clock",
            f"{S}.errors",
            f"{S}.telemetry",
            f"{S}.api.timefmt",
        }
    ),
    f"{S}.loops": frozenset(
        {
            f"{S}.core",
            f"{S}.store",
            f"{S}.pipeline",
            f"{S}.delivery",
            f"{S}.clock",
            f"{S}.errors",
            f"{S}.settings",
            f"{S}.telemetry",
        }
    ),
    f"{S}.web": frozenset({f"{S}.errors", f"{S}.clock"}),
    f"{S}.api": frozenset(
        {
            f"{S}.core",
            f"{S}.store",
            f"{S}.pipeline",
            f"{S}.web",
            f"{S}.clock",
            f"{S}.errors",
            f"{S}.settings",
            f"{S}.telemetry",
        }
    ),
    f"{S}.runtime": frozenset(
        {
            f"{S}.core",
            f"{S}.store",
            f"{S}.pipeline",
            f"{S}.delivery",
            f"{S}.loops",
            f"{S}.web",
            f"{S}.api",
            f"{S}.clock",
            f"{S}.errors",
            f"{S}.settings",
            f"{S}.telemetry",
        }
    ),
    f"{S}.supervisor": frozenset(
        {f"{S}.runtime", f"{S}.store", f"{S}.clock", f"{S}.errors", f"{S}.settings"}
    ),
    f"{S}.startup": frozenset({f"{S}.errors", f"{S}.settings", f"{S}.store"}),
    f"{S}.admin": frozenset(
        {
            f"{S}.runtime",
            f"{S}.startup",
            f"{S}.api",
            f"{S}.store",
            f"{S}.core",
            f"{S}.clock",
            f"{S}.errors",
            f"{S}.settings",
        }
    ),
    f"{S}.cli": frozenset(
        {
            "chronos_cli.main",  # `python -m chronos_server` is the whole `chronos` command
            f"{S}.admin",
            f"{S}.startup",
            f"{S}.prune",
            f"{S}.telemetry",
            f"{S}.runtime",
            f"{S}.supervisor",
            f"{S}.store",
            f"{S}.api",
            f"{S}.clock",
            f"{S}.errors",
            f"{S}.settings",
        }
    ),
    f"{S}.__main__": frozenset({f"{S}.cli"}),
    S: frozenset(),  # chronos_server/__init__.py
    "chronos_worker": frozenset(),  # the SDK: installed without the server, talks HTTP only
    "chronos_tui": frozenset({"chronos_worker"}),  # the dashboard: HTTP only, through the client
    # the `chronos` command: its HTTP commands on the client; the server's commands are loaded
    # by name (importlib) only when one runs, so a worker host needs no server code
    "chronos_cli": frozenset({"chronos_worker", f"{S}.cli"}),
}

MAY_NOT_IMPORT_LIBRARIES: dict[str, frozenset[str]] = {
    # pure: states, transitions, backoff, slots; no event loop, no I/O, no clock
    f"{S}.core": frozenset({"trio", "httpx", "psycopg", "sqlite3", "socket", "h11"}),
    # an asyncio (Textual) world
    "chronos_tui": frozenset({"trio"}),
}


def unit_of(module: str) -> str:
    """`chronos_server.store.sql_store` -> `chronos_server.store`; `chronos_worker.x` ->
    `chronos_worker`; a module directly under chronos_server is its own unit."""
    parts = module.split(".")
    if parts[0] != S:
        return parts[0]
    return ".".join(parts[:2])


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        root = REPO / package
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """Every Chronos module `module` imports (absolute, relative, `from pkg import submodule`)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from chronos_server import errors`: the submodule
                candidate = f"{target}.{alias.name}"
                top = REPO / Path(*candidate.split("."))
                if top.with_suffix(".py").is_file() or (top / "__init__.py").is_file():
                    yield node.lineno, candidate


def _allowed(unit: str, target: str) -> bool:
    may = MAY_IMPORT[unit]
    target_unit = unit_of(target)
    return (
        target_unit == unit
        or target_unit in may
        or any(target == m or target.startswith(m + ".") for m in may)
    )


def test_every_unit_has_a_row() -> None:
    units = {unit_of(module) for module, _ in modules()}
    missing = sorted(units - set(MAY_IMPORT))
    assert not missing, "; ".join(
        f"add a row for package {u} to MAY_IMPORT in tests/test_layering.py (which Chronos "
        "packages it may import) and to the package map of docs/architecture.md"
        for u in missing
    )


def test_imports_follow_the_layering() -> None:
    wrong: list[str] = []
    for module, path in modules():
        unit = unit_of(module)
        if unit not in MAY_IMPORT:
            continue  # test_every_unit_has_a_row says so
        for line, target in imports(module, path):
            if target.split(".")[0] not in PACKAGES or target == unit_of(target) == S:
                continue
            if not _allowed(unit, target):
                wrong.append(
                    f"{path.relative_to(REPO)}:{line} imports {target}: {unit} may import only "
                    f"{sorted(MAY_IMPORT[unit]) or 'no other Chronos package'} (move the code, "
                    "or change MAY_IMPORT and docs/architecture.md if the layering should change)"
                )
    assert not wrong, "\n".join(wrong)


def test_libraries_kept_out() -> None:
    wrong: list[str] = []
    for module, path in modules():
        banned = MAY_NOT_IMPORT_LIBRARIES.get(unit_of(module), frozenset())
        for line, target in imports(module, path):
            if target.split(".")[0] in banned:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_violation() -> None:
    """The walk is not vacuous: a made-up module of core importing the store is refused."""
    assert not _allowed(f"{S}.core", f"{S}.store.base")
    assert not _allowed("chronos_worker", f"{S}.errors")
    assert _allowed(f"{S}.loops", f"{S}.pipeline.signals")
    found = list(imports(f"{S}.store.transactions.jobs", REPO / S / "store/transactions/jobs.py"))
    assert f"{S}.errors" in {target for _, target in found}  # `from chronos_server import errors`


def test_architecture_md_names_every_unit() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    for unit in MAY_IMPORT:
        short = unit.removeprefix(f"{S}.") if unit != S else S
        if unit in {f"{S}.__main__"}:
            continue
        assert f"`{short}`" in text, f"docs/architecture.md's package map lacks `{short}`"
