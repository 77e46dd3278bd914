"""Files the API hands out (settlements, catalogs, printed boards): one way to name them;
the proof photos, one way to send them (the API and the console); and the spreadsheets it
takes in (rosters, opening balances): one way to read them.

A file's name is often made of names people typed (a shop's, a village's), and the browser
or WeChat saves the file under it: a `/` or `\\` could climb out of the download folder, a
quote or a control character could end the header early. Every Content-Disposition is
written here, from a name made safe by `safe_filename`."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

from flask import Response, current_app, request, send_file

from points import uploads as photos
from points.models import Upload

from .errors import APIError

DEFAULT_NAME = "download"
MAX_CHARS = 120
# path separators, the characters Windows refuses in a name, quotes and `;` (which ends a
# header parameter); replaced, so that "清水村/超市" stays readable as "清水村_超市"
_UNSAFE = re.compile(r"[\\/:*?\"<>|'`;]")
_SPACES = re.compile(r"\s+")
_REPEATS = re.compile(r"_{2,}")


def safe_filename(name: str, fallback: str = DEFAULT_NAME) -> str:
    """`name` without path separators, control or invisible characters, quotes, leading
    dots or spaces; Chinese and other letters are kept. `fallback` if nothing is left
    ("" for none)."""
    kept = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    kept = _REPEATS.sub("_", _UNSAFE.sub("_", _SPACES.sub(" ", kept)))
    kept = kept.strip(" ._")[:MAX_CHARS].strip(" ._")
    if kept or not fallback:
        return kept
    return safe_filename(fallback, fallback="") or DEFAULT_NAME


def content_disposition(
    filename: str, *, ascii_name: str | None = None, inline: bool = False
) -> str:
    """The header for a file named `filename` (may be Chinese: sent as RFC 5987
    `filename*`), with `ascii_name` (else the ASCII part of `filename`) for clients that
    read only `filename`."""
    name = safe_filename(filename)
    kind = "inline" if inline else "attachment"
    return (
        f'{kind}; filename="{_ascii(ascii_name or name)}"; '
        f"filename*=UTF-8''{quote(name, safe='')}"
    )


def _ascii(name: str) -> str:
    stem, dot, extension = safe_filename(name).rpartition(".")
    if not dot:
        stem, extension = extension, ""
    stem = safe_filename(stem.encode("ascii", "ignore").decode(), fallback="")
    if not any(ch.isalnum() for ch in stem):
        stem = DEFAULT_NAME
    extension = extension.encode("ascii", "ignore").decode()
    return f"{stem}.{extension}" if extension.isalnum() else stem


def download(
    data: bytes,
    mimetype: str,
    filename: str,
    *,
    ascii_name: str | None = None,
    inline: bool = False,
    cache_control: str | None = None,
) -> Response:
    """A response carrying a file, its name made safe."""
    headers = {
        "Content-Disposition": content_disposition(filename, ascii_name=ascii_name, inline=inline)
    }
    if cache_control:
        headers["Cache-Control"] = cache_control
    return Response(data, mimetype=mimetype, headers=headers)


def uploaded_sheet(default_name: str, refusal: str) -> tuple[str, bytes]:
    """The spreadsheet (CSV or XLSX) of an upload: the multipart field `file`, or the whole
    body (then an XLSX content type names it `default_name`, since the reader tells the
    formats apart by name). Nothing sent: 400 `file_required` with the `refusal` message."""
    upload = request.files.get("file")
    if upload is not None:
        filename, data = upload.filename or "", upload.read()
    else:
        filename, data = "", request.get_data()
        if "spreadsheetml" in (request.content_type or ""):
            filename = default_name
    if not data:
        raise APIError(400, "file_required", refusal)
    return filename, data


def upload_dir() -> str:
    """Where the proof photos are kept (UPLOAD_DIR)."""
    return str(current_app.config["UPLOAD_DIR"])


def photo_variant(width: int | None) -> str:
    """The name of a photo's size in its ETag and its signed link: `w320`, or "" whole."""
    return f"w{width}" if width else ""


def _photo_format() -> str:
    # WebP is a third smaller than JPEG at the same look; WeChat names image/webp when it can
    # show it; */* alone is no promise that a client decodes WebP, and anything else gets JPEG.
    named = any(
        value == "image/webp" and quality > 0 for value, quality in request.accept_mimetypes
    )
    return "webp" if named else "jpeg"


def send_photo(
    upload: Upload, path: Path, width: int | None, credential: str = "Authorization"
) -> Response:
    """A proof photo the caller may see (`path`, from points.uploads.open_photo), or its
    `width` copy (WebP when the client's Accept names it), kept by no shared cache; the
    answer varies with the request header that says who is asking (`credential`)."""
    mimetype = "image/jpeg"
    if width:
        fmt = _photo_format()
        path = photos.thumbnail_path(upload_dir(), upload, width, fmt)
        mimetype = photos.THUMBNAIL_FORMATS[fmt][2]
    response = send_file(
        path,
        mimetype=mimetype,
        max_age=3600,
        conditional=True,
        etag=f"{upload.sha256[:32]}-{photo_variant(width) or 'full'}-{mimetype.rsplit('/', 1)[1]}",
    )
    # send_file says "public"; a proof photo must never sit in a shared cache.
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Vary"] = f"{credential}, Accept" if width else credential
    return response
