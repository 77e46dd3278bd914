"""Reading what a test did: an error response's code, an account and its entries, counts
of rows, a served file, a link's path. Each opens an app context of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from backend.extensions import db
from points import ledger
from points.models import (
    Account,
    Claim,
    ClaimApproval,
    LedgerEntry,
    MonthlyIssued,
    Reward,
    RuleCatalog,
)

if TYPE_CHECKING:  # tests.factories reads catalog ids from here
    from tests.factories import World

API = "/api/v1"


def error_code(response: Any) -> str:
    body = response.get_json()
    assert body is not None and "error" in body, response.data
    return body["error"]["code"]


def catalog_id(app: Flask, township_id: int) -> int:
    with app.app_context():
        found = db.session.scalar(
            select(RuleCatalog.id).where(RuleCatalog.township_id == township_id)
        )
    assert found is not None
    return found


def claim_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Claim)) or 0


def approval_count(app: Flask, claim_id: int) -> int:
    with app.app_context():
        return (
            db.session.scalar(
                select(func.count())
                .select_from(ClaimApproval)
                .where(ClaimApproval.claim_id == claim_id)
            )
            or 0
        )


def account_of(app: Flask, household_id: int) -> dict[str, int]:
    """The account row as stored (zeros before the first entry)."""
    with app.app_context():
        account = db.session.scalar(select(Account).where(Account.household_id == household_id))
        if account is None:
            return {"available": 0, "held": 0, "earned_total": 0, "entries": 0}
        return {
            "available": account.available,
            "held": account.held,
            "earned_total": account.earned_total,
            "entries": account.entry_count,
        }


def entries_of(app: Flask, household_id: int) -> list[dict[str, Any]]:
    """The household's ledger entries in chain order, as plain dicts."""
    with app.app_context():
        rows = db.session.scalars(
            select(LedgerEntry)
            .join(Account)
            .where(Account.household_id == household_id)
            .order_by(LedgerEntry.seq)
        )
        return [
            {
                "id": e.id,
                "kind": e.kind,
                "amount": e.amount,
                "month": e.month,
                "member_id": e.member_id,
                "claim_id": e.claim_id,
                "reverses_id": e.reverses_id,
                "note": e.note,
            }
            for e in rows
        ]


def ledger_sum(app: Flask, household_id: int) -> int:
    with app.app_context():
        account = db.session.scalar(select(Account).where(Account.household_id == household_id))
        return 0 if account is None else ledger.sum_entries(db.session, account.id)


def stock_of(app: Flask, reward_id: int) -> int:
    with app.app_context():
        reward = db.session.get(Reward, reward_id)
        assert reward is not None
        return reward.stock


def get_read(client: FlaskClient, url: str, **kwargs: Any) -> Any:
    """GET, with the body read and the file behind it closed (send_file opens one)."""
    response = client.get(url, **kwargs)
    response.get_data()
    response.close()
    return response


def link_path(url: str) -> str:
    """A link the service hands out, as the test client opens it: path and query, without
    the public host (which must be the tests' PUBLIC_BASE_URL)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "https://jf.example.gov.cn"
    return f"{parts.path}?{parts.query}"


def count(app: Flask, model: type) -> int:
    """Rows of a model's table."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def issued(app: Flask) -> dict[tuple[int, str], int]:
    """The monthly budget's counters: points issued by (village, month)."""
    with app.app_context():
        return {
            (row.village_id, row.month): row.issued
            for row in db.session.scalars(select(MonthlyIssued))
        }


def checked_in(client: FlaskClient, world: World, activity_id: int) -> int:
    """The count of check-ins the cadre sees on the activity."""
    response = client.get(f"{API}/activities/{activity_id}", headers=world.headers("cadre_a"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["checked_in"]


def board(client: FlaskClient, world: World, period: str) -> dict[str, Any]:
    """Village A's board for a period, as its cadre sees it."""
    response = client.get(
        f"{API}/villages/{world.village_a}/board",
        query_string={"period": period},
        headers=world.headers("cadre_a"),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs (BEGIN, COMMIT and ROLLBACK left out),
    for tests that hold a request to a number of statements whatever the county's size."""
    sent: list[str] = []
    with app.app_context():
        engine = db.engine

    def seen(*args: Any) -> None:
        if not args[2].lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            sent.append(args[2])

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
