"""The points supermarket (积分超市): shops, shelves and stock, two-phase redemption (order →
scan, or cancel/expiry), counter redemption, monthly settlement and the township's
outstanding-points report."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, current_app, request, send_file
from flask_smorest import Blueprint
from sqlalchemy import select

from points import reward_images
from points.errors import NotFound
from points.models import Account, Redemption, Reward, Shop, StockMovement
from points.qr import qr_png
from points.scope import VILLAGER, authorize, get_visible, visible
from points.shop import counter, liability, reconciliation, shelves, shops
from points.shop import redemption as redemptions
from points.tokens import TokenType

from ..caller import current_actor, qr_codec
from ..clock import now, village_tz
from ..extensions import db
from ..idempotency import DOC as IDEMPOTENT
from ..idempotency import idempotent
from ..openapi import (
    BINARY,
    PAGE_TOO_DEEP,
    PageArgs,
    page_of,
    paginate,
    raises,
    township_parts,
)
from ..qr import token_url
from ..ratelimits import PICKUP_CODE, by_user, limited, setting
from ..reward_links import image_version
from ..schemas.common import SignatureArgs
from ..schemas.shop import (
    CardHolderOut,
    CounterRedemptionIn,
    MemberLookupIn,
    PickupCodeIn,
    PickupScanIn,
    PointsReportArgs,
    PointsReportOut,
    RedemptionCancelIn,
    RedemptionListArgs,
    RedemptionOrderIn,
    RedemptionOut,
    RewardImageArgs,
    RewardIn,
    RewardListArgs,
    RewardOut,
    RewardPatch,
    SettlementArgs,
    SettlementOut,
    ShopIn,
    ShopOut,
    StockChangeIn,
    StockMovementOut,
)
from ..settlements import XLSX, settlement_file
from ..signed_urls import (
    SIGNED_SECURITY,
    check_signature,
    is_signed_request,
    mark_signed,
    signed_link,
)

blp = Blueprint("shop", __name__, description="积分超市 Points supermarket")


# ---- shops ----------------------------------------------------------------------------------


@blp.route("/shops", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(ShopOut))
def list_shops(args: dict[str, Any]) -> dict[str, Any]:
    """The shops the caller may use or run: a villager's are those serving their village."""
    return paginate(
        db.session, visible(current_actor(), Shop).order_by(Shop.id), args["page"], args["per_page"]
    )


@blp.route("/shops", methods=["POST"])
@raises((403, "villager_inactive"), (404, "not_found"), (422, "invalid_villages"))
@blp.arguments(ShopIn)
@blp.response(201, ShopOut)
def create_shop(body: dict[str, Any]) -> Shop:
    """A shop serving one or more villages of its own township (township admins)."""
    shop = shops.create_shop(
        db.session, current_actor(), body["name"], body["township_id"], body["village_ids"]
    )
    db.session.commit()
    return shop


@blp.route("/shops/<int:shop_id>", methods=["GET"])
@blp.response(200, ShopOut)
def get_shop(shop_id: int) -> Shop:
    return get_visible(db.session, current_actor(), Shop, shop_id)


# ---- rewards and stock ----------------------------------------------------------------------


