"""The OpenAPI document as a contract a generated client can trust (docs/API_CONTRACT.md):

- every operation has a unique operationId;
- every response schema names its required fields, and what the server answers keeps them:
  a walk over every GET (and the writes of a villager's day) as each role checks each answer
  against the document: required fields present, null only where nullable, enums kept, the
  status declared, and an error's code among the codes declared for that status;
- the closed sets of the domain are enums, from the domain's own tuples;
- every error code the code base raises is declared on some operation, with an example;
  401/403/500/503 on every operation they can reach, Retry-After on 429 only;
- one time format (the village's offset, to the second) and money as 2-decimal text;
- an unreachable database answers 503 `database_unavailable`.

The walk is generic: an operation added later is walked too (its path ids filled from the
objects the test makes), so a response schema that does not hold fails here."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from sqlalchemy import select

from backend import create_app
from points.activities.activities import STATES
from points.activities.checkin import CHECKIN_OUTCOMES
from points.activities.fraud import CHECKIN_FLAGS
from points.boards.corrections import CORRECTION_KINDS
from points.boards.standings import RANK_BY
from points.claims import IN_NOTICE
from points.models import (
    CLAIM_SOURCES,
    CLAIM_STATUSES,
    ENTRY_KINDS,
    OBJECTION_STATUSES,
    REDEMPTION_SOURCES,
    REDEMPTION_STATUSES,
    ROLES,
    STOCK_MOVEMENT_KINDS,
    Activity,
    CheckIn,
    Claim,
    LedgerEntry,
    Redemption,
    Reward,
    RuleCatalog,
    RuleItem,
    RuleItemVersion,
    Upload,
)
from points.models.activities import GEOFENCE_MODES, QR_MODES
from rules import KINDS, PERIODS
from tests.factories import (
    SECRET,
    World,
    add_reward,
    default_items,
    fund,
    open_activity,
    order,
    self_report,
    upload_photo,
)
from tests.support.reads import error_code

ROOT = Path(__file__).resolve().parents[2]
OFFSET_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


@pytest.fixture()
def document(app: Flask) -> dict[str, Any]:
    body: dict[str, Any] = app.test_client().get("/api/v1/openapi.json").get_json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, operation


def error_codes(response: Any) -> set[str]:
    if not isinstance(response, dict):
        return set()
    examples = response.get("content", {}).get("application/json", {}).get("examples", {})
    return {example["value"]["error"]["code"] for example in examples.values()}


# ---- operationId ----------------------------------------------------------------------------


def test_every_operation_has_a_unique_operation_id(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in operations(document)]
    assert None not in ids
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in ids), ids
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, duplicates


# ---- required fields ------------------------------------------------------------------------


def test_every_response_schema_names_its_required_fields(document: dict[str, Any]) -> None:
    from backend.openapi import _referenced

    schemas = document["components"]["schemas"]
    answered = _referenced(document["paths"], schemas, "responses")
    assert {"ClaimOut", "MeOut", "LedgerEntryOut", "Error"} <= answered
    missing = sorted(
        name
        for name in answered
        if schemas[name].get("properties") and not schemas[name].get("required")
    )
    assert not missing, missing
    for name in answered:
        assert set(schemas[name].get("required", [])) <= set(schemas[name].get("properties", {}))
    # the exception is declared, not silent: a rule item's unset fields are left out
    assert "unit" not in schemas["RuleItemOut"]["required"]
    assert {"code", "name", "points", "kind"} <= set(schemas["RuleItemOut"]["required"])
    # nothing vendor-only reaches the served document
    assert "x-answered" not in str(document) and "x-raises" not in str(document)


def test_request_schemas_keep_their_own_required_fields(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ClaimIn"]["required"] == ["rule_item_id"]
    assert "required" not in schemas["VillagePatch"]


# ---- enums ----------------------------------------------------------------------------------

ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("LedgerEntryOut", "kind"): ENTRY_KINDS,
    ("CheckinOut", "status"): (*CLAIM_STATUSES, *CHECKIN_OUTCOMES),
    ("CheckinOut", "flags[]"): CHECKIN_FLAGS,
    ("CheckinRowOut", "flags[]"): CHECKIN_FLAGS,
    ("CheckinRowOut", "claim_status"): CLAIM_STATUSES,
    ("NoticeOut", "status"): IN_NOTICE,
    ("ClaimOut", "status"): CLAIM_STATUSES,
    ("ClaimOut", "source"): CLAIM_SOURCES,
    ("ObjectionOut", "status"): OBJECTION_STATUSES,
    ("ActivityOut", "status"): STATES,
    ("ActivityOut", "qr_mode"): QR_MODES,
    ("QrTokenOut", "qr_mode"): QR_MODES,
    ("QrTokenOut", "status"): STATES,
    ("LocationOut", "mode"): GEOFENCE_MODES,
    ("ActivityRuleItemOut", "kind"): KINDS,
    ("CapOut", "period"): PERIODS,
    ("MeOut", "role"): ROLES,
    ("UserOut", "role"): ROLES,
    ("RankingOut", "by"): RANK_BY,
    ("CorrectionOut", "kind"): CORRECTION_KINDS,
    ("RedemptionOut", "status"): REDEMPTION_STATUSES,
    ("RedemptionOut", "source"): REDEMPTION_SOURCES,
    ("StockMovementOut", "kind"): STOCK_MOVEMENT_KINDS,
}


@pytest.mark.parametrize(("schema", "field"), list(ENUMS))
def test_closed_sets_are_enums(document: dict[str, Any], schema: str, field: str) -> None:
    prop = document["components"]["schemas"][schema]["properties"][field.removesuffix("[]")]
    if field.endswith("[]"):
        prop = prop["items"]
    assert [v for v in prop["enum"] if v is not None] == list(ENUMS[(schema, field)])


# ---- error codes ----------------------------------------------------------------------------


# Raised by the domain for the staff console only: a console login that sat idle too long
# (points.sessions.ConsoleSessionExpired); the API's tokens expire by their own clock.
CONSOLE_ONLY = {"session_expired"}


def raised_codes() -> set[str]:
    """Every stable code the code base can answer with, read from its source: a domain error
    class's `code = "…"`, a `code="…"` given where one is raised, an `APIError(status,
    "…")` or `error_response(status, "…")`, and the HTTP layer's own (backend/errors.py)."""
    from backend.errors import DATABASE_UNAVAILABLE, HTTP_ERRORS, MALFORMED_JSON

    found = {code for code, _ in HTTP_ERRORS.values()} | {
        MALFORMED_JSON[0],
        DATABASE_UNAVAILABLE[0],
    }
    patterns = (
        re.compile(r'^\s+code = "([a-z_]+)"', re.M),
        re.compile(r'\bcode="([a-z_]+)"'),
        re.compile(r'(?:APIError|error_response)\(\s*\d{3},\s*"([a-z_]+)"'),
    )
    for package in ("points", "backend"):
        for source in (ROOT / package).rglob("*.py"):
            if source.is_relative_to(ROOT / "backend" / "console"):
                continue  # the console's refusals are HTML pages, not answers of the API
            text = source.read_text(encoding="utf-8")
            for pattern in patterns:
                found |= set(pattern.findall(text))
    # Not answers of an operation: the 405 of routing (a method the document does not
    # offer), the base DomainError's default (every raise names its own), and the codes of
    # the command line (`flask demo`, `flask rankings close`, the stored time zone's check).
    return found - {"method_not_allowed", "rule_violation"} - COMMAND_LINE_ONLY - CONSOLE_ONLY


COMMAND_LINE_ONLY = {
    "database_not_empty",
    "village_not_found",
    "unknown_time_zone",
    "time_zone_in_use",
    "county_file_invalid",
}


def test_every_raised_error_code_is_documented(document: dict[str, Any]) -> None:
    documented: set[str] = set()
    for _, _, operation in operations(document):
        for response in operation["responses"].values():
            documented |= error_codes(response)
    codes = raised_codes()
    assert {
        "token_expired",
        "token_revoked",
        "token_reused",
        "wrong_village",
        "not_in_notice",
        "own_claim",
        "roster_no_match",
        "internal_error",
        "database_unavailable",
        "not_bound",
    } <= codes
    assert not sorted(codes - documented), sorted(codes - documented)


def test_common_errors_on_every_operation(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        label = f"{method} {path}"
        assert "internal_error" in error_codes(responses["500"]), label
        assert "database_unavailable" in error_codes(responses["503"]), label
        if operation.get("security") != []:
            assert {
                "unauthenticated",
                "token_expired",
                "token_revoked",
                "token_invalid",
                "account_disabled",
            } <= error_codes(responses["401"]), label
            assert "forbidden" in error_codes(responses["403"]), label
        for status, response in responses.items():
            if not isinstance(response, dict) or not status.startswith(("4", "5")):
                continue
            headers = response.get("headers", {})
            assert ("Retry-After" in headers) == (status == "429"), (label, status)
            content = response.get("content", {}).get("application/json")
            if content is None:
                continue  # a page answers this status (text/html)
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (label, status)
            for code, example in content["examples"].items():
                assert example["value"]["error"]["code"] == code
                assert example["value"]["error"]["message"], (label, code)
    refresh = document["paths"]["/api/v1/auth/refresh"]["post"]["responses"]
    assert "token_reused" in error_codes(refresh["401"])
    objection = document["paths"]["/api/v1/claims/{claim_id}/objections"]["post"]["responses"]
    assert {"own_claim", "wrong_village"} <= error_codes(objection["403"])
    assert "not_in_notice" in error_codes(objection["409"])


# ---- the walk: what the server answers is what the document says ---------------------------


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable` becomes a null branch."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = _json_schema(copy.deepcopy(document["components"]))
        self.validators: dict[int, Any] = {}

    def check(self, method: str, path: str, response: Any) -> list[str]:
        label = f"{method.upper()} {path} -> {response.status_code}"
        operation = self.document["paths"][path][method]
        declared = operation["responses"].get(str(response.status_code))
        if declared is None:
            return [f"{label}: status not declared"]
        if isinstance(declared, str) or not response.is_json:
            return []
        body = response.get_json()
        if response.status_code >= 400:
            codes = error_codes(declared)
            code = body["error"]["code"]
            if codes and code not in codes:
                return [f"{label}: error code `{code}` not declared ({sorted(codes)})"]
        schema = declared.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        key = id(schema)
        if key not in self.validators:
            self.validators[key] = jsonschema_rs.Draft7Validator(
                {"components": self.components, "allOf": [_json_schema(schema)]},
                validate_formats=False,
            )
        problems = [
            f"{label}: {e.message} at {list(e.instance_path)}"
            for e in self.validators[key].iter_errors(body)
        ]
        problems += [
            f"{label}: moment {moment!r} is not `YYYY-MM-DDTHH:MM:SS+HH:MM`"
            for moment in _moments(body)
            if not OFFSET_MOMENT.match(moment)
        ]
        return problems[:5]


