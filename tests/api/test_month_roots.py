"""The verifiable public notice: a closed month's board commits to every household's month
(a Merkle root), each household gets a proof that verifies against the printed root and no
other, the township's root rolls the villages' up, and `flask ledger verify` names a month
whose ledger was changed after it was printed."""

from __future__ import annotations

import io
import itertools
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import zxingcpp
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import select, text

from backend.extensions import db
from points import ledger, notice
from points.boards import closing
from points.models import BoardSnapshot, Household, Village
from points.models.ledger import GENESIS_HASH, Account, LedgerEntry
from rules import merkle
from tests.api.test_api_contract import Contract
from tests.factories import World, add_household, earn
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.reads import error_code

API = "/api/v1"
APRIL_2 = local(2026, 4, 2)
_names = itertools.count()
TOOL = Path(__file__).resolve().parents[2] / "tools" / "verify_month.py"


def _close(app: Flask, village_id: int, month: str = "2026-03") -> BoardSnapshot:
    with app.app_context():
        snapshot, created = closing.close_month(
            db.session, village_id, month, now=APRIL_2, tz=SHANGHAI
        )
        assert created
        db.session.commit()
        db.session.refresh(snapshot)
        db.session.expunge(snapshot)
        return snapshot


def _verifies(proof: dict[str, Any], root: str, leaf: dict[str, Any] | None = None) -> bool:
    leaf = leaf or proof["leaf"]
    return merkle.verify_inclusion(
        merkle.household_leaf(
            leaf["household_id"],
            leaf["period"],
            leaf["points"],
            leaf["available"],
            leaf["head_hash"],
        ),
        proof["index"],
        proof["size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(root),
    )


def _village_verifies(proof: dict[str, Any]) -> bool:
    village = proof["village"]
    return merkle.verify_inclusion(
        merkle.village_leaf(village["village_id"], proof["period"], proof["root"], proof["size"]),
        village["index"],
        village["size"],
        [bytes.fromhex(h) for h in village["proof"]],
        bytes.fromhex(village["township_root"]),
    )


# Per household: entries as (amount, day, month offset): -1 February, 0 March, 1 April.
ENTRY = st.tuples(st.integers(-5, 12).filter(bool), st.integers(1, 28), st.integers(-1, 1))
LEDGERS = st.lists(st.lists(ENTRY, max_size=3), min_size=1, max_size=5)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ledgers=LEDGERS)
def test_every_households_proof_verifies_against_the_stored_root_and_no_other(
    app: Flask,
    world: World,
    ledgers: list[list[tuple[int, int, int]]],
) -> None:
    # Each example its own village, so examples need no cleaning between them.
    with app.app_context():
        village = Village(township_id=world.township_1, name=f"验证村{next(_names)}")
        db.session.add(village)
        db.session.commit()
        village_id = village.id
    households = [
        add_household(app, village_id, f"户{i}", f"户主{i}")["household"]
        for i in range(len(ledgers))
    ]
    for household, entries in zip(households, ledgers, strict=True):
        for amount, day, offset in entries:
            earn(app, household, amount, local(2026, 3 + offset, day))
    snapshot = _close(app, village_id)
    assert snapshot.month_leaves == len(households)
    totals = {int(k): v for k, v in snapshot.data["totals"].items()}

    with app.app_context():
        proofs = []
        for household in households:
            proof = notice.household_month_proof(
                db.session, db.session.get(Household, household), "2026-03", SHANGHAI
            )
            proofs.append(proof)
        db.session.rollback()
    for household, proof in zip(households, proofs, strict=True):
        assert proof["root"] == snapshot.month_root
        assert proof["leaf"]["household_id"] == household
        # The points are those the board counted.
        assert proof["leaf"]["points"] == totals.get(household, 0)
        assert _verifies(proof, snapshot.month_root)
        assert _village_verifies(proof)
        # Never for another month or another household's numbers.
        assert not _verifies(proof, snapshot.month_root, {**proof["leaf"], "period": "2026-02"})
        for other in proofs:
            if other["leaf"]["household_id"] != household:
                borrowed = {**other["leaf"], "household_id": household}
                if borrowed != proof["leaf"]:  # another household's numbers as its own
                    assert not _verifies(proof, snapshot.month_root, borrowed)
                assert not _verifies(proof, snapshot.month_root, other["leaf"])


