"""Links between the README and docs/ lead somewhere: the file exists, the anchor is a heading.

Anchors are GitHub's: the heading's text in lower case, punctuation dropped (letters, digits,
spaces, `-` and `_` kept), spaces turned into `-`, and `-1`, `-2`... for repeated headings.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt

from tests.docs.markdown import REPO, documents

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(text: str) -> str:
    text = re.sub(r"[`*_]{1,2}(?=\S)|(?<=\S)[`*_]{1,2}", "", text)  # emphasis and code marks
    kept = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    tokens = MarkdownIt("commonmark").parse(doc.read_text())
    for i, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        base = slug(tokens[i + 1].content)
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def _prose(doc: Path) -> str:
    """The text outside code blocks and inline code (links inside them are examples)."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def test_relative_links_and_anchors_resolve() -> None:
    broken: list[str] = []
    for doc in documents():
        for target in LINK.findall(_prose(doc)):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            linked = (doc.parent / path_part).resolve() if path_part else doc
            where = f"{doc.relative_to(REPO)}: ({target})"
            if not linked.exists():
                broken.append(f"{where}: no file {path_part}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{where}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, "\n".join(broken)


def test_slugs_follow_github() -> None:
    assert slug("GET /v1/openapi.json") == "get-v1openapijson"
    assert slug("POST /v1/schedules/{id}/pause") == "post-v1schedulesidpause"
    assert slug("Scheduling and retries") == "scheduling-and-retries"
