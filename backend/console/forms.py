"""How a console form writes: CSRF, an idempotency key, and a refusal shown beside the form.

Every form that writes carries hidden `csrf_token` and `idempotency_key` fields (the
`form_keys()` macro of console/macros.html). A view that writes returns a redirect (Post/
Redirect/Get): the idempotency key's row keeps where it sent the browser, so a form submitted
twice (a double click, a reload, a phone resending on a weak signal) changes nothing the second
time and lands on the same page. A refusal from the service (a DomainError, an APIError)
rolls everything back and renders the page again with its Chinese message beside the form,
which keeps what was typed (templates read `request.form`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, redirect, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from points.errors import DomainError
from points.models import IdempotencyKey

from ..errors import APIError
from ..extensions import db
from ..idempotency import hash_of_request
from . import session

KEY_FIELD = "idempotency_key"
KEY_PREFIX = "console:"  # apart from the API's keys of the same user
# Form fields that ride along with every form and are not what it asks to change.
NOT_CONTENT = frozenset({KEY_FIELD, session.CSRF_FIELD})


def new_key() -> str:
    return uuid.uuid4().hex


class Refusal:
    """What the service refused, for the template: its stable code and Chinese message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def refusal_of(exc: Exception) -> Refusal:
    if isinstance(exc, DomainError):
        return Refusal(exc.status, exc.code, exc.message)
    assert isinstance(exc, APIError)
    return Refusal(exc.status, exc.code, exc.message)


def _find(user_id: int, key: str) -> IdempotencyKey | None:
    return db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )


def _replay(row: IdempotencyKey, request_hash: str) -> Response:
    if row.request_hash != request_hash:
        # A key is drawn per form: the same key with other contents is no resend.
        raise APIError(409, "idempotency_conflict", "同一个请求编号不能用于不同的内容")
    if row.status_code is None or not isinstance(row.response, dict):
        raise APIError(409, "idempotency_in_progress", "相同的请求正在处理，请稍后再试")
    return redirect(row.response["location"], code=303)


def writes(on_refusal: Callable[..., Any]) -> Callable[[Callable[..., Response]], Any]:
    """Wrap a console view that writes (without committing) and returns a redirect.

    `on_refusal(**view_kwargs)` renders the page again when the service refuses; it is
    answered with the refusal's status."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            session.check_csrf()
            actor = session.load()
            key = request.form.get(KEY_FIELD, "")
            row = None
            if key:
                if len(key) > 100:
                    raise APIError(
                        400, "invalid_idempotency_key", "请求编号长度应为 1 到 100 个字符"
                    )
                stored_key, request_hash = KEY_PREFIX + key, hash_of_request(NOT_CONTENT)
                existing = _find(actor.user_id, stored_key)
                if existing is not None:
                    return _replay(existing, request_hash)
                row = IdempotencyKey(
                    user_id=actor.user_id,
                    key=stored_key,
                    endpoint=request.path[:200],
                    request_hash=request_hash,
                )
                db.session.add(row)
                try:
                    db.session.flush()
                except IntegrityError:
                    db.session.rollback()  # the same form, sent twice at once: the first wins
                    existing = _find(actor.user_id, stored_key)
                    if existing is None:
                        raise
                    return _replay(existing, request_hash)
            try:
                response = view(**kwargs)
            except (DomainError, APIError) as exc:
                db.session.rollback()
                g.refusal = refusal_of(exc)
                return on_refusal(**kwargs), g.refusal.status
            if row is not None:
                row.status_code = response.status_code
                row.response = {"location": response.location or request.path}
            db.session.commit()
            return response

        return wrapper

    return decorate
