"""Contract fuzzing: schemathesis drives every operation of /api/v1/openapi.json against the
app in-process (WSGI), as a logged-in villager and as a logged-in cadre, with ids of real
objects mixed into the generated ones so the handlers get past "not found".

What must hold for every generated request (docs/API_CONTRACT.md: the OpenAPI document
describes what the server really does):
- no 5xx;
- status code, content type and body are the ones the document declares;
- data the schema forbids is refused with a 4xx, data it allows is not refused as malformed;
- an operation that declares bearer auth answers 401 without a token and with a bad one.

Nothing is left out: operations that answer with an image, a PDF or a page are fuzzed like
the rest, their bodies checked for status and content type (a binary body has no schema to
check beyond that). The stateful phase is off: the stateful ledger test does that job.

The seed is fixed and the examples per operation bounded, so a run is the same run every time
and stays within a few minutes on two cores.

The document states the bounds of every number, amount and moment (minimum/maximum, a
pattern, multipleOf), so the coverage phase sends the values at and past each edge. What no
generator makes from a schema (a body nested hundreds deep, an amount of 1e308 yuan spelt as
text, a moment in the year 9999, an exchange rate of 1E-999999) is sent by
`test_contract_edges`, through the same checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from flask import Flask
from schemathesis.core.failures import FailureGroup
from schemathesis.engine import Status, events
from schemathesis.transport.wsgi import WSGITransport

from tests.factories import (
    World,
    add_reward,
    approve,
    default_items,
    fund,
    member_token,
    order,
    self_report,
    upload_photo,
)
from tests.support.reads import catalog_id

SEED = 20261129
# Per operation and role; with the coverage phase (boundary and invalid values of every field)
# this keeps the file at a few minutes on SQLite and on PostgreSQL.
MAX_EXAMPLES = 10

ROLES = ("villager_x", "cadre_a")


def seed(app: Flask, world: World) -> set[int]:
    """Beside the world: the reference catalog, a pending and an approved claim, an activity,
    points in household x, a reward and an order, a photo. Returns every id made, for the
    generated path ids to hit."""
    client = app.test_client()
    villager, cadre = world.headers("villager_x"), world.headers("cadre_a")
    items = default_items(app, world)
    made = set(world.ids.values()) | set(items.values())

    def created(response: Any) -> int:
        assert response.status_code == 201, response.get_json()
        made.add(response.get_json()["id"])
        return response.get_json()["id"]

    created(self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2))
    approved = created(self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 1))
    assert approve(client, world, "cadre_a", approved).status_code == 200
    starts = datetime.now(UTC) + timedelta(days=1)
    created(
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
        )
    )
    fund(app, world.household_x, 500)
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    made.add(soap)
    created(order(client, villager, world.shop_a, [(soap, 2)]))
    made.add(upload_photo(client, villager))
    return made


PATH_IDS = (
    "township_id",
    "village_id",
    "household_id",
    "villager_id",
    "catalog_id",
    "item_id",
    "version_id",
    "user_id",
    "claim_id",
    "objection_id",
    "entry_id",
    "upload_id",
    "shop_id",
    "reward_id",
    "redemption_id",
    "activity_id",
    "checkin_id",
)


def config_for(known_ids: list[int]) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,  # one request at a time: SQLite, and a reproducible order
            "continue-on-failure": True,  # every failure of an operation, not only its first
            # No replay of earlier runs' failures from .schemathesis/: the same run every time.
            "cache": {"enabled": False},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                # Error feedback rewrites the schema from the server's 4xx answers; the contract
                # is the document as written.
                "fuzzing": {"enabled": True, "error-feedback": {"enabled": False}},
                "stateful": {"enabled": False},
            },
            "checks": {
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
                "response_headers_conformance": {"enabled": True},
                "negative_data_rejection": {"enabled": True},
                # Replaced by `schema_valid_data_is_not_malformed` below: the API answers a
                # well-formed request that breaks a rule (points, stock, state) with 422 and a
                # rule's own code, which is not the schema's business.
                "positive_data_acceptance": {"enabled": False},
                "schema_valid_data_is_not_malformed": {"enabled": True},
                "ignored_auth": {"enabled": True},
            },
            # The WSGI transport decodes no gzip (see LoggedIn.set): the plain JSON, always.
            "headers": {"Accept-Encoding": "identity"},
            # Path ids drawn half the time from objects that exist, so handlers run past lookup.
            "dictionaries": {"ids": {"values": known_ids}},
            "parameters": {
                f"path.{name}": {"dictionary": "ids", "probability": 0.5} for name in PATH_IDS
            },
        }
    )


# The codes the app answers when a request breaks its schema (errors.py, guards.py).
SCHEMA_CODES = {
    "validation_error",
    "unknown_fields",
    "invalid_text",
    "malformed_json",
    "bad_request",
}


# Rules the document cannot state in OpenAPI 3.0, so a schema-valid request can break them.
# Operation -> the fields the rule names.
CROSS_FIELD_RULES = {
    "POST /api/v1/checkins": {"lat", "lng"},  # both or neither
    # JSON needs `yaml`, and township_id in the body or the query; the same (optional) body
    # schema is read, empty, for a YAML or multipart upload, so it cannot require them.
    "POST /api/v1/rule-catalogs/import": {"township_id", "yaml"},
}


def _cross_field_rule(case: Any, response: Any) -> bool:
    allowed = CROSS_FIELD_RULES.get(case.operation.label, set())
    try:
        named = set(response.json()["error"]["details"]["fields"])
    except (ValueError, KeyError, TypeError):
        return False
    return bool(named) and named <= allowed


@schemathesis.check
def schema_valid_data_is_not_malformed(ctx: Any, response: Any, case: Any) -> bool | None:
    """A request the document allows is never refused as malformed: if it is, the document
    has not told the client a rule the server applies to the shape of the request."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422):
        return None
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    if code in SCHEMA_CODES and not _cross_field_rule(case, response):
        raise AssertionError(f"schema-valid request refused as `{code}`: {response.text[:300]}")
    return None


