"""The text rule itself, pure: which strings neither store can hold, where in a JSON value they
are, and how `parse_body` names them (the HTTP side is tests/api/test_unstorable_text.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from chronos_server.api.schemas import JobCreate, ResultIn, field_errors, parse_body
from chronos_server.api.text import (
    NUL,
    SURROGATE,
    dotted,
    json_problem,
    surrogate_body_problem,
    text_problem,
)
from chronos_server.errors import BadRequest, FieldError, ValidationFailed


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", None),
        ("plain ascii", None),
        ("caf\u00e9 \u4e2d\u6587 \U0001f600", None),  # a pair in JSON, one code point here
        ("\ue000\ufffe\uffff\U0010ffff", None),  # private use and noncharacters are storable
        ("\t\n\x01\x1f\x7f", None),
        ("a\x00b", NUL),
        ("\u00e9\x00", NUL),
        ("\ud800", SURROGATE),
        ("x\udfff", SURROGATE),
        ("\u00e9\udc00", SURROGATE),
    ],
)
def test_text_problem(value: str, problem: str | None) -> None:
    assert text_problem(value) == problem


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ({"a": 1, "b": [True, None, 1.5, "x", {"c": "d"}]}, None),
        ("\x00", ([], NUL)),
        ({"a": {"b": "x\x00"}}, (["a", "b"], NUL)),
        ({"a": [0, 1, ["\ud800"]]}, (["a", 2, 0], SURROGATE)),
        ({"a": {"k\x00": 1}}, (["a", "k\x00"], "key " + NUL)),
        ([{"ok": "fine"}, {"\udc00": "v"}], ([1, "\udc00"], "key " + SURROGATE)),
        ({"\x00": {"deeper": "\x00"}}, (["\x00"], "key " + NUL)),  # never descends into it
        ({1: "not a JSON key"}, None),
    ],
)
def test_json_problem(value: Any, found: tuple[list[str | int], str] | None) -> None:
    assert json_problem(value) == found


def test_dotted_shows_unstorable_characters_as_replacement() -> None:
    assert dotted(["payload", "a", 0, "k\x00\ud800"]) == "payload.a.0.k\ufffd\ufffd"


def test_a_backslash_u0000_written_as_text_is_accepted() -> None:
    """`\\\\u0000` is the six characters, not NUL: the walk runs and finds nothing."""
    raw = rb'{"name": "j\\u0000", "handler": "h", "payload": {"a": "\\u0000"}}'
    job = parse_body(JobCreate, raw)
    assert job.name == "j\\u0000" and job.payload == {"a": "\\u0000"}


def test_every_field_holding_nul_is_named() -> None:
    raw = rb'{"name": "j\u0000", "handler": "h", "payload": {"a": [1, "\u0000"]}}'
    with pytest.raises(ValidationFailed) as caught:
        parse_body(JobCreate, raw)
    assert caught.value.errors == [FieldError("name", NUL), FieldError("payload.a.1", NUL)]


def test_lone_surrogate_escape_is_named_not_a_400() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_body(JobCreate, rb'{"name": "j", "handler": "h", "payload": {"a": "\ud800"}}')
    assert caught.value.errors == [FieldError("payload.a", SURROGATE)]


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"name": "\ud800"',  # still not JSON
        rb'["\ud800"]',  # JSON, but not an object
        b'{"name": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes: not UTF-8
        b'{"name": "a\x00"}',  # a raw control character: not JSON
    ],
)
def test_bodies_that_are_not_json_objects_stay_400(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_body(JobCreate, raw)


def test_surrogate_body_problem_ignores_bodies_without_a_surrogate_escape() -> None:
    assert surrogate_body_problem(b'{"a": "\\\\ud800"}') is None  # a backslash, then text
    assert surrogate_body_problem(b'{"a": "\\ud83d\\ude00"}') is None  # a valid pair


def test_models_validated_from_python_apply_the_same_rule() -> None:
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate(
            {"name": "a\ud800", "handler": "h\x00", "payload": {"k": ["\x00"]}}
        )
    assert field_errors(caught.value) == [
        FieldError("name", SURROGATE),
        FieldError("handler", NUL),
        FieldError("payload.k.0", NUL),
    ]
    with pytest.raises(ValidationError) as caught:
        ResultIn.model_validate({"status": "completed", "result": {"a\x00": 1}})
    assert field_errors(caught.value, "results.3") == [
        FieldError("results.3.result.a\ufffd", "key " + NUL)
    ]
