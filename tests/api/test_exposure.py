"""What the API shows beyond what its reader may see: phone numbers in the audit log, a
reward's picture link, a household that keeps off the public boards, and the names of
downloaded files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.downloads import safe_filename
from backend.extensions import db
from points.models import AuditEntry, PublicLink, Reward, Shop, Village
from tests.factories import World, add_reward, bar, default_items, earn
from tests.support.clock import frozen, local
from tests.support.reads import error_code
from tests.support.scope import ROSTER_CSV, database_state

API = "/api/v1"

# ---- phone numbers in the audit log ---------------------------------------------------------

NEW_MEMBER_PHONE = "13911113333"
CHANGED_PHONE = "13722223333"
HEAD_X_PHONE = "13800000000"  # the World's


def _audited_phone_writes(client: FlaskClient, world: World) -> None:
    """Staff writes whose snapshots hold phones: a member added, a phone changed, a roster
    imported (its own phones), a binding code made."""
    cadre = world.headers("cadre_a")
    added = client.post(
        f"{API}/households/{world.household_x}/members",
        headers=cadre,
        json={"name": "新成员", "relation": "子女", "phone": NEW_MEMBER_PHONE},
    )
    assert added.status_code == 201, added.get_json()
    changed = client.patch(
        f"{API}/villagers/{world.head_x}", headers=cadre, json={"phone": CHANGED_PHONE}
    )
    assert changed.status_code == 200, changed.get_json()
    imported = client.post(
        f"{API}/villages/{world.village_a}/roster",
        data=ROSTER_CSV,
        content_type="text/csv",
        headers=cadre,
    )
    assert imported.status_code == 201, imported.get_json()
    made = client.post(f"{API}/villagers/{world.spouse_x}/binding-token", headers=cadre)
    assert made.status_code == 201, made.get_json()


@pytest.mark.parametrize("reader", ["tadmin1", "county"])
def test_the_audit_log_masks_phones_for_admins(
    app: Flask, client: FlaskClient, world: World, reader: str
) -> None:
    _audited_phone_writes(client, world)

    response = client.get(f"{API}/audit?per_page=100", headers=world.headers(reader))

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    roster_phone = "13911112222"
    for phone in (NEW_MEMBER_PHONE, CHANGED_PHONE, HEAD_X_PHONE, roster_phone):
        assert phone not in text, phone
    entries = {e["action"]: e for e in response.get_json()["items"]}
    assert entries["member.create"]["after"]["phone"] == "139****3333"
    assert entries["villager.update"]["before"]["phone"] == "138****0000"
    assert entries["villager.update"]["after"]["phone"] == "137****3333"
    # the rest of the snapshot is as stored
    assert entries["villager.update"]["after"]["name"] == "户主x"
    assert entries["member.create"]["after"]["relation"] == "子女"


def test_the_stored_audit_keeps_the_phones(app: Flask, client: FlaskClient, world: World) -> None:
    _audited_phone_writes(client, world)
    client.get(f"{API}/audit", headers=world.headers("county"))
    with app.app_context():
        update = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "villager.update")
        ).one()
        assert (update.before["phone"], update.after["phone"]) == (HEAD_X_PHONE, CHANGED_PHONE)


# ---- a reward's picture link ----------------------------------------------------------------

BAD_IMAGE_URLS = [
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    " javascript:alert(1)",
    "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/x.png",
    "/static/x.png",
    "ftp://example.com/x.png",
    "https://",
    "香皂.jpg",
    "https://exa mple.com/x.png",
    "http://example.com/\nSet-Cookie:x",
]


@pytest.mark.parametrize("url", BAD_IMAGE_URLS)
def test_a_reward_picture_must_be_a_web_link(
    app: Flask, client: FlaskClient, world: World, url: str
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    clerk = world.headers("clerk_a")
    before = database_state(app)

    created = client.post(
        f"{API}/shops/{world.shop_a}/rewards",
        headers=clerk,
        json={"name": "毛巾", "points": 8, "image_url": url},
    )
    patched = client.patch(f"{API}/rewards/{soap}", headers=clerk, json={"image_url": url})

    for response in (created, patched):
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == "validation_error"
        assert "image_url" in error["details"]["fields"], error
    assert database_state(app) == before


@pytest.mark.parametrize(
    "url",
    [
        "https://img.example.gov.cn/rewards/soap.jpg",
        "http://192.168.1.20/soap.png",
        "HTTPS://cdn.example.com/a.jpg?w=200",
    ],
)
def test_web_links_are_no_longer_taken_for_pictures(
    app: Flask, client: FlaskClient, world: World, url: str
) -> None:
    # Pictures are uploaded and checked by the service (test_reward_images.py); a link was
    # never checked. Links typed in before stay shown until replaced or cleared.
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    clerk = world.headers("clerk_a")
    before = database_state(app)
    created = client.post(
        f"{API}/shops/{world.shop_a}/rewards",
        headers=clerk,
        json={"name": "毛巾", "points": 8, "image_url": url},
    )
    patched = client.patch(f"{API}/rewards/{soap}", headers=clerk, json={"image_url": url})
    for response in (created, patched):
        assert response.status_code == 422, response.get_json()
        assert "image_url" in response.get_json()["error"]["details"]["fields"]
    assert database_state(app) == before


def test_no_picture_is_accepted_and_clears_an_old_link(
    app: Flask, client: FlaskClient, world: World
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    with app.app_context():
        db.session.get(Reward, soap).image_url = "https://img.example/soap.jpg"  # type: ignore[union-attr]
        db.session.commit()
    clerk = world.headers("clerk_a")
    shown = client.get(f"{API}/rewards/{soap}", headers=clerk).get_json()
    assert shown["image_url"] == "https://img.example/soap.jpg"  # kept from before
    created = client.post(
        f"{API}/shops/{world.shop_a}/rewards",
        headers=clerk,
        json={"name": "毛巾", "points": 8, "image_url": None},
    )
    patched = client.patch(f"{API}/rewards/{soap}", headers=clerk, json={"image_url": None})
    assert created.status_code == 201, created.get_json()
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["image_url"] is None
    with app.app_context():
        assert db.session.get(Reward, soap).image_url is None  # type: ignore[union-attr]


# ---- a household that keeps off the public boards -------------------------------------------


def _plate_token(app: Flask, client: FlaskClient, world: World) -> str:
    response = client.post(
        f"{API}/households/{world.household_x}/plate/renew", headers=world.headers("cadre_a")
    )
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        token = db.session.scalar(
            select(PublicLink.token).where(PublicLink.household_id == world.household_x)
        )
    assert token is not None
    return token


def _opt_out(client: FlaskClient, world: World) -> None:
    response = client.put(
        f"{API}/me/board-privacy",
        json={"public_board_opt_out": True},
        headers=world.headers("villager_x"),
    )
    assert response.status_code == 200, response.get_json()


def _barred_household(app: Flask, client: FlaskClient, world: World) -> dict[str, Any]:
    """Household x under a veto (一票否决) this month, with points."""
    default_items(app, world)
    earn(app, world.household_x, 12, local(2026, 4, 3))
    bar(app, world.household_x, "2026-04", "2026-04")
    return {"token": _plate_token(app, client, world)}


def test_an_opted_out_plate_reveals_only_that_the_household_exists(
    app: Flask, client: FlaskClient, world: World
) -> None:
    scene = _barred_household(app, client, world)
    with frozen(local(2026, 4, 20)):
        shown = client.get(f"{API}/plates/{scene['token']}").get_json()
        assert shown["barred"] is True and shown["points"] == 12  # not opted out: all shown
        _opt_out(client, world)
        plate = client.get(f"{API}/plates/{scene['token']}")
        page = client.get(f"/h/{scene['token']}")

    assert plate.status_code == 200
    body = plate.get_json()
    assert body["opted_out"] is True
    hidden = {key for key, value in body.items() if value is None}
    assert {"barred", "points", "rank", "stars", "year_points", "households"} <= hidden
    assert "x户" not in plate.get_data(as_text=True)
    assert "户主x" not in plate.get_data(as_text=True)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for revealing in ("一票否决", "12", "名", "★", "暂未评星", "户主x"):
        assert revealing not in html.split("<main>", 1)[1], revealing
    assert "本户选择不在公开榜单上展示积分" in html


def test_an_opted_out_plate_openapi_allows_the_hidden_fields(client: FlaskClient) -> None:
    spec = client.get(f"{API}/openapi.json").get_json()
    plate = spec["components"]["schemas"]["PlateOut"]["properties"]
    for name in ("barred", "points", "rank", "stars", "year_points", "households"):
        assert plate[name].get("nullable") is True, name


def test_a_refused_picture_link_says_why_in_chinese(client: FlaskClient, world: World) -> None:
    response = client.post(
        f"{API}/shops/{world.shop_a}/rewards",
        headers=world.headers("clerk_a"),
        json={"name": "毛巾", "points": 8, "image_url": "javascript:x"},
    )
    assert error_code(response) == "validation_error"
    message = response.get_json()["error"]["details"]["fields"]["image_url"][0]
    assert "上传" in message and any("\u4e00" <= ch <= "\u9fff" for ch in message)


# ---- names of downloaded files --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../x", "x"),
        ("..\\..\\win.ini", "win.ini"),
        ("/etc/passwd", "etc_passwd"),
        ("清水村积分超市2026-06结算单.csv", "清水村积分超市2026-06结算单.csv"),
        ("超市/2026-06结算单.xlsx", "超市_2026-06结算单.xlsx"),
        ('a"b;c.pdf', "a_b_c.pdf"),
        ("\x00\r\nSet-Cookie: a=b", "Set-Cookie_ a=b"),
        ("\u202egpj.exe", "gpj.exe"),  # no right-to-left override to disguise the extension
        ("  .hidden ", "hidden"),
        ("..", "download"),
        ("", "download"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def _disposition_names(header: str) -> tuple[str, str]:
    """(filename, the decoded filename*) of a Content-Disposition header."""
    plain = re.search(r'filename="([^"]*)"', header)
    starred = re.search(r"filename\*=UTF-8''([^;\s]*)", header)
    assert plain is not None and starred is not None, header
    return plain.group(1), unquote(starred.group(1))


def _assert_safe(header: str) -> tuple[str, str]:
    plain, starred = _disposition_names(header)
    for name in (plain, starred):
        assert "/" not in name and "\\" not in name and not name.startswith("."), header
        assert '"' not in name and "\n" not in name and "\r" not in name, header
    assert plain.isascii(), header
    assert header.count('"') == 2 and "\n" not in header, header
    return plain, starred


def test_downloads_named_after_what_people_typed_are_safe(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """A shop and a village named with path separators and quotes: the settlement (CSV,
    XLSX) and the printed board are saved under safe names that keep the Chinese."""
    with app.app_context():
        db.session.get(Shop, world.shop_a).name = '../../清水村"超市'  # type: ignore[union-attr]
        db.session.get(Village, world.village_a).name = "..\\..\\清水村"  # type: ignore[union-attr]
        db.session.commit()
    admin = world.headers("tadmin1")
    for fmt in ("csv", "xlsx"):
        response = client.get(
            f"{API}/shops/{world.shop_a}/settlements?month=2026-06&format={fmt}", headers=admin
        )
        assert response.status_code == 200
        header = response.headers["Content-Disposition"]
        assert header.startswith("attachment;")
        plain, starred = _assert_safe(header)
        assert plain == f"settlement-shop{world.shop_a}-2026-06.{fmt}"
        assert starred == f"清水村_超市2026-06结算单.{fmt}"
    with frozen(local(2026, 7, 2)):
        board = client.get(
            f"{API}/villages/{world.village_a}/board.pdf", headers=world.headers("cadre_a")
        )
    assert board.status_code == 200
    header = board.headers["Content-Disposition"]
    assert header.startswith("inline;")
    plain, starred = _assert_safe(header)
    assert plain == f"board-{world.village_a}-2026-06-A4.pdf"
    assert starred == "清水村2026-06红黑榜-A4.pdf"


def test_a_catalog_export_is_named_by_the_helper(
    app: Flask, client: FlaskClient, world: World
) -> None:
    default_items(app, world)
    catalog = client.get(f"{API}/rule-catalogs", headers=world.headers("tadmin1")).get_json()[
        "items"
    ][0]["id"]
    response = client.get(f"{API}/rule-catalogs/{catalog}/export", headers=world.headers("tadmin1"))
    assert response.status_code == 200
    assert _assert_safe(response.headers["Content-Disposition"]) == (
        f"rule-catalog-{catalog}.yaml",
        f"rule-catalog-{catalog}.yaml",
    )


def test_every_download_names_its_file_through_one_helper() -> None:
    """No view writes a Content-Disposition of its own (or hands a name to send_file)."""
    root = Path(__file__).resolve().parents[2] / "backend"
    writers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(
            r"Content-Disposition|download_name|as_attachment", path.read_text(encoding="utf-8")
        )
    )
    assert writers == ["downloads.py"], writers
