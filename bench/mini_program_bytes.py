"""What the mini-program's screens cost on a village network: calls and bytes.

Loads the demo township into a throwaway SQLite database, logs in as a demo villager (the
development WeChat login) and measures, through the app's own test client (no network):

- the home screen as it was built before `GET /me/home` (eight calls: me, the account, the
  passbook's first page, the village's notices, the current activities, this month's
  rankings, my orders and last month's board) against the one call that replaced them;
- the JSON lists a phone fetches often, plain and gzipped (Accept-Encoding: gzip), and what a
  second fetch with If-None-Match costs (304, no body);
- the board's PNG, and a second fetch with its ETag.

    .venv/bin/python bench/mini_program_bytes.py

Prints a table; the last line is
`home_calls_before=8 home_bytes_before=<B> home_bytes_after=<B> home_gzip=<B>
rules_plain=<B> rules_gzip=<B>` (one line).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend import create_app  # noqa: E402
from backend.extensions import db  # noqa: E402
from bench._pg import peak_rss_mb  # noqa: E402
from points import demo  # noqa: E402
from points.models import Base, Household, Villager  # noqa: E402

API = "/api/v1"
GZIP = {"Accept-Encoding": "gzip"}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "APP_ENV": "development",
                "SECRET_KEY": "bench-" + "x" * 40,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/bench.sqlite3",
                "UPLOAD_DIR": f"{tmp}/uploads",
                "RATELIMIT_STORAGE_URI": "memory://",
                "WECHAT_APPID": "",
                "WECHAT_SECRET": "",
            }
        )
        with app.app_context():
            Base.metadata.create_all(db.engine)
            demo.seed(db.session)
            db.session.commit()
            demo.seed_history(db.session, datetime.now(UTC), ZoneInfo(app.config["APP_TIMEZONE"]))
            db.session.commit()
            villager = db.session.query(Villager).join(Household).order_by(Villager.id).first()
            assert villager is not None
            name, village_id = villager.name, villager.household.village_id
            villager_id = villager.id
        client = app.test_client()
        login = client.post(f"{API}/auth/wechat", json={"code": f"dev-{name}"})
        token = login.get_json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        if not login.get_json().get("bound"):
            with app.app_context():
                phone = db.session.get(Villager, villager_id).phone
            bound = client.post(
                f"{API}/auth/bind", json={"name": name, "phone": phone}, headers=auth
            )
            assert bound.status_code in (200, 201), bound.get_json()
            token = bound.get_json().get("access_token", token)
            auth = {"Authorization": f"Bearer {token}"}

        def fetch(path: str, **headers: str) -> tuple[int, int]:
            response = client.get(path, headers={**auth, **headers})
            return response.status_code, len(response.get_data())

        before = [
            f"{API}/me",
            f"{API}/me/account",
            f"{API}/me/ledger?page=1&per_page=20",
            f"{API}/villages/{village_id}/notices",
            f"{API}/activities?status=current",
            f"{API}/rankings",
            f"{API}/redemptions",
            f"{API}/villages/{village_id}/board",
        ]
        rows = []
        total_before = 0
        for path in before:
            status, size = fetch(path)
            rows.append((path, status, size, "", ""))
            total_before += size
        home_status, home_plain = fetch(f"{API}/me/home")
        _, home_gzip = fetch(f"{API}/me/home", **GZIP)
        rows.append((f"{API}/me/home", home_status, home_plain, home_gzip, ""))
        lists = [
            f"{API}/rule-items?per_page=100",
            f"{API}/rule-items?submit_by=villager&per_page=100",
            f"{API}/villages/{village_id}/notices",
            f"{API}/me/ledger?page=1&per_page=20",
        ]
        sizes = {}
        for path in lists:
            first = client.get(path, headers=auth)
            packed = client.get(path, headers={**auth, **GZIP})
            again = client.get(
                path, headers={**auth, "If-None-Match": first.headers.get("ETag", "")}
            )
            sizes[path] = (len(first.get_data()), len(packed.get_data()))
            rows.append(
                (
                    path,
                    first.status_code,
                    len(first.get_data()),
                    len(packed.get_data()),
                    f"{again.status_code} {len(again.get_data())} B",
                )
            )
        png = client.get(f"{API}/villages/{village_id}/board.png", headers=auth)
        png_again = client.get(
            f"{API}/villages/{village_id}/board.png",
            headers={**auth, "If-None-Match": png.headers.get("ETag", "")},
        )
        rows.append(
            (
                f"{API}/villages/{{id}}/board.png",
                png.status_code,
                len(png.get_data()),
                "",
                f"{png_again.status_code} {len(png_again.get_data())} B",
            )
        )
        print(f"{'request':<60} {'status':>6} {'plain B':>9} {'gzip B':>8}  again (If-None-Match)")
        for path, status, plain, packed, again in rows:
            print(f"{path:<60} {status:>6} {plain:>9} {packed!s:>8}  {again}")
        print(
            f"home screen before: {len(before)} calls, {total_before} B; "
            f"GET /me/home: 1 call, {home_plain} B ({home_gzip} B gzipped)"
        )
        rules = sizes[lists[0]]
        # The work ran in this process (no gunicorn here): its peak memory stands for a worker's.
        print(f"process_peak_rss_mb={peak_rss_mb():.1f}")
        print(
            f"home_calls_before={len(before)} home_bytes_before={total_before} "
            f"home_bytes_after={home_plain} home_gzip={home_gzip} "
            f"rules_plain={rules[0]} rules_gzip={rules[1]}"
        )


if __name__ == "__main__":
    main()
