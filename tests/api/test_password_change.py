"""A password someone else chose must be changed: `must_change_password` is set when an admin
creates a staff account or resets its password, shown in the login answer and /me, and
cleared by POST /auth/password (the holder's own change), which ends the user's other
sessions and keeps the one it was sent in. Renaming a township (PATCH /townships/{id})."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.factories import PASSWORD, World
from tests.support.reads import error_code

API = "/api/v1"
CHOSEN = "chosen-by-the-admin"
OWN = "my-very-own-password"


def login(client: FlaskClient, username: str, password: str) -> Any:
    return client.post(f"{API}/auth/login", json={"username": username, "password": password})


def bearer(answer: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def change(client: FlaskClient, headers: dict[str, str], current: str, new: str) -> Any:
    return client.post(
        f"{API}/auth/password",
        json={"current_password": current, "new_password": new},
        headers=headers,
    )


def new_cadre(client: FlaskClient, world: World) -> int:
    created = client.post(
        f"{API}/users",
        json={
            "username": "cadre_new",
            "password": CHOSEN,
            "role": "cadre",
            "village_id": world.village_a,
        },
        headers=world.headers("tadmin1"),
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["must_change_password"] is True
    user_id: int = created.get_json()["id"]
    return user_id


def test_an_account_an_admin_created_must_change_its_password_and_then_need_not(
    client: FlaskClient, world: World
) -> None:
    new_cadre(client, world)
    first = login(client, "cadre_new", CHOSEN)
    assert first.status_code == 200
    assert first.get_json()["must_change_password"] is True
    assert first.get_json()["user"]["must_change_password"] is True
    me = client.get(f"{API}/me", headers=bearer(first))
    assert me.get_json()["user"]["must_change_password"] is True
    # the API's staff operations do not wait for it (the flag is the client's to act on)
    assert client.get(f"{API}/villages", headers=bearer(first)).status_code == 200

    changed = change(client, bearer(first), CHOSEN, OWN)

    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["user"]["must_change_password"] is False
    # this session goes on; the old password no longer opens one, the new one does
    assert client.get(f"{API}/me", headers=bearer(first)).status_code == 200
    assert login(client, "cadre_new", CHOSEN).status_code == 401
    again = login(client, "cadre_new", OWN)
    assert again.status_code == 200
    assert again.get_json()["must_change_password"] is False


def test_a_change_ends_the_users_other_sessions_but_not_this_one(
    client: FlaskClient, world: World
) -> None:
    here = bearer(login(client, "cadre_a", PASSWORD))
    elsewhere = login(client, "cadre_a", PASSWORD)

    assert change(client, here, PASSWORD, OWN).status_code == 200

    assert client.get(f"{API}/me", headers=here).status_code == 200
    gone = client.get(f"{API}/me", headers=bearer(elsewhere))
    assert gone.status_code == 401 and error_code(gone) == "token_revoked"
    refreshed = client.post(
        f"{API}/auth/refresh", json={"refresh_token": elsewhere.get_json()["refresh_token"]}
    )
    assert refreshed.status_code == 401


def test_an_admins_reset_sets_the_flag_again_and_ends_every_session(
    client: FlaskClient, world: World
) -> None:
    user_id = new_cadre(client, world)
    first = login(client, "cadre_new", CHOSEN)
    assert change(client, bearer(first), CHOSEN, OWN).status_code == 200

    reset = client.patch(
        f"{API}/users/{user_id}", json={"password": CHOSEN}, headers=world.headers("tadmin1")
    )

    assert reset.status_code == 200
    assert reset.get_json()["must_change_password"] is True
    assert client.get(f"{API}/me", headers=bearer(first)).status_code == 401
    assert login(client, "cadre_new", CHOSEN).get_json()["must_change_password"] is True


def test_an_admin_cannot_reset_their_own_password_without_the_current_one(
    client: FlaskClient, world: World
) -> None:
    """A stolen session must not be enough to make the account the thief's: one's own
    password is changed through POST /auth/password, with the current one."""
    reset = client.patch(
        f"{API}/users/{world.tadmin1}", json={"password": OWN}, headers=world.headers("tadmin1")
    )
    assert reset.status_code == 403
    assert error_code(reset) == "own_password_reset"
    assert login(client, "tadmin1", PASSWORD).status_code == 200


def test_refusals_change_nothing(client: FlaskClient, world: World) -> None:
    headers = bearer(login(client, "cadre_a", PASSWORD))

    wrong = change(client, headers, "not-the-password", OWN)
    weak = change(client, headers, PASSWORD, "short")
    same = change(client, headers, PASSWORD, PASSWORD)
    missing = client.post(f"{API}/auth/password", json={"new_password": OWN}, headers=headers)

    assert (wrong.status_code, error_code(wrong)) == (401, "invalid_credentials")
    assert (weak.status_code, error_code(weak)) == (422, "weak_password")
    assert (same.status_code, error_code(same)) == (422, "same_password")
    assert missing.status_code == 422
    assert client.get(f"{API}/me", headers=headers).status_code == 200  # still logged in
    assert login(client, "cadre_a", PASSWORD).status_code == 200


def test_a_villager_has_no_password_to_change(client: FlaskClient, world: World) -> None:
    response = change(client, world.headers("villager_x"), "x", OWN)
    assert response.status_code == 403


def test_guessing_the_current_password_is_rate_limited(client: FlaskClient, world: World) -> None:
    headers = world.headers("cadre_a")
    answers = [change(client, headers, f"guess-{n}-wrong", OWN).status_code for n in range(12)]
    assert answers[:10] == [401] * 10
    assert answers[-1] == 429


def test_the_change_is_audited_without_the_hash(client: FlaskClient, world: World) -> None:
    headers = bearer(login(client, "cadre_a", PASSWORD))
    assert change(client, headers, PASSWORD, OWN).status_code == 200
    entries = client.get(
        f"{API}/audit", query_string={"actor": world.cadre_a}, headers=world.headers("tadmin1")
    ).get_json()["items"]
    [entry] = [e for e in entries if e["action"] == "user.password_change"]
    assert "password_hash" not in entry["after"]


# ---- renaming a township ------------------------------------------------------------------------


def test_the_county_renames_a_township_and_it_is_audited(client: FlaskClient, world: World) -> None:
    county = world.headers("county")
    response = client.patch(
        f"{API}/townships/{world.township_1}", json={"name": "青石新镇"}, headers=county
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "青石新镇"
    entries = client.get(f"{API}/audit", headers=county).get_json()["items"]
    [entry] = [e for e in entries if e["action"] == "township.update"]
    assert (entry["before"]["name"], entry["after"]["name"]) == ("青石镇", "青石新镇")


def test_a_township_name_is_unique_and_only_the_county_renames(
    client: FlaskClient, world: World
) -> None:
    path = f"{API}/townships/{world.township_1}"
    taken = client.patch(path, json={"name": "白沙镇"}, headers=world.headers("county"))
    own = client.patch(path, json={"name": "改名镇"}, headers=world.headers("tadmin1"))
    other = client.patch(path, json={"name": "改名镇"}, headers=world.headers("tadmin2"))
    assert (taken.status_code, error_code(taken)) == (409, "duplicate_name")
    assert own.status_code == 403
    assert other.status_code == 404
    assert client.get(path, headers=world.headers("county")).get_json()["name"] == "青石镇"
