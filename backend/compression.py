"""Fewer bytes for JSON on a village network: an ETag on every JSON answer to a GET (304 when
the client already holds it) and gzip for the larger ones.

A rule catalog or a shelf is some 20 KB of JSON that changes a few times a month; a phone
that sends back the ETag it was given gets an empty 304, and one that accepts gzip gets about
3 KB. A small hook rather than Flask-Compress: the API answers nothing but JSON and files,
only JSON is worth compressing (images and PDFs are compressed already), and the ETag must be
made from the uncompressed body before compression, which a second hook could not see.

Files (send_file, downloads), streamed answers and anything already encoded are left alone.
The ETag is weak (W/"…"): it names the JSON, which the gzip and the plain answer both carry."""

from __future__ import annotations

import gzip
import hashlib

from flask import Request, Response, request

MIN_GZIP_BYTES = 1024  # below this, gzip's own header and a round trip's cost outweigh it
GZIP_LEVEL = 6  # zlib's default: most of level 9's saving for a fraction of its time


def _accepts_gzip(req: Request) -> bool:
    return req.accept_encodings["gzip"] > 0


def _is_json(response: Response) -> bool:
    return (
        response.mimetype == "application/json"
        and not response.direct_passthrough
        and not response.is_streamed
        and "Content-Encoding" not in response.headers
    )


def _vary(response: Response, header: str) -> None:
    present = {v.strip().lower() for v in response.headers.get("Vary", "").split(",") if v}
    if header.lower() not in present:
        response.vary.add(header)


def tag_and_compress(response: Response) -> Response:
    if not _is_json(response):
        return response
    body = response.get_data()
    if request.method in ("GET", "HEAD") and response.status_code == 200:
        response.set_etag(hashlib.sha256(body).hexdigest()[:32], weak=True)
        # Kept by the caller's phone only, and asked about again on every use (If-None-Match).
        response.headers.setdefault("Cache-Control", "private, no-cache")
        _vary(response, "Authorization")
        response.make_conditional(request)
        if response.status_code == 304:
            return response
    _vary(response, "Accept-Encoding")
    if len(body) < MIN_GZIP_BYTES or not _accepts_gzip(request):
        return response
    response.set_data(gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    return response
