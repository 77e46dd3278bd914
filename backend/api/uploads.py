"""Photo uploads (证明照片) for claims and awards."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from points import uploads as service

from ..caller import current_actor
from ..downloads import photo_variant, send_photo, upload_dir
from ..errors import APIError
from ..extensions import db
from ..openapi import BINARY, raises
from ..ratelimits import by_user, limited
from ..schemas.common import SignedLinkOut
from ..schemas.uploads import PhotoArgs, PhotoGetArgs, UploadOut
from ..signed_urls import (
    SIGNED_SECURITY,
    SignedLink,
    check_signature,
    is_signed_request,
    mark_signed,
    signed_link,
)

blp = Blueprint("uploads", __name__, description="照片上传 Photo uploads")


@blp.route("/uploads", methods=["POST"])
@raises(
    (400, "file_required"),
    (403, "not_bound"),
    (413, "file_too_large"),
    (422, "image_too_large"),
    (422, "not_a_photo"),
)
@limited(blp, "60 per hour", by_user)
@blp.doc(
    requestBody={
        "required": True,
        "description": "One photo (JPEG, PNG or WEBP, at most 5 MB) as multipart field `file`. "
        "It is checked by its content, turned upright, re-encoded as JPEG without "
        "EXIF (GPS position included) and scaled to at most 2048 px. Its size "
        "is read from the header before any pixel is decoded: at most 20 "
        "megapixels (64 for a baseline JPEG, 12 for WEBP), else 422 "
        "`image_too_large`. Only the first frame of an animated image is kept.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
)
@blp.response(201, UploadOut)
def upload_photo() -> dict[str, Any]:
    """Upload a photo to prove a claim; pass its id in the claim's `evidence`. Refusals:
    `file_required` (400), `not_bound` (403), `file_too_large` (413), `not_a_photo` and
    `image_too_large` (422), rate limited per user (429)."""
    actor = current_actor()
    file = request.files.get("file")
    data = file.read() if file is not None else b""
    if not data:
        raise APIError(400, "file_required", "请选择要上传的照片（表单字段 file）")
    upload = service.store_photo(db.session, actor, data, upload_dir())
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        service.photo_path(upload_dir(), upload).unlink(missing_ok=True)
        raise
    return {
        "id": upload.id,
        "url": f"/api/v1/uploads/{upload.id}",
        "width": upload.width,
        "height": upload.height,
        "size": upload.size,
        "signed_url": _link(upload.id, None).url,
    }


PHOTO = "upload"  # the kind of image a photo's signed link names


def _link(upload_id: int, width: int | None) -> SignedLink:
    return signed_link(
        f"/api/v1/uploads/{upload_id}",
        PHOTO,
        upload_id,
        photo_variant(width),
        extra={"w": width} if width else None,
    )


@blp.route("/uploads/<int:upload_id>/link", methods=["GET"])
@blp.arguments(PhotoArgs, location="query")
@blp.response(200, SignedLinkOut)
def photo_link(args: dict[str, Any], upload_id: int) -> SignedLink:
    """A signed link to the photo (or its `w` copy) that the mini-program's `<image>` opens
    without a token, for whoever may see the photo (its uploader, the staff of its village;
    others 404). It works for SIGNED_URL_SECONDS and for this photo and size only."""
    service.open_photo(db.session, current_actor(), upload_id, upload_dir())
    return _link(upload_id, args.get("w"))


@blp.route("/uploads/<int:upload_id>", methods=["GET"])
@raises((403, "link_expired"), (403, "link_invalid"))
@blp.doc(security=SIGNED_SECURITY)
@blp.arguments(PhotoGetArgs, location="query")
@blp.response(200, BINARY, content_type="image/jpeg")
@blp.doc(
    responses={
        "200": {
            "description": "the photo; a `w` copy as WebP when Accept names image/webp",
            "content": {"image/jpeg": {"schema": BINARY}, "image/webp": {"schema": BINARY}},
        }
    }
)
@blp.alt_response(304, description="not modified (If-None-Match)")
def get_photo(args: dict[str, Any], upload_id: int) -> Response:
    """The stored JPEG, or with `w` a smaller copy (JPEG, or WebP when the client's Accept
    names image/webp), for its uploader and the staff of its village (others: 404), by the
    bearer token or by a signed link (GET /uploads/{id}/link). `w` outside 160, 320, 640,
    1280 is 422; a signed link is 403 `link_expired` once expired and `link_invalid` if
    altered or made for another photo or size."""
    width = args.get("w")
    if is_signed_request():
        check_signature(PHOTO, upload_id, photo_variant(width))
        upload, path = service.open_signed_photo(db.session, upload_id, upload_dir())
    else:
        upload, path = service.open_photo(db.session, current_actor(), upload_id, upload_dir())
    response = send_photo(upload, path, width)
    if is_signed_request():
        mark_signed(response)
    return response
