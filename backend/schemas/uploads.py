"""Schemas of photo uploads (证明照片): what an upload answers and how a photo is asked for."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from points import uploads as service

from ..openapi import QueryArgs
from .common import SignatureArgs


class UploadOut(Schema):
    id = fields.Integer()
    url = fields.String(metadata={"description": "GET it with the same bearer token"})
    signed_url = fields.String(
        metadata={
            "description": "the same photo by a link that needs no token (for <image>), valid "
            "SIGNED_URL_SECONDS; ask GET /uploads/{id}/link for a fresh one"
        }
    )
    width = fields.Integer()
    height = fields.Integer()
    size = fields.Integer(metadata={"description": "bytes of the stored JPEG"})


class PhotoArgs(QueryArgs):
    w = fields.Integer(
        validate=validate.OneOf(service.THUMBNAIL_WIDTHS),
        metadata={
            "description": "a smaller copy this many px wide (never wider than the photo); "
            "without it the stored photo"
        },
    )


class PhotoGetArgs(PhotoArgs, SignatureArgs):
    pass
