"""docs/api.md, the OpenAPI document and the server's route table name the same endpoints.

Three lists that must not drift: the routes the server answers (`chronos_server.api.app.ROUTES`),
the paths of `GET /v1/openapi.json` (`chronos_server.api.openapi`), and the endpoint headings of
docs/api.md (`### POST /v1/jobs`). Adding a route means adding it to all three; the failure
messages say where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chronos_server.api.app import ROUTES
from chronos_server.api.openapi import openapi_document
from tests.docs.markdown import REPO

API_MD = REPO / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HEADING = re.compile(r"^(#{2,4})\s+`?(GET|POST|PUT|PATCH|DELETE) (/\S*?)`?\s*$")
ANY_HEADING = re.compile(r"^(#{1,6})\s")

# Served but deliberately not in the OpenAPI document, each with the reason.
NOT_IN_OPENAPI = {
    ("GET", "/v1/worker/stream"): "a WebSocket (OpenAPI 3.1 cannot describe one); api.md has it",
}

Endpoint = tuple[str, str]  # ("POST", "/v1/jobs/{id}/cancel")


def _normal(path: str) -> str:
    """`/v1/jobs/:id` and `/v1/jobs/{job_id}` are `/v1/jobs/{id}`: only the shape counts."""
    path = re.sub(r"\{[^}]*\}", "{id}", path)
    return re.sub(r":[a-z_]+", "{id}", path)


def served() -> set[Endpoint]:
    return {(method, _normal(pattern)) for method, pattern, _ in ROUTES}


def described() -> set[Endpoint]:
    paths = openapi_document()["paths"]
    return {
        (method.upper(), _normal(path))
        for path, ops in paths.items()
        for method in ops
        if method.upper() in METHODS
    }


@dataclass(frozen=True)
class Section:
    endpoint: Endpoint
    line: int
    text: str


def sections(doc: Path = API_MD) -> dict[Endpoint, Section]:
    lines = doc.read_text().splitlines()
    found: dict[Endpoint, Section] = {}
    starts = [(i, HEADING.match(line)) for i, line in enumerate(lines)]
    for i, match in starts:
        if match is None:
            continue
        level = len(match.group(1))
        end = next(
            (
                j
                for j in range(i + 1, len(lines))
                if (h := ANY_HEADING.match(lines[j])) and len(h.group(1)) <= level
            ),
            len(lines),
        )
        endpoint = (match.group(2), _normal(match.group(3)))
        assert endpoint not in found, f"docs/api.md:{i + 1}: {endpoint} has two sections"
        found[endpoint] = Section(endpoint, i + 1, "\n".join(lines[i + 1 : end]))
    return found


def _shown(method: str, path: str) -> str:
    """`PUT /v1/handlers/{name}/limits`: as the route table writes it, for messages."""
    for m, pattern, _ in ROUTES:
        if m == method and _normal(pattern) == path:
            return f"{m} {pattern}"
    return f"{method} {path}"


def _names(endpoints: set[Endpoint]) -> str:
    return ", ".join(_shown(m, p) for m, p in sorted(endpoints, key=lambda e: (e[1], e[0])))


def test_every_served_route_is_in_the_openapi_document() -> None:
    missing = served() - described() - set(NOT_IN_OPENAPI)
    assert not missing, (
        f"served but not in GET /v1/openapi.json: {_names(missing)}. Describe each in _paths() "
        "of chronos_server/api/openapi.py (or, if OpenAPI cannot describe it, add it with the "
        "reason to NOT_IN_OPENAPI in tests/docs/test_api_reference.py)"
    )


def test_every_openapi_path_is_served() -> None:
    ghosts = described() - served()
    assert not ghosts, (
        f"in the OpenAPI document but not served: {_names(ghosts)}. Add the route to a ROUTES "
        "table of chronos_server/api/routes_*.py, or remove it from chronos_server/api/openapi.py"
    )
    stale = set(NOT_IN_OPENAPI) - (served() - described())
    assert not stale, f"NOT_IN_OPENAPI lists {_names(stale)}, which no longer needs it: remove it"


def test_every_endpoint_is_documented_in_api_md() -> None:
    documented = set(sections())
    missing = (served() | described()) - documented
    assert not missing, "; ".join(
        f"document {_shown(m, p)} in docs/api.md (a heading `### {_shown(m, p)}` with its "
        "fields, answers, error codes and a curl example)"
        for m, p in sorted(missing, key=lambda e: (e[1], e[0]))
    )
    extra = documented - served()
    assert not extra, (
        f"docs/api.md documents {_names(extra)}, which the server does not serve: remove the "
        "section or fix its heading"
    )


def test_each_section_has_a_curl_example_for_its_own_path() -> None:
    for (method, path), section in sections().items():
        pieces = [p for p in re.split(r"\{id\}", path) if p.strip("/")]
        fenced = re.findall(r"```bash\n(.*?)```", section.text, flags=re.S)
        calls = [c for c in fenced if "curl" in c and all(p in c for p in pieces)]
        assert calls, (
            f"docs/api.md:{section.line}: {method} {path} needs a ```bash block with a curl call "
            f"of {path} (the tests run it against a real server)"
        )
        if method != "GET" and method not in " ".join(calls) and "-d" not in " ".join(calls):
            raise AssertionError(f"docs/api.md:{section.line}: the curl example is not a {method}")


def test_each_section_names_its_statuses() -> None:
    """The success status and every resource-specific failure (404, 409) the OpenAPI document
    lists for the operation appear in its section; the answers every endpoint shares (400, 401,
    422, 429, 503) are in the page's "Errors" section."""
    paths = openapi_document()["paths"]
    for (method, path), section in sections().items():
        ops = {_normal(p): o for p, o in paths.items()}.get(path, {})
        op = ops.get(method.lower())
        if op is None:
            continue
        wanted = {c for c in op["responses"] if c not in {"400", "401", "422", "429", "503"}}
        missing = sorted(c for c in wanted if not re.search(rf"\b{c}\b", section.text))
        assert not missing, (
            f"docs/api.md:{section.line}: {method} {path} answers {missing} (OpenAPI), "
            "which its section does not mention"
        )


