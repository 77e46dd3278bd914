"""`make screenshots`: every console page on the demo township, as a full-page PNG at an office
screen's width (1366) and a phone's (390), into docs/screenshots/<name>-desktop.png and
<name>-phone.png.

Builds the demo township in a fresh SQLite database (as the browser tests' `demo_township`),
serves the app on a loopback port in this process, and drives Debian's Chromium
(CHROMIUM_PATH) with Playwright, logged in as the demo user who does that work. A page this
checkout does not have yet (404) is skipped with a line saying so.

    .venv/bin/python tests/browser/screenshots.py [--out docs/screenshots] [--only boards,today]

`demo_app` and `console_pages` are also what bench/console_pages.py times."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from backend import create_app  # noqa: E402
from backend.clock import now, village_tz  # noqa: E402
from backend.extensions import db  # noqa: E402
from points import demo  # noqa: E402
from points.boards.page import find_font  # noqa: E402
from points.models import (  # noqa: E402
    Activity,
    Base,
    Claim,
    Household,
    Reward,
    RuleItem,
    Shop,
    User,
    Village,
)
from rules.periods import add_months, month_key  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
# The demo village the pages show, and whose cadre opens them.
VILLAGE = "清水村"
CADRE = "cadre_qs"
CLERK = "clerk_qs"
TOWNSHIP = "township_admin"
COUNTY = "county_admin"


@dataclass(frozen=True)
class ConsolePage:
    name: str  # the screenshot's file name: <name>-desktop.png, <name>-phone.png
    path: str
    user: str | None  # the demo login that opens it; None: before logging in


def demo_app(database_url: str, workdir: str) -> Flask:
    """The app on an empty database at `database_url`, with the demo township loaded as
    `flask demo` loads it (the households, the staff, last months' awards, the activities)."""
    app = create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": "screenshots-and-benchmarks-secret-0123456789abcdef",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "RATELIMIT_STORAGE_URI": "memory://",
            "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
            "UPLOAD_DIR": str(Path(workdir) / "uploads"),
            # Served over plain HTTP on a loopback port.
            "CONSOLE_SECURE_COOKIE": False,
        }
    )
    with app.app_context():
        Base.metadata.create_all(db.engine)
        demo.seed(db.session)
        db.session.commit()
        demo.seed_history(db.session, now(), village_tz())
        db.session.commit()
    return app


def console_pages(session: Session) -> list[ConsolePage]:
    """The console's pages, one of each kind, on the demo village. The list is the console's
    whole, whichever of them this checkout has."""
    village_id = session.scalar(select(Village.id).where(Village.name == VILLAGE))
    claim_id = session.scalar(
        select(Claim.id).where(Claim.village_id == village_id).order_by(Claim.id.desc()).limit(1)
    )
    activity_id = session.scalar(
        select(Activity.id).where(Activity.village_id == village_id).order_by(Activity.id).limit(1)
    )
    household_id = session.scalar(
        select(Household.id)
        .where(Household.village_id == village_id)
        .order_by(Household.id)
        .limit(1)
    )
    # Last month: the demo's awards posted then, so its board has households on it.
    last_month = add_months(month_key(now().astimezone(village_tz())), -1)
    reward_id = session.scalar(
        select(Reward.id)
        .join(Shop, Shop.id == Reward.shop_id)
        .where(Shop.name == f"{VILLAGE}积分超市")
        .order_by(Reward.id)
        .limit(1)
    )
    item_id = session.scalar(select(RuleItem.id).where(RuleItem.code == "ENV-YARD").limit(1))
    cadre_id = session.scalar(select(User.id).where(User.username == CADRE))
    return [
        ConsolePage("login", "/console/login", None),
        ConsolePage("today", "/console/", CADRE),
        ConsolePage("claims", "/console/claims", CADRE),
        ConsolePage("claim", f"/console/claims/{claim_id}", CADRE),
        ConsolePage("awards-new", "/console/awards/new", CADRE),
        ConsolePage("activities", "/console/activities", CADRE),
        ConsolePage("activity", f"/console/activities/{activity_id}", CADRE),
        ConsolePage("households", "/console/households", CADRE),
        ConsolePage("household", f"/console/households/{household_id}", CADRE),
        ConsolePage("roster-import", "/console/roster/import", CADRE),
        ConsolePage("boards", f"/console/boards?month={last_month}", CADRE),
        ConsolePage("pickup", "/console/pickup", CLERK),
        ConsolePage("counter", "/console/counter", CLERK),
        ConsolePage("shop", "/console/shop", CLERK),
        ConsolePage("reward", f"/console/shop/rewards/{reward_id}", CLERK),
        ConsolePage("settlements", "/console/settlements", CLERK),
        ConsolePage("budget", "/console/budget", TOWNSHIP),
        ConsolePage("rules", "/console/rules", TOWNSHIP),
        ConsolePage("rule-item", f"/console/rules/items/{item_id}", TOWNSHIP),
        ConsolePage("policy", "/console/policy", TOWNSHIP),
        ConsolePage("stats", "/console/stats", TOWNSHIP),
        ConsolePage("audit", "/console/audit", TOWNSHIP),
        ConsolePage("reports", "/console/reports", TOWNSHIP),
        ConsolePage("townships", "/console/townships", COUNTY),
        ConsolePage("villages", "/console/villages", COUNTY),
        ConsolePage("users", "/console/users", COUNTY),
        ConsolePage("user", f"/console/users/{cadre_id}", COUNTY),
        ConsolePage("password", "/console/password", CADRE),
    ]


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # a line per request would bury the skipped pages' lines


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app over HTTP on a free loopback port, in a thread of this process."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def cjk_fonts(workdir: str) -> dict[str, str | float | bool]:
    """Environment for Chromium that adds the CJK font the boards are printed with
    (points.boards.page.find_font) to the system's fonts: a machine without a Chinese font
    would otherwise draw every character as a box."""
    folder = Path(find_font(None).path).parent
    config = Path(workdir) / "fonts.conf"
    config.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        f"  <dir>{escape(str(folder))}</dir>\n"
        f"  <cachedir>{escape(workdir)}/fontconfig</cachedir>\n</fontconfig>\n"
    )
    return {**os.environ, "FONTCONFIG_FILE": str(config)}


