"""Security headers, set in one place: `nosniff` on every response, and on every HTML page
(the QR landing page, public plates and boards, the activity display, the API docs) a
Content-Security-Policy, a Referrer-Policy, no framing and, unless the page chose its own,
no caching.

The policy allows scripts, styles and requests from this server only and nothing inline:
every page's script and style is a file under backend/static/. The pages load nothing from
elsewhere (no CDN: county networks are often cut off from the internet), so nothing else is
allowed. Their addresses carry tokens (/q/, /h/, /b/), so no Referer is ever sent from them."""

from __future__ import annotations

from flask import Response

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",  # the activity display fetches its code from the API
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


def secure_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        # The console sets its own (its forms post back); every other page gets this one.
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers["Referrer-Policy"] = "no-referrer"
        # frame-ancestors for browsers that know CSP; this for the older in-app ones
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
    return response
