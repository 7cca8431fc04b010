"""The documentation's code blocks and the directives beside them, read with markdown-it.

A directive is an HTML comment (invisible on GitHub) right before a fenced block, saying how the
tests run it. One `key: value` per line, or one on the comment's own line:

    <!-- example skip: a full-screen terminal app; tests/tui drives it with Textual's Pilot -->

    <!-- example
    capture: <job id> = curl 1 data.id
    capture: <key prefix> = stdout display prefix (chrns_[A-Za-z0-9]+)
    -->

- `skip: REASON`: not run; the reason is required (a reader should see why it is not checked).
- `file: NAME`: the block is a file the reader saves as NAME (written to the work directory).
- `capture: <name> = curl N PATH`: the JSON answer of the block's N-th curl call, at the
  dotted PATH, replaces `<name>` from then on.
- `capture: <name> = stdout REGEX`: group 1 of REGEX over the block's stdout.
- `background: NAME`: start the block and let it run (a server, a worker, a receiver).
- `ready: REGEX`: wait until a background block's output matches REGEX (it is listening).
- `until: REGEX`: a background block is stopped (SIGTERM) once its output matches REGEX,
  which must happen.
- `exit: N`: the exit status a background block must end with after that SIGTERM (default:
  0 or killed by the SIGTERM).
- `stop: NAME`: before this block, wait for background NAME's `until` and stop it (otherwise
  they are stopped after the document's last block).
- `status: N`: a curl call of this block may answer N (an example of an error); any other
  status of 400 or more fails.
- `needs: postgres` / `needs: sqlite`: run only against the PostgreSQL server (its URL replaces
  the example's) / the SQLite one (`chronos.db` in the work directory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[2]
SHELL = frozenset({"bash", "sh", "shell"})
PYTHON = frozenset({"python", "py"})
RUNNABLE = SHELL | PYTHON
_KEYS = frozenset(
    {"skip", "file", "capture", "background", "ready", "until", "exit", "stop", "status", "needs"}
)
_CAPTURE = re.compile(r"(<[a-z][a-z ]*[a-z]>)\s*=\s*(curl\s+(\d+)\s+(\S+)|stdout\s+(.+))$")


class DirectiveError(ValueError):
    """A directive the tests cannot follow; the message names the file and line."""


@dataclass(frozen=True)
class Capture:
    placeholder: str  # `<job id>`
    curl_call: int | None  # 1-based index of the block's curl call, or None for stdout
    path: str  # dotted JSON path (curl) or a regex with one group (stdout)


@dataclass
class Directive:
    skip: str | None = None
    file: str | None = None
    captures: list[Capture] = field(default_factory=list)
    background: str | None = None
    ready: str | None = None
    until: str | None = None
    exit: int | None = None
    stop: list[str] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)
    needs: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    directive: Directive

    @property
    def where(self) -> str:
        return f"{_shown(self.doc)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in RUNNABLE


def _shown(doc: Path) -> str:
    return str(doc.relative_to(REPO)) if doc.is_relative_to(REPO) else str(doc)


def documents() -> list[Path]:
    """Every Markdown page a user reads: the README, then docs/ in name order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(doc: Path) -> list[Block]:
    tokens = MarkdownIt("commonmark").parse(doc.read_text())
    found: list[Block] = []
    pending: tuple[int, Directive] | None = None
    for token in tokens:
        if token.type == "html_block" and token.content.lstrip().startswith("<!-- example"):
            assert token.map is not None
            pending = (token.map[0] + 1, _directive(doc, token.map[0] + 1, token.content))
            continue
        if token.type == "fence":
            assert token.map is not None
            lang = token.info.strip().split(" ")[0].lower()
            directive = pending[1] if pending else Directive()
            found.append(Block(doc, token.map[0] + 1, lang, token.content, directive))
        elif pending is not None and token.type != "html_block":
            raise DirectiveError(
                f"{_shown(doc)}:{pending[0]}: an example directive must come right "
                "before the code block it is about"
            )
        pending = None
    return found


def _directive(doc: Path, line: int, comment: str) -> Directive:
    text = comment.strip().removeprefix("<!--").removesuffix("-->").strip()
    text = text.removeprefix("example").strip()
    where = f"{_shown(doc)}:{line}"
    out = Directive()
    for raw in text.splitlines():
        entry = raw.strip()
        if not entry:
            continue
        key, sep, value = entry.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or key not in _KEYS:
            raise DirectiveError(f"{where}: unknown example directive {entry!r}")
        if not value:
            raise DirectiveError(f"{where}: `{key}:` needs a value (a skip needs its reason)")
        _apply(out, key, value, where)
    return out


def _apply(out: Directive, key: str, value: str, where: str) -> None:
    if key == "skip":
        out.skip = value
    elif key == "file":
        out.file = value
    elif key == "background":
        out.background = value
    elif key == "ready":
        out.ready = value
    elif key == "until":
        out.until = value
    elif key == "exit":
        out.exit = int(value)
    elif key == "stop":
        out.stop.append(value)
    elif key == "status":
        out.statuses |= {int(v) for v in value.split(",")}
    elif key == "needs":
        out.needs |= set(value.split(","))
    else:
        found = _CAPTURE.match(value)
        if found is None:
            raise DirectiveError(
                f"{where}: capture must read `<name> = curl N PATH` or `<name> = stdout REGEX`"
            )
        placeholder, _, call, path, regex = found.groups()
        if call is not None:
            out.captures.append(Capture(placeholder, int(call), path))
        else:
            out.captures.append(Capture(placeholder, None, regex.strip()))
