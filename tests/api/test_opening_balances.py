"""Opening balances (期初积分): POST /villages/{id}/opening-balances writes one `adjust`
entry per household, shown as 期初结转, spendable but never ranked nor counted for the
qualification line; the whole sheet is checked first and refused as a whole."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points.models import Account, AuditEntry, Household, LedgerEntry, MonthTotal, Villager
from points.shop import qualification
from tests.factories import World
from tests.support.clock import frozen, local
from tests.support.concurrency import on_postgres, together
from tests.support.reads import error_code

API = "/api/v1"


def coded_household(app: Flask, village_id: int, code: str, head: str) -> int:
    with app.app_context():
        household = Household(village_id=village_id, code=code, name=f"{head}户")
        db.session.add(household)
        db.session.flush()
        db.session.add(Villager(household_id=household.id, name=head, relation="户主"))
        db.session.commit()
        return household.id


def sheet(rows: list[list[Any]], header: str = "户编号,积分,备注") -> bytes:
    lines = [header] + [",".join(str(c) for c in row) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def post(
    client: FlaskClient,
    headers: dict[str, str],
    village_id: int,
    data: bytes,
    name: str = "期初积分.csv",
    key: str | None = None,
) -> Any:
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"{API}/villages/{village_id}/opening-balances",
        data={"file": (io.BytesIO(data), name)},
        headers={**headers, **extra},
        content_type="multipart/form-data",
    )


def state(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            "entries": db.session.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
            "available": db.session.scalar(select(func.coalesce(func.sum(Account.available), 0)))
            or 0,
            "audit": db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        }


def test_opening_balances_post_adjust_entries_shown_as_carried_over(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    coded = coded_household(app, world.village_a, "A-01", "钱老伯")
    admin = world.headers("tadmin1")
    response = post(
        client,
        admin,
        world.village_a,
        sheet(
            [
                ["A-01", "120", "纸质账本结转"],
                [world.household_x, "30.00", ""],  # made without a key: named by its number
            ]
        ),
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"households": 2, "points": 150}

    passbook = client.get(f"{API}/households/{coded}/ledger", headers=admin).get_json()
    (line,) = passbook["items"]
    assert (line["kind"], line["amount"]) == ("adjust", 120)
    assert line["rule_item_name"] == "期初结转"
    assert line["note"] == "期初结转：纸质账本结转"
    account = client.get(f"{API}/households/{coded}/account", headers=admin).get_json()
    # spendable, but not a score: not lifetime, not this month's
    assert (account["available"], account["earned_total"], account["this_month"]) == (120, 0, 0)

    with app.app_context():
        totals = db.session.scalars(
            select(MonthTotal).where(MonthTotal.household_id == coded)
        ).all()
        assert [(t.score, t.earned, t.opening) for t in totals] == [(0, 0, 120)]
        audit = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "opening_balance.import")
        ).one()
        assert audit.after["households"] == 2 and audit.village_id == world.village_a
        # not counted for the 12-month qualification line
        acct = db.session.scalars(select(Account).where(Account.household_id == coded)).one()
        tz = ZoneInfo(app.config["APP_TIMEZONE"])
        assert qualification.qualifying_score(db.session, acct, datetime.now(tz), tz) == 0

    # left out of the monthly ranking: 120 points on paper rank nobody
    ranking = client.get(
        f"{API}/rankings", headers=admin, query_string={"village_id": world.village_a}
    ).get_json()
    assert {row["household_id"]: row["points"] for row in ranking["items"]}.get(coded, 0) == 0


def test_a_bad_sheet_is_refused_whole_with_every_row_named(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    coded_household(app, world.village_a, "A-01", "钱老伯")
    coded_household(app, world.village_b, "B-01", "孙大娘")
    before = state(app)
    response = post(
        client,
        world.headers("tadmin1"),
        world.village_a,
        sheet(
            [
                ["A-01", "50", ""],  # row 2: good, but not written either
                ["B-01", "10", ""],  # row 3: of another village
                [world.household_x, "12.5", ""],  # row 4: not whole
                ["A-01", "5", ""],  # row 5: the same household again
                ["", "-3", ""],  # row 6: no key, and not positive
                ["nope", "abc", ""],  # row 7
            ]
        ),
    )
    assert response.status_code == 422
    assert error_code(response) == "opening_balances_invalid"
    errors = response.get_json()["error"]["details"]["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [
        (3, "户编号"),
        (4, "积分"),
        (5, "户编号"),
        (6, "户编号"),
        (6, "积分"),
        (7, "户编号"),
        (7, "积分"),
    ]
    assert all(e["message"] for e in errors)
    assert state(app) == before


def test_once_per_household(app: Flask, client: FlaskClient, world: World) -> None:
    coded_household(app, world.village_a, "A-01", "钱老伯")
    admin = world.headers("tadmin1")
    assert post(client, admin, world.village_a, sheet([["A-01", 80, ""]])).status_code == 201
    before = state(app)
    again = post(client, admin, world.village_a, sheet([["A-01", 80, ""]]))
    assert again.status_code == 422
    (error,) = again.get_json()["error"]["details"]["errors"]
    assert (error["row"], error["field"]) == (2, "户编号")
    assert "已录入过期初积分" in error["message"]
    assert state(app) == before


def test_who_may_enter_opening_balances(app: Flask, client: FlaskClient, world: World) -> None:
    coded_household(app, world.village_a, "A-01", "钱老伯")
    data = sheet([["A-01", 10, ""]])
    assert post(client, world.headers("cadre_a"), world.village_a, data).status_code == 403
    assert post(client, world.headers("tadmin2"), world.village_a, data).status_code == 404
    assert post(client, world.headers("villager_x"), world.village_a, data).status_code == 403
    assert post(client, world.headers("county"), world.village_a, data).status_code == 201


def test_xlsx_and_header_aliases(app: Flask, client: FlaskClient, world: World) -> None:
    coded = coded_household(app, world.village_a, "7", "钱老伯")
    workbook = openpyxl.Workbook()
    ws = workbook.active
    assert ws is not None
    ws.append(["户号", "期初积分", "说明"])
    ws.append([7, 66.0, '=HYPERLINK("http://x")'])
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = post(
        client, world.headers("tadmin1"), world.village_a, buffer.getvalue(), name="期初.xlsx"
    )
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        entry = db.session.scalars(
            select(LedgerEntry).join(Account).where(Account.household_id == coded)
        ).one()
        assert entry.amount == 66


def test_a_retry_with_the_same_key_replays(app: Flask, client: FlaskClient, world: World) -> None:
    coded_household(app, world.village_a, "A-01", "钱老伯")
    admin = world.headers("tadmin1")
    data = sheet([["A-01", 40, ""]])
    first = post(client, admin, world.village_a, data, key="open-1")
    retry = post(client, admin, world.village_a, data, key="open-1")
    assert first.status_code == retry.status_code == 201
    assert retry.headers.get("Idempotent-Replayed") == "true"
    other = post(client, admin, world.village_a, sheet([["A-01", 41, ""]]), key="open-1")
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"
    assert state(app)["available"] == 40


def test_a_reversed_opening_balance_may_be_entered_again(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    coded = coded_household(app, world.village_a, "A-01", "钱老伯")
    admin = world.headers("tadmin1")
    assert post(client, admin, world.village_a, sheet([["A-01", 20, ""]])).status_code == 201
    with app.app_context():
        entry_id = db.session.scalar(
            select(LedgerEntry.id).join(Account).where(Account.household_id == coded)
        )
    reversed_ = client.post(
        f"{API}/ledger/{entry_id}/reverse", headers=admin, json={"reason": "录错了"}
    )
    assert reversed_.status_code == 201, reversed_.get_json()
    assert post(client, admin, world.village_a, sheet([["A-01", 25, ""]])).status_code == 201
    with app.app_context():
        totals = db.session.scalars(
            select(MonthTotal).where(MonthTotal.household_id == coded)
        ).all()
        assert [(t.score, t.opening) for t in totals] == [(0, 25)]


@on_postgres
def test_two_uploads_at_once_open_a_household_once(
    app: Flask,
    world: World,
) -> None:
    coded = coded_household(app, world.village_a, "A-01", "钱老伯")
    admin = world.headers("tadmin1")
    data = sheet([["A-01", 90, ""]])
    clients = [app.test_client() for _ in range(2)]

    def send(i: int) -> int:
        return post(clients[i], admin, world.village_a, data).status_code

    statuses = sorted(together(2, send))
    assert statuses[0] == 201 and statuses[1] in (409, 422), statuses
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .join(Account)
                .where(Account.household_id == coded)
            )
            == 1
        )


def test_the_points_report_counts_opening_balances_as_issued(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    coded_household(app, world.village_a, "A-01", "钱老伯")
    admin = world.headers("tadmin1")
    assert post(client, admin, world.village_a, sheet([["A-01", 70, ""]])).status_code == 201
    report = client.get(
        f"{API}/townships/{world.township_1}/points-report", headers=admin
    ).get_json()
    row = next(v for v in report["villages"] if v["village_id"] == world.village_a)
    # issued = outstanding + redeemed + expired still holds with the opening balance in it
    assert (row["issued"], row["adjusted"], row["outstanding"]) == (70, 70, 70)


def test_a_reversed_opening_balance_is_no_correction_on_a_board_or_in_statistics(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    """An opening balance was never on a board nor in a category's points: reversing it in
    a later month is no "加分冲正" on that month's board (which would publish the reason) and
    no correction in the village's statistics."""
    coded = coded_household(app, world.village_a, "A-01", "钱老伯")
    with frozen(local(2026, 3, 10)):
        admin = world.headers("tadmin1")  # a token of the frozen moment
        assert post(client, admin, world.village_a, sheet([["A-01", 20, ""]])).status_code == 201
    with app.app_context():
        entry_id = db.session.scalar(
            select(LedgerEntry.id).join(Account).where(Account.household_id == coded)
        )
    with frozen(local(2026, 4, 5)):
        admin = world.headers("tadmin1")
        reversed_ = client.post(
            f"{API}/ledger/{entry_id}/reverse", headers=admin, json={"reason": "录错了"}
        )
        assert reversed_.status_code == 201, reversed_.get_json()
        april = client.get(
            f"{API}/villages/{world.village_a}/board",
            headers=admin,
            query_string={"period": "2026-04"},
        ).get_json()
        stats = client.get(
            f"{API}/villages/{world.village_a}/stats",
            headers=admin,
            query_string={"period": "2026-04"},
        ).get_json()
    assert april["corrections"] == []
    assert all(c["corrected"] == 0 and c["net"] == 0 for c in stats["points_by_category"]), stats


def test_only_those_who_enter_opening_balances_reverse_them(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    coded = coded_household(app, world.village_a, "A-01", "钱老伯")
    assert (
        post(
            client, world.headers("tadmin1"), world.village_a, sheet([["A-01", 20, ""]])
        ).status_code
        == 201
    )
    with app.app_context():
        entry_id = db.session.scalar(
            select(LedgerEntry.id).join(Account).where(Account.household_id == coded)
        )
    by_cadre = client.post(
        f"{API}/ledger/{entry_id}/reverse",
        headers=world.headers("cadre_a"),
        json={"reason": "录错了"},
    )
    assert by_cadre.status_code == 403 and error_code(by_cadre) == "forbidden"
    by_admin = client.post(
        f"{API}/ledger/{entry_id}/reverse",
        headers=world.headers("tadmin1"),
        json={"reason": "录错了"},
    )
    assert by_admin.status_code == 201, by_admin.get_json()
