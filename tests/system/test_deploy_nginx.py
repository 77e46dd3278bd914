"""The shipped nginx site (deploy/nginx/village-points.conf) in Debian's real nginx, in front
of the app under real gunicorn with the shipped deploy/gunicorn.conf.py, on loopback: HTTPS
answers, HTTP redirects, the login limit counts the address nginx saw (a forged
X-Forwarded-For changes nothing), a body over MAX_CONTENT_LENGTH gets 413 from nginx, and
static files come with a year-long immutable cache and gzip.

Only the values the site's header names are replaced (ports, certificate, upstream, static
root, log files). Skipped without nginx, unless REQUIRE_NGINX=1 (set by .ci/run)."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.factories import SECRET

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "village-points.conf"
BIN = (
    Path("/work/main/.venv/bin")
    if Path("/work/main/.venv/bin/gunicorn").exists()
    else ROOT / ".venv" / "bin"
)
HOST = "jf.example.gov.cn"
LIMIT = 3
MAX_BODY = 8 * 1024 * 1024  # MAX_CONTENT_LENGTH's default = the site's client_max_body_size


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found:
        return found
    if os.environ.get("REQUIRE_NGINX") == "1":
        pytest.fail("nginx is not installed (REQUIRE_NGINX=1): apt-get install -y nginx")
    pytest.skip("nginx is not installed (apt-get install -y nginx)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on {port}:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def site_for_test(tmp: Path, http_port: int, https_port: int, app_port: int) -> str:
    """The shipped site with its documented values replaced; each must still be there."""
    text = SITE.read_text()
    for shipped, here in [
        (f"/etc/letsencrypt/live/{HOST}/fullchain.pem", str(tmp / "cert.pem")),
        (f"/etc/letsencrypt/live/{HOST}/privkey.pem", str(tmp / "key.pem")),
        ("listen [::]:80;", ""),
        ("listen [::]:443 ssl http2;", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("127.0.0.1:8000", f"127.0.0.1:{app_port}"),
        ("/srv/village-points/backend/static/", f"{ROOT}/backend/static/"),
        ("/var/log/nginx/village-points.", f"{tmp}/village-points."),
    ]:
        assert shipped in text, f"the site no longer holds {shipped!r}: update its header"
        text = text.replace(shipped, here)
    return text


def nginx_conf(tmp: Path) -> str:
    """The main file Debian's /etc/nginx/nginx.conf stands for, every path in `tmp`."""
    return f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    access_log {tmp}/access.log;
    include {tmp}/site.conf;
}}
"""


@dataclass
class Stack:
    https_port: int
    http_port: int
    context: ssl.SSLContext

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        source: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection(
            "127.0.0.1",
            self.https_port,
            timeout=30,
            context=self.context,
            source_address=(source, 0),
        )
        try:
            conn.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx = nginx_binary()
    tmp = tmp_path_factory.mktemp("nginx")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={HOST}",
            "-keyout",
            str(tmp / "key.pem"),
            "-out",
            str(tmp / "cert.pem"),
            "-addext",
            f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    # the app, configured by a settings file as in production
    settings = tmp / "village-points.env"
    settings.write_text(
        "\n".join(
            [
                "APP_ENV=production",
                f"SECRET_KEY={SECRET}",
                f"PUBLIC_BASE_URL=https://{HOST}",
                f"DATABASE_URL=sqlite:///{tmp}/village.sqlite3",
                f"UPLOAD_DIR={tmp}/uploads",
                "WECHAT_APPID=wx0123456789abcdef",
                "WECHAT_SECRET=not-a-real-secret",
                "TRUSTED_PROXIES=1",
                f"LOGIN_RATE_LIMIT={LIMIT} per hour",
                "",
            ]
        )
    )
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "VILLAGE_POINTS_ENV": str(settings)}
    migrated = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr

    app_port, http_port, https_port = free_port(), free_port(), free_port()
    app_log = tmp / "gunicorn.log"
    app = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{app_port}",
            "--workers",
            "1",
            "--access-logfile",
            str(tmp / "gunicorn-access.log"),
            "--error-logfile",
            str(app_log),
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        (tmp / "site.conf").write_text(site_for_test(tmp, http_port, https_port, app_port))
        (tmp / "nginx.conf").write_text(nginx_conf(tmp))
        # -e: not even the first lines before the configuration is read go to /var/log/nginx
        command = [
            nginx,
            "-p",
            f"{tmp}/",
            "-c",
            str(tmp / "nginx.conf"),
            "-e",
            str(tmp / "error.log"),
        ]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        server_log = tmp / "nginx.out"
        with server_log.open("wb") as out:
            server = subprocess.Popen(
                [*command, "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(https_port, server, server_log)
            wait_for_port(app_port, app, app_log)
            context = ssl.create_default_context(cafile=str(tmp / "cert.pem"))
            yield Stack(https_port, http_port, context)
        finally:
            stop(server, signal.SIGQUIT)  # nginx's graceful stop
    finally:
        stop(app)


def test_https_answers_through_nginx(stack: Stack) -> None:
    status, headers, body = stack.request("GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok", "database": "ok"})
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert headers["server"] == "nginx"  # server_tokens off: no version


def test_http_redirects_to_https(stack: Stack) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=30)
    try:
        conn.request("GET", "/b/some-board?month=2026-11", headers={"Host": HOST})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 301
    assert response.headers["Location"] == f"https://{HOST}/b/some-board?month=2026-11"


def login(stack: Stack, source: str, forged: str, n: int) -> int:
    """A wrong password for a new username each time: only the per-address limit counts."""
    status, _, _ = stack.request(
        "POST",
        "/api/v1/auth/login",
        json.dumps({"username": f"nobody-{source}-{n}", "password": "wrong-password"}).encode(),
        {"Content-Type": "application/json", "X-Forwarded-For": forged},
        source=source,
    )
    return status


def test_the_login_limit_counts_the_address_nginx_saw(stack: Stack) -> None:
    """127.0.0.2 forges a new X-Forwarded-For on every try and still meets the limit;
    127.0.0.3, forging 127.0.0.2's address, is counted as itself."""
    statuses = [login(stack, "127.0.0.2", f"203.0.113.{n}", n) for n in range(LIMIT + 2)]
    assert statuses == [401] * LIMIT + [429, 429], statuses
    assert login(stack, "127.0.0.3", "127.0.0.2", 0) == 401
    assert login(stack, "127.0.0.2", "127.0.0.3", 99) == 429


