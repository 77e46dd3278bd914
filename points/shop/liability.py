"""The township's points report: per village, the points issued, redeemed and expired, and
the outstanding points still owed to households (the village's liability at its exchange
rate)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from .. import catalogs
from ..models import Account, MonthTotal, Township, Village
from ..scope import Actor, authorize, get_visible
from .redemption import value_of


@dataclass(frozen=True)
class VillagePoints:
    village_id: int
    name: str
    accounts: int
    earned: int
    deducted: int  # <= 0
    adjusted: int  # reversals and opening balances (期初结转)
    issued: int  # earned + deducted + adjusted: net points given out
    redeemed: int  # spent at the shops, as a positive number
    expired: int  # reset or wiped (定期清零, 一票否决), as a positive number
    outstanding: int  # issued - redeemed - expired: still owed to households
    available: int | None
    held: int | None
    exchange_rate: Decimal
    outstanding_value: Decimal
    month_issued: int | None
    month_redeemed: int | None
    month_expired: int | None


@dataclass(frozen=True)
class PointsReport:
    township_id: int
    township_name: str
    month: str | None
    villages: list[VillagePoints]
    totals: dict[str, Any]


def _month_totals(
    session: Session, village_ids: list[int], *conditions: ColumnElement[bool]
) -> dict[int, tuple[int, int, int, int, int]]:
    if not village_ids:
        return {}
    rows = session.execute(
        # Opening balances (期初结转) are issued points too, though no board ranks them.
        select(
            MonthTotal.village_id,
            func.sum(MonthTotal.score + MonthTotal.opening),
            func.sum(MonthTotal.earned),
            func.sum(MonthTotal.deducted),
            func.sum(MonthTotal.redeemed),
            func.sum(MonthTotal.expired),
        )
        .where(MonthTotal.village_id.in_(village_ids), *conditions)
        .group_by(MonthTotal.village_id)
    )
    return {
        village_id: (
            int(issued or 0),
            int(earned or 0),
            int(deducted or 0),
            int(redeemed or 0),
            int(expired or 0),
        )
        for village_id, issued, earned, deducted, redeemed, expired in rows
    }


def points_report(
    session: Session, actor: Actor, township_id: int, month: str | None
) -> PointsReport:
    """Per village: points issued, redeemed and expired, and what is still outstanding (the
    village's liability at its exchange rate), such that issued = outstanding + redeemed +
    expired. Without `month`: all time, and `outstanding` is today's balances (available +
    held) read from the accounts, an independent check on the totals. With `month`: up to
    the end of that month (by passbook month), plus that month's own flows."""
    township = get_visible(session, actor, Township, township_id)
    authorize(actor, "points_report.read")
    villages = list(
        session.scalars(
            select(Village).where(Village.township_id == township.id).order_by(Village.id)
        )
    )
    ids = [v.id for v in villages]
    upto = (MonthTotal.month <= month,) if month else ()
    cumulative = _month_totals(session, ids, *upto)
    in_month = _month_totals(session, ids, MonthTotal.month == month) if month else {}
    balances: dict[int, tuple[int, int, int]] = {}
    if ids:
        for village_id, available, held, count in session.execute(
            select(
                Account.village_id,
                func.sum(Account.available),
                func.sum(Account.held),
                func.count(),
            )
            .where(Account.village_id.in_(ids))
            .group_by(Account.village_id)
        ):
            balances[village_id] = (int(available or 0), int(held or 0), int(count))
    out = []
    for village in villages:
        issued, earned, deducted, redeemed, expired = cumulative.get(village.id, (0,) * 5)
        available, held, accounts = balances.get(village.id, (0, 0, 0))
        outstanding = available + held if month is None else issued + redeemed + expired
        rate = catalogs.effective_policy(session, village.id).exchange_rate
        flows = in_month.get(village.id, (0,) * 5)
        out.append(
            VillagePoints(
                village_id=village.id,
                name=village.name,
                accounts=accounts,
                earned=earned,
                deducted=deducted,
                adjusted=issued - earned - deducted,
                issued=issued,
                redeemed=-redeemed,
                expired=-expired,
                outstanding=outstanding,
                available=available if month is None else None,
                held=held if month is None else None,
                exchange_rate=rate,
                outstanding_value=value_of(outstanding, rate),
                month_issued=flows[0] if month else None,
                month_redeemed=-flows[3] if month else None,
                month_expired=-flows[4] if month else None,
            )
        )
    keys = (
        "accounts",
        "earned",
        "deducted",
        "adjusted",
        "issued",
        "redeemed",
        "expired",
        "outstanding",
    )
    totals: dict[str, Any] = {k: sum(getattr(v, k) for v in out) for k in keys}
    totals["outstanding_value"] = sum((v.outstanding_value for v in out), Decimal("0"))
    for k in ("available", "held", "month_issued", "month_redeemed", "month_expired"):
        totals[k] = (
            None if not out or getattr(out[0], k) is None else sum(getattr(v, k) for v in out)
        )
    return PointsReport(township.id, township.name, month, out, totals)
