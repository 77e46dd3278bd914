"""The console's 活动签到 pages through the test client: creating an activity as the API does,
the poster, proxy check-in by a member card's scanned text, check-out, cancelling, and the
refusals (another village's activity, no reason, no CSRF token)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.clock import now
from backend.extensions import db
from backend.qr import token_url
from points.models import Activity, CheckIn
from tests.factories import API, World, member_token, open_activity
from tests.support.clock import SHANGHAI
from tests.support.console import console_login

BASE = "https://jf.example.gov.cn"  # the test app's PUBLIC_BASE_URL


def local_field(moment: datetime) -> str:
    """What a datetime-local field sends: the village's clock, to the minute."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def form(world: World, item_id: int, csrf: str, **changes: Any) -> dict[str, Any]:
    starts = (now() + timedelta(days=1)).replace(second=0, microsecond=0)
    data: dict[str, Any] = {
        "csrf_token": csrf,
        "idempotency_key": f"k-{changes.get('title', '村民大会')}-{item_id}",
        "village_id": world.village_a,
        "title": "十二月村民大会",
        "rule_item_id": item_id,
        "starts_at": local_field(starts),
        "ends_at": local_field(starts + timedelta(hours=2)),
        "qr_mode": "static",
        "place": "村委会二楼会议室",
        "capacity": "50",
        "lat": "30.5728",
        "lng": "114.2792",
        "radius_m": "300",
        "geofence_mode": "flag",
    }
    data.update(changes)
    return data