def test_a_fixed_month_gives_the_same_root_on_every_database(app: Flask, world: World) -> None:
    """Ids, points, balances and chain heads are all fixed by the data: this root holds on
    SQLite and PostgreSQL alike (the suite runs on both)."""
    other = add_household(app, world.village_a, "b户", "李四")["household"]
    add_household(app, world.village_a, "c户", "王五")  # no entry: 0, 0, genesis head
    earn(app, world.household_x, 5, local(2026, 3, 3))
    earn(app, world.household_x, -2, local(2026, 3, 20))
    earn(app, other, 7, local(2026, 2, 27))
    earn(app, other, 3, local(2026, 4, 1))  # after the month: not in it
    snapshot = _close(app, world.village_a)
    assert snapshot.month_leaves == 3
    assert snapshot.month_root == FIXED_ROOT


FIXED_ROOT = "329e8695ed112bbffd06fa71355bf80e29f88cad3cbc06b80ed1fb472dd0b5f3"


def test_changing_an_entry_of_a_closed_month_is_named_by_ledger_verify(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
) -> None:
    entry = earn(app, world.household_x, 5, local(2026, 3, 3))
    earn(app, world.household_y, 4, local(2026, 3, 3))
    _close(app, world.village_a)
    _close(app, world.village_b)
    clean = runner.invoke(args=["ledger", "verify"])
    assert clean.exit_code == 0, clean.output
    assert "closed months' roots agree" in clean.output

    with app.app_context():
        db.session.execute(
            text("UPDATE ledger_entries SET amount = 50 WHERE id = :id"), {"id": entry}
        )
        db.session.commit()
    try:
        broken = runner.invoke(args=["ledger", "verify"])
        assert broken.exit_code != 0
        assert f"BROKEN month root: village {world.village_a} month 2026-03" in broken.output, (
            broken.output
        )
        assert f"village {world.village_b} month" not in broken.output
        # No proof is handed out for a root the ledger no longer gives.
        with frozen(local(2026, 4, 3)):
            response = client.get(
                f"{API}/households/{world.household_x}/month-proof",
                query_string={"period": "2026-03"},
                headers=world.headers("villager_x"),
            )
        assert response.status_code == 409
        assert error_code(response) == "month_root_mismatch"
    finally:  # the suite checks every ledger after each test
        with app.app_context():
            db.session.execute(
                text("UPDATE ledger_entries SET amount = 5 WHERE id = :id"), {"id": entry}
            )
            db.session.commit()