def test_api_md_lists_every_error_code() -> None:
    from chronos_server import errors

    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ChronosError)
    }
    text = API_MD.read_text()
    missing = sorted(c for c in codes if f"`{c}`" not in text)
    assert not missing, f"docs/api.md's error catalogue lacks {missing} (chronos_server/errors.py)"


def test_readme_points_at_the_reference_in_the_repository() -> None:
    readme = (REPO / "README.md").read_text()
    assert "docs/api.md" in readme
    assert "shared/spec" not in readme, "the README must not send users outside the repository"


def _chapter(line: int, doc: Path = API_MD) -> str:
    """The `##` chapter holding `line` (1-based)."""
    lines = doc.read_text().splitlines()
    start = max(i for i in range(line) if lines[i].startswith("## "))
    end = next((j for j in range(line, len(lines)) if lines[j].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def _body_fields(op: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if not ref or "$ref" not in ref:
        return []
    schema = schemas[ref["$ref"].rsplit("/", 1)[1]]
    return list(schema.get("properties", {}))


def test_each_section_names_its_parameters_and_body_fields() -> None:
    """Every query parameter and top-level body field the OpenAPI document lists for an
    operation is named (`like_this`) in its section, or in its chapter (a PATCH may point at the
    create's table)."""
    doc = openapi_document()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    missing: list[str] = []
    for (method, path), section in sections().items():
        op = {_normal(p): o for p, o in paths.items()}.get(path, {}).get(method.lower())
        if op is None:
            continue
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        names += _body_fields(op, schemas)
        chapter = _chapter(section.line)
        for name in names:
            if f"`{name}`" not in section.text and f"`{name}`" not in chapter:
                missing.append(
                    f"docs/api.md:{section.line}: document `{name}` of {method} {path} "
                    "(a row of its field table, or its query parameters)"
                )
    assert not missing, "\n".join(missing)


def test_objects_list_every_field() -> None:
    """The Objects tables name every field of a Schedule, a Job and an Execution."""
    schemas = openapi_document()["components"]["schemas"]
    text = API_MD.read_text()
    objects = text[text.index("## Objects") :]
    objects = objects[: objects.index("\n## ", 1)]
    missing = [
        f"{name}.{field}"
        for name in ("Schedule", "Job", "Execution")
        for field in schemas[name]["properties"]
        if f"`{field}`" not in objects
    ]
    assert not missing, f"docs/api.md's Objects tables lack {missing}: add a row for each"
