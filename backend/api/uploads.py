"""Photo uploads (证明照片) for claims and awards."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request, send_file
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from points import uploads as service

from ..auth import current_actor
from ..errors import APIError
from ..extensions import db
from ..openapi import BINARY, raises
from ..ratelimits import by_user, limited

blp = Blueprint("uploads", __name__, description="照片上传 Photo uploads")


class UploadOut(Schema):
    id = fields.Integer()
    url = fields.String(metadata={"description": "GET it with the same bearer token"})
    width = fields.Integer()
    height = fields.Integer()
    size = fields.Integer(metadata={"description": "bytes of the stored JPEG"})


def _upload_dir() -> str:
    return current_app.config["UPLOAD_DIR"]


@blp.route("/uploads", methods=["POST"])
@raises((400, "file_required"), (403, "not_bound"), (413, "file_too_large"),
        (422, "image_too_large"), (422, "not_a_photo"))
@limited(blp, "60 per hour", by_user)
@blp.doc(requestBody={
    "required": True,
    "description": "One photo (JPEG, PNG or WEBP, at most 5 MB) as multipart field `file`. "
                   "It is checked by its content, turned upright, re-encoded as JPEG without "
                   "EXIF (GPS position included) and scaled to at most 2048 px. Its size "
                   "is read from the header before any pixel is decoded: at most 20 "
                   "megapixels (64 for a baseline JPEG, 12 for WEBP), else 422 "
                   "`image_too_large`. Only the first frame of an animated image is kept.",
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}},
        }},
    },
})
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
    upload = service.store_photo(db.session, actor, data, _upload_dir())
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        service.photo_path(_upload_dir(), upload).unlink(missing_ok=True)
        raise
    return {"id": upload.id, "url": f"/api/v1/uploads/{upload.id}", "width": upload.width,
            "height": upload.height, "size": upload.size}


@blp.route("/uploads/<int:upload_id>", methods=["GET"])
@blp.response(200, BINARY, content_type="image/jpeg")
def get_photo(upload_id: int) -> Response:
    """The stored JPEG, for its uploader and the staff of its village (others: 404)."""
    _, path = service.open_photo(db.session, current_actor(), upload_id, _upload_dir())
    response = send_file(path, mimetype="image/jpeg", max_age=3600, conditional=True)
    # send_file says "public"; a proof photo must never sit in a shared cache.
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Vary"] = "Authorization"
    return response
