"""Spreadsheets the service hands out (CSV and XLSX exports, such as a shop's settlement).

Their text comes from villagers and clerks: a reward or a villager named
`=HYPERLINK("http://…","点击领取")` would be a live formula in the sheet a township admin
opens. Every export writes its rows through `csv_bytes` or `append_row`, and both pass each
cell through `cell_value`, so no export can forget it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # openpyxl is imported where a workbook is made: 5 MB a worker otherwise
    from openpyxl.cell.cell import Cell
    from openpyxl.worksheet.worksheet import Worksheet

# What Excel, WPS and LibreOffice read as the start of a formula (or, tab and CR, what they
# strip before looking for one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell_value(value: Any) -> Any:
    """`value` as a sheet cell: text that a spreadsheet would take for a formula gets a
    leading apostrophe, shown as typed and never evaluated. Numbers (a negative one too),
    dates and None are not text and stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_bytes(rows: Iterable[Sequence[Any]]) -> bytes:
    """The rows as CSV, UTF-8 with a BOM (Excel needs it to read Chinese) and CRLF lines."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell_value(value) for value in row])
    return out.getvalue().encode("utf-8-sig")


def append_row(sheet: Worksheet, values: Sequence[Any]) -> tuple[Cell, ...]:
    """Append a row to an XLSX sheet; returns its cells. Text cells are typed as text
    explicitly: openpyxl would otherwise store any text starting with "=" as a formula."""
    sheet.append([cell_value(value) for value in values])
    # The stubs allow a MergedCell in any row; a row just appended holds plain Cells only.
    cells: tuple[Cell, ...] = tuple(sheet[sheet.max_row])  # type: ignore[arg-type]
    for cell in cells:
        if isinstance(cell.value, str):
            cell.data_type = "s"
    return cells
