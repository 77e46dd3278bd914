"""`Idempotency-Key` for writes a client may retry (docs/DESIGN.md, The ledger).

The key row is inserted in the same transaction as the write it guards, before the write:
a concurrent retry blocks on the unique index until the first commits, then replays its
answer. An error answer is not kept (the write rolled back), so a retry runs again."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from points.models import IdempotencyKey

from .caller import current_actor
from .errors import APIError
from .extensions import db

HEADER = "Idempotency-Key"
DOC = {
    "parameters": [
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            "schema": {"type": "string", "maxLength": 100},
            "description": "A retry with the same key and body returns the first answer; the same "
            "key with another body is 409 idempotency_conflict.",
        }
    ],
    "x-raises": {
        "400 invalid_idempotency_key": "请求编号长度应为 1 到 100 个字符",
        "409 idempotency_conflict": "同一个请求编号不能用于不同的内容",
        "409 idempotency_in_progress": "相同的请求正在处理，请稍后再试",
    },
}


def hash_of_request(skip: frozenset[str] = frozenset()) -> str:
    """What a retry must repeat to be answered as the first: method, path and body. `skip`
    names form fields that are not the request's content (the console's key and token)."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data())
    # A multipart body is parsed before the view runs (the text guard reads the form), and
    # then get_data() is empty: its fields and files are hashed instead.
    for name, value in sorted(request.form.items(multi=True)):
        if name not in skip:
            digest.update(f"\n{name}={value}".encode())
    for name, upload in sorted(request.files.items(multi=True), key=lambda f: f[0]):
        digest.update(f"\n{name}:{upload.filename}:".encode())
        digest.update(upload.stream.read())
        upload.stream.seek(0)
    return digest.hexdigest()


def _replay(row: IdempotencyKey, request_hash: str) -> Response:
    if row.request_hash != request_hash:
        raise APIError(
            409,
            "idempotency_conflict",
            "同一个请求编号不能用于不同的内容",
            details={"key": row.key},
        )
    if row.status_code is None:
        raise APIError(409, "idempotency_in_progress", "相同的请求正在处理，请稍后再试")
    response = jsonify(row.response)
    response.status_code = row.status_code
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _find(user_id: int, key: str) -> IdempotencyKey | None:
    return db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )


def idempotent(view: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap a view that writes without committing: this commits, once, with its answer."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            response = view(*args, **kwargs)
            db.session.commit()
            return response
        if not 0 < len(key) <= 100:
            raise APIError(400, "invalid_idempotency_key", "请求编号长度应为 1 到 100 个字符")
        user_id, request_hash = current_actor().user_id, hash_of_request()
        existing = _find(user_id, key)
        if existing is not None:
            return _replay(existing, request_hash)
        row = IdempotencyKey(
            user_id=user_id, key=key, endpoint=request.path[:200], request_hash=request_hash
        )
        db.session.add(row)
        try:
            db.session.flush()
        except IntegrityError:
            # A concurrent request with this key committed first: answer as it did.
            db.session.rollback()
            existing = _find(user_id, key)
            if existing is None:
                raise
            return _replay(existing, request_hash)
        response = view(*args, **kwargs)
        row.status_code, row.response = response.status_code, response.get_json()
        db.session.commit()
        return response

    return wrapper
