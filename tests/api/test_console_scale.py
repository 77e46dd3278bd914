"""The console at a county's size: counts that stop at a cap, the audit log read a page's ids
first, and pages whose number of statements does not grow with the county. The caps are
lowered here so that a few rows cross them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, update
from sqlalchemy.orm import make_transient

from backend import openapi
from backend.console import audit as audit_page
from backend.extensions import db
from points import counting, today
from points.models import AuditEntry, Claim, ClaimApproval, Village
from tests.factories import World, approve, award, self_report, set_policy
from tests.support.console import console_login


def _pending_claims(
    app: Flask, client: FlaskClient, world: World, item_id: int, n: int
) -> list[int]:
    """n pending claims of villager X's household (one reported, the rest copies of it)."""
    first = self_report(client, world, "villager_x", item_id, 2).get_json()["id"]
    ids = [first]
    with app.app_context():
        claim = db.session.get(Claim, first)
        assert claim is not None and claim.status == "pending"
        for _ in range(n - 1):
            db.session.expunge(claim)
            make_transient(claim)
            claim.id = None  # type: ignore[assignment]
            db.session.add(claim)
            db.session.flush()
            ids.append(claim.id)
        db.session.commit()
    return ids


def _tab_count(html: str, status: str) -> str:
    found = re.search(rf'data-status="{status}"[^>]*>[^<]*<span class="count">([^<]*)<', html)
    assert found, status
    return found.group(1)


def _section(html: str, section: str) -> str:
    found = re.search(rf'<section class="card" id="{section}">(.*?)</section>', html, re.S)
    assert found, section
    return found.group(1)


