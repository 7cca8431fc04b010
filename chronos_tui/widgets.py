"""Reusable widgets: a `LiveTable` updated in place, the filter bar, confirm and help dialogs."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

Cell = str | Text


@dataclass(frozen=True)
class Column:
    """A table column; `min_width` hides it while the table is narrower than that."""

    key: str
    label: str
    width: int | None = None
    justify: JustifyMethod = "left"
    min_width: int = 0


Row = tuple[str, Sequence[Cell]]


class LiveTable(DataTable[Cell]):
    """A row-cursor table that `sync()`s to a new list of rows without being rebuilt.

    Rows are matched by key: changed cells are updated in place, vanished rows removed, new rows
    added, then the order is fixed with `sort()`. The cursor stays on the row it was on, so a
    refresh never moves the operator's selection to another job. A `stick_to_top` table (a live
    feed) keeps a cursor that is on the first row there, like `tail -f`.

    Narrow terminals: columns with a `min_width` above the table's width are left out (the table
    is rebuilt only when that set changes), and below `compact_below` cells lose their padding.
    `hide()` leaves columns out whatever the width (data the server does not provide).

    Home and End move the highlight to the first and last row (DataTable's own Home/End scroll
    sideways in a row-cursor table, leaving the highlight where it was).
    """

    BINDINGS = [
        Binding("home", "first_row", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    class WentHome(Message):
        """Home was pressed (the highlight is on the first row)."""

        def __init__(self, table: LiveTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> LiveTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        id: str | None = None,
        compact_below: int = 0,
        stick_to_top: bool = False,
        hidden: Collection[str] = (),
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._stick_to_top = stick_to_top
        self._specs = tuple(columns)
        self._hidden = frozenset(hidden)
        self._shown = tuple(i for i, c in enumerate(columns) if c.key not in self._hidden)
        self._rows: list[Row] = []
        self._compact_below = compact_below
        self._changed = False

    def on_mount(self) -> None:
        self._add_columns()

    def action_first_row(self) -> None:
        self.action_scroll_top()
        self.post_message(self.WentHome(self))

    def on_resize(self) -> None:
        self.cell_padding = 0 if self.size.width < self._compact_below else 1
        self._show_columns()

    def hide(self, keys: Collection[str]) -> None:
        """Leave out the columns named by `keys` (and show again any hidden before and not now)."""
        self._hidden = frozenset(keys)
        self._show_columns()

    def _show_columns(self) -> None:
        width = self.size.width
        shown = tuple(
            i
            for i, c in enumerate(self._specs)
            if width >= c.min_width and c.key not in self._hidden
        )
        if shown != self._shown:
            self._shown = shown
            selected = self.selected_key
            self.clear(columns=True)
            self._add_columns()
            self.sync(self._rows)
            self._follow(selected, 0)

    def on_idle(self) -> None:
        # DataTable measures new or changed cells in its own idle pass (which runs right after
        # this handler), but lines drawn before that pass stay cached with the old column widths
        # (seen with Textual 8.2: the cursor row kept narrow columns). Dropping the render caches
        # here makes the next frame use the new widths.
        if self._changed:
            self._changed = False
            self.notify_style_update()

    def _add_columns(self) -> None:
        for i in self._shown:
            spec = self._specs[i]
            label = Text(spec.label, justify=spec.justify)
            self.add_column(label, key=spec.key, width=spec.width)

    def free_width(self) -> int:
        """Room left for the one shown column without a fixed width (e.g. an outcome)."""
        pad = 2 * self.cell_padding
        used = sum((self._specs[i].width or 0) + pad for i in self._shown)
        return max(12, self.size.width - used - pad - 1)  # 1: the vertical scrollbar

    @property
    def keys(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        return str(self.ordered_rows[self.cursor_row].key.value)

    def sync(self, rows: Sequence[Row]) -> None:
        self._rows = list(rows)
        at_top = self._stick_to_top and self.cursor_row == 0
        selected = None if at_top else self.selected_key
        cursor_row = self.cursor_row
        wanted = [key for key, _ in rows]
        present = set(self.keys)
        for key in present - set(wanted):
            self.remove_row(key)
        columns = [self._specs[i].key for i in self._shown]
        for key, all_cells in rows:
            cells = [_text(all_cells[i]) for i in self._shown]
            if key in present:
                self._changed |= self._update_row(key, columns, cells)
            else:
                self.add_row(*cells, key=key)
                self._changed = True
        if self.keys != wanted:
            self._reorder(wanted, columns[0])
        self._follow(selected, cursor_row)

    def _update_row(self, key: str, columns: Sequence[str], cells: Sequence[Cell]) -> bool:
        changed = False
        for column, value in zip(columns, cells, strict=True):
            if self.get_cell(key, column) != value:
                self.update_cell(key, column, value, update_width=True)
                changed = True
        return changed

    def _reorder(self, wanted: Sequence[str], first_column: str) -> None:
        # `sort` hands the key function cell values, not row keys; the first cell of each row is a
        # distinct object (see `sync`), so its identity names the row.
        rank = {id(self.get_cell(key, first_column)): i for i, key in enumerate(wanted)}
        self.sort(first_column, key=lambda cell: rank[id(cell)])

    def _follow(self, selected: str | None, cursor_row: int) -> None:
        keys = self.keys
        if not keys:
            return
        row = keys.index(selected) if selected in keys else min(cursor_row, len(keys) - 1)
        if row != self.cursor_row:
            self.move_cursor(row=row, animate=False)


def _text(cell: Cell) -> Text:
    # Always a new Text: plain strings would be parsed as markup (an error message with
    # brackets could vanish or raise), and `_reorder` tells rows apart by the identity of their
    # first cell object, so no two rows may share one.
    return cell.copy() if isinstance(cell, Text) else Text(cell)


class FilterBar(Input):
    """The `/` prompt: Enter applies (empty clears), Escape closes without changing anything."""

    BINDINGS = [Binding("escape", "close", "Close filter", show=False)]

    class Applied(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def open(self, current: str, placeholder: str) -> None:
        self.placeholder = placeholder
        self.value = current
        self.display = True
        # Not `focus()`, which defers: keys typed right after `/` would still reach the table.
        self.screen.set_focus(self)

    def action_close(self) -> None:
        self.display = False
        self.screen.focus_next()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(event.value.strip()))
        self.action_close()


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; `y`/Enter on Yes confirm, `n`/Escape refuse."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Grid(id="confirm"):
            hint = ("y yes · n / Esc no", "dim")
            yield Label(
                Text.assemble(self._question, "\n\n", hint, justify="center"), id="question"
            )
            yield Button("No", variant="primary", id="no")
            yield Button("Yes", variant="error", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


HELP_TITLE = "[b]Chronos dashboard[/b] — keyboard first; the mouse works too"
HELP_ROWS = (
    (
        "Screens",
        "[b]1[/b]/[b]o[/b] overview  [b]2[/b]/[b]s[/b] schedules  [b]3[/b]/[b]j[/b] jobs  "
        "[b]4[/b]/[b]e[/b] executions: always the list, never an old detail",
    ),
    ("Move", "↑ ↓ PgUp PgDn; Home / End first / last row; Tab: the next table"),
    (
        "Lists",
        "100 rows a page; reaching the last loaded row (End) loads the next page, Home goes "
        "back to the first",
    ),
    ("Open", "Enter (or a click on the highlighted row) opens the detail; Esc goes back"),
    (
        "Filter",
        "[b]/[/b] then status words and/or a handler, e.g. [i]failed timeout[/i] or "
        "[i]ready demo.tick[/i]; Enter applies, an empty filter clears it",
    ),
    ("Schedule", "[b]a[/b] archive (asks first)   [b]r[/b] run now"),
    ("Job", "[b]c[/b] cancel (asks first)   [b]r[/b] re-run a finished job as a new one-off job"),
    ("Execution", "[b]j[/b] opens its job"),
    ("Other", "[b]S[/b] save an SVG screenshot   [b]?[/b] this help   [b]q[/b] quit"),
    (
        "Queues",
        "busiest first: admitting + queued + ready + running + retrying + failed, then done. "
        "done/fail/canc: last 60 min (admit, canc hidden below 90 columns). [b]oldest[/b] "
        "ready job: yellow after 10 s, red after 1 min — nothing claims it",
    ),
    (
        "Workers",
        "[b]wkrs[/b] worker channels for the handler on the server process that answered "
        "(long-polls not counted); [b]free[/b] their free credits, a yellow [b]0[/b]: all busy",
    ),
)


def help_table() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, text in HELP_ROWS:
        grid.add_row(name, Text.from_markup(text))
    return grid


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(HELP_TITLE, id="help-title")
            yield Static(help_table())
            yield Static("[dim]Esc closes[/dim]", id="help-close")

    def action_close(self) -> None:
        self.dismiss(None)
