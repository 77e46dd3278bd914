"""Every HTML page (the QR landing page, public plates and boards, the activity display, the
API docs) carries a Content-Security-Policy with no inline script or style, nosniff, a
Referrer-Policy and no framing, and a Cache-Control chosen for the page; every response
carries nosniff. No page holds an inline script or style: they are files under
backend/static/, which the policy allows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points.models import PublicLink
from tests.factories import World, default_items, open_activity

API = "/api/v1"
BACKEND = Path(__file__).resolve().parents[2] / "backend"

# endpoint -> Cache-Control the page must carry
HTML_PAGES = {
    "pages.qr_landing": "public, max-age=86400",  # the same instructions for every code
    "board_pages.board_page": "public, max-age=300",  # changes as claims post
    "board_pages.plate_page": "no-store",  # live points; a renewed plate stops at once
    "activity_pages.display_page": "private, no-store",
    "pages.docs": "no-store",
}
# a page whose code was renewed or never existed
GONE_CACHE = "no-store"


def _pages(app: Flask, client: FlaskClient, world: World) -> dict[str, str]:
    """One URL per HTML page."""
    items = default_items(app, world)
    activity, _ = open_activity(client, world, items["GOV-ASSEMBLY"])
    cadre = world.headers("cadre_a")
    assert (
        client.post(f"{API}/households/{world.household_x}/plate/renew", headers=cadre).status_code
        == 201
    )
    assert (
        client.get(f"{API}/villages/{world.village_a}/board.png", headers=cadre).status_code == 200
    )
    with app.app_context():
        tokens = dict(db.session.execute(select(PublicLink.kind, PublicLink.token)).all())
    return {
        "pages.qr_landing": "/q/AbC123",
        "board_pages.board_page": f"/b/{tokens['board']}",
        "board_pages.plate_page": f"/h/{tokens['plate']}",
        "activity_pages.display_page": f"/activities/{activity}/display",
        "pages.docs": f"{API}/docs",
    }


def test_every_page_outside_the_json_api_is_checked(app: Flask) -> None:
    """A new page fails here until it is added to HTML_PAGES (and so checked)."""
    found = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set())
        and (not rule.rule.startswith(API) or rule.endpoint == "pages.docs")
        # the console's pages: tests/api/test_console_security.py checks each one's headers
        and not rule.endpoint.startswith("console.")
    }
    # not pages: the health check's JSON, the Prometheus text of /metrics, and the root,
    # which only redirects to the docs page (test_small_surprises)
    assert found - {"pages.healthz", "pages.index", "metrics.metrics", "static"} == set(HTML_PAGES)


def _assert_secure_page(response: Any, cache: str) -> None:
    headers = response.headers
    assert response.mimetype == "text/html"
    policy = headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ") if d}
    assert directives.get("default-src") == ["'none'"], policy
    assert directives.get("script-src") == ["'self'"], policy
    assert directives.get("style-src") == ["'self'"], policy
    assert directives.get("frame-ancestors") == ["'none'"], policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "no-referrer"
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Cache-Control") == cache


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<script[^>]*>\s*[^<\s]", re.I), "a <script> with a body"),
    (re.compile(r"<style", re.I), "a <style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "a style= attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on…= handler"),
    (re.compile(r"javascript:", re.I), "a javascript: link"),
]


def _inline(html: str) -> list[str]:
    return [what for pattern, what in INLINE if pattern.search(html)]


def test_every_html_page_carries_the_security_headers(
    app: Flask, client: FlaskClient, world: World
) -> None:
    failures = []
    for endpoint, url in _pages(app, client, world).items():
        response = client.get(url)
        html = response.get_data(as_text=True)
        if response.status_code != 200:
            failures.append(f"{url}: {response.status_code}")
            continue
        try:
            _assert_secure_page(response, HTML_PAGES[endpoint])
        except AssertionError as exc:
            failures.append(f"{url}: {exc} {dict(response.headers)}")
        if _inline(html):
            failures.append(f"{url}: {_inline(html)}")
        # what the page loads comes from this server's static files, and is served
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            served = client.get(asset)
            served.close()
            if (
                served.status_code != 200
                or served.headers.get("X-Content-Type-Options") != "nosniff"
                or served.mimetype
                not in ("text/css", "text/javascript", "application/javascript", "image/svg+xml")
            ):
                failures.append(f"{url} loads {asset}: {served.status_code} {served.mimetype}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("url", ["/h/not-a-real-token", "/b/not-a-real-token"])
def test_a_page_whose_code_is_gone_is_secured_too(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    _assert_secure_page(response, GONE_CACHE)
    assert _inline(response.get_data(as_text=True)) == []


def test_the_display_page_loads_its_script_from_a_file(
    app: Flask, client: FlaskClient, world: World
) -> None:
    url = _pages(app, client, world)["activity_pages.display_page"]
    html = client.get(url).get_data(as_text=True)
    # ?v= the file's digest: nginx serves static files as immutable (deploy/nginx)
    assert re.search(
        r'<script src="/static/js/activity_display\.js\?v=[0-9a-f]{12}"></script>', html
    )
    script = client.get("/static/js/activity_display.js")
    text = script.get_data(as_text=True)
    script.close()
    # it fetches its code from this server (connect-src 'self'), with the key header
    assert 'fetch("/api/v1/activities/' in text and "data-key-header" in text


@pytest.mark.parametrize(
    "url", ["/healthz", f"{API}/me", f"{API}/openapi.json", f"{API}/households/1"]
)
def test_every_response_says_nosniff(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.mimetype != "text/html"
    assert "Content-Security-Policy" not in response.headers  # for pages, not JSON


def test_no_template_holds_an_inline_script_or_style() -> None:
    templates = sorted((BACKEND / "templates").glob("*.html"))
    assert len(templates) >= 5
    found = {path.name: _inline(path.read_text(encoding="utf-8")) for path in templates}
    assert {name: what for name, what in found.items() if what} == {}


def test_no_html_is_written_in_python() -> None:
    """Pages are templates, where the test above reads them, not strings in code."""
    writers = sorted(
        str(path.relative_to(BACKEND))
        for path in BACKEND.rglob("*.py")
        if re.search(
            r"render_template_string|<script|<style|<html", path.read_text(encoding="utf-8"), re.I
        )
    )
    assert writers == []