def describe(event: Any) -> list[str]:
    out = []
    for case_id, checks in event.recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            interaction = event.recorder.interactions.get(case_id)
            request = ""
            if interaction is not None:
                body = (interaction.request.body or b"")[:300].decode(errors="replace")
                response = interaction.response
                status = response.status_code if response else None
                text = (response.content or b"")[:300].decode(errors="replace") if response else ""
                request = (
                    f"{interaction.request.method} {interaction.request.uri} {body}"
                    f" -> {status} {text}"
                )
            failure = check.failure_info.failure
            node = event.recorder.cases.get(case_id)
            meta = node.value.meta if node is not None else None
            if meta is not None:
                request = f"{meta.phase.name.value}/{meta.generation.mode.value} {request}"
            out.append(
                f"[{event.label}] {check.name}: {failure.title}\n  {failure.message[:400]}"
                f"\n  {request}"
            )
    return out


@pytest.fixture()
def wsgi_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gaps of schemathesis 4.32.5's WSGI transport, closed for this test:
    - `ignored_auth`'s probes (no token, bad token) reach werkzeug's client with the socket
      settings (`max_redirects`, `verify`, `cert`) left in, which it refuses;
    - the response is read but never closed, so a file the app streams (GET /uploads/{id})
      stays open (a ResourceWarning, an error here). `buffered` closes it as a server would."""
    original = WSGITransport.send

    def send(self: WSGITransport, case: Any, *, session: Any = None, **kwargs: Any) -> Any:
        if session is None:
            for name in ("max_redirects", "verify", "cert", "proxies"):
                kwargs.pop(name, None)
        return original(self, case, session=session, buffered=True, **kwargs)

    monkeypatch.setattr(WSGITransport, "send", send)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.usefixtures("wsgi_transport", "wechat_server")
def test_contract(app: Flask, world: World, role: str) -> None:
    config = config_for(sorted(seed(app, world)))
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    login = world.headers(role)

    class LoggedIn:
        """The role's token on every request; POST /auth/logout ends the session it is
        sent with, so it gets a session of its own (else every later request would be
        a 401 and the run would test nothing past the login check)."""

        def get(self, case: Any, context: Any) -> dict[str, str]:
            if case.operation.path == "/api/v1/auth/logout":
                return world.headers(role)
            return login

        def set(self, case: Any, data: dict[str, str], context: Any) -> None:
            # The WSGI transport hands the body over as sent and decodes no gzip (an HTTP
            # client would): ask for the plain JSON, so that the checks can read it.
            case.headers = {**(case.headers or {}), **data, "Accept-Encoding": "identity"}

    schema.auth(refresh_interval=None)(LoggedIn)
    operations = {result.ok().label for result in schema.get_all_operations()}
    tested: set[str] = set()
    served: set[str] = set()
    failures: list[str] = []
    errors: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            failures.extend(describe(event))
            if event.status != Status.SKIP and event.label is not None:
                tested.add(event.label)
                if any(
                    i.response is not None and 200 <= i.response.status_code < 300
                    for i in event.recorder.interactions.values()
                ):
                    served.add(event.label)
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            errors.append(
                f"{event.label}: {event.info.traceback}"
                if isinstance(event, events.NonFatalError)
                else repr(event)
            )
    assert not errors, "\n".join(errors)
    assert tested == operations, sorted(operations - tested)
    # A run whose token stopped working would pass while testing only the login check; the
    # role must get a 2xx from most operations (about 100 of 110 with this seed).
    assert len(served) >= 0.8 * len(operations), sorted(operations - served)
    assert not failures, f"{len(failures)} failures\n" + "\n".join(sorted(failures))


def nested_list(depth: int) -> list[Any]:
    body: list[Any] = []
    for _ in range(depth - 1):
        body = [body]
    return body


@pytest.mark.usefixtures("wsgi_transport")
def test_contract_edges(app: Flask, world: World) -> None:
    """Requests no generator makes from the document, each refused with a 4xx the document
    declares, in the error shape, with its stable code; every check of the run applies."""
    items = default_items(app, world)
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    fund(app, world.household_x, 100)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config_for([soap]))
    card = member_token(app, world.head_x)
    starts = datetime.now(UTC) + timedelta(days=1)
    activity = {
        "village_id": world.village_a,
        "title": "村民大会",
        "rule_item_id": items["GOV-ASSEMBLY"],
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "qr_mode": "static",
    }
    counter = {"member_token": card, "items": [{"reward_id": soap, "quantity": 1}]}
    # (who, method, path, path parameters, query, body, status, code)
    edges: list[tuple[str | None, str, str, dict[str, int], dict[str, Any], Any, int, str]] = [
        (None, "POST", "/api/v1/auth/login", {}, {}, nested_list(400), 400, "malformed_json"),
        (
            "villager_x",
            "POST",
            "/api/v1/claims",
            {},
            {},
            {"rule_item_id": items["PUB-VOLUNTEER"], "evidence": nested_list(40)},
            400,
            "malformed_json",
        ),
        *[
            (
                "clerk_a",
                "POST",
                "/api/v1/shops/{shop_id}/counter-redemptions",
                {"shop_id": world.shop_a},
                {},
                {**counter, "cash_paid": cash},
                422,
                "validation_error",
            )
            for cash in ("1e308", 1e308, "1E+999999", "1E-999999", 10**400, "0.001")
        ],
        *[
            (
                "cadre_a",
                "POST",
                "/api/v1/activities",
                {},
                {},
                {**activity, **far},
                422,
                "validation_error",
            )
            for far in (
                {"starts_at": "9999-12-31T23:59:00-12:00", "ends_at": "9999-12-31T23:59:30-12:00"},
                {"checkin_opens_at": "0001-01-01T00:00:00+14:00"},
            )
        ],
        (
            "cadre_a",
            "POST",
            "/api/v1/rules/evaluate",
            {},
            {},
            {
                "item_id": items["PUB-VOLUNTEER"],
                "villager_id": world.head_x,
                "at": "9999-12-31T23:59:59.999999-23:59",
            },
            422,
            "validation_error",
        ),
        (
            "county",
            "GET",
            "/api/v1/audit",
            {},
            {"since": "9999-12-31T23:59:00-12:00"},
            None,
            422,
            "validation_error",
        ),
        *[
            (
                "tadmin1",
                "PATCH",
                "/api/v1/rule-catalogs/{catalog_id}/policy",
                {"catalog_id": catalog_id(app, world.township_1)},
                {},
                {"exchange_rate": rate},
                422,
                "catalog_invalid",
            )
            for rate in ("1E-999999", "1E+999999", 1e-300, "0.00001")
        ],
    ]
    failures = []
    for user, method, path, path_parameters, query, body, status, code in edges:
        case = schema[path][method].Case(
            path_parameters=path_parameters or None,
            query=query or None,
            headers={**(world.headers(user) if user else {}), "Accept-Encoding": "identity"},
            **({"body": body, "media_type": "application/json"} if body is not None else {}),
        )
        label = f"{method} {path} {str(body or query)[:120]}"
        try:
            response = case.call_and_validate()
        except (FailureGroup, ValueError) as exc:  # every edge reported, not only the first
            # The checks' failures; or, for the deep body, a ValueError of the report itself
            # (its curl line walks the body with a recursion limit).
            failures.append(f"{label}: {type(exc).__name__} {str(exc)[:600]}")
            continue
        answer = response.json()
        error = answer.get("error") if isinstance(answer, dict) else None
        found = (response.status_code, error["code"] if isinstance(error, dict) else None)
        if found != (status, code):
            failures.append(f"{label}: {found}, expected {(status, code)}")
    assert not failures, "\n".join(failures)