def test_the_queue_counts_each_tab_up_to_the_cap(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _pending_claims(app, client, world, items["PUB-VOLUNTEER"], 4)
    console_login(client, "cadre_a")
    monkeypatch.setattr(counting, "COUNT_CAP", 4)
    page = client.get("/console/claims").text
    assert _tab_count(page, "pending") == "4"  # exactly the cap: still exact
    assert _tab_count(page, "posted") == "0"
    monkeypatch.setattr(counting, "COUNT_CAP", 3)
    page = client.get("/console/claims").text
    assert _tab_count(page, "pending") == "3+"
    assert page.count('<tr data-claim="') == 4  # the rows are not capped, only the count


def test_today_counts_the_claims_waiting_up_to_its_cap_and_lists_the_newest(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = _pending_claims(app, client, world, items["PUB-VOLUNTEER"], 5)
    console_login(client, "cadre_a")
    monkeypatch.setattr(today, "TODAY_CAP", 5)
    waiting = _section(client.get("/console/").text, "waiting")
    assert '<span class="figure">5</span>' in waiting
    for claim_id in ids:  # fewer than SHOWN: every one is listed, newest first
        assert f"#{claim_id}<" in waiting
    assert waiting.index(f"#{ids[-1]}<") < waiting.index(f"#{ids[0]}<")
    monkeypatch.setattr(today, "TODAY_CAP", 3)
    waiting = _section(client.get("/console/").text, "waiting")
    # Counted up to TODAY_CAP only; listed all the same, newest first.
    assert '<span class="figure">3+</span>' in waiting
    assert all(f"#{i}<" in waiting for i in ids)


def test_today_tells_a_first_review_from_a_second_by_the_claims_approvals(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A batch award needing two cadres leaves its claims pending with one approval each,
    # newer than the villager's claim still waiting for its first review.
    set_policy(client, world, two_cadre_threshold=1)
    oldest, *batch = _pending_claims(app, client, world, items["PUB-VOLUNTEER"], 5)
    for claim_id in batch:
        first = approve(client, world, "tadmin1", claim_id)
        assert first.status_code == 200 and first.get_json()["status"] == "pending"
    console_login(client, "cadre_a")
    monkeypatch.setattr(today, "TODAY_CAP", 3)
    page = client.get("/console/").text
    waiting = _section(page, "waiting")
    assert f"#{oldest}<" in waiting and "没有" not in waiting
    assert '<span class="figure">1</span>' in waiting  # exact: under the cap
    assert not any(f"#{i}<" in waiting for i in batch)
    second = _section(page, "second")
    assert all(f"#{i}<" in second for i in batch)
    assert '<span class="figure">3+</span>' in second
    # The township admin approved them: for it they wait for someone else.
    console_login(client, "tadmin1")
    assert "#" not in _section(client.get("/console/").text, "second")


def _audit_lines(app: Flask, world: World, n: int) -> list[int]:
    with app.app_context():
        entries = [
            AuditEntry(
                actor_id=world.tadmin1,
                action="claim.award",
                object_type="claims",
                object_id=str(i),
                township_id=world.township_1,
                village_id=world.village_a,
                after={"note": f"第{i}条"},
            )
            for i in range(n)
        ]
        db.session.add_all(entries)
        db.session.commit()
        return [e.id for e in entries]


def test_the_audit_log_reads_a_page_by_its_ids_and_pages_to_the_cap(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _audit_lines(app, world, 12)
    with app.app_context():
        newest_first = list(
            db.session.scalars(select(AuditEntry.id).order_by(AuditEntry.id.desc()))
        )
    assert set(ids) <= set(newest_first)
    monkeypatch.setattr(audit_page, "PER_PAGE", 4)
    monkeypatch.setattr(openapi, "PAGE_CAP", 10)
    console_login(client, "county")
    assert "第 1 / 3 页" in client.get("/console/audit").text
    pages = [client.get(f"/console/audit?page={n}").text for n in (1, 2, 3)]
    shown = [[int(i) for i in re.findall(r'data-entry="(\d+)"', page)] for page in pages]
    # Newest first, page after page; the cap's last page is a short one.
    assert shown == [newest_first[0:4], newest_first[4:8], newest_first[8:10]]
    assert client.get("/console/audit?page=4").status_code == 400  # past the cap
    with _statements(app) as seen:
        client.get("/console/audit?page=2")
    keys_first = [
        s for s in seen if " ".join(s.split()).startswith("SELECT audit_log.id FROM audit_log")
    ]
    assert keys_first, "the page's ids are read on their own first"


@contextmanager
def _statements(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_the_board_page_reads_the_village_picker_in_one_statement(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "county")
    client.get("/console/boards")
    with _statements(app) as before:
        assert client.get("/console/boards").status_code == 200
    with app.app_context():
        db.session.add_all(
            Village(township_id=world.township_1, name=f"新村{n}", code=f"NEW{n}") for n in range(5)
        )
        db.session.commit()
    with _statements(app) as after:
        page = client.get("/console/boards")
    assert page.status_code == 200 and "新村4" in page.text
    assert len(after) == len(before), "a statement per village in the picker"


def test_an_award_waiting_for_a_second_cadre_is_listed_for_a_second_review(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    # The awarding cadre's review is the claim's first approval: it goes in counted, and
    # 今日 offers it to another cadre as a second review, never as a first one.
    set_policy(client, world, two_cadre_threshold=1)
    awarded = award(client, world, items["GOV-ASSEMBLY"], [{"villager_id": world.head_x}])
    assert awarded.status_code == 201, awarded.get_json()
    claim_id = awarded.get_json()[0]["id"]
    assert awarded.get_json()[0]["status"] == "pending"
    with app.app_context():
        claim = db.session.get(Claim, claim_id)
        assert claim is not None and claim.approvals == 1
        approvals = db.session.scalars(
            select(ClaimApproval.user_id).where(ClaimApproval.claim_id == claim_id)
        ).all()
        db.session.rollback()
    assert len(approvals) == 1
    console_login(client, "tadmin1")
    page = client.get("/console/").text
    assert f"#{claim_id}<" in _section(page, "second")
    assert f"#{claim_id}<" not in _section(page, "waiting")


def test_ledger_verify_names_a_claim_whose_approvals_differ_from_its_rows(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int], runner: Any
) -> None:
    (claim_id,) = _pending_claims(app, client, world, items["PUB-VOLUNTEER"], 1)
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    with app.app_context():
        db.session.execute(update(Claim).where(Claim.id == claim_id).values(approvals=1))
        db.session.commit()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code != 0
    assert f"BROKEN claim approvals: 申报 {claim_id} 记为 1 人审核，审核记录 0 条" in result.output
    assert "`flask ledger rebuild-counts`" in result.output
    # The repair counts the rows again, for this claim only; verify passes after it.
    rebuilt = runner.invoke(args=["ledger", "rebuild-counts"])
    assert rebuilt.exit_code == 0 and "recounted 1 claim(s)' approvals" in rebuilt.output
    with app.app_context():
        assert db.session.get(Claim, claim_id).approvals == 0  # type: ignore[union-attr]
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    again = runner.invoke(args=["ledger", "rebuild-counts"])
    assert "recounted 0 claim(s)' approvals" in again.output
