"""Staff accounts (GET/POST /users, PATCH /users/{id}) and the audit log (GET /audit)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from tests.factories import PASSWORD, World
from tests.support.reads import error_code

API = "/api/v1"
NEW_PASSWORD = "a-long-enough-password"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def create_user(client: FlaskClient, world: World, who: str, **body: Any) -> Any:
    body.setdefault("password", NEW_PASSWORD)
    return client.post(f"{API}/users", json=body, headers=world.headers(who))


def login(client: FlaskClient, username: str, password: str = NEW_PASSWORD) -> Any:
    return client.post(f"{API}/auth/login", json={"username": username, "password": password})


def audit(client: FlaskClient, world: World, who: str, **query: Any) -> list[dict[str, Any]]:
    response = client.get(
        f"{API}/audit", query_string={"per_page": 100, **query}, headers=world.headers(who)
    )
    assert response.status_code == 200, response.get_json()
    page = response.get_json()
    assert page["total"] == len(page["items"])  # everything fits on one page here
    return page["items"]


def keys(entries: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    return {(e["action"], e["object_type"], e["object_id"]) for e in entries}


# ---- creating staff ----------------------------------------------------------------------------


def test_county_creates_a_township_admin(client: FlaskClient, world: World) -> None:
    response = create_user(
        client,
        world,
        "county",
        username="tadmin_new",
        role="township_admin",
        township_id=world.township_2,
        name="钱镇长",
    )
    assert response.status_code == 201, response.get_json()
    user = response.get_json()
    assert user["role"] == "township_admin" and user["township_id"] == world.township_2
    assert user["name"] == "钱镇长" and user["disabled"] is False
    assert "password" not in user and "password_hash" not in user
    assert NEW_PASSWORD not in response.get_data(as_text=True)

    tokens = login(client, "tadmin_new")
    assert tokens.status_code == 200
    headers = {"Authorization": f"Bearer {tokens.get_json()['access_token']}"}
    # their scope is township 2
    assert client.get(f"{API}/villages/{world.village_c}", headers=headers).status_code == 200
    assert client.get(f"{API}/villages/{world.village_a}", headers=headers).status_code == 404


def test_township_admin_creates_cadre_and_clerk(client: FlaskClient, world: World) -> None:
    cadre = create_user(
        client, world, "tadmin1", username="cadre_new", role="cadre", village_id=world.village_a
    )
    assert cadre.status_code == 201, cadre.get_json()
    assert cadre.get_json()["township_id"] == world.township_1  # from the village
    assert cadre.get_json()["village_id"] == world.village_a

    clerk = create_user(
        client, world, "tadmin1", username="clerk_new", role="clerk", shop_id=world.shop_a
    )
    assert clerk.status_code == 201, clerk.get_json()
    assert clerk.get_json()["township_id"] == world.township_1  # from the shop
    assert clerk.get_json()["shop_id"] == world.shop_a

    listed = client.get(f"{API}/users?per_page=100", headers=world.headers("tadmin1"))
    names = {u["username"] for u in listed.get_json()["items"]}
    assert {"cadre_new", "clerk_new", "cadre_a", "clerk_a", "tadmin1"} <= names
    assert not names & {"county", "tadmin2"}  # other townships' accounts are not listed
    cadres = client.get(f"{API}/users?role=cadre", headers=world.headers("tadmin1"))
    assert {u["username"] for u in cadres.get_json()["items"]} == {
        "cadre_a",
        "cadre_b",
        "cadre_new",
    }


def test_created_cadre_logs_in_and_works_in_their_village(
    client: FlaskClient, world: World
) -> None:
    assert (
        create_user(
            client, world, "tadmin1", username="cadre_new", role="cadre", village_id=world.village_b
        ).status_code
        == 201
    )
    assert login(client, "cadre_new", "wrong-password-123").status_code == 401
    tokens = login(client, "cadre_new")
    assert tokens.status_code == 200, tokens.get_json()
    body = tokens.get_json()
    assert body["user"]["username"] == "cadre_new" and body["user"]["role"] == "cadre"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = client.get(f"{API}/me", headers=headers).get_json()
    assert me["scope"]["village_id"] == world.village_b
    assert client.get(f"{API}/households/{world.household_y}", headers=headers).status_code == 200
    assert client.get(f"{API}/households/{world.household_x}", headers=headers).status_code == 404


def test_township_admin_stays_in_their_township(client: FlaskClient, world: World) -> None:
    other = create_user(
        client, world, "tadmin1", username="cadre_c", role="cadre", village_id=world.village_c
    )
    assert other.status_code == 403
    assert error_code(other) == "forbidden"
    admin_t2 = create_user(
        client,
        world,
        "tadmin1",
        username="tadmin_t2",
        role="township_admin",
        township_id=world.township_2,
    )
    assert admin_t2.status_code == 403
    county = create_user(client, world, "tadmin1", username="county2", role="county_admin")
    assert county.status_code == 403
    assert error_code(county) == "forbidden"
    for username in ("cadre_c", "tadmin_t2", "county2"):
        assert login(client, username).status_code == 401
    usernames = {
        u["username"]
        for u in client.get(
            f"{API}/users?per_page=100", headers=world.headers("county")
        ).get_json()["items"]
    }
    assert not usernames & {"cadre_c", "tadmin_t2", "county2"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"username": "cadre_a", "role": "cadre", "village_id": "{village_a}"},
            409,
            "duplicate_username",
        ),
        (
            {
                "username": "cadre_new",
                "role": "cadre",
                "village_id": "{village_a}",
                "password": "short",
            },
            422,
            "weak_password",
        ),
        (
            {"username": "cadre_new", "role": "villager", "village_id": "{village_a}"},
            422,
            "validation_error",
        ),
        ({"username": "cadre_new", "role": "cadre"}, 422, "scope_required"),
        ({"username": "cadre_new", "role": "cadre", "village_id": 999999}, 422, "scope_required"),
        ({"username": "clerk_new", "role": "clerk"}, 422, "scope_required"),
        ({"username": "tadmin_new", "role": "township_admin"}, 422, "scope_required"),
        (
            {"username": "no spaces allowed", "role": "cadre", "village_id": "{village_a}"},
            422,
            "validation_error",
        ),
    ],
)
def test_refused_accounts(
    client: FlaskClient, world: World, body: dict[str, Any], status: int, code: str
) -> None:
    body = {
        k: world.ids[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v
        for k, v in body.items()
    }
    before = client.get(f"{API}/users", headers=world.headers("county")).get_json()["total"]
    response = create_user(client, world, "county", **body)
    assert response.status_code == status, response.get_json()
    assert error_code(response) == code
    if code == "validation_error" and body["role"] == "villager":
        assert "role" in response.get_json()["error"]["details"]["fields"]
    after = client.get(f"{API}/users", headers=world.headers("county")).get_json()["total"]
    assert after == before


@pytest.mark.parametrize("who", ["cadre_a", "clerk_a", "villager_x"])
def test_roles_without_account_rights_learn_nothing(
    client: FlaskClient, world: World, who: str
) -> None:
    existing = create_user(
        client, world, who, username="probe1", role="cadre", village_id=world.village_c
    )
    missing = create_user(client, world, who, username="probe2", role="cadre", village_id=999999)
    weak = create_user(
        client,
        world,
        who,
        username="probe3",
        role="cadre",
        village_id=world.village_a,
        password="short",
    )
    assert [r.status_code for r in (existing, missing, weak)] == [403, 403, 403]
    assert {error_code(r) for r in (existing, missing, weak)} == {"forbidden"}


# ---- disabling ---------------------------------------------------------------------------------


def test_disabled_account_cannot_log_in_and_old_tokens_stop(
    client: FlaskClient, world: World
) -> None:
    created = create_user(
        client, world, "tadmin1", username="cadre_new", role="cadre", village_id=world.village_a
    )
    user_id = created.get_json()["id"]
    tokens = login(client, "cadre_new").get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get(f"{API}/me", headers=headers).status_code == 200

    disabled = client.patch(
        f"{API}/users/{user_id}", json={"disabled": True}, headers=world.headers("tadmin1")
    )
    assert disabled.status_code == 200
    assert disabled.get_json()["disabled"] is True

    old = client.get(f"{API}/households/{world.household_x}", headers=headers)
    assert old.status_code == 401
    refreshed = client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    again = login(client, "cadre_new")
    assert again.status_code == 401
    assert "access_token" not in again.get_json()

    # re-enabled, the account works again with a fresh login (old tokens stay dead)
    assert (
        client.patch(
            f"{API}/users/{user_id}", json={"disabled": False}, headers=world.headers("tadmin1")
        ).status_code
        == 200
    )
    assert client.get(f"{API}/me", headers=headers).status_code == 401
    assert login(client, "cadre_new").status_code == 200


def test_password_reset_ends_old_sessions(client: FlaskClient, world: World) -> None:
    tokens = login(client, "cadre_a", PASSWORD).get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    reset = client.patch(
        f"{API}/users/{world.cadre_a}",
        json={"password": NEW_PASSWORD},
        headers=world.headers("tadmin1"),
    )
    assert reset.status_code == 200
    assert client.get(f"{API}/me", headers=headers).status_code == 401
    assert login(client, "cadre_a", PASSWORD).status_code == 401
    assert login(client, "cadre_a", NEW_PASSWORD).status_code == 200
    weak = client.patch(
        f"{API}/users/{world.cadre_a}", json={"password": "short"}, headers=world.headers("tadmin1")
    )
    assert weak.status_code == 422 and error_code(weak) == "weak_password"
    assert login(client, "cadre_a", NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize("admin", ["county", "tadmin1"])
def test_admin_cannot_disable_themselves(client: FlaskClient, world: World, admin: str) -> None:
    headers = world.headers(admin)
    response = client.patch(
        f"{API}/users/{world.ids[admin]}", json={"disabled": True}, headers=headers
    )
    assert response.status_code == 409
    assert error_code(response) == "cannot_disable_self"
    assert client.get(f"{API}/users", headers=headers).status_code == 200
    assert login(client, admin, PASSWORD).status_code == 200


# ---- the audit log -----------------------------------------------------------------------------


def test_every_write_is_audited_and_scoped(client: FlaskClient, world: World) -> None:
    county, admin1, admin2 = (world.headers(n) for n in ("county", "tadmin1", "tadmin2"))
    cadre = world.headers("cadre_a")

    township = client.post(f"{API}/townships", json={"name": "红旗镇"}, headers=county)
    tadmin_new = create_user(
        client,
        world,
        "county",
        username="tadmin_new",
        role="township_admin",
        township_id=world.township_1,
    )
    cadre_new = create_user(
        client, world, "tadmin1", username="cadre_new", role="cadre", village_id=world.village_a
    )
    clerk_new = create_user(
        client, world, "tadmin1", username="clerk_new", role="clerk", shop_id=world.shop_a
    )
    disabled = client.patch(
        f"{API}/users/{cadre_new.get_json()['id']}", json={"disabled": True}, headers=admin1
    )
    village = client.post(
        f"{API}/villages", json={"name": "新建村", "township_id": world.township_1}, headers=admin1
    )
    group = client.post(
        f"{API}/villages/{world.village_a}/groups", json={"name": "二组"}, headers=cadre
    )
    household = client.post(
        f"{API}/villages/{world.village_a}/households", json={"address": "清水村2号"}, headers=cadre
    )
    member = client.post(
        f"{API}/households/{household.get_json()['id']}/members",
        json={"name": "新户主", "relation": "户主"},
        headers=cadre,
    )
    patched = client.patch(
        f"{API}/households/{world.household_x}", json={"address": "清水村新址9号"}, headers=cadre
    )
    villager = client.patch(
        f"{API}/villagers/{world.spouse_x}", json={"name": "配偶x改"}, headers=cadre
    )
    binding = client.post(f"{API}/villagers/{world.head_x}/binding-token", headers=cadre)
    roster = client.post(
        f"{API}/villages/{world.village_a}/roster",
        headers=cadre,
        content_type="text/csv",
        data="户编号,姓名,与户主关系\n1,钱多多,户主\n".encode(),
    )
    shop = client.post(
        f"{API}/shops",
        json={
            "name": "二号超市",
            "township_id": world.township_1,
            "village_ids": [world.village_b],
        },
        headers=admin1,
    )
    # a write in township 2, by its own admin
    t2_household = client.post(
        f"{API}/villages/{world.village_c}/households",
        json={"address": "白沙村2号"},
        headers=admin2,
    )
    t2_user = create_user(
        client, world, "tadmin2", username="cadre_c", role="cadre", village_id=world.village_c
    )
    for response in (
        township,
        tadmin_new,
        cadre_new,
        clerk_new,
        village,
        group,
        household,
        member,
        binding,
        shop,
        t2_household,
        t2_user,
    ):
        assert response.status_code == 201, response.get_json()
    for response in (disabled, patched, villager):
        assert response.status_code == 200, response.get_json()
    assert roster.status_code == 201, roster.get_json()

    def oid(response: Any) -> str:
        return str(response.get_json()["id"])

    township_1_writes = {
        ("user.create", "users", oid(tadmin_new)),
        ("user.create", "users", oid(cadre_new)),
        ("user.create", "users", oid(clerk_new)),
        ("user.update", "users", oid(cadre_new)),
        ("village.create", "villages", oid(village)),
        ("group.create", "villager_groups", oid(group)),
        ("household.create", "households", oid(household)),
        ("member.create", "villagers", oid(member)),
        ("household.update", "households", str(world.household_x)),
        ("villager.update", "villagers", str(world.spouse_x)),
        ("roster.import", "villages", str(world.village_a)),
        ("shop.create", "shops", oid(shop)),
    }
    township_2_writes = {
        ("household.create", "households", oid(t2_household)),
        ("user.create", "users", oid(t2_user)),
    }
    everything = audit(client, world, "county")
    assert township_1_writes | township_2_writes <= keys(everything)
    assert ("township.create", "townships", oid(township)) in keys(everything)
    assert "binding_token.create" in {e["action"] for e in everything}
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)  # newest first

    township_1 = audit(client, world, "tadmin1")
    assert township_1_writes <= keys(township_1)
    assert not keys(township_1) & township_2_writes
    assert {e["township_id"] for e in township_1} == {world.township_1}
    assert "binding_token.create" in {e["action"] for e in township_1}
    township_2 = audit(client, world, "tadmin2")
    assert keys(township_2) == township_2_writes

    # village_id narrows to one village
    village_a = audit(client, world, "tadmin1", village_id=world.village_a)
    assert {e["village_id"] for e in village_a} == {world.village_a}
    assert ("household.update", "households", str(world.household_x)) in keys(village_a)
    assert ("shop.create", "shops", oid(shop)) not in keys(village_a)
    # ... and never past the township: village C through tadmin1 is empty
    assert audit(client, world, "tadmin1", village_id=world.village_c) == []

    # actor narrows to one person
    by_cadre = audit(client, world, "tadmin1", actor=world.cadre_a)
    assert by_cadre and {e["actor_id"] for e in by_cadre} == {world.cadre_a}
    assert keys(by_cadre) >= {
        ("household.update", "households", str(world.household_x)),
        ("roster.import", "villages", str(world.village_a)),
    }
    assert {e["actor_id"] for e in audit(client, world, "county", actor=world.tadmin2)} == {
        world.tadmin2
    }


def test_audit_since_filter(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    assert (
        client.patch(
            f"{API}/households/{world.household_x}", json={"address": "早上"}, headers=cadre
        ).status_code
        == 200
    )
    time.sleep(0.05)
    cut = datetime.now(UTC)
    time.sleep(0.05)
    assert (
        client.patch(
            f"{API}/households/{world.household_x}", json={"address": "晚上"}, headers=cadre
        ).status_code
        == 200
    )

    assert len(audit(client, world, "tadmin1")) == 2
    for since in (cut.astimezone(SHANGHAI).isoformat(), cut.isoformat()):
        later = audit(client, world, "tadmin1", since=since)
        assert [e["after"]["address"] for e in later] == ["晚上"], since
    future = (datetime.now(UTC) + timedelta(minutes=5)).astimezone(SHANGHAI).isoformat()
    assert audit(client, world, "tadmin1", since=future) == []
    # a time without its offset is refused rather than guessed at
    naive = client.get(
        f"{API}/audit",
        query_string={"since": "2026-01-01T00:00:00"},
        headers=world.headers("tadmin1"),
    )
    assert naive.status_code == 422


def test_audit_entry_contents(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    response = client.patch(
        f"{API}/households/{world.household_x}", json={"address": "清水村新址9号"}, headers=cadre
    )
    assert response.status_code == 200
    [entry] = audit(client, world, "tadmin1", actor=world.cadre_a)
    assert entry["actor_id"] == world.cadre_a
    assert entry["action"] == "household.update"
    assert entry["object_type"] == "households"
    assert entry["object_id"] == str(world.household_x)
    assert entry["village_id"] == world.village_a
    assert entry["township_id"] == world.township_1
    assert entry["before"]["address"] == "清水村1号"
    assert entry["after"]["address"] == "清水村新址9号"
    assert entry["before"]["name"] == entry["after"]["name"] == "x户"
    assert entry["at"].endswith("+08:00")
    assert abs(datetime.now(UTC) - datetime.fromisoformat(entry["at"])) < timedelta(minutes=5)


def test_password_hash_never_reaches_the_audit(client: FlaskClient, world: World) -> None:
    created = create_user(
        client, world, "tadmin1", username="cadre_new", role="cadre", village_id=world.village_a
    )
    user_id = created.get_json()["id"]
    admin = world.headers("tadmin1")
    assert (
        client.patch(
            f"{API}/users/{user_id}", json={"password": "another-long-one"}, headers=admin
        ).status_code
        == 200
    )
    assert (
        client.patch(f"{API}/users/{user_id}", json={"disabled": True}, headers=admin).status_code
        == 200
    )
    entries = audit(client, world, "county")
    user_entries = [e for e in entries if e["object_type"] == "users"]
    assert len(user_entries) == 3
    text = json.dumps(entries, ensure_ascii=False)
    assert "scrypt$" not in text
    # the only "password" is the flag that says whether it must be changed
    assert "password" not in text.replace('"must_change_password"', "")
    assert NEW_PASSWORD not in text and "another-long-one" not in text
    update = next(e for e in user_entries if e["after"]["disabled"] is True)
    assert update["before"]["disabled"] is False


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_audit_cannot_be_edited(client: FlaskClient, world: World, method: str) -> None:
    cadre = world.headers("cadre_a")
    assert (
        client.patch(
            f"{API}/households/{world.household_x}", json={"address": "清水村9号"}, headers=cadre
        ).status_code
        == 200
    )
    [entry] = audit(client, world, "county")
    county = world.headers("county")
    response = client.open(f"{API}/audit", method=method, json={"action": "forged"}, headers=county)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert "GET" in response.headers["Allow"]
    one = client.open(
        f"{API}/audit/{entry['id']}", method=method, json={"action": "forged"}, headers=county
    )
    assert one.status_code in (404, 405)
    assert audit(client, world, "county") == [entry]
