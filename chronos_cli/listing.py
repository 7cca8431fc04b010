"""List commands: one page (`--page`, `--size`) or every page (`--all`), as a table or as the
API's `data` (`--json`: one page's `data` as sent, or all pages' items in one array)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import click

from chronos_cli.support import Api, print_json, table
from chronos_worker.client.core import Call, next_page_params
from chronos_worker.models import Page

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def paging_options(fn: F) -> F:
    fn = click.option("--all", "every", is_flag=True, help="every page, not only one")(fn)
    fn = click.option("--size", type=click.IntRange(1, 100), default=20, show_default=True)(fn)
    return click.option("--page", type=click.IntRange(1), default=1, show_default=True)(fn)


def pages(api: Api, call: Call[Page[T]]) -> Iterator[tuple[Page[T], list[Any]]]:
    params: dict[str, str] | None = dict(call.params)
    while params is not None:
        page, found = api.raw(replace(call, params=params))
        yield page, list(found.get("data") or [])
        params = next_page_params(params, page)


def show_list(
    api: Api,
    call: Call[Page[T]],
    every: bool,
    headers: Sequence[str],
    row: Callable[[T], Sequence[object]],
) -> None:
    if not every:
        page, found = api.raw(call)
        if api.as_json:
            print_json(found.get("data"))
            return
        table(headers, [row(item) for item in page.items])
        more = f", page {page.page} of {page.pages}" if page.pages > 1 else ""
        click.echo(f"({len(page.items)} of {page.total}{more})", err=True)
        return
    items: list[T] = []
    raw: list[Any] = []
    for page, data in pages(api, call):
        items.extend(page.items)
        raw.extend(data)
    if api.as_json:
        print_json(raw)
    else:
        table(headers, [row(item) for item in items])
        click.echo(f"({len(items)} in all)", err=True)