@blp.route("/shops/<int:shop_id>/rewards", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(RewardListArgs, location="query")
@blp.response(200, page_of(RewardOut))
def list_rewards(args: dict[str, Any], shop_id: int) -> dict[str, Any]:
    """The shelf. Villagers see what is on sale; staff also what was taken off."""
    actor = current_actor()
    shop = get_visible(db.session, actor, Shop, shop_id)
    stmt = visible(actor, Reward).where(Reward.shop_id == shop.id)
    if actor.role == VILLAGER:
        stmt = stmt.where(Reward.active.is_(True))
    elif "active" in args:
        stmt = stmt.where(Reward.active.is_(args["active"]))
    return paginate(
        db.session, stmt.order_by(Reward.points, Reward.id), args["page"], args["per_page"]
    )


@blp.route("/shops/<int:shop_id>/rewards", methods=["POST"])
@raises((403, "villager_inactive"), (409, "duplicate_name"))
@blp.arguments(RewardIn)
@blp.response(201, RewardOut)
def create_reward(body: dict[str, Any], shop_id: int) -> Reward:
    """Put a reward on the shelf (the shop's clerk or a township admin)."""
    reward = shelves.create_reward(db.session, current_actor(), shop_id, **body)
    db.session.commit()
    return reward


@blp.route("/rewards/<int:reward_id>", methods=["GET"])
@blp.response(200, RewardOut)
def get_reward(reward_id: int) -> Reward:
    return get_visible(db.session, current_actor(), Reward, reward_id)


@blp.route("/rewards/<int:reward_id>", methods=["PATCH"])
@raises((403, "villager_inactive"), (409, "duplicate_name"))
@blp.arguments(RewardPatch)
@blp.response(200, RewardOut)
def update_reward(body: dict[str, Any], reward_id: int) -> Reward:
    """Name, price, on or off the shelf (`active`); `image_url: null` removes the picture
    (a new one is uploaded: POST …/image). Stock: POST …/stock."""
    reward = shelves.update_reward(db.session, current_actor(), reward_id, body)
    db.session.commit()
    # A picture taken off is kept on disk (see upload_reward_image).
    return reward


def _upload_dir() -> str:
    return current_app.config["UPLOAD_DIR"]


@blp.route("/rewards/<int:reward_id>/image", methods=["POST"])
@limited(blp, "60 per hour", by_user)
@blp.doc(
    requestBody={
        "required": True,
        "description": "One picture (JPEG, PNG or WEBP, at most 5 MB) as multipart field "
        "`file`, checked like a proof photo (by content, its size read before "
        "decoding), re-encoded as JPEG without EXIF and scaled to at most 1024 px.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
)
@blp.response(200, RewardOut)
def upload_reward_image(reward_id: int) -> Reward:
    """Set the reward's picture (the shop's clerk, a township admin). It replaces the
    previous picture, or a link typed in before. Refusals: `file_required` (400),
    `file_too_large` (413), `not_a_photo` and `image_too_large` (422)."""
    file = request.files.get("file")
    data = file.read() if file is not None else b""
    # The replaced picture stays on disk: a backup running now may have dumped the database
    # while the reward still named it, and must find it when it copies the uploads. A few
    # hundred kilobytes a replacement; nothing serves it any more.
    reward, _replaced = reward_images.store_image(
        db.session, current_actor(), reward_id, data, _upload_dir()
    )
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        reward_images.remove_file(_upload_dir(), reward.image_name)
        raise
    return reward


@blp.route("/rewards/<int:reward_id>/image", methods=["GET"])
@raises((404, "no_image"))
@blp.doc(security=[])
@blp.arguments(RewardImageArgs, location="query")
@blp.response(200, BINARY, content_type="image/jpeg")
@blp.alt_response(304, description="not modified (If-None-Match)")
def reward_image(args: dict[str, Any], reward_id: int) -> Response:
    """The reward's picture, without login: a shelf is shown to every villager the shop
    serves, and a picture of soap tells no one anything. Fetched by the reward's
    `image_url`, whose `v` changes with every upload, it may be cached for good; without
    the current `v`, for five minutes. 404 `no_image` without a picture."""
    reward, path = reward_images.image_path(db.session, reward_id, _upload_dir())
    version = image_version(reward.image_name or "")
    response = send_file(path, mimetype="image/jpeg", conditional=True, etag=version)
    response.headers["Cache-Control"] = (
        "public, max-age=31536000, immutable" if args.get("v") == version else "public, max-age=300"
    )
    return response


@blp.route("/rewards/<int:reward_id>/stock", methods=["POST"])
@raises((403, "villager_inactive"), (409, "stock_negative"), (422, "invalid_change"))
@blp.arguments(StockChangeIn)
@blp.response(201, StockMovementOut)
def adjust_stock(body: dict[str, Any], reward_id: int) -> StockMovement:
    """Restock or correct the stock, recorded with who and why.

    409 `stock_negative` if a correction would take it below zero (goods reserved by orders
    are already off the count)."""
    movement = shelves.adjust_stock(db.session, current_actor(), reward_id, now=now(), **body)
    db.session.commit()
    return movement


@blp.route("/rewards/<int:reward_id>/stock-movements", methods=["GET"])
@raises(PAGE_TOO_DEEP, (403, "villager_inactive"))
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(StockMovementOut))
def stock_movements(args: dict[str, Any], reward_id: int) -> dict[str, Any]:
    actor = current_actor()
    reward = get_visible(db.session, actor, Reward, reward_id)
    authorize(actor, "stock.adjust")
    stmt = visible(actor, StockMovement).where(StockMovement.reward_id == reward.id)
    return paginate(
        db.session, stmt.order_by(StockMovement.id.desc()), args["page"], args["per_page"]
    )


# ---- redemptions ----------------------------------------------------------------------------


def _pickup_token(redemption: Redemption) -> str:
    return qr_codec().encode(TokenType.PICKUP, (redemption.id,), expires_at=redemption.expires_at)


def _shows_pickup(redemption: Redemption) -> bool:
    # Only the household holds the code: a clerk who could read it could "pick up" alone.
    actor = current_actor()
    return (
        redemption.status == "reserved"
        and actor.role == VILLAGER
        and actor.household_id == redemption.household_id
    )


def _out(
    redemption: Redemption,
    names: redemptions.Names | None = None,
    available_after: int | None = None,
) -> dict[str, Any]:
    names = names or redemptions.names_for(db.session, [redemption])
    r = redemption
    token = _pickup_token(r) if _shows_pickup(r) else None
    return {
        "id": r.id,
        "status": r.status,
        "source": r.source,
        "shop_id": r.shop_id,
        "shop_name": names.shops.get(r.shop_id),
        "village_id": r.village_id,
        "household_id": r.household_id,
        "household_name": names.households.get(r.household_id),
        "member_id": r.member_id,
        "member_name": names.members.get(r.member_id) if r.member_id else None,
        "total_points": r.total_points,
        "cash_paid": r.cash_paid,
        "points": r.points,
        "exchange_rate": r.exchange_rate,
        "value": redemptions.value_of(r.points, r.exchange_rate),
        "lines": r.lines,
        "created_at": r.created_at,
        "expires_at": r.expires_at,
        "fulfilled_at": r.fulfilled_at,
        "fulfilled_by": r.fulfilled_by,
        "voided_at": r.voided_at,
        "void_reason": r.void_reason,
        "ledger_entry_id": r.ledger_entry_id,
        "pickup_token": token,
        "pickup_url": token_url(current_app.config["PUBLIC_BASE_URL"], token) if token else None,
        "pickup_code": r.pickup_code if token else None,
        "pickup_image_url": signed_link(f"/api/v1/redemptions/{r.id}/pickup.png", PICKUP, r.id).url
        if token
        else None,
        "available_after": available_after,
    }


def _available(household_id: int) -> int:
    return (
        db.session.scalar(select(Account.available).where(Account.household_id == household_id))
        or 0
    )


@blp.route("/redemptions", methods=["POST"])
@raises(
    (403, "not_bound"),
    (403, "villager_inactive"),
    (404, "not_found"),
    (409, "out_of_stock"),
    (409, "pickup_code_busy"),
    (409, "price_changed"),
    (422, "below_minimum"),
    (422, "insufficient_points"),
    (422, "invalid_cash"),
    (422, "not_qualified"),
    (422, "reward_unavailable"),
)
@limited(blp, setting("ORDER_RATE_LIMIT"), by_user)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(RedemptionOrderIn)
@blp.response(201, RedemptionOut)
def order(body: dict[str, Any]) -> dict[str, Any]:
    """Order rewards for one's household (villagers).

    The points are reserved (available → held) and the stock set aside until the clerk
    scans the pickup code, or until the hold time (REDEMPTION_HOLD_HOURS) passes and the
    order expires. Refusals:
    `insufficient_points` (422), `out_of_stock` (409), `reward_unavailable` (422),
    `price_changed` (409), `below_minimum` and `not_qualified` (422, the village's policy);
    a shop that does not serve the household's village is 404."""
    redemption = redemptions.place_order(
        db.session,
        current_actor(),
        shop_id=body["shop_id"],
        items=body["items"],
        now=now(),
        tz=village_tz(),
        hold=timedelta(hours=current_app.config["REDEMPTION_HOLD_HOURS"]),
    )
    return _out(redemption)


@blp.route("/redemptions", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(RedemptionListArgs, location="query")
@blp.response(200, page_of(RedemptionOut))
def list_redemptions(args: dict[str, Any]) -> dict[str, Any]:
    """Redemptions, newest first.

    A villager sees their household's, a clerk their shop's, staff their villages'."""
    actor = current_actor()
    stmt = visible(actor, Redemption)
    for name in ("status", "shop_id", "household_id"):
        if name in args:
            stmt = stmt.where(getattr(Redemption, name) == args[name])
    narrowed = bool({"shop_id", "household_id"} & args.keys())
    page = paginate(
        db.session,
        redemptions.with_lines(stmt.order_by(Redemption.id.desc())),
        args["page"],
        args["per_page"],
        key=Redemption.id,
        parts=township_parts(db.session, actor, Redemption.village_id, narrowed),
    )
    names = redemptions.names_for(db.session, list(page["items"]))
    page["items"] = [_out(r, names) for r in page["items"]]
    return page


@blp.route("/redemptions/<int:redemption_id>", methods=["GET"])
@blp.response(200, RedemptionOut)
def get_redemption(redemption_id: int) -> dict[str, Any]:
    return _out(get_visible(db.session, current_actor(), Redemption, redemption_id))


PICKUP = "pickup"  # the kind of image a pickup code's signed link names


@blp.route("/redemptions/<int:redemption_id>/pickup.png", methods=["GET"])
@raises((403, "link_expired"), (403, "link_invalid"), (404, "no_pickup_code"))
@blp.doc(security=SIGNED_SECURITY)
@blp.arguments(SignatureArgs, location="query")
@blp.response(200, BINARY, content_type="image/png")
def pickup_png(args: dict[str, Any], redemption_id: int) -> Response:
    """The pickup code as a QR image, for the household while the order is reserved: by the
    bearer token, or by the order's `pickup_image_url` (a signed link for `<image>`; 403
    `link_expired` / `link_invalid`)."""
    signed = is_signed_request()
    if signed:
        check_signature(PICKUP, redemption_id)
        redemption = db.session.get(Redemption, redemption_id)
        if redemption is None or redemption.status != "reserved":
            raise NotFound("没有可领取的兑换码", code="no_pickup_code")
    else:
        redemption = get_visible(db.session, current_actor(), Redemption, redemption_id)
        if not _shows_pickup(redemption):
            raise NotFound("没有可领取的兑换码", code="no_pickup_code")
    png = qr_png(token_url(current_app.config["PUBLIC_BASE_URL"], _pickup_token(redemption)))
    response = Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-store"})
    return mark_signed(response) if signed else response


@blp.route("/redemptions/scan", methods=["POST"])
@raises(
    (403, "villager_inactive"),
    (404, "not_found"),
    (409, "account_busy"),
    (409, "already_fulfilled"),
    (409, "redemption_busy"),
    (409, "redemption_cancelled"),
    (409, "redemption_expired"),
    (422, "qr_expired"),
    (422, "qr_invalid"),
    (422, "qr_wrong_type"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(PickupScanIn)
@blp.response(200, RedemptionOut)
def scan(body: dict[str, Any]) -> dict[str, Any]:
    """The clerk scans a pickup code and hands the goods out.

    The redeem entry is posted out of the hold. A second scan is 409 `already_fulfilled`;
    a cancelled or expired order is 409 `redemption_cancelled` / `redemption_expired`;
    another shop's order is 404."""
    redemption = redemptions.fulfil_by_token(
        db.session, current_actor(), qr_codec(), body["pickup_token"], now=now(), tz=village_tz()
    )
    return _out(redemption, available_after=_available(redemption.household_id))


@blp.route("/redemptions/pickup-code", methods=["POST"])
@raises((404, "pickup_code_not_found"), (409, "redemption_expired"))
# per clerk, with the console's pickup page: each try is a guess
@limited(blp, setting("PICKUP_CODE_RATE_LIMIT"), by_user, shared=PICKUP_CODE)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(PickupCodeIn)
@blp.response(200, RedemptionOut)
def pickup_by_code(body: dict[str, Any]) -> dict[str, Any]:
    """The clerk types the order's 6-digit pickup number (取货号) when its QR cannot be
    scanned (a cracked screen), and hands the goods out.

    Only an open order of the clerk's own shop answers to a number: anything else (a
    wrong number, another shop's order, one picked up, cancelled or expired) is 404
    `pickup_code_not_found`, and an order past its time 409 `redemption_expired`.
    Rate limited per clerk (PICKUP_CODE_RATE_LIMIT), since a number can be guessed."""
    redemption = redemptions.fulfil_by_code(
        db.session, current_actor(), body["pickup_code"], now=now(), tz=village_tz()
    )
    return _out(redemption, available_after=_available(redemption.household_id))


@blp.route("/redemptions/<int:redemption_id>/cancel", methods=["POST"])
@raises(
    (403, "villager_inactive"),
    (409, "account_busy"),
    (409, "already_fulfilled"),
    (409, "hold_mismatch"),
    (409, "redemption_busy"),
    (409, "redemption_cancelled"),
    (409, "redemption_expired"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(RedemptionCancelIn)
@blp.response(200, RedemptionOut)
def cancel(body: dict[str, Any], redemption_id: int) -> dict[str, Any]:
    """Cancel an order not yet picked up.

    The household's villager, the shop's clerk, a cadre of the village or an admin may
    cancel; the points and the stock go back at once."""
    redemption = redemptions.cancel(
        db.session,
        current_actor(),
        redemption_id,
        reason=body.get("reason"),
        now=now(),
        tz=village_tz(),
    )
    return _out(redemption)


@blp.route("/shops/<int:shop_id>/counter-redemptions", methods=["POST"])
@raises(
    (403, "villager_inactive"),
    (404, "member_not_found"),
    (409, "account_busy"),
    (409, "card_revoked"),
    (409, "already_fulfilled"),
    (409, "out_of_stock"),
    (409, "price_changed"),
    (409, "redemption_busy"),
    (409, "redemption_cancelled"),
    (409, "redemption_expired"),
    (422, "below_minimum"),
    (422, "insufficient_points"),
    (422, "invalid_cash"),
    (422, "not_qualified"),
    (422, "reward_unavailable"),
    (422, "shop_not_serving"),
    (422, "qr_expired"),
    (422, "qr_invalid"),
    (422, "qr_wrong_type"),
)
@limited(blp, setting("COUNTER_REDEMPTION_RATE_LIMIT"), by_user)  # per clerk
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(CounterRedemptionIn)
@blp.response(201, RedemptionOut)
def counter_redemption(body: dict[str, Any], shop_id: int) -> dict[str, Any]:
    """Counter redemption, for people without phones.

    The clerk scans a member card (or the printed household code, the head's card) and
    hands the goods out at once. The policy's minimum and qualification line apply;
    `cash_paid` covers part of the goods in cash, at the village's exchange rate."""
    redemption = counter.counter_redeem(
        db.session,
        current_actor(),
        qr_codec(),
        shop_id,
        member_token=body["member_token"],
        items=body["items"],
        cash_paid=counter.parse_cash(body.get("cash_paid")),
        now=now(),
        tz=village_tz(),
    )
    return _out(redemption, available_after=_available(redemption.household_id))


@blp.route("/shops/<int:shop_id>/member-lookup", methods=["POST"])
@raises(
    (403, "villager_inactive"),
    (404, "member_not_found"),
    (409, "card_revoked"),
    (422, "shop_not_serving"),
    (422, "qr_expired"),
    (422, "qr_invalid"),
    (422, "qr_wrong_type"),
)
@limited(blp, setting("COUNTER_REDEMPTION_RATE_LIMIT"), by_user)  # per clerk
@blp.arguments(MemberLookupIn)
@blp.response(200, CardHolderOut)
def member_lookup(body: dict[str, Any], shop_id: int) -> counter.CardHolder:
    """Who is at the counter: the clerk scans a member card before choosing the goods.

    Only the card holder's name, their household, the points it may spend and whether it
    reaches the qualification line (the shop's clerks). A card of a village the shop does
    not serve is 422 `shop_not_serving`; an unknown or cancelled member 404
    `member_not_found`. Nothing else of the household is open to a clerk."""
    return counter.card_holder(
        db.session,
        current_actor(),
        qr_codec(),
        shop_id,
        member_token=body["member_token"],
        now=now(),
        tz=village_tz(),
    )


# ---- settlement and the township's report ---------------------------------------------------


@blp.route("/shops/<int:shop_id>/settlements", methods=["GET"])
@raises((403, "villager_inactive"))
@blp.arguments(SettlementArgs, location="query")
@blp.response(200, SettlementOut)
@blp.doc(
    responses={
        "200": {
            "description": "the statement as JSON, CSV or XLSX",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SettlementOut"}},
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "兑换单号,领取时间,方式,村,户,兑换人,商品明细,商品积分,…",
                },
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
)
def settlement(args: dict[str, Any], shop_id: int) -> Any:
    """A shop's monthly statement (对账).

    The shop's fulfilled redemptions in the month, points redeemed and their value at the
    exchange rate, line items. `format=csv` (UTF-8 with BOM) or `format=xlsx` for the same
    figures as a file (the shop's clerks, township and county admins)."""
    result = reconciliation.settlement(db.session, current_actor(), shop_id, args["month"])
    fmt = args["format"]
    if fmt == "json":
        return result
    return settlement_file(result, fmt, village_tz())


@blp.route("/townships/<int:township_id>/points-report", methods=["GET"])
@raises((403, "villager_inactive"))
@blp.arguments(PointsReportArgs, location="query")
@blp.response(200, PointsReportOut)
def points_report(args: dict[str, Any], township_id: int) -> liability.PointsReport:
    """Outstanding points per village (the liability) and points issued and spent.

    Per village, at its exchange rate: issued = outstanding + redeemed + expired (township
    and county admins)."""
    return liability.points_report(db.session, current_actor(), township_id, args.get("month"))
