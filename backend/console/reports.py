"""积分报表: the township's points report (issued = outstanding + redeemed + expired, per
village, at its exchange rate), as GET /townships/<id>/points-report, and each shop's
settlement totals for the month, as GET /shops/<id>/settlements (the statements themselves are
the settlement page's)."""

from __future__ import annotations

from flask import current_app, render_template, request

from points.errors import Invalid
from points.models import Shop, Township
from points.scope import COUNTY, authorize, get_visible, visible
from points.shop import liability, reconciliation
from rules.periods import month_key

from ..clock import now, village_tz
from ..extensions import db
from . import bp, menu_item, session

ACTION = "points_report.read"
menu_item("console.reports", "积分报表", ACTION)


@bp.get("/reports")
def reports() -> str:
    actor = session.load()
    authorize(actor, ACTION)
    townships = (
        list(db.session.scalars(visible(actor, Township).order_by(Township.id)))
        if actor.role == COUNTY
        else []
    )
    township_id = request.args.get("township", type=int) or actor.township_id
    if township_id is None and townships:
        township_id = townships[0].id
    if township_id is None:
        raise Invalid("请选择乡镇", code="township_required")
    township = get_visible(db.session, actor, Township, township_id)
    this_month = month_key(now().astimezone(village_tz()))
    month = request.args.get("month") or this_month
    if len(month) != 7 or month[4] != "-" or not (month[:4] + month[5:]).isdigit():
        raise Invalid("月份格式应为 YYYY-MM", code="invalid_period")
    # All time (today's balances checked against the totals) and the chosen month's flows.
    overall, monthly = liability.points_reports(db.session, actor, township.id, [None, month])
    shops = list(
        db.session.scalars(
            visible(actor, Shop).where(Shop.township_id == township.id).order_by(Shop.id)
        )
    )
    settlements = reconciliation.settlement_totals(db.session, actor, shops, month)
    return render_template(
        "console/reports/index.html",
        township=township,
        townships=townships,
        month=month,
        overall=overall,
        monthly=monthly,
        settlements=settlements,
        # The clerks' settlement page is its own module; linked once it is there.
        settlement_page="console.settlements" in current_app.view_functions,
    )
