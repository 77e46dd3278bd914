"""The shop's shelf (商品库存) and its monthly statement (月度对账): rewards with their price,
stock and picture, restocks and corrections with a reason, and the month's reconciliation on
screen and as CSV or XLSX.

Thin views over the services of POST /shops/<id>/rewards, PATCH /rewards/<id>, POST
/rewards/<id>/image, POST /rewards/<id>/stock and GET /shops/<id>/settlements. A clerk works
their own shop; township and county admins pick one of the shops in their scope."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from points import reward_images
from points.errors import NotFound
from points.models import Reward, Shop, StockMovement
from points.scope import Actor, authorize, get_visible, visible
from points.shop import reconciliation, shelves
from rules.periods import month_key

from ..clock import now, village_tz
from ..errors import APIError
from ..extensions import db
from ..reward_links import image_version
from ..schemas.shop import RewardIn, RewardPatch, SettlementArgs, StockChangeIn
from ..settlements import FORMATS, settlement_file
from . import bp, forms, menu_item, session
from .clerk import load_form

menu_item("console.shop", "商品库存", "reward.edit")
menu_item("console.settlements", "月度对账", "settlement.read")

# The model keeps no reorder level per reward; the shelf warns at this stock or below, a
# fixed display threshold (a village shop restocks weekly, five is about a week's sales).
LOW_STOCK = 5
MOVEMENTS_SHOWN = 100
KIND_NAMES = {"initial": "上架", "restock": "进货", "correction": "盘点更正"}


def _shops(actor: Actor) -> list[Shop]:
    """The shops the actor may pick: a clerk's own, an admin's in their scope."""
    return list(db.session.scalars(visible(actor, Shop).order_by(Shop.id)))


def _chosen_shop(actor: Actor, shops: list[Shop]) -> Shop:
    wanted = request.values.get("shop_id", type=int)
    if wanted is not None:
        return get_visible(db.session, actor, Shop, wanted)
    if not shops:
        raise NotFound("没有可管理的积分超市")
    return shops[0]


def _image_src(reward: Reward) -> str | None:
    # Same origin as the console (the CSP allows no other), versioned like the API's link.
    if reward.image_name:
        return url_for("shop.reward_image", reward_id=reward.id, v=image_version(reward.image_name))
    return None


# ---- the shelf ------------------------------------------------------------------------------


def _shelf_page() -> str:
    actor = session.load()
    authorize(actor, "reward.edit")
    shops = _shops(actor)
    shop = _chosen_shop(actor, shops)
    rewards = list(
        db.session.scalars(
            visible(actor, Reward)
            .where(Reward.shop_id == shop.id)
            .order_by(Reward.points, Reward.id)
        )
    )
    return render_template(
        "console/clerk/shop.html",
        shop=shop,
        shops=shops if len(shops) > 1 else [],
        rewards=rewards,
        image_src=_image_src,
        low_stock=LOW_STOCK,
    )


@bp.get("/shop")
def shop() -> str:
    return _shelf_page()


@bp.post("/shop/rewards")
@forms.writes(on_refusal=_shelf_page)
def shop_reward_create() -> Response:
    """上架: the same service as POST /shops/<id>/rewards."""
    actor = session.load()
    authorize(actor, "reward.edit")
    shop = _chosen_shop(actor, _shops(actor))
    body = load_form(
        RewardIn(),
        {
            "name": request.form.get("name", "").strip(),
            "points": request.form.get("points", ""),
            "stock": request.form.get("stock", "") or 0,
        },
    )
    reward = shelves.create_reward(db.session, actor, shop.id, **body)
    return redirect(url_for("console.shop_reward", reward_id=reward.id), code=303)


def _reward_page(reward_id: int) -> str:
    actor = session.load()
    reward = get_visible(db.session, actor, Reward, reward_id)
    authorize(actor, "reward.edit")
    movements = list(
        db.session.scalars(
            visible(actor, StockMovement)
            .where(StockMovement.reward_id == reward.id)
            .order_by(StockMovement.id.desc())
            .limit(MOVEMENTS_SHOWN)
        )
    )
    shop = db.session.get(Shop, reward.shop_id)
    return render_template(
        "console/clerk/reward.html",
        reward=reward,
        shop=shop,
        image=_image_src(reward),
        movements=movements,
        kind_names=KIND_NAMES,
        low_stock=LOW_STOCK,
        can_adjust=actor.can("stock.adjust"),
    )


@bp.get("/shop/rewards/<int:reward_id>")
def shop_reward(reward_id: int) -> str:
    return _reward_page(reward_id)


@bp.post("/shop/rewards/<int:reward_id>")
@forms.writes(on_refusal=_reward_page)
def shop_reward_update(reward_id: int) -> Response:
    """Name, price, on or off the shelf: the same service as PATCH /rewards/<id>."""
    actor = session.load()
    changes = load_form(
        RewardPatch(),
        {
            "name": request.form.get("name", "").strip(),
            "points": request.form.get("points", ""),
            "active": request.form.get("active") == "on",
        },
    )
    if request.form.get("remove_image") == "on":
        changes["image_url"] = None  # the API's way to take the picture off
    shelves.update_reward(db.session, actor, reward_id, changes)
    return redirect(url_for("console.shop_reward", reward_id=reward_id), code=303)


@bp.post("/shop/rewards/<int:reward_id>/image")
@forms.writes(on_refusal=_reward_page)
def shop_reward_image(reward_id: int) -> Response:
    """商品图片: the same service as POST /rewards/<id>/image (checked by content, re-encoded
    without EXIF, scaled); the replaced picture stays on disk, as the API leaves it."""
    actor = session.load()
    upload = request.files.get("file")
    data = upload.read() if upload is not None else b""
    reward_images.store_image(db.session, actor, reward_id, data, current_app.config["UPLOAD_DIR"])
    return redirect(url_for("console.shop_reward", reward_id=reward_id), code=303)


@bp.post("/shop/rewards/<int:reward_id>/stock")
@forms.writes(on_refusal=_reward_page)
def shop_reward_stock(reward_id: int) -> Response:
    """进货 or 盘点更正 with a reason: the same service as POST /rewards/<id>/stock. A
    stock-out (出库) is a correction taking goods off."""
    actor = session.load()
    kind = request.form.get("kind", "")
    change: Any = request.form.get("change", "").strip()
    if kind == "out" and change.isdigit():
        kind, change = "correction", -int(change)
    body = load_form(
        StockChangeIn(),
        {"kind": kind, "change": change, "reason": request.form.get("reason", "").strip()},
    )
    shelves.adjust_stock(db.session, actor, reward_id, now=now(), **body)
    return redirect(url_for("console.shop_reward", reward_id=reward_id), code=303)


# ---- 月度对账 ----------------------------------------------------------------------------------


def _month() -> str:
    return request.args.get("month") or month_key(now().astimezone(village_tz()))


def _settlement(actor: Actor, shop: Shop, month: str, fmt: str = "json") -> Any:
    args = load_form(SettlementArgs(), {"month": month, "format": fmt})
    return reconciliation.settlement(db.session, actor, shop.id, args["month"])


@bp.get("/settlements")
def settlements() -> str:
    actor = session.load()
    authorize(actor, "settlement.read")
    shops = _shops(actor)
    shop = _chosen_shop(actor, shops)
    month = _month()
    return render_template(
        "console/clerk/settlements.html",
        shop=shop,
        shops=shops if len(shops) > 1 else [],
        month=month,
        result=_settlement(actor, shop, month),
        formats=FORMATS,
    )


@bp.get("/settlements/download")
def settlements_download() -> Response:
    """The statement as a file, written by the same code as GET /shops/<id>/settlements
    (formula injection neutralised by the spreadsheet helpers)."""
    actor = session.load()
    authorize(actor, "settlement.read")
    shop = _chosen_shop(actor, _shops(actor))
    fmt = request.args.get("format", "csv")
    if fmt not in FORMATS:
        raise APIError(422, "validation_error", "下载格式应为 CSV 或 XLSX")
    return settlement_file(_settlement(actor, shop, _month(), fmt), fmt, village_tz())
