"""The console's vendored front-end files are what their record says: each file's sha256,
its licence beside it, and every file under backend/static/vendor/ recorded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flask.testing import FlaskClient

VENDOR = Path(__file__).resolve().parents[2] / "backend" / "static" / "vendor"


def _record() -> list[dict[str, str]]:
    files: list[dict[str, str]] = json.loads((VENDOR / "VENDOR.json").read_text())["files"]
    return files


def test_every_vendored_file_matches_its_recorded_checksum_and_has_its_licence() -> None:
    for entry in _record():
        data = (VENDOR / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        assert entry["version"] and entry["licence"] and entry["source"], entry
        assert (VENDOR / entry["licence_file"]).stat().st_size > 0, entry["licence_file"]


def test_nothing_is_vendored_without_a_record() -> None:
    recorded = {e["path"] for e in _record()} | {e["licence_file"] for e in _record()}
    present = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file()} - {
        "VENDOR.json"
    }
    assert present == recorded


def test_the_console_loads_htmx_from_this_server(client: FlaskClient) -> None:
    page = client.get("/console/login").text
    assert "/static/vendor/htmx/htmx.min.js?v=" in page
    assert "https://" not in page and "http://" not in page  # no CDN, nothing from elsewhere
    with client.get("/static/vendor/htmx/htmx.min.js") as served:
        assert served.status_code == 200
        assert hashlib.sha256(served.data).hexdigest() == _record()[0]["sha256"]
