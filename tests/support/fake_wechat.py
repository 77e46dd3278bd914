"""A real HTTP server speaking WeChat's ``GET /sns/jscode2session`` protocol, for tests.

Behaviour by ``js_code``:

* ``ok-<x>``   -> success, ``openid-<x>``, a random session_key; each code works ONCE
  (a second use answers errcode 40163). ``fake.unionids[x] = "..."`` adds a unionid.
* ``bad``      -> 40029 invalid code (so does any unknown code)
* ``blocked``  -> 40226 high-risk user
* ``busy``     -> 45011 frequency limit
* ``sys``      -> -1 system busy
* ``hang``     -> waits ``hang_seconds`` (default 10), then answers success ``openid-hang``;
  ``stop()`` releases waiting handlers at once
* ``garbage``  -> HTTP 200 with a body that is not JSON
* ``boom``     -> HTTP 500
* ``noopenid`` -> HTTP 200 JSON with a session_key but no openid

A wrong appid answers 40013, a wrong secret 40125, a wrong grant_type 40002 and a missing
js_code 41008, as WeChat does. Every query received is appended to ``requests`` (a dict per
request) and every session_key handed out to ``issued_session_keys``. Setting
``errcode_zero_on_success`` adds ``"errcode": 0, "errmsg": "ok"`` to success bodies.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JSCODE2SESSION_PATH = "/sns/jscode2session"


class FakeWeChat:
    def __init__(self, appid: str = "wx-test-appid", secret: str = "test-app-secret") -> None:
        self.appid = appid
        self.secret = secret
        self.hang_seconds: float = 10.0
        self.errcode_zero_on_success = False
        self.unionids: dict[str, str] = {}
        self.requests: list[dict[str, str]] = []
        self.issued_session_keys: list[str] = []
        self._used_codes: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeWeChat:
        if self._server is not None:
            raise RuntimeError("FakeWeChat already started")
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-wechat",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # release handlers sleeping in "hang"
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeWeChat:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeWeChat is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- protocol -------------------------------------------------------------------------

    def _answer(self, query: dict[str, str]) -> tuple[int, bytes] | None:
        """(HTTP status, body) for one request, or None to drop the connection."""
        with self._lock:
            self.requests.append(dict(query))

        if query.get("appid") != self.appid:
            return _error(40013, "invalid appid")
        if query.get("secret") != self.secret:
            return _error(40125, "invalid appsecret")
        if query.get("grant_type") != "authorization_code":
            return _error(40002, "invalid grant_type")
        code = query.get("js_code", "")
        if not code:
            return _error(41008, "missing code")

        if code == "bad":
            return _error(40029, "invalid code")
        if code == "blocked":
            return _error(40226, "high risk user")
        if code == "busy":
            return _error(45011, "api minute-quota reach limit mustslower retry next minute")
        if code == "sys":
            return _error(-1, "system error")
        if code == "garbage":
            return 200, b"<html><body>502 Bad Gateway</body></html>"
        if code == "boom":
            return 500, b"Internal Server Error"
        if code == "noopenid":
            return 200, json.dumps({"session_key": self._new_session_key()}).encode()
        if code == "hang":
            if self._stopping.wait(self.hang_seconds):
                return None
            return self._success("hang")
        if code.startswith("ok-") and len(code) > 3:
            with self._lock:
                if code in self._used_codes:
                    return _error(40163, "code been used")
                self._used_codes.add(code)
            return self._success(code[3:])
        return _error(40029, "invalid code")

    def _success(self, x: str) -> tuple[int, bytes]:
        body: dict[str, Any] = {"session_key": self._new_session_key(), "openid": f"openid-{x}"}
        if x in self.unionids:
            body["unionid"] = self.unionids[x]
        if self.errcode_zero_on_success:
            body.update(errcode=0, errmsg="ok")
        return 200, json.dumps(body).encode()

    def _new_session_key(self) -> str:
        key = secrets.token_urlsafe(18)
        with self._lock:
            self.issued_session_keys.append(key)
        return key


def _error(errcode: int, errmsg: str) -> tuple[int, bytes]:
    rid = secrets.token_hex(12)
    body = {"errcode": errcode, "errmsg": f"{errmsg}, rid: {rid}"}
    return 200, json.dumps(body).encode()


def _make_handler(fake: FakeWeChat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # A client that connects and never sends a request must not pin a thread forever.
        timeout = 15

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            url = urlsplit(self.path)
            if url.path != JSCODE2SESSION_PATH:
                self._send(404, b"not found")
                return
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            answer = fake._answer(query)
            if answer is None:
                self.close_connection = True
                return
            self._send(*answer)

        def _send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                # WeChat really answers jscode2session with text/plain.
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. timed out); nothing to do

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
