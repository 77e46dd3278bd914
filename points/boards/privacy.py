"""Who a public board names, and how: masked names (张*丰), households that keep off public
boards, and the board settings (masking, size of the red list) a village takes from its own
row, else its township's, else the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..errors import Forbidden
from ..models import Household, Township, Village
from ..models.boards import BoardSettings
from ..scope import VILLAGER, Actor, authorize, get_visible

HIDDEN_NAME = "（不公开）"
DEFAULT_MASK_NAMES = True
DEFAULT_RED_LIST_SIZE = 10


def mask_name(name: str) -> str:
    """张三 → 张*, 张三丰 → 张*丰, 欧阳小明 → 欧**明: the surname and the last character."""
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def public_name(name: str, *, mask: bool, opted_out: bool) -> str:
    if opted_out:
        return HIDDEN_NAME
    return mask_name(name) if mask else name


@dataclass(frozen=True)
class BoardPrefs:
    mask_names: bool = DEFAULT_MASK_NAMES
    red_list_size: int = DEFAULT_RED_LIST_SIZE


def board_prefs(
    session: Session, village_ids: Iterable[int], townships: dict[int, int] | None = None
) -> dict[int, BoardPrefs]:
    """Each village's effective settings: its own, else its township's, else the defaults.
    `townships` (village id → township id), when the caller has it, saves a query."""
    ids = sorted(set(village_ids))
    if not ids:
        return {}
    if townships is None:
        townships = dict(
            session.execute(
                select(Village.id, Village.township_id).where(Village.id.in_(ids))
            ).all()
        )
    rows = session.scalars(
        select(BoardSettings).where(
            (BoardSettings.village_id.in_(ids))
            | (BoardSettings.township_id.in_(set(townships.values())))
        )
    )
    by_village, by_township = {}, {}
    for row in rows:
        if row.village_id is not None:
            by_village[row.village_id] = row
        else:
            by_township[row.township_id] = row
    return {
        village_id: layered_prefs(
            settings_layer(by_township.get(townships.get(village_id))),
            settings_layer(by_village.get(village_id)),
        )
        for village_id in ids
    }


def layered_prefs(*layers: tuple[bool | None, int | None]) -> BoardPrefs:
    """The defaults, overridden in turn by each layer's non-null (mask_names,
    red_list_size): a township's settings, then a village's."""
    prefs = BoardPrefs()
    for mask, size in layers:
        if mask is not None:
            prefs = replace(prefs, mask_names=mask)
        if size is not None:
            prefs = replace(prefs, red_list_size=size)
    return prefs


def settings_layer(row: BoardSettings | None) -> tuple[bool | None, int | None]:
    """A settings row as a layer of `layered_prefs` (no row: nothing set)."""
    return (None, None) if row is None else (row.mask_names, row.red_list_size)


def settings_row(
    session: Session, *, village_id: int | None = None, township_id: int | None = None
) -> BoardSettings | None:
    if village_id is not None:
        return session.scalar(select(BoardSettings).where(BoardSettings.village_id == village_id))
    return session.scalar(select(BoardSettings).where(BoardSettings.township_id == township_id))


def update_settings(
    session: Session,
    actor: Actor,
    changes: dict[str, Any],
    now: datetime,
    *,
    village_id: int | None = None,
    township_id: int | None = None,
) -> BoardSettings:
    """Set a village's (cadres and admins) or a township's (admins) board settings."""
    if village_id is not None:
        owner: Village | Township = get_visible(session, actor, Village, village_id)
        authorize(actor, "board.settings")
        audit_village: int | None = owner.id
    else:
        assert township_id is not None, "a village's settings or a township's"
        owner = get_visible(session, actor, Township, township_id)
        authorize(actor, "board.township_settings")
        audit_village = None
    row = settings_row(session, village_id=village_id, township_id=township_id)
    if row is None:
        row = BoardSettings(village_id=village_id, township_id=township_id, updated_at=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # created meanwhile by another request: update that one
            row = settings_row(session, village_id=village_id, township_id=township_id)
            assert row is not None
    before = audit.snapshot(row)
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = now
    audit.record(
        session,
        actor,
        "board_settings.update",
        row,
        before=before,
        village_id=audit_village,
        township_id=owner.id if audit_village is None else None,
    )
    return row


def set_opt_out(session: Session, actor: Actor, value: bool) -> Household:
    """A villager's own choice to keep their household off public boards."""
    if actor.role != VILLAGER:
        # A staff account linked to its roster entry has a household too, but the choice
        # is the villagers' own, made from the mini-program.
        raise Forbidden("只有村民本人可以设置是否上榜", code="villager_only")
    household = get_visible(session, actor, Household, actor.require_household())
    before = audit.snapshot(household)
    household.public_board_opt_out = value
    audit.record(
        session,
        actor,
        "household.board_privacy",
        household,
        before=before,
        village_id=household.village_id,
    )
    return household


# ---- the board as posted --------------------------------------------------------------------


def public_board(board: dict[str, Any], prefs: BoardPrefs, opted_out: set[int]) -> dict[str, Any]:
    """The board as posted on the wall: names masked when the village says so, households
    that opted out shown without a name."""

    def name(row: dict[str, Any]) -> dict[str, Any]:
        hidden = row["household_id"] in opted_out
        return {
            **row,
            "name": public_name(row["name"], mask=prefs.mask_names, opted_out=hidden),
            "household_id": None if hidden else row["household_id"],
        }

    out = {**board}
    for key in ("red", "black", "stars", "corrections"):
        out[key] = [name(row) for row in board[key]]
    out["masked"] = prefs.mask_names
    return out


def opted_out_among(session: Session, board: dict[str, Any]) -> set[int]:
    ids = {
        row["household_id"]
        for key in ("red", "black", "stars", "corrections")
        for row in board[key]
    }
    if not ids:
        return set()
    return set(
        session.scalars(
            select(Household.id).where(
                Household.id.in_(ids), Household.public_board_opt_out.is_(True)
            )
        )
    )
