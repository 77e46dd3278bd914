"""A shop's monthly statement (对账) as a file: one way to name and write it, for the API's
GET /shops/<id>/settlements and the console's download buttons alike."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Response

from points.shop import reconciliation

from .downloads import download

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"  # Flask adds "; charset=utf-8"
FORMATS = ("csv", "xlsx")


def settlement_file(result: reconciliation.Settlement, fmt: str, tz: ZoneInfo) -> Response:
    """The statement as CSV (UTF-8 with BOM) or XLSX, named after the shop and the month;
    the cells go through the spreadsheet helpers, which neutralise formula injection."""
    name = f"settlement-shop{result.shop_id}-{result.month}.{fmt}"
    label = f"{result.shop_name}{result.month}结算单.{fmt}"
    if fmt == "csv":
        return download(reconciliation.settlement_csv(result, tz), CSV, label, ascii_name=name)
    return download(reconciliation.settlement_xlsx(result, tz), XLSX, label, ascii_name=name)
