"""Opening balances (期初积分): the points each household kept on paper before the village
moved to the system, entered once per household from a sheet (户编号, 积分, 备注).

Each is a ledger entry of kind `adjust`, shown in the passbook as 期初结转: spendable at
once, but not earned in any month here, so no board ranks it, the 12-month qualification
(合格线) does not count it and the monthly budget never sees it (it is no claim). The sheet
is checked as a whole first, like the roster: one bad row and nothing is written, every
error named by its row and column."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from rules import excerpt

from . import audit, ledger
from .errors import Conflict, DomainError
from .models import Household, Village
from .models.ledger import Account, LedgerEntry
from .roster import KEY, MEMO, POINTS, RosterInvalid, read_sheet
from .scope import Actor, authorize, get_visible

OPENING_LABEL = "期初结转"
COLUMNS = (KEY, POINTS, MEMO)
REQUIRED = (KEY, POINTS)
MAX_POINTS = 1_000_000  # far above what any household keeps; a typo of extra zeros is refused
MAX_MEMO = 200  # leaves room in LedgerEntry.note (500) for the label


class OpeningBalancesInvalid(DomainError):
    status = 422
    code = "opening_balances_invalid"
    message = "期初积分表有错误，未导入任何数据，请按提示修改后重新上传"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(
            details={"errors": errors[:200], **({"truncated": True} if len(errors) > 200 else {})}
        )


class AlreadyOpened(Conflict):
    """Met under the account's lock: another upload opened the household meanwhile."""

    code = "opening_balance_exists"
    message = "该户已录入过期初积分，不能重复录入；如有错误请先冲正原记录"


@dataclass
class OpeningSummary:
    households: int
    points: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Row:
    row: int
    household_id: int
    points: int
    memo: str | None


def _error(row: int, column: str | None, message: str) -> dict[str, Any]:
    return {"row": row, "field": column, "message": message}


def _points(value: Any) -> tuple[int | None, str | None]:
    """Whole points, positive: the ledger counts in whole points. "120.00", as Excel may
    format a number, is 120; "12.5" is refused rather than rounded."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "积分不能为空"
    text = unicodedata.normalize("NFKC", str(value)).strip().replace(",", "")
    if not re.fullmatch(r"[+-]?\d+(\.\d{1,2})?", text):
        return None, f"积分“{excerpt(str(value))}”不是数字，最多两位小数"
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None, f"积分“{excerpt(str(value))}”不是数字"
    if number <= 0:
        return None, "期初积分应大于 0"
    if number != number.to_integral_value():
        return None, f"积分“{excerpt(str(value))}”须为整数（积分按整分记账）"
    if number > MAX_POINTS:
        return None, f"期初积分不能超过 {MAX_POINTS} 分，请核对"
    return int(number), None


def _opened(session: Session, household_ids: list[int]) -> set[int]:
    """Households with an opening balance that was not reversed (a reversed one, a mistake
    corrected, may be entered again)."""
    if not household_ids:
        return set()
    reversal = aliased(LedgerEntry)
    return set(
        session.scalars(
            select(Account.household_id)
            .join(LedgerEntry, LedgerEntry.account_id == Account.id)
            .outerjoin(reversal, reversal.reverses_id == LedgerEntry.id)
            .where(
                Account.household_id.in_(household_ids),
                LedgerEntry.kind == ledger.OPENING_KIND,
                reversal.id.is_(None),
            )
        )
    )


def import_opening_balances(
    session: Session,
    actor: Actor,
    village_id: int,
    filename: str,
    data: bytes,
    *,
    tz: ZoneInfo,
    now: datetime,
) -> OpeningSummary:
    """Check the whole sheet, then post one `adjust` entry per household. A household is
    named by its 户编号 on the roster, or by its number (id) when it was made without one.
    Raises OpeningBalancesInvalid (nothing written) or AlreadyOpened (a concurrent upload
    won the household). Does not commit."""
    village = get_visible(session, actor, Village, village_id)
    authorize(actor, "opening_balance.import")
    try:
        records = read_sheet(filename, data, COLUMNS, REQUIRED)
    except RosterInvalid as exc:
        raise OpeningBalancesInvalid(exc.details["errors"]) from None
    if not records:
        raise OpeningBalancesInvalid([_error(0, None, "表格里没有数据，请在表头下面逐行填写")])

    households = session.execute(
        select(Household.id, Household.code).where(Household.village_id == village.id)
    ).all()
    by_code = {code: hid for hid, code in households if code is not None}
    # A household made without a key is named by its id; a key always wins over an id.
    by_id = {str(hid): hid for hid, code in households if code is None}

    errors: list[dict[str, Any]] = []
    rows: list[_Row] = []
    first_row: dict[int, int] = {}
    for record in records:
        number = record["row"]
        key = record[KEY]
        key = unicodedata.normalize("NFKC", str(key)).strip() if key is not None else None
        if isinstance(record[KEY], float) and record[KEY].is_integer():
            key = str(int(record[KEY]))
        household_id = None
        if not key:
            errors.append(_error(number, KEY, "户编号不能为空"))
        else:
            household_id = by_code.get(key) or by_id.get(key)
            if household_id is None:
                errors.append(_error(number, KEY, f"本村花名册中没有户编号“{excerpt(key)}”"))
        points, message = _points(record[POINTS])
        if message:
            errors.append(_error(number, POINTS, message))
        memo = record[MEMO]
        memo = str(memo).strip() or None if memo is not None else None
        if memo is not None and len(memo) > MAX_MEMO:
            errors.append(_error(number, MEMO, f"备注不能超过 {MAX_MEMO} 个字"))
        if household_id is None:
            continue
        first = first_row.setdefault(household_id, number)
        if first != number:
            errors.append(_error(number, KEY, f"与第 {first} 行是同一户，每户只能有一行"))
            continue
        if points is not None:
            rows.append(_Row(number, household_id, points, memo))

    for household_id in _opened(session, list(first_row)):
        errors.append(
            _error(
                first_row[household_id],
                KEY,
                "该户已录入过期初积分，不能重复录入；如有错误请先冲正原记录",
            )
        )
    if errors:
        errors.sort(key=lambda e: e["row"])
        raise OpeningBalancesInvalid(errors)

    # In household order, so two uploads lock accounts in one order and cannot deadlock;
    # each household checked again under its account's lock: another upload of the same
    # sheet may have opened it since the check above.
    for row in sorted(rows, key=lambda r: r.household_id):
        ledger.account_for(session, row.household_id, lock=True)
        if _opened(session, [row.household_id]):
            raise AlreadyOpened(details={"row": row.row})
        ledger.append(
            session,
            household_id=row.household_id,
            kind=ledger.OPENING_KIND,
            amount=row.points,
            when=ledger.EntryTime(tz, at=now),
            origin=ledger.EntryOrigin(
                created_by=actor.user_id, note=OPENING_LABEL + (f"：{row.memo}" if row.memo else "")
            ),
        )
    summary = OpeningSummary(households=len(rows), points=sum(r.points for r in rows))
    audit.record(
        session,
        actor,
        "opening_balance.import",
        village,
        after={**summary.as_dict(), "filename": filename},
        village_id=village.id,
        township_id=village.township_id,
    )
    return summary
