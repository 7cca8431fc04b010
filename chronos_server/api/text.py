"""Which text the stores can hold: one rule for every string a request brings in.

PostgreSQL `text` cannot hold U+0000 and `jsonb` refuses a `\\u0000` escape; neither can hold a
lone surrogate (U+D800 to U+DFFF is not a Unicode scalar value, so it has no UTF-8 form), which
JSON `\\ud800` escapes produce. SQLite would store all of them, so the rule is applied before
either store sees a value, and both behave the same: a 422 naming the field.

Pure and cheap (the create path is hot): ASCII text without NUL, nearly every string, costs two
C-level scans. Body fields use it through `schemas.Text` and `schemas.JsonObject`; query
parameters call `text_problem` directly so their message is the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

NUL = "must not contain U+0000 (NUL)"
SURROGATE = "must not contain unpaired surrogates (U+D800 to U+DFFF)"
KEY_PREFIX = "key "
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

Path = list[str | int]


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    if value.isascii():
        return NUL if "\x00" in value else None
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return NUL if found.group() == "\x00" else SURROGATE


def json_problem(value: object) -> tuple[Path, str] | None:
    """The first string or object key in a parsed JSON value that cannot be stored, as (path
    inside `value`, message); None when there is none. A bad key is named by the path to it,
    with the message starting "key "."""
    if _clean(value):  # the common case, without building any path
        return None
    path: Path = []
    message = _locate(value, path)
    if message is None:
        return None
    path.reverse()
    return path, message


def _clean_text(value: str) -> bool:
    return (value.isascii() and "\x00" not in value) or _UNSTORABLE.search(value) is None


def _clean(value: object) -> bool:
    """True when no string or key in `value` is unstorable. Written for speed (it sees every
    payload created): exact type checks, and an object's keys scanned as one joined string."""
    children: Iterable[object]
    if type(value) is str:
        return _clean_text(value)
    if type(value) is dict:
        try:
            keys = "".join(value)
        except TypeError:  # a key that is not a string (Python input): let `_locate` judge
            return False
        if not _clean_text(keys):
            return False
        children = value.values()
    elif type(value) is list:
        children = value
    else:
        return True
    for child in children:
        if type(child) is str:
            if not _clean_text(child):
                return False
        elif (type(child) is dict or type(child) is list) and not _clean(child):
            return False
    return True


def _locate(value: object, path: Path) -> str | None:
    """Depth first; on a problem, `path` holds its location innermost first."""
    if isinstance(value, str):
        return text_problem(value)
    items: Any
    if isinstance(value, dict):
        for key in value:
            problem = text_problem(key) if isinstance(key, str) else None
            if problem is not None:
                path.append(key)
                return KEY_PREFIX + problem
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for step, child in items:
        problem = _locate(child, path)
        if problem is not None:
            path.append(step)
            return problem
    return None


def dotted(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """A field path as the API names it (`payload.a.0`). Characters that cannot be stored are
    shown as U+FFFD: a path is echoed in the error body, and a lone surrogate has no UTF-8."""
    return ".".join(
        _UNSTORABLE.sub("\ufffd", part) if isinstance(part, str) else str(part) for part in parts
    )


def surrogate_body_problem(raw: str | bytes) -> tuple[Path, str] | None:
    """Where a body the fast JSON parser refused holds a lone surrogate escape, if that is why.

    pydantic's parser (jiter) refuses `\\ud800` outright, which would be a 400 that names no
    field. Python's `json` reads such escapes, so the body is read again (only on this error
    path, and only when it holds a surrogate escape) to find the field to name."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return None
    if not _SURROGATE_ESCAPE.search(text):
        return None
    try:
        parsed: Any = json.loads(text)
        return json_problem(parsed) if isinstance(parsed, dict) else None
    except (ValueError, RecursionError):
        return None