def test_a_body_over_the_limit_gets_413_from_nginx(stack: Stack) -> None:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", stack.https_port, timeout=30, context=stack.context
    )
    try:
        conn.putrequest("POST", "/api/v1/auth/refresh", skip_host=True)
        conn.putheader("Host", HOST)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(MAX_BODY + 1))
        conn.endheaders()  # no body sent: nginx answers from the header alone
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 413
    assert response.headers["Content-Type"] == "text/html"  # nginx's page, not the app's JSON
    assert b"<center>nginx</center>" in body

    # exactly MAX_CONTENT_LENGTH passes nginx and reaches the app, which reads it as JSON
    status, headers, body = stack.request(
        "POST", "/api/v1/auth/refresh", b" " * MAX_BODY, {"Content-Type": "application/json"}
    )
    assert headers["content-type"] == "application/json", (status, body[:200])
    assert 400 <= status < 500 and status != 413
    assert "error" in json.loads(body)


def static_link(stack: Stack, path: str, pattern: str) -> str:
    status, _, page = stack.request("GET", path)
    assert status == 200
    found = re.search(pattern, page.decode())
    assert found, page.decode()
    return found.group(1)


@pytest.mark.parametrize("name", ["css/public.css"])
def test_static_files_are_served_by_nginx_cached_and_gzipped(stack: Stack, name: str) -> None:
    link = static_link(stack, "/q/AbC123", r'href="(/static/css/public\.css\?v=[0-9a-f]{12})"')
    status, headers, body = stack.request("GET", link, headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "text/css"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert gzip.decompress(body) == (ROOT / "backend" / "static" / name).read_bytes()


def test_javascript_and_json_are_gzipped(stack: Stack) -> None:
    status, headers, body = stack.request(
        "GET", "/static/js/activity_display.js", headers={"Accept-Encoding": "gzip"}
    )
    assert (status, headers["content-encoding"]) == (200, "gzip")
    assert gzip.decompress(body) == (ROOT / "backend/static/js/activity_display.js").read_bytes()

    status, headers, body = stack.request(
        "GET", "/api/v1/openapi.json", headers={"Accept-Encoding": "gzip"}
    )
    assert (status, headers["content-encoding"]) == (200, "gzip")
    spec: dict[str, Any] = json.loads(gzip.decompress(body))
    assert spec["openapi"].startswith("3.")
    # the app's own answers are never cached as static files are
    assert "immutable" not in headers.get("cache-control", "")
