"""Request checks that hold for every endpoint, so no schema can forget them."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter
from werkzeug.wsgi import get_content_length

from .caller import current_actor
from .errors import CONTROL_CHARS, INVALID_TEXT, MALFORMED_JSON, APIError

_BAD_TEXT = re.compile("[" + CONTROL_CHARS + r"\ud800-\udfff]")
MAX_ID = 2**31 - 1  # PostgreSQL integer


class IdConverter(IntegerConverter):
    """`<int:id>` bounded to what a database id can be: a larger one is simply not found."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def _bad_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_BAD_TEXT.search(value))
    if isinstance(value, dict):
        return any(_bad_text(k) or _bad_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_text(v) for v in value)
    return False


def _refuse_malformed_json() -> None:
    """Every JSON body is parsed here first, by the app's provider (jsonio: too deep a body
    is malformed), and cached for the readers after. A body that is not JSON for any reason
    (bad syntax or encoding, nested past jsonio.MAX_DEPTH, a number of thousands of digits,
    which Python refuses to read as an int with a ValueError webargs does not expect) is a
    400 `malformed_json` here, before webargs parses it again with the standard json module
    and the text guard walks it: not a RecursionError's or a ValueError's 500."""
    if request.is_json and request.get_data(cache=True):  # an empty body is no body
        try:
            request.get_json()
        except BadRequest as exc:
            raise APIError(400, *MALFORMED_JSON) from exc


def _refuse_bad_text() -> None:
    values: list[Any] = list(request.args.values())
    if request.is_json:
        values.append(request.get_json(silent=True))
    if request.form:
        values.extend(request.form.values())
    if any(_bad_text(v) for v in values):
        raise APIError(422, *INVALID_TEXT)


class SizedBody:
    """WSGI middleware: give a body sent without Content-Length (chunked) its length.

    Werkzeug holds such a body (gunicorn passes it with wsgi.input_terminated) to
    MAX_CONTENT_LENGTH by cutting it off there, silently: a JSON body over the limit reads as
    malformed, a roster or a photo as a shorter one. Read here up to one byte past the limit
    and given the length read, a body over the limit is refused with 413 exactly like one
    that declared its size."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if (
            limit is not None
            and environ.get("wsgi.input_terminated")
            and get_content_length(environ) is None
        ):
            stream, chunks, size = environ["wsgi.input"], [], 0
            while size <= limit:
                chunk = stream.read(min(64 * 1024, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            environ["wsgi.input"] = io.BytesIO(b"".join(chunks))
            environ["CONTENT_LENGTH"] = str(size)
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # no longer chunked: it has a length
        return self.wsgi_app(environ, start_response)


def _require_login() -> None:
    """Check the bearer token of every API operation that declares it before anything else
    looks at the request: a caller without a valid token gets 401, never a 422 about a body
    it had no right to send. The operation's documented `security` is what is enforced."""
    view = current_app.view_functions.get(request.endpoint or "")
    apidoc = getattr(view, "_apidoc", None)
    if apidoc is None or request.method == "OPTIONS":
        return  # pages, the health check, the OpenAPI document itself
    security = apidoc.get("manual_doc", {}).get("security")
    if security is None or (security != [] and {} not in security):
        current_actor()  # else public, or a token is only one of the ways in (the view decides)


def register(app: Flask) -> None:
    app.url_map.converters["int"] = IdConverter
    app.before_request(_require_login)
    app.before_request(_refuse_malformed_json)
    app.before_request(_refuse_bad_text)
    app.wsgi_app = SizedBody(app.wsgi_app, app)  # type: ignore[method-assign]
