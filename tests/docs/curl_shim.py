"""`curl` as the documentation's examples see it: the real curl, plus what a reader checks by eye.

Installed first on PATH for the examples (tests/docs/test_examples.py). For each call it
1. replaces `<placeholder>`s in the arguments by the values captured so far (an id from an
   earlier answer), and refuses one it does not know;
2. runs the real curl, passing its output through unchanged;
3. fails (exit 22, the answer on stderr) on an HTTP status of 400 or more that the block's
   directive does not expect, or on no answer at all;
4. records captures the block's directive asks for from this call's JSON answer.

State lives in the directory `CHRONOS_EXAMPLE_STATE`: `captures.json` ({placeholder: value}) and
`block.json` (this block's captures and expected statuses, and how many curl calls it made).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"<[a-z][a-z ]*[a-z]>")
STATUS_MARK = "\nCHRONOS-EXAMPLE-STATUS:"


def main(argv: list[str]) -> int:
    state = Path(os.environ["CHRONOS_EXAMPLE_STATE"])
    captures: dict[str, str] = json.loads((state / "captures.json").read_text())
    block: dict[str, Any] = json.loads((state / "block.json").read_text())
    args = [_substitute(arg, captures) for arg in argv]
    unknown = sorted({p for arg in args for p in PLACEHOLDER.findall(arg)})
    if unknown:
        print(f"example: unknown placeholder(s) {unknown} in curl {args}", file=sys.stderr)
        return 90
    block["calls"] += 1
    call = block["calls"]
    (state / "block.json").write_text(json.dumps(block))
    done = subprocess.run(
        [os.environ["CHRONOS_EXAMPLE_CURL"], *args, "--write-out", STATUS_MARK + "%{http_code}"],
        capture_output=True,
    )
    out, _, code = done.stdout.decode(errors="replace").rpartition(STATUS_MARK)
    sys.stdout.write(out + ("" if out.endswith("\n") else "\n"))
    sys.stderr.write(done.stderr.decode(errors="replace"))
    status = int(code) if code.isdigit() else 0
    if done.returncode != 0 or status == 0:
        print(f"example: curl call {call} got no answer (exit {done.returncode})", file=sys.stderr)
        return done.returncode or 7
    if status >= 400 and status not in block["statuses"]:
        print(f"example: curl call {call} answered HTTP {status}: {out}", file=sys.stderr)
        return 22
    for placeholder, wanted, path in block["captures"]:
        if wanted == call:
            captures[placeholder] = _extract(out, path, call)
    (state / "captures.json").write_text(json.dumps(captures))
    return 0


def _substitute(arg: str, captures: dict[str, str]) -> str:
    for placeholder, value in captures.items():
        arg = arg.replace(placeholder, value)
    return arg


def _extract(body: str, path: str, call: int) -> str:
    text = body.split("\r\n\r\n")[-1]  # `curl -i`: the JSON follows the headers
    node: Any = json.loads(text)
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    if not isinstance(node, str | int):
        raise SystemExit(f"example: curl call {call}: {path} is {node!r}, not an id")
    return str(node)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