def test_a_proof_fetched_over_http_verifies_against_the_printed_root(
    app: Flask,
    client: FlaskClient,
    world: World,
    tmp_path: Path,
) -> None:
    other = add_household(app, world.village_a, "b户", "李四")["household"]
    earn(app, world.household_x, 6, local(2026, 3, 3))
    earn(app, other, -3, local(2026, 3, 9))
    proof_url = f"{API}/households/{world.household_x}/month-proof"
    with frozen(local(2026, 4, 3)):
        mine = world.headers("villager_x")
        early = client.get(proof_url, query_string={"period": "2026-03"}, headers=mine)
        assert early.status_code == 409 and error_code(early) == "month_not_closed"
        unclosed = client.get(
            f"{API}/villages/{world.village_a}/month-root", query_string={"period": "2026-03"}
        )
        assert unclosed.status_code == 404 and error_code(unclosed) == "no_month_root"
        closed = client.post(
            f"{API}/villages/{world.village_a}/board/close",
            json={"period": "2026-03"},
            headers={**world.headers("cadre_a"), "Idempotency-Key": "k1"},
        )
        assert closed.status_code == 201, closed.get_json()
        board = client.get(
            f"{API}/villages/{world.village_a}/board",
            query_string={"period": "2026-03"},
            headers=mine,
        ).get_json()
        response = client.get(proof_url, query_string={"period": "2026-03"}, headers=mine)
        staff = client.get(
            proof_url, query_string={"period": "2026-03"}, headers=world.headers("cadre_a")
        )
        foreign = client.get(
            f"{API}/households/{other}/month-proof",
            query_string={"period": "2026-03"},
            headers=mine,
        )
        elsewhere = client.get(
            proof_url, query_string={"period": "2026-03"}, headers=world.headers("cadre_b")
        )
        public = client.get(
            f"{API}/villages/{world.village_a}/month-root", query_string={"period": "2026-03"}
        )
        report = client.get(
            f"{API}/townships/{world.township_1}/month-report.pdf",
            query_string={"period": "2026-03"},
            headers=world.headers("tadmin1"),
        )
    assert closed.get_json()["month_root"] == board["month_root"]
    assert board["month_leaves"] == 2
    assert response.status_code == 200, response.get_json()
    proof = response.get_json()
    assert proof["root"] == board["month_root"]
    assert proof["leaf"] == {
        "household_id": world.household_x,
        "period": "2026-03",
        "points": 6,
        "available": 6,
        "head_hash": proof["leaf"]["head_hash"],
    }
    assert _verifies(proof, board["month_root"])
    assert _village_verifies(proof)
    assert proof["fingerprint"] == merkle.fingerprint(board["month_root"])
    assert staff.status_code == 200 and staff.get_json() == proof
    assert foreign.status_code == 404 and elsewhere.status_code == 404

    assert public.status_code == 200, public.get_json()
    body = public.get_json()
    assert body["root"] == board["month_root"] and body["size"] == 2
    assert body["township"]["township_root"] == proof["village"]["township_root"]
    assert "name" not in str(body)
    with app.app_context():
        county, townships = notice.county_root(db.session, "2026-03")
    assert townships[0].root == body["township"]["township_root"]
    assert len(county) == 64

    assert report.status_code == 200
    assert report.data.startswith(b"%PDF")

    # The standalone checker, in its own process, accepts the proof against the fingerprint
    # printed on the board and against the township's, and nothing else.
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(json.dumps(proof), encoding="utf-8")
    for typed, code in (
        (merkle.fingerprint(board["month_root"]), 0),
        (proof["village"]["township_fingerprint"], 0),
        ("0000 0000 0000 0000", 1),
    ):
        checked = subprocess.run(
            [sys.executable, str(TOOL), str(proof_file), typed],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == code, checked.stdout

    # The answers are what the OpenAPI document says, every field there.
    contract = Contract(client.get(f"{API}/openapi.json").get_json())
    problems = contract.check("get", f"{API}/households/{{household_id}}/month-proof", response)
    problems += contract.check("get", f"{API}/villages/{{village_id}}/month-root", public)
    problems += contract.check("get", f"{API}/households/{{household_id}}/month-proof", early)
    assert not problems, problems


def test_months_closed_before_roots_were_kept_have_none(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    earn(app, world.household_x, 6, local(2026, 3, 3))
    _close(app, world.village_a)
    with app.app_context():
        db.session.execute(
            text("UPDATE board_snapshots SET month_root = NULL, month_leaves = NULL")
        )
        db.session.commit()
        assert db.session.scalar(select(BoardSnapshot.month_root)) is None
    with frozen(local(2026, 4, 3)):
        board = client.get(
            f"{API}/villages/{world.village_a}/board",
            query_string={"period": "2026-03"},
            headers=world.headers("villager_x"),
        ).get_json()
        response = client.get(
            f"{API}/households/{world.household_x}/month-proof",
            query_string={"period": "2026-03"},
            headers=world.headers("villager_x"),
        )
        public = client.get(
            f"{API}/villages/{world.village_a}/month-root", query_string={"period": "2026-03"}
        )
    assert board["month_root"] is None
    assert response.status_code == 404 and error_code(response) == "no_month_root"
    assert public.status_code == 404 and error_code(public) == "no_month_root"


def _rewrite(app: Flask, entry_id: int, amount: int) -> None:
    """Change an entry's amount and re-chain its account (hashes, head, balance), as one who
    can write the database would to hide it: the chain then verifies."""
    with app.app_context():
        changed = db.session.get(LedgerEntry, entry_id)
        assert changed is not None
        changed.amount = amount
        account = db.session.get(Account, changed.account_id)
        assert account is not None
        prev, total = GENESIS_HASH, 0
        for entry in db.session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.account_id == account.id)
            .order_by(LedgerEntry.seq)
        ):
            entry.prev_hash = prev
            entry.hash = prev = ledger.chain_hash(prev, entry)
            total += entry.amount
        account.head_hash, account.available = prev, total - account.held
        db.session.commit()


