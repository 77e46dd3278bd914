"""Logging a test client into the staff console, as a browser does."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.factories import PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_in(html: str) -> str:
    """The CSRF token of the first form of a console page."""
    found = _CSRF.search(html)
    assert found, "no csrf_token on the page"
    return found.group(1)


def console_login(client: FlaskClient, username: str, password: str = PASSWORD) -> str:
    """Log in through /console/login; the session's CSRF token, for the forms that write."""
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": csrf_in(page.text)},
    )
    assert response.status_code == 303, response.text
    return csrf_in(client.get("/console/").text)
