"""Binding a WeChat user to a villager on the roster (绑定): by a cadre's single-use code, or
by name and phone matched within one village."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import audit
from .db import rowcount
from .errors import Conflict, DomainError, Forbidden, NotFound
from .models import BindingToken, Household, User, Villager, utcnow
from .scope import VILLAGER, Actor, authorize, get_visible
from .tokens import TokenCodec, TokenType, scanned_token


class BindingUsed(DomainError):
    status = 409
    code = "binding_token_used"
    message = "该绑定二维码已经使用过，请向村干部索取新的二维码"


class NoRosterMatch(DomainError):
    status = 422
    code = "roster_no_match"
    message = "本村花名册中没有找到姓名和手机号都一致的村民，请联系村干部登记或扫码绑定"


def create_binding_token(
    session: Session,
    actor: Actor,
    codec: TokenCodec,
    villager_id: int,
    ttl: timedelta,
) -> tuple[str, datetime]:
    villager = get_visible(session, actor, Villager, villager_id)
    authorize(actor, "binding_token.create")
    expires_at = utcnow() + ttl
    row = BindingToken(villager_id=villager.id, created_by=actor.user_id, expires_at=expires_at)
    session.add(row)
    session.flush()
    household = villager.household
    audit.record(session, actor, "binding_token.create", row, village_id=household.village_id)
    token = codec.encode(TokenType.BINDING, (row.id,), expires_at)
    return token, expires_at


def _bind(session: Session, user: User, villager: Villager) -> Villager:
    if user.role != VILLAGER:
        raise Forbidden("工作人员账号不能绑定村民")
    if user.villager_id is not None:
        if user.villager_id == villager.id:
            return villager
        raise Conflict("您的微信已绑定其他村民", code="already_bound")
    # A staff account linked to the same villager (a cadre's own entry) is no binding.
    if session.scalar(
        select(User.id).where(User.villager_id == villager.id, User.role == VILLAGER)
    ):
        raise Conflict("该村民已被其他微信绑定，请联系村干部", code="villager_already_bound")
    user.villager_id = villager.id
    user.name = villager.name
    session.flush()  # the unique index on users.villager_id settles a race between two phones
    return villager


def bind_with_token(session: Session, user: User, codec: TokenCodec, token: str) -> Villager:
    decoded = codec.decode(scanned_token(token), TokenType.BINDING)
    (binding_id,) = decoded.fields[:1] or (0,)
    row = session.get(BindingToken, binding_id)
    if row is None:
        raise NotFound()
    villager = session.get(Villager, row.villager_id)
    if villager is None or not villager.active:
        raise NotFound("该村民已不在花名册中，请联系村干部", code="villager_inactive")
    # Spend the code with a conditional update: two phones scanning it at once bind one.
    spent = rowcount(
        session.execute(
            update(BindingToken)
            .where(BindingToken.id == row.id, BindingToken.used_at.is_(None))
            .values(used_at=utcnow(), used_by=user.id)
        )
    )
    if spent != 1:
        raise BindingUsed()
    return _bind(session, user, villager)


class NoCountyRosterMatch(NoRosterMatch):
    """Binding without a village: one answer whether the pair is unknown, matches more than
    one villager or names a villager already bound, so that trying names and phones tells
    nobody who is on the roster, nor whose WeChat is bound."""

    message = "花名册中没有找到可以绑定的姓名和手机号，请核对，或联系村干部登记、扫码绑定"


def bind_with_phone(
    session: Session, user: User, village_id: int | None, name: str, phone: str
) -> Villager:
    """Bind by name and phone: within a village, or (`village_id` None: a villager not yet
    bound sees no village to choose) within the whole county, when exactly one active
    villager matches and no other WeChat is bound to them."""
    query = (
        select(Villager)
        .join(Household)
        .where(
            Villager.name == name.strip(),
            Villager.phone == phone.strip(),
            Villager.active.is_(True),
        )
    )
    if village_id is not None:
        query = query.where(Household.village_id == village_id)
    # What the account is decides first, before the roster is read: a staff account or a
    # WeChat already bound gets its answer whether the pair is on the roster or not.
    if user.role != VILLAGER:
        raise Forbidden("工作人员账号不能绑定村民")
    no_match = NoRosterMatch if village_id is not None else NoCountyRosterMatch
    matches = session.scalars(query.limit(2)).all()
    if user.villager_id is not None:
        if len(matches) == 1 and matches[0].id == user.villager_id:
            return matches[0]
        raise Conflict("您的微信已绑定其他村民", code="already_bound")
    # Unknown, ambiguous (two members with one name and one phone cannot be told apart: a
    # cadre binds them by code) or bound to another WeChat: one answer, so that trying
    # names and phones tells nobody who is on the roster, nor whose WeChat is bound.
    if len(matches) != 1 or session.scalar(
        select(User.id).where(User.villager_id == matches[0].id, User.role == VILLAGER)
    ):
        raise no_match()
    return _bind(session, user, matches[0])