def test_a_rechained_ledger_still_breaks_the_printed_root(
    app: Flask,
    runner: Any,
    world: World,
) -> None:
    entry = earn(app, world.household_x, 5, local(2026, 3, 3))
    earn(app, world.household_x, 2, local(2026, 3, 9))
    _close(app, world.village_a)
    _rewrite(app, entry, 40)
    try:
        result = runner.invoke(args=["ledger", "verify"])
        assert result.exit_code != 0
        assert "BROKEN account" not in result.output  # the chain alone would not tell
        assert f"BROKEN month root: village {world.village_a} month 2026-03" in result.output
    finally:
        _rewrite(app, entry, 5)
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0


def test_the_checker_reads_the_proof_from_a_running_server_against_the_printed_board(
    app: Flask,
    client: FlaskClient,
    world: World,
    served: str,
) -> None:
    """What a villager's nephew does: read the board on the wall (here: decode the QR of the
    printed board.png and type the fingerprint it carries), fetch the household's proof
    from the running server, and run the standalone checker on both."""
    earn(app, world.household_x, 6, local(2026, 3, 3))
    with frozen(local(2026, 4, 3)):
        closed = client.post(
            f"{API}/villages/{world.village_a}/board/close",
            json={"period": "2026-03"},
            headers={**world.headers("cadre_a"), "Idempotency-Key": "k2"},
        )
        assert closed.status_code == 201, closed.get_json()
        token = world.headers("villager_x")["Authorization"].removeprefix("Bearer ")
        with urllib.request.urlopen(
            urllib.request.Request(
                f"{served}{API}/villages/{world.village_a}/board.png?period=2026-03",
                headers={"Authorization": f"Bearer {token}"},
            ),
            timeout=60,
        ) as answer:
            printed = Image.open(io.BytesIO(answer.read()))
            printed.load()
        [code] = zxingcpp.read_barcodes(printed)
        query = parse_qs(urlsplit(code.text).query)
        root = query["root"][0]
        assert re.fullmatch(r"[0-9a-f]{64}", root) and query["period"] == ["2026-03"]
        typed = " ".join(root[i : i + 4] for i in range(0, 16, 4))  # as printed, large
        proof_url = f"{served}{API}/households/{world.household_x}/month-proof?period=2026-03"
        checks = {
            wall: subprocess.run(
                [sys.executable, str(TOOL), proof_url, wall, "--token", token],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            for wall in (typed, "ffff ffff ffff ffff")
        }
    assert checks[typed].returncode == 0, checks[typed].stdout + checks[typed].stderr
    assert checks["ffff ffff ffff ffff"].returncode == 1


def test_a_townships_root_hangs_from_the_countys(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    earn(app, world.household_x, 6, local(2026, 3, 3))
    with frozen(local(2026, 4, 3)):
        for village in (world.village_a, world.village_b):
            closed = client.post(
                f"{API}/villages/{village}/board/close",
                json={"period": "2026-03"},
                headers={**world.headers("tadmin1"), "Idempotency-Key": f"close-{village}"},
            )
            assert closed.status_code == 201, closed.get_json()
        village = client.get(
            f"{API}/villages/{world.village_a}/month-root", query_string={"period": "2026-03"}
        ).get_json()
        answer = client.get(
            f"{API}/townships/{world.township_1}/month-root", query_string={"period": "2026-03"}
        )
        missing = client.get(
            f"{API}/townships/999999/month-root", query_string={"period": "2026-03"}
        )
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert "name" not in str(body)
    # the same township root the village's proof climbs to
    assert body["root"] == village["township"]["township_root"]
    assert [v["village_id"] for v in body["villages"]] == sorted([world.village_a, world.village_b])
    county = body["county"]
    leaf = merkle.township_leaf(world.township_1, "2026-03", body["root"], body["size"])
    proof = [bytes.fromhex(h) for h in county["proof"]]
    assert merkle.verify_inclusion(
        leaf, county["index"], county["size"], proof, bytes.fromhex(county["county_root"])
    )
    other = merkle.township_leaf(world.township_1, "2026-02", body["root"], body["size"])
    assert not merkle.verify_inclusion(
        other, county["index"], county["size"], proof, bytes.fromhex(county["county_root"])
    )
    assert county["county_fingerprint"] == merkle.fingerprint(county["county_root"])
    with app.app_context():
        assert notice.county_root(db.session, "2026-03")[0] == county["county_root"]
    assert missing.status_code == 404
