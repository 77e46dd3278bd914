"""Pages outside the JSON API: the root, health, the QR landing page, the API docs page.

A flask-smorest blueprint like the API's, so that these too are in the OpenAPI document."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from flask import Response, current_app, jsonify, redirect, render_template
from flask_smorest import Blueprint
from sqlalchemy import text
from werkzeug.wrappers import Response as WerkzeugResponse

from .extensions import api, db
from .schemas.pages import HealthOut

bp = Blueprint("pages", __name__, description="服务页面 The root, health check and QR landing page")

HTML = {"description": "an HTML page", "content": {"text/html": {}}}
DOCS_PATH = "/api/v1/docs"


@bp.app_url_defaults
def static_version(endpoint: str, values: dict[str, Any]) -> None:
    """Link static files with their content's digest (`/static/css/public.css?v=…`): nginx
    serves them as immutable for a year (deploy/nginx), so a file changed by an upgrade
    must get a new address or phones would keep the old one."""
    if endpoint == "static" and "filename" in values and "v" not in values:
        digest = static_digest(current_app.static_folder or "", values["filename"])
        if digest:
            values["v"] = digest


@cache  # per process: files change only with an upgrade, which restarts the workers
def static_digest(folder: str, filename: str) -> str:
    try:
        return hashlib.sha256(Path(folder, filename).read_bytes()).hexdigest()[:12]
    except OSError:
        return ""


@bp.route("/", methods=["GET"])
@bp.doc(security=[], responses={"302": {"description": f"to the API docs page ({DOCS_PATH})"}})
def index() -> WerkzeugResponse:
    """Someone who opens the service's address in a browser lands on the API reference."""
    return redirect(DOCS_PATH, code=302)


@bp.route("/healthz", methods=["GET"])
@bp.doc(
    security=[],
    responses={
        "503": {
            "description": "the database cannot be reached",
            "content": {"application/json": {"schema": HealthOut}},
        }
    },
)
@bp.response(200, HealthOut)
def healthz() -> tuple[Response, int]:
    """For the load balancer and monitoring: whether the database answers."""
    try:
        db.session.execute(text("SELECT 1"))
        return jsonify(status="ok", database="ok"), 200
    except Exception:  # noqa: BLE001 - any failure of the database is "not healthy"
        db.session.rollback()
        return jsonify(status="degraded", database="error"), 503


# The landing page says the same for every code (the token in its address is not read), so
# any cache may keep it for a day.
LANDING_CACHE = "public, max-age=86400"


@bp.route("/q/<path:token>", methods=["GET"])
@bp.doc(security=[], responses={"200": HTML})
def qr_landing(token: str) -> Response:
    """Where a QR code lands when scanned by anything but the mini-program: how to scan it
    with the mini-program. Every printed code holds this address, `{PUBLIC_BASE_URL}/q/…`."""
    return Response(
        render_template("qr_landing.html"),
        mimetype="text/html",
        headers={"Cache-Control": LANDING_CACHE},
    )


@bp.route(DOCS_PATH, methods=["GET"])
@bp.doc(security=[], responses={"200": HTML})
def docs() -> str:
    """A readable, printable API reference rendered from the same OpenAPI document."""
    spec = api.spec.to_dict()
    operations: list[dict[str, Any]] = []
    for path, methods in sorted(spec.get("paths", {}).items()):
        for method, op in methods.items():
            if method.upper() not in {"GET", "POST", "PATCH", "PUT", "DELETE"}:
                continue
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or [""])[0],
                    "public": op.get("security") == [],
                }
            )
    return render_template("docs.html", spec=spec, operations=operations)