def created_id(response: Any) -> int:
    assert response.status_code == 303, response.text
    found = re.search(r"/console/activities/(\d+)$", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def scanned_card(app: Flask, villager_id: int) -> str:
    """What a USB scanner types from a member card's QR: its whole link."""
    return token_url(BASE, member_token(app, villager_id))


def scan(csrf: str, key: str, card: str) -> dict[str, str]:
    return {"csrf_token": csrf, "idempotency_key": key, "member_token": card}


def test_the_console_creates_what_the_api_creates(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    data = form(world, items["GOV-ASSEMBLY"], csrf)
    activity_id = created_id(client.post("/console/activities", data=data))

    body = {
        "village_id": world.village_a,
        "title": data["title"],
        "rule_item_id": items["GOV-ASSEMBLY"],
        "starts_at": datetime.fromisoformat(data["starts_at"]).replace(tzinfo=SHANGHAI).isoformat(),
        "ends_at": datetime.fromisoformat(data["ends_at"]).replace(tzinfo=SHANGHAI).isoformat(),
        "qr_mode": "static",
        "place": data["place"],
        "capacity": 50,
        "location": {"lat": 30.5728, "lng": 114.2792, "radius_m": 300, "mode": "flag"},
    }
    cadre = world.headers("cadre_a")
    by_api = client.post(f"{API}/activities", json=body, headers=cadre)
    assert by_api.status_code == 201, by_api.get_json()
    by_console = client.get(f"{API}/activities/{activity_id}", headers=cadre).get_json()
    ignored = {"id", "created_at"}
    assert {k: v for k, v in by_console.items() if k not in ignored} == {
        k: v for k, v in by_api.get_json().items() if k not in ignored
    }

    # Listed among the upcoming ones, and its page shows it.
    listing = client.get("/console/activities")
    assert listing.status_code == 200
    upcoming = listing.text.split('id="past"')[0]
    assert f'data-activity-id="{activity_id}"' in upcoming
    page = client.get(f"/console/activities/{activity_id}")
    assert page.status_code == 200
    assert "十二月村民大会" in page.text and "村委会二楼会议室" in page.text


def test_the_list_shows_current_activities_first_and_the_rest_below_each_once(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    item = items["GOV-ASSEMBLY"]
    open_now, _ = open_activity(client, world, item, title="开放中")
    tomorrow = now() + timedelta(days=1)
    upcoming, _ = open_activity(
        client,
        world,
        item,
        title="明天",
        starts_at=tomorrow.isoformat(),
        ends_at=(tomorrow + timedelta(hours=2)).isoformat(),
    )
    closed, _ = open_activity(client, world, item, title="已结束")
    cancelled, _ = open_activity(client, world, item, title="已取消")
    with app.app_context():
        over = db.session.get(Activity, closed)
        assert over is not None
        over.checkin_closes_at = now() - timedelta(minutes=1)  # check-in closed a minute ago
        called_off = db.session.get(Activity, cancelled)
        assert called_off is not None
        called_off.status = "cancelled"
        db.session.commit()

    console_login(client, "cadre_a")
    current, past = client.get("/console/activities").text.split('id="past"')

    def listed(part: str) -> list[int]:
        return [int(i) for i in re.findall(r'data-activity-id="(\d+)"', part)]

    assert sorted(listed(current)) == sorted([open_now, upcoming])
    assert sorted(listed(past)) == sorted([closed, cancelled])


def test_a_township_admin_chooses_the_village_first(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "tadmin1")
    chooser = client.get(f"/console/activities?village_id={world.village_b}")
    assert chooser.status_code == 200
    assert f'name="village_id" value="{world.village_b}"' in chooser.text
    assert "白沙村" not in chooser.text  # another township's village is not offered
    data = form(world, items["GOV-ASSEMBLY"], csrf, village_id=world.village_b)
    activity_id = created_id(client.post("/console/activities", data=data))
    with client.application.app_context():
        activity = db.session.get(Activity, activity_id)
        assert activity is not None and activity.village_id == world.village_b


def test_a_refused_form_keeps_what_was_typed_and_says_why(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    data = form(world, items["GOV-ASSEMBLY"], csrf, title="倒着的时间")
    data["ends_at"], data["starts_at"] = data["starts_at"], data["ends_at"]
    refused = client.post("/console/activities", data=data)
    assert refused.status_code == 422
    assert 'data-code="invalid_times"' in refused.text
    assert 'value="倒着的时间"' in refused.text
    bad_radius = client.post(
        "/console/activities", data=form(world, items["GOV-ASSEMBLY"], csrf, radius_m="5")
    )
    assert bad_radius.status_code == 422
    assert "半径" in bad_radius.text
    with client.application.app_context():
        assert db.session.scalars(select(Activity)).all() == []


def test_the_poster_is_a_pdf_and_a_rotating_code_is_not_printable(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    static = created_id(
        client.post("/console/activities", data=form(world, items["GOV-ASSEMBLY"], csrf))
    )
    poster = client.get(f"/console/activities/{static}/poster.pdf")
    assert poster.status_code == 200
    assert poster.mimetype == "application/pdf"
    assert poster.data.startswith(b"%PDF")
    assert poster.headers["Cache-Control"] == "private, no-store"

    rotating = created_id(
        client.post(
            "/console/activities",
            data=form(world, items["GOV-ASSEMBLY"], csrf, title="大屏", qr_mode="rotating"),
        )
    )
    refused = client.get(f"/console/activities/{rotating}/poster.pdf")
    assert refused.status_code == 409
    assert 'data-code="rotating_code_not_printable"' in refused.text


def test_the_display_button_makes_a_display_link_and_opens_it(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    activity_id, _ = open_activity(client, world, items["GOV-ASSEMBLY"], qr_mode="rotating")
    opened = client.post(
        f"/console/activities/{activity_id}/display-link", data={"csrf_token": csrf}
    )
    assert opened.status_code == 303
    location = opened.headers["Location"]
    assert location.startswith(f"/activities/{activity_id}/display#key=")
    key = location.split("#key=", 1)[1]
    shown = client.get(f"{API}/activities/{activity_id}/qr-token", headers={"X-Display-Key": key})
    assert shown.status_code == 200, shown.get_json()


def test_proxy_check_in_by_a_scanned_card_then_the_same_card_again(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity_id, _ = open_activity(client, world, items["GOV-ASSEMBLY"])
    csrf = console_login(client, "cadre_a")
    card = scanned_card(app, world.spouse_x)
    url = f"/console/activities/{activity_id}/proxy-checkins"

    first = client.post(url, data=scan(csrf, "a", card))
    assert first.status_code == 303
    shown = client.get(first.headers["Location"])
    assert '已为 <strong class="who">配偶x</strong>' in shown.text
    assert 'id="member-card"' in shown.text and 'value=""' in shown.text
    with app.app_context():
        row = db.session.scalars(select(CheckIn)).one()
        assert (row.villager_id, row.proxy_by) == (world.spouse_x, world.cadre_a)

    again = client.post(url, data=scan(csrf, "b", card))
    assert again.status_code == 409
    assert 'data-code="already_checked_in"' in again.text
    assert "这位村民已经签过到了" in again.text
    # The list the page polls names them, with the proxy signal.
    fragment = client.get(f"/console/activities/{activity_id}/checkins")
    assert fragment.status_code == 200
    assert "配偶x" in fragment.text and "代签" in fragment.text
    assert "<html" not in fragment.text

    other_village = scanned_card(app, world.head_y)
    refused = client.post(
        url, data={"csrf_token": csrf, "idempotency_key": "c", "member_token": other_village}
    )
    assert refused.status_code == 403
    assert 'data-code="wrong_village"' in refused.text
    garbage = client.post(
        url, data={"csrf_token": csrf, "idempotency_key": "d", "member_token": "不是二维码"}
    )
    assert garbage.status_code == 422
    with app.app_context():
        assert len(db.session.scalars(select(CheckIn)).all()) == 1


def test_check_out_of_an_hourly_item(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity_id, _ = open_activity(client, world, items["PUB-VOLUNTEER"])
    csrf = console_login(client, "cadre_a")
    client.post(
        f"/console/activities/{activity_id}/proxy-checkins",
        data={"csrf_token": csrf, "member_token": scanned_card(app, world.head_x)},
    )
    with app.app_context():
        checkin_id = db.session.scalars(select(CheckIn.id)).one()
    page = client.get(f"/console/activities/{activity_id}")
    assert f"/console/checkins/{checkin_id}/checkout" in page.text
    done = client.post(f"/console/checkins/{checkin_id}/checkout", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"/console/activities/{activity_id}")
    with app.app_context():
        row = db.session.get(CheckIn, checkin_id)
        assert row is not None and row.checked_out_at is not None
        assert row.checked_out_by == world.cadre_a
    again = client.post(f"/console/checkins/{checkin_id}/checkout", data={"csrf_token": csrf})
    assert again.status_code == 409
    assert 'data-code="already_checked_out"' in again.text


def test_another_villages_activity_is_a_404_page(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity_id, _ = open_activity(client, world, items["GOV-ASSEMBLY"])  # village A's
    csrf = console_login(client, "cadre_b")
    for path in ("", "/checkins", "/poster.pdf"):
        page = client.get(f"/console/activities/{activity_id}{path}")
        assert page.status_code == 404, path
        assert 'data-status="404"' in page.text
    for path, data in (
        ("/proxy-checkins", {"member_token": scanned_card(app, world.head_x)}),
        ("/cancel", {"reason": "下雨"}),
        ("/display-link", {}),
    ):
        refused = client.post(
            f"/console/activities/{activity_id}{path}", data={"csrf_token": csrf, **data}
        )
        assert refused.status_code == 404, path
    assert client.get("/console/activities").text.count("data-activity-id") == 0
    with app.app_context():
        activity = db.session.get(Activity, activity_id)
        assert activity is not None and activity.status == "scheduled"
        assert db.session.scalars(select(CheckIn)).all() == []


def test_cancelling_needs_a_reason(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity_id, _ = open_activity(client, world, items["GOV-ASSEMBLY"])
    csrf = console_login(client, "cadre_a")
    url = f"/console/activities/{activity_id}/cancel"
    refused = client.post(url, data={"csrf_token": csrf, "reason": "  "})
    assert refused.status_code == 422
    assert "请填写取消活动的原因" in refused.text
    with app.app_context():
        activity = db.session.get(Activity, activity_id)
        assert activity is not None and activity.status == "scheduled"
    done = client.post(url, data={"csrf_token": csrf, "reason": "下大雨，改期"})
    assert done.status_code == 303
    with app.app_context():
        activity = db.session.get(Activity, activity_id)
        assert activity is not None
        assert (activity.status, activity.cancel_reason) == ("cancelled", "下大雨，改期")
    page = client.get(f"/console/activities/{activity_id}")
    assert "已取消" in page.text and "下大雨，改期" in page.text
    assert 'id="proxy"' not in page.text


def test_a_post_without_the_csrf_token_changes_nothing(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity_id, _ = open_activity(client, world, items["PUB-VOLUNTEER"])
    console_login(client, "cadre_a")
    card = scanned_card(app, world.head_x)
    for path, data in (
        ("/console/activities", form(world, items["GOV-ASSEMBLY"], "")),
        (f"/console/activities/{activity_id}/proxy-checkins", {"member_token": card}),
        (f"/console/activities/{activity_id}/cancel", {"reason": "下雨"}),
        (f"/console/activities/{activity_id}/display-link", {}),
    ):
        data.pop("csrf_token", None)
        refused = client.post(path, data=data)
        assert refused.status_code == 403, path
        assert 'data-code="csrf_failed"' in refused.text
        wrong = client.post(path, data={**data, "csrf_token": "forged"})
        assert wrong.status_code == 403, path
    with app.app_context():
        assert db.session.scalars(select(Activity.id)).all() == [activity_id]
        activity = db.session.get(Activity, activity_id)
        assert activity is not None and activity.status == "scheduled"
        assert db.session.scalars(select(CheckIn)).all() == []
