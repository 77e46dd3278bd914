"""Member cards (积分卡) for villagers without phones: what a card's QR carries, which card
is the valid one, the cards of a village to print, and the reissue of a lost card (挂失补办).

A card's QR carries the villager's id and the card's version (`Villager.card_serial`). A
reissue raises the version in one conditional UPDATE, so every earlier card of the villager
is refused (`card_revoked`) wherever a card is scanned: proxy check-in and the supermarket
counter. Cards printed before cards had versions carry the id alone and are read as version
0, so they keep working until the villager's first reissue.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from . import audit
from .errors import Conflict, Invalid
from .models import Household, Village, Villager, VillagerGroup
from .scope import Actor, authorize, get_visible
from .tokens import QRTokenInvalid, TokenCodec, TokenType, scanned_token

# A village's cards come as one PDF, drawn in the request: 20 sheets take some seconds and
# about 8 MB; a whole large village at once would tie a worker up for most of a minute, so
# it is printed by group or household instead.
MAX_CARDS_PER_PRINT = 200


class CardRevoked(Conflict):
    # 409, like a deactivated villager: the card is genuine, the villager's state refuses it.
    code = "card_revoked"
    message = "此卡已挂失补办，请使用新卡"


class CardHolderInactive(Conflict):
    code = "villager_inactive"
    message = "该村民已停用，不能补办积分卡；如需恢复，请先在花名册中重新启用该村民"


class TooManyCards(Invalid):
    code = "too_many_cards"
    message = f"一次最多打印 {MAX_CARDS_PER_PRINT} 张积分卡，请按村民小组或农户分批打印"


class NoCards(Invalid):
    code = "no_cards"
    message = "所选范围内没有在册的村民，没有可打印的积分卡"


def card_token(codec: TokenCodec, villager: Villager) -> str:
    """What the QR of the villager's valid card carries (no expiry: a card lasts)."""
    return codec.encode(TokenType.MEMBER_CARD, (villager.id, villager.card_serial))


def villager_on_card(
    session: Session, codec: TokenCodec, scanned: str, now: datetime
) -> Villager | None:
    """The villager whose card was scanned, or None if they are not on the roster; a card
    of an earlier version than the villager's is refused (CardRevoked)."""
    decoded = codec.decode(scanned_token(scanned), TokenType.MEMBER_CARD, now)
    if len(decoded.fields) == 1:
        villager_id, serial = decoded.fields[0], 0  # printed before cards had versions
    elif len(decoded.fields) == 2:
        villager_id, serial = decoded.fields
    else:
        raise QRTokenInvalid()
    villager = session.get(Villager, villager_id)
    if villager is None:
        return None
    if serial != villager.card_serial:
        raise CardRevoked(
            details={"card_serial": serial, "current_card_number": villager.card_number}
        )
    return villager


def reissue(session: Session, actor: Actor, villager_id: int) -> Villager:
    """A new card for a villager whose card was lost: every earlier card is refused from
    the commit on. The version is raised by the database (`card_serial + 1`), so two
    reissues at once make two versions, and only the later one is valid."""
    villager = get_visible(session, actor, Villager, villager_id)
    authorize(actor, "villager.card_reissue")
    if not villager.active:
        raise CardHolderInactive(details={"villager_id": villager.id})
    serial = session.execute(
        update(Villager)
        .where(Villager.id == villager.id)
        .values(card_serial=Villager.card_serial + 1)
        .returning(Villager.card_serial)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    session.refresh(villager)
    audit.record(
        session,
        actor,
        "villager.card_reissue",
        villager,
        before={"card_serial": serial - 1},
        after={"card_serial": serial},
        village_id=villager.household.village_id,
    )
    return villager


def cards_to_print(
    session: Session,
    actor: Actor,
    village_id: int,
    *,
    group_id: int | None = None,
    household_id: int | None = None,
) -> tuple[Village, list[Villager]]:
    """The active villagers of a village (or of one of its groups, or one household) in the
    order the cards are cut and handed out: by group, household, then head first."""
    village = get_visible(session, actor, Village, village_id)
    authorize(actor, "villager.cards_print")
    stmt = (
        select(Villager)
        .join(Household, Villager.household_id == Household.id)
        .where(Household.village_id == village.id, Villager.active.is_(True))
        .options(
            selectinload(Villager.household).selectinload(Household.members),
            selectinload(Villager.household).selectinload(Household.group),
        )
    )
    if group_id is not None:
        group = session.get(VillagerGroup, group_id)
        if group is None or group.village_id != village.id:
            raise Invalid("该村民小组不属于这个村", code="group_not_in_village")
        stmt = stmt.where(Household.group_id == group.id)
    if household_id is not None:
        household = get_visible(session, actor, Household, household_id)
        if household.village_id != village.id:
            raise Invalid("该农户不属于这个村", code="household_not_in_village")
        stmt = stmt.where(Household.id == household.id)
    villagers = list(
        session.scalars(
            stmt.order_by(
                Household.group_id, Household.id, (Villager.relation != "户主"), Villager.id
            )
        )
    )
    if len(villagers) > MAX_CARDS_PER_PRINT:
        raise TooManyCards(details={"cards": len(villagers), "max": MAX_CARDS_PER_PRINT})
    if not villagers:
        raise NoCards()
    return village, villagers
