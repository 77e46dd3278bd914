"""The console in a real browser: Playwright drives Debian's Chromium (CHROMIUM_PATH, default
/usr/bin/chromium; no browser is downloaded) against the app served over HTTP by a real WSGI
server in this process (`served`), on whichever database the suite runs on.

Each test starts from the demo township (`flask demo`), so the staff log in with their real
demo passwords; a test that needs the last two months' posted awards asks for
`demo_history`. Every page opened records the browser's console errors, uncaught exceptions
and failed requests; a test fails if any appear that it did not expect (`browser_errors`)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from backend.clock import now, village_tz
from backend.extensions import db
from points import demo

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# What the probe of this machine found Chromium needs to start headless as root with no
# network: without the background-networking flags it keeps trying to reach Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = demo.DEMO_PASSWORD
DESKTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


def _require_browser() -> None:
    if not Path(CHROMIUM_PATH).exists():
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"Chromium not found at {CHROMIUM_PATH} (REQUIRE_BROWSER is set)")
        pytest.skip(f"Chromium not found at {CHROMIUM_PATH}; apt-get install chromium")


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    _require_browser()
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def chromium(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(
        executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture()
def demo_township(app: Flask) -> None:
    """The demo township, as `make run` loads it, without its two months of history (posting
    them costs seconds a test on PostgreSQL); `demo_history` adds them."""
    with app.app_context():
        demo.seed(db.session)
        db.session.commit()


@pytest.fixture()
def demo_history(app: Flask, console_url: str) -> None:
    """The demo's awards of the last two months, posted: a board to print and close."""
    with app.app_context():
        demo.seed_history(db.session, now(), village_tz())
        db.session.commit()


@pytest.fixture()
def console_url(app: Flask, served: str, demo_township: None) -> Iterator[str]:
    # The cookie is Secure outside development (tests/api/test_console_login.py checks it);
    # here the browser talks plain HTTP to a loopback port.
    app.config["CONSOLE_SECURE_COOKIE"] = False
    try:
        yield served
    finally:
        app.config["CONSOLE_SECURE_COOKIE"] = True


class BrowserErrors:
    """What went wrong in the browser: console errors, uncaught exceptions, failed requests
    and answers of 400 or more. A test allows the ones it provokes on purpose."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def add(self, what: str) -> None:
        if not any(p.search(what) for p in self.allowed):
            self.seen.append(what)

    def _failed(self, request: Any) -> None:
        # ERR_ABORTED is the browser dropping a request because the page moved on (a click
        # that navigates while the icon or a poll is still loading), not a failure.
        if request.failure != "net::ERR_ABORTED":
            self.add(f"failed: {request.method} {request.url} {request.failure}")

    def _answered(self, response: Any) -> None:
        if response.status >= 400:
            self.add(f"status {response.status}: {response.request.method} {response.url}")

    def watch(self, page: Page) -> None:
        page.on("console", lambda m: m.type == "error" and self.add(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.add(f"exception: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._answered)


@pytest.fixture()
def browser_errors() -> BrowserErrors:
    return BrowserErrors()


@pytest.fixture()
def context(chromium: Browser, console_url: str) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(viewport=DESKTOP, locale="zh-CN", base_url=console_url)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture()
def page(context: BrowserContext, browser_errors: BrowserErrors) -> Iterator[Page]:
    """A browser tab; the test fails if the browser reported an error it did not allow."""
    tab = context.new_page()
    browser_errors.watch(tab)
    context.on("page", browser_errors.watch)  # windows the page opens (posters, displays)
    yield tab
    assert browser_errors.seen == [], browser_errors.seen


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Log in through the console's login form and land on 今日."""
    page.goto("/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/$"))


def csrf_of(page: Page) -> str:
    value: Any = page.get_attribute("form.logout input[name=csrf_token]", "value")
    return str(value)
