"""The township's points report: per village, the points issued, redeemed and expired, and
the outstanding points still owed to households (the village's liability at its exchange
rate)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, func, or_, select
from sqlalchemy.orm import Session

import rules

from .. import catalogs
from ..models import Account, RuleCatalog, Township, Village, VillageMonthTotal
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


Totals = tuple[int, int, int, int, int]  # issued, earned, deducted, redeemed, expired
_SUMS = (
    # Opening balances (期初结转) are issued points too, though no board ranks them.
    VillageMonthTotal.score + VillageMonthTotal.opening,
    VillageMonthTotal.earned,
    VillageMonthTotal.deducted,
    VillageMonthTotal.redeemed,
    VillageMonthTotal.expired,
)


def _month_totals(
    session: Session, village_ids: list[int], sums: list[ColumnElement[bool] | None]
) -> list[dict[int, Totals]]:
    """Each village's totals under each condition of `sums` (None: every month), in one pass
    over the villages' months (a row a village and month, a few hundred a village)."""
    if not village_ids or not sums:
        return [{} for _ in sums]
    columns = [
        func.sum(column) if condition is None else func.sum(column).filter(condition)
        for condition in sums
        for column in _SUMS
    ]
    rows = session.execute(
        select(VillageMonthTotal.village_id, *columns)
        .where(VillageMonthTotal.village_id.in_(village_ids))
        .group_by(VillageMonthTotal.village_id)
    ).all()
    out: list[dict[int, Totals]] = [{} for _ in sums]
    for village_id, *values in rows:
        for n, totals in enumerate(out):
            a, b, c, d, e = (int(v or 0) for v in values[5 * n : 5 * n + 5])
            totals[village_id] = (a, b, c, d, e)
    return out


def _flows(
    session: Session, village_ids: list[int], months: list[str]
) -> dict[tuple[int, str], Totals]:
    """Each village's totals of each of these months alone, read through the (village,
    month) index: those months' rows only."""
    if not village_ids or not months:
        return {}
    return {
        (village_id, month): (a or 0, b or 0, c or 0, d or 0, e or 0)
        for village_id, month, a, b, c, d, e in session.execute(
            select(
                VillageMonthTotal.village_id, VillageMonthTotal.month, *(func.sum(c) for c in _SUMS)
            )
            .where(
                VillageMonthTotal.village_id.in_(village_ids), VillageMonthTotal.month.in_(months)
            )
            .group_by(VillageMonthTotal.village_id, VillageMonthTotal.month)
        )
    }


def month_redeemed(session: Session, village_ids: list[int], month: str) -> dict[int, int]:
    """Points redeemed at the shops in `month` per village, as a positive number (the
    points report's `month_redeemed`), reading that month only."""
    flows = _flows(session, village_ids, [month])
    return {village_id: -int(redeemed) for (village_id, _), (*_, redeemed, _) in flows.items()}


def _policies(
    session: Session, township_id: int, village_ids: list[int]
) -> dict[int, rules.Policy]:
    """Each village's policy in force (`catalogs.effective_policy`), its own catalog's and its
    township's read in one query."""
    own: dict[int, Any] = {}
    township: Any = None
    for village_id, policy in session.execute(
        select(RuleCatalog.village_id, RuleCatalog.policy).where(
            or_(RuleCatalog.village_id.in_(village_ids), RuleCatalog.township_id == township_id)
        )
    ):
        if village_id is None:
            township = policy
        else:
            own[village_id] = policy
    return {v: catalogs.policy_of(own.get(v), township) for v in village_ids}


def points_report(
    session: Session, actor: Actor, township_id: int, month: str | None
) -> PointsReport:
    """Per village: points issued, redeemed and expired, and what is still outstanding (the
    village's liability at its exchange rate), such that issued = outstanding + redeemed +
    expired. Without `month`: all time, and `outstanding` is today's balances (available +
    held) read from the accounts, an independent check on the totals. With `month`: up to
    the end of that month (by passbook month), plus that month's own flows."""
    return points_reports(session, actor, township_id, [month])[0]


def points_reports(
    session: Session, actor: Actor, township_id: int, months: Sequence[str | None]
) -> list[PointsReport]:
    """`points_report` for each of `months` (None: all time), from one pass over the month
    totals, one read of the balances and one of the policies, whatever the number of
    villages."""
    township = get_visible(session, actor, Township, township_id)
    authorize(actor, "points_report.read")
    villages = session.execute(
        select(Village.id, Village.name)
        .where(Village.township_id == township.id)
        .order_by(Village.id)
    ).all()
    ids = [v.id for v in villages]
    # Up to each month (all time for None) in one pass; each month's own flows apart, from
    # that month's rows only.
    cumulative = _month_totals(
        session, ids, [None if m is None else VillageMonthTotal.month <= m for m in months]
    )
    flows = _flows(session, ids, sorted({m for m in months if m is not None}))
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
    policies = _policies(session, township.id, ids) if ids else {}
    reports = []
    for month, upto in zip(months, cumulative, strict=True):
        in_month = {v: t for (v, m), t in flows.items() if m == month}
        reports.append(_report(township, villages, month, upto, in_month, balances, policies))
    return reports


def _report(
    township: Township,
    villages: Sequence[Row[int, str]],
    month: str | None,
    cumulative: dict[int, Totals],
    in_month: dict[int, Totals],
    balances: dict[int, tuple[int, int, int]],
    policies: dict[int, rules.Policy],
) -> PointsReport:
    out = []
    for village in villages:
        issued, earned, deducted, redeemed, expired = cumulative.get(village.id, (0,) * 5)
        available, held, accounts = balances.get(village.id, (0, 0, 0))
        outstanding = available + held if month is None else issued + redeemed + expired
        rate = policies[village.id].exchange_rate
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