def _moments(node: Any, key: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _moments(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _moments(v, key)
    elif isinstance(node, str) and key.endswith("_at") and node:
        yield node


def _first(app: Flask, model: Any) -> int | None:
    from backend.extensions import db

    with app.app_context():
        return db.session.scalar(select(model.id).order_by(model.id))


def path_ids(app: Flask, world: World) -> dict[str, int | None]:
    return {
        "township_id": world.township_1,
        "village_id": world.village_a,
        "household_id": world.household_x,
        "villager_id": world.head_x,
        "user_id": world.villager_x,
        "shop_id": world.shop_a,
        "catalog_id": _first(app, RuleCatalog),
        "item_id": _first(app, RuleItem),
        "version_id": _first(app, RuleItemVersion),
        "claim_id": _first(app, Claim),
        "entry_id": _first(app, LedgerEntry),
        "upload_id": _first(app, Upload),
        "reward_id": _first(app, Reward),
        "redemption_id": _first(app, Redemption),
        "activity_id": _first(app, Activity),
        "checkin_id": _first(app, CheckIn),
    }


# Path parameters the walk does not fill, and why. Any other parameter of a GET fails the
# walk until `path_ids` can fill it: a new operation is checked, not skipped.
NOT_WALKED = {
    "token": "a printed QR's secret (/plates/{token}); its JSON is fuzzed by test_contract",
    "objection_id": "no GET names an objection",
}


def _villager_day(app: Flask, world: World, client: Any, contract: Contract) -> list[str]:
    """The writes of the villager's screens, each answer checked like the reads."""
    problems: list[str] = []
    items = default_items(app, world)
    fund(app, world.household_x, 500)
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    villager, cadre = world.headers("villager_x"), world.headers("cadre_a")
    problems += contract.check(
        "post",
        "/api/v1/claims",
        self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2),
    )
    problems += contract.check(
        "post", "/api/v1/redemptions", order(client, villager, world.shop_a, [(soap, 2)])
    )
    upload_photo(client, villager)
    starts = datetime.now(UTC) + timedelta(days=1)
    problems += contract.check(
        "post",
        "/api/v1/activities",
        client.post(
            "/api/v1/activities",
            headers=cadre,
            json={
                "village_id": world.village_a,
                "title": "村民大会",
                "rule_item_id": items["GOV-ASSEMBLY"],
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "qr_mode": "static",
            },
        ),
    )
    # a code that is not one: the refusal is declared, with its code
    problems += contract.check(
        "post",
        "/api/v1/checkins",
        client.post("/api/v1/checkins", headers=villager, json={"token": "not-a-code"}),
    )
    _, code = open_activity(client, world, items["GOV-ASSEMBLY"])
    problems += contract.check(
        "post",
        "/api/v1/checkins",
        client.post(
            "/api/v1/checkins", headers=villager, json={"token": code, "lat": 30.0, "lng": 120.0}
        ),
    )
    claim = _first(app, Claim)
    problems += contract.check(
        "post",
        "/api/v1/claims/{claim_id}/objections",
        client.post(
            f"/api/v1/claims/{claim}/objections", headers=villager, json={"reason": "不属实"}
        ),
    )
    return problems


WALKERS = ("villager_x", "unbound", "cadre_a", "clerk_a", "tadmin1", "county")


def test_answers_of_a_walk_match_the_document(
    app: Flask, world: World, document: dict[str, Any]
) -> None:
    client = app.test_client()
    contract = Contract(document)
    problems = _villager_day(app, world, client, contract)
    ids = path_ids(app, world)
    walked = paged = 0
    for role in WALKERS:
        headers = world.headers(role)
        for method, path, operation in operations(document):
            if method != "get" or not path.startswith("/api/v1/"):
                continue
            names = re.findall(r"{(\w+)}", path)
            unknown = [name for name in names if name not in ids and name not in NOT_WALKED]
            assert not unknown, f"{path}: teach path_ids to find an id for {unknown}"
            if any(ids.get(name) is None for name in names):
                assert set(names) & NOT_WALKED.keys(), f"{path}: no object made for {names}"
                continue
            url = re.sub(r"{(\w+)}", lambda m: str(ids[m.group(1)]), path)
            response = client.get(url, headers=headers)
            problems += contract.check(method, path, response)
            walked += response.status_code == 200
            response.close()  # a photo is streamed from its file
            if any(p["name"] == "page" for p in operation.get("parameters", [])):
                # a page past the cap of a list: `page_too_deep`, declared where it is answered
                deep = client.get(url, query_string={"page": 100_000}, headers=headers)
                problems += contract.check(method, path, deep)
                paged += error_code(deep) == "page_too_deep" if deep.status_code == 400 else 0
    assert walked >= 150, walked  # the roles get past their scope checks, not only 403s
    assert paged >= 40, paged  # the deep pages were refused, not only answered empty
    # and without a token
    for method, path, operation in operations(document):
        if method == "get" and operation.get("security") != [] and "{" not in path:
            problems += contract.check(method, path, client.get(path))
    assert not problems, "\n".join(problems)


def test_moments_carry_the_village_offset_to_the_second(app: Flask, world: World) -> None:
    client = app.test_client()
    items = default_items(app, world)
    claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 1).get_json()
    assert OFFSET_MOMENT.match(claim["created_at"]), claim["created_at"]
    assert claim["created_at"].endswith(app.config.get("TEST_OFFSET", "+08:00"))


def test_money_is_text_with_two_decimals(document: dict[str, Any]) -> None:
    money = document["components"]["schemas"]["RedemptionOut"]["properties"]["cash_paid"]
    assert money["type"] == "string" and money["pattern"] == r"^-?[0-9]+\.[0-9]{2}$"


# ---- 503 when the database is unreachable ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/x",
        "sqlite:////nonexistent-directory-of-village-points/x.sqlite3",
    ],
)
def test_unreachable_database_answers_503(url: str) -> None:
    app = create_app(
        {
            "TESTING": True,
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": url,
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    client = app.test_client()
    response = client.post("/api/v1/auth/login", json={"username": "cadre", "password": "x"})
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert "Retry-After" not in response.headers
    bearer = client.get("/api/v1/me", headers={"Authorization": "Bearer x.y.z"})
    assert bearer.status_code in (401, 503)


def test_retry_after_only_on_429(app: Flask, world: World) -> None:
    client = app.test_client()
    refused = client.post("/api/v1/auth/login", json={"username": "cadre_a", "password": "x"})
    assert refused.status_code == 401
    assert "Retry-After" not in refused.headers