def take(
    base_url: str, pages: list[ConsolePage], out: Path, env: dict[str, str | float | bool]
) -> list[str]:
    """Save each page at both widths; the names of the files written."""
    # Imported here: bench/console_pages.py uses this module's demo app and page list
    # without a browser (or pytest, which the browser tests' conftest imports).
    from playwright.sync_api import ViewportSize, sync_playwright

    from tests.browser.conftest import (
        CHROMIUM_ARGS,
        CHROMIUM_PATH,
        DESKTOP,
        PASSWORD,
        PHONE,
    )

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True, env=env
        )
        try:
            for width_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                contexts = {}
                for page_spec in pages:
                    user = page_spec.user or ""
                    if user not in contexts:
                        context = browser.new_context(
                            viewport=ViewportSize(
                                width=viewport["width"], height=viewport["height"]
                            ),
                            locale="zh-CN",
                            base_url=base_url,
                        )
                        if user:
                            tab = context.new_page()
                            tab.goto("/console/login")
                            tab.fill("input[name=username]", user)
                            tab.fill("input[name=password]", PASSWORD)
                            tab.click("button[type=submit]")
                            tab.wait_for_url("**/console/")
                            tab.close()
                        contexts[user] = context
                    tab = contexts[user].new_page()
                    response = tab.goto(page_spec.path, wait_until="networkidle")
                    status = response.status if response else 0
                    if status == 404:
                        if width_name == "desktop":
                            print(f"skipped {page_spec.name}: {page_spec.path} is not here (404)")
                        tab.close()
                        continue
                    if status != 200:
                        raise RuntimeError(f"{page_spec.path} answered {status}")
                    target = out / f"{page_spec.name}-{width_name}.png"
                    tab.screenshot(path=str(target), full_page=True)
                    written.append(target.name)
                    tab.close()
                for context in contexts.values():
                    context.close()
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go")
    parser.add_argument("--only", default="", help="comma-separated page names (default: all)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vp-screenshots-") as workdir:
        app = demo_app(f"sqlite:///{workdir}/demo.sqlite3", workdir)
        with app.app_context():
            pages = console_pages(db.session)
            db.session.rollback()
        if args.only:
            wanted = set(args.only.split(","))
            pages = [p for p in pages if p.name in wanted]
        with serving(app) as base_url:
            written = take(base_url, pages, args.out, cjk_fonts(workdir))
        with app.app_context():
            db.engine.dispose()
    for name in written:
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
