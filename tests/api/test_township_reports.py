"""The township's figures read for all its villages at once: points by category and the
12-month trend (the console's 统计), the points report for several months from one pass
(the console's 积分报表), the month's redemptions per village; and the statements a
township's statistics and reports take, which must not grow with its villages."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points import ledger
from points.boards import stats
from points.boards.standings import parse_period
from points.models import LedgerEntry, User
from points.scope import Actor
from points.shop import liability
from tests.factories import SHANGHAI, World, add_village, earn
from tests.support.clock import frozen, local
from tests.support.console import console_login
from tests.support.reads import API, statements


def three_villages(app: Flask, world: World) -> dict[str, int]:
    """Township 1's villages A and B and a third one, with entries in March 2026 (the period),
    around it and outside the trend's 12 months; village C (township 2) earns too."""
    third = add_village(app, world.township_1, "石桥村", "周七")
    earn(app, world.household_x, 5, local(2026, 3, 2))
    earn(app, world.household_x, -3, local(2026, 3, 9))
    earn(app, world.household_x, 7, local(2026, 2, 14))
    earn(app, world.household_y, 4, local(2026, 3, 20))
    earn(app, world.household_y, 9, local(2026, 4, 1))  # after the period
    earn(app, world.household_y, 2, local(2025, 3, 31))  # 13 months back: not in the trend
    earn(app, third["household"], 6, local(2026, 1, 5))
    earn(app, third["household"], 8, local(2026, 3, 31))
    earn(app, world.household_z, 100, local(2026, 3, 15))  # township 2
    with app.app_context(), frozen(local(2026, 3, 31, 20)):
        entry = db.session.scalars(select(LedgerEntry).where(LedgerEntry.amount == 8)).one()
        ledger.reverse(db.session, entry, reason="误录", created_by=world.cadre_a, tz=SHANGHAI)
        db.session.commit()  # reversed in March: a correction of March's points
    return third


def test_categories_and_trend_of_several_villages_are_their_sums(app: Flask, world: World) -> None:
    third = three_villages(app, world)
    ids = [world.village_a, world.village_b, third["village"]]
    march = parse_period("2026-03")
    with app.app_context():
        by_category = stats.points_by_category(db.session, ids, march)
        trend = stats.trend(db.session, ids, march.last)
        each = [stats.village_stats(db.session, v, march) for v in ids]
        db.session.rollback()
    # Entries without an item count as 其他; the reversed 8 is a correction, not a deduction.
    assert by_category == [
        {"category": "其他", "earned": 5 + 4 + 8, "deducted": -3, "corrected": -8, "net": 6}
    ]
    assert [t["month"] for t in trend] == [f"2025-{m:02d}" for m in range(4, 13)] + [
        "2026-01",
        "2026-02",
        "2026-03",
    ]
    by_month = {t["month"]: t for t in trend}
    assert by_month["2026-03"] == {
        "month": "2026-03",
        "points": 5 - 3 + 4 + 8 - 8,
        "earned": 17,
        "deducted": -3,
        "participating": 3,
    }
    assert (by_month["2026-02"]["points"], by_month["2026-02"]["participating"]) == (7, 1)
    assert (by_month["2026-01"]["points"], by_month["2026-01"]["participating"]) == (6, 1)
    assert sum(t["points"] for t in trend) == 6 + 7 + 6  # neither April nor March 2025
    # The same as each village's own statistics added up, month by month.
    for n, month in enumerate(trend):
        for key in ("points", "earned", "deducted", "participating"):
            assert month[key] == sum(v["trend"][n][key] for v in each), (month, key)
    assert by_category[0]["net"] == sum(c["net"] for v in each for c in v["points_by_category"])
    with app.app_context():
        assert stats.points_by_category(db.session, [], march) == []
        assert [t["points"] for t in stats.trend(db.session, [], march.last)] == [0] * 12


def test_points_reports_of_several_months_from_one_pass(app: Flask, world: World) -> None:
    third = three_villages(app, world)
    earn(app, world.household_x, -4, local(2026, 3, 28), kind="redeem")
    earn(app, world.household_x, -2, local(2026, 4, 2), kind="redeem")  # after March
    earn(app, third["household"], -1, local(2026, 3, 30), kind="expire")
    with app.app_context():
        actor = Actor.of(db.session, db.session.get(User, world.tadmin1))
        overall, march, january = liability.points_reports(
            db.session, actor, world.township_1, [None, "2026-03", "2026-01"]
        )
        alone = [
            liability.points_report(db.session, actor, world.township_1, m)
            for m in (None, "2026-03", "2026-01")
        ]
        redeemed = liability.month_redeemed(
            db.session, [world.village_a, world.village_b], "2026-03"
        )
        db.session.rollback()
    assert [overall, march, january] == alone
    a, b, c = ({v.village_id: v for v in report.villages} for report in (overall, march, january))
    x, y, z = world.village_a, world.village_b, third["village"]
    # All time: every month, today's balances beside them.
    assert (a[x].issued, a[x].redeemed, a[x].outstanding) == (5 - 3 + 7, 6, 9 - 6)
    assert (a[y].issued, a[z].issued, a[z].expired) == (4 + 9 + 2, 6 + 8 - 8, 1)
    # Up to March: April's earning and redemption are left out; March's own flows beside.
    assert (b[x].issued, b[x].redeemed, b[x].outstanding) == (9, 4, 5)
    assert (b[x].month_issued, b[x].month_redeemed, b[x].month_expired) == (2, 4, 0)
    assert (b[y].issued, b[y].month_issued) == (4 + 2, 4)
    assert (b[z].issued, b[z].month_issued, b[z].month_expired) == (6, 0, 1)
    assert (c[x].issued, c[y].issued, c[z].issued) == (0, 2, 6)
    assert (c[x].month_issued, c[z].month_issued) == (0, 6)
    assert march.totals["month_redeemed"] == 4 and march.totals["issued"] == 9 + 6 + 6
    # April's 2 is not March's; village B redeemed nothing in March.
    assert (redeemed[world.village_a], redeemed.get(world.village_b, 0)) == (4, 0)


def test_a_townships_statistics_and_reports_take_as_many_statements_for_more_villages(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """The N+1 of reading village by village must not come back: three more villages (each
    with a household, entries and a shop) add no statement."""
    earn(app, world.household_x, 5, local(2026, 3, 2))
    pages = (
        "/console/stats?period=2026-03",
        "/console/reports?month=2026-03",
        f"{API}/townships/{world.township_1}/points-report?month=2026-03",
        f"{API}/townships/{world.township_1}/points-report",
        f"{API}/townships/{world.township_1}/stats?period=2026-03",
    )
    console_login(client, "tadmin1")
    headers = world.headers("tadmin1")

    def counts() -> list[int]:
        found = []
        for page in pages:
            with statements(app) as sent:
                assert client.get(page, headers=headers).status_code == 200, page
            found.append(len(sent))
        return found

    before = counts()
    for n, head in enumerate(("周七", "吴八", "郑九")):
        more = add_village(app, world.township_1, f"新村{n}", head)
        earn(app, more["household"], 3 + n, local(2026, 3, 10))
        earn(app, more["household"], 1, local(2026, 1, 10))
    assert counts() == before
