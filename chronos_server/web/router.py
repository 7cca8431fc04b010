"""`Router`: method + path → endpoint and path parameters; 404 for no path, 405 (with the
methods that would do) for a known path and a wrong method.

Patterns are literal segments and `{name}` parameters (one whole segment each). Static paths are
one dict lookup; parameterised ones are few and tried in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

E = TypeVar("E")


@dataclass(frozen=True)
class Match(Generic[E]):
    endpoint: E
    params: dict[str, str]


@dataclass(frozen=True)
class WrongMethod:
    allowed: list[str]


class Router(Generic[E]):
    def __init__(self) -> None:
        self._static: dict[str, dict[str, E]] = {}
        self._dynamic: list[tuple[list[str], dict[str, E]]] = []

    def add(self, method: str, pattern: str, endpoint: E) -> None:
        segments = pattern.strip("/").split("/")
        if not any(s.startswith("{") for s in segments):
            self._static.setdefault(pattern, {})[method] = endpoint
            return
        for known, methods in self._dynamic:
            if known == segments:
                methods[method] = endpoint
                return
        self._dynamic.append((segments, {method: endpoint}))

    def match(self, method: str, path: str) -> Match[E] | WrongMethod | None:
        methods = self._static.get(path)
        params: dict[str, str] = {}
        if methods is None:
            found = self._match_dynamic(path)
            if found is None:
                return None
            methods, params = found
        endpoint = methods.get(method)
        if endpoint is None:
            return WrongMethod(sorted(methods))
        return Match(endpoint, params)

    def _match_dynamic(self, path: str) -> tuple[dict[str, E], dict[str, str]] | None:
        parts = path.strip("/").split("/")
        if not path.startswith("/") or path.endswith("/"):
            return None
        for segments, methods in self._dynamic:
            if len(segments) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(segments, parts, strict=True):
                if want.startswith("{"):
                    if not got:
                        break
                    params[want[1:-1]] = unquote(got)
                elif want != got:
                    break
            else:
                return methods, params
        return None
