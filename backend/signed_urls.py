"""Short-lived signed links to images (a pickup code, a member card, a proof photo).

The mini-program's `<image>` cannot send an Authorization header, so a picture only the
caller may see is fetched by a link that carries its own proof: `?exp=…&sig=…`, an HMAC over
what the link shows (the kind of image, its id, the size variant) and when it stops working.
A link is handed out only after the same scope checks the image route makes with a bearer
token, so it opens nothing its holder could not already see; it is bound to one image and one
size, and it expires (SIGNED_URL_SECONDS) because links leak: a screenshot, a forwarded chat.

The key is derived from SECRET_KEY for this one use, so a signature is never valid as
anything else (a JWT, a QR code)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, request

from .clock import now
from .errors import APIError

PURPOSE = b"village-points signed image link v1"


@dataclass(frozen=True)
class SignedLink:
    """A signed link to one image, and when it stops working (SignedLinkOut shows it)."""

    url: str
    expires_at: datetime


# Either the bearer token or a signed link's query: an empty requirement allows the latter.
SIGNED_SECURITY: list[dict[str, Any]] = [{"bearerAuth": []}, {}]


def _key() -> bytes:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, PURPOSE, hashlib.sha256).digest()


def _signature(kind: str, resource_id: int, variant: str, expires: int) -> str:
    message = f"{kind}\n{resource_id}\n{variant}\n{expires}".encode()
    digest = hmac.new(_key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_link(
    path: str, kind: str, resource_id: int, variant: str = "", extra: dict[str, Any] | None = None
) -> SignedLink:
    """A link to `path` (under PUBLIC_BASE_URL), signed for this image."""
    expires = int(now().timestamp()) + int(current_app.config["SIGNED_URL_SECONDS"])
    query = dict(extra or {})
    query.update(exp=expires, sig=_signature(kind, resource_id, variant, expires))
    base = current_app.config["PUBLIC_BASE_URL"]
    return SignedLink(
        url=f"{base}{path}?{urlencode(query)}", expires_at=datetime.fromtimestamp(expires, UTC)
    )


def is_signed_request() -> bool:
    return "sig" in request.args or "exp" in request.args


def check_signature(kind: str, resource_id: int, variant: str = "") -> None:
    """Accept this request's `exp` and `sig` for this image, or refuse with 403
    `link_invalid` (tampered, another image, another size) or `link_expired`."""
    sig = request.args.get("sig", "")
    raw_exp = request.args.get("exp", "")
    # isdigit() alone takes "²" and other digits int() refuses
    if not (raw_exp.isascii() and raw_exp.isdigit()) or len(raw_exp) > 12 or not sig:
        raise LinkInvalid()
    expected = _signature(kind, resource_id, variant, int(raw_exp))
    # Compared as bytes: compare_digest refuses text that is not ASCII, which a link may hold.
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        raise LinkInvalid()
    expires = int(raw_exp)
    if now().timestamp() >= expires:
        raise APIError(403, "link_expired", "图片链接已过期，请刷新页面")


def LinkInvalid() -> APIError:  # noqa: N802 - raised like an exception class
    return APIError(403, "link_invalid", "图片链接无效")


def mark_signed(response: Response) -> Response:
    """What a signed answer says to caches and browsers: the phone may keep it for its own
    user until the link expires, no shared cache may, and the link (which works without
    login) is never sent on as a Referer."""
    left = max(0, int(request.args.get("exp", "0")) - int(now().timestamp()))
    response.headers["Cache-Control"] = f"private, max-age={left}"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
