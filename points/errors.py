"""Domain errors. Each carries a stable machine code, a Chinese message a villager can read,
and the HTTP status the entry point should answer with, so blueprints map them in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 422
    code = "rule_violation"
    message = "操作不符合规则"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}
        super().__init__(self.message)


class NotFound(DomainError):
    # Also what another village's object answers: we never confirm it exists.
    status = 404
    code = "not_found"
    message = "未找到该记录"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    message = "您没有权限进行此操作"


class NotBound(Forbidden):
    """A villager's account not yet bound to a household on the roster, on any operation
    that needs one: the same 403 and code everywhere."""

    code = "not_bound"
    message = "请先绑定村民身份"


class WrongVillage(Forbidden):
    """An object of another village that the caller may know of (a scanned code, a notice on
    the board, a card at the counter) but may not act on: 403. An object they may not know
    of answers NotFound instead."""

    code = "wrong_village"
    message = "这不是本村的事项，不能办理"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    message = "与现有记录冲突"


class Invalid(DomainError):
    status = 422
    code = "validation_error"
    message = "提交的内容不符合要求"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"
    message = "请先登录"
