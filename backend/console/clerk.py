"""The supermarket clerk's counter (积分超市店员): handing out a villager's order by its pickup
code (取货核销), counter redemption by member card with cash for the difference (柜台兑换),
and its receipt (小票) for a thermal printer.

Thin views over the services of POST /redemptions/scan, /redemptions/pickup-code,
/shops/<id>/member-lookup and /shops/<id>/counter-redemptions, with their rate limits."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from points.errors import DomainError
from points.models import Redemption, Reward, Shop
from points.scope import Actor, authorize, get_visible, visible
from points.shop import counter
from points.shop import redemption as redemptions

from ..caller import qr_codec
from ..clock import now, village_tz
from ..errors import APIError, chinese_messages
from ..extensions import db
from ..ratelimits import PICKUP_CODE, by_user, limit_by, setting
from ..schemas.shop import CounterRedemptionIn, MemberLookupIn, PickupCodeIn, PickupScanIn
from . import bp, forms, menu_item, session

menu_item("console.pickup", "取货核销", "redemption.fulfil")
menu_item("console.counter", "柜台兑换", "redemption.counter")

FIELD_LABELS = {
    "pickup_code": "取货号",
    "pickup_token": "取货码",
    "member_token": "积分卡",
    "items": "商品",
    "cash_paid": "现金补差",
    "reward_id": "商品",
    "quantity": "数量",
}
OPEN_ORDERS_SHOWN = 50
PAPERS = ("58", "80")  # thermal receipt rolls, in mm


def load_form(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """The form read by the API's own schema, so the console takes what the API takes; the
    refusal names the field in Chinese."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        messages = chinese_messages(exc.messages)
        problems = []
        for name, texts in messages.items() if isinstance(messages, dict) else []:
            flat = texts if isinstance(texts, list) else [texts]
            words = "；".join(t for t in flat if isinstance(t, str)) or "取值无效"
            problems.append(f"{FIELD_LABELS.get(str(name), str(name))}：{words}")
        raise APIError(
            422, "validation_error", "提交的内容不符合要求：" + "；".join(problems)
        ) from exc
    return loaded


# ---- 取货核销: a villager's order, by its pickup code ----------------------------------------


def _is_pickup_number(text: str) -> bool:
    # The 6-digit number read out beside the QR; anything else is the scanned QR text.
    return len(text) == 6 and text.isascii() and text.isdigit()


@limit_by(setting("PICKUP_CODE_RATE_LIMIT"), by_user, shared=PICKUP_CODE)
def _pickup_number_try() -> None:
    """Counts a typed pickup number against the clerk's limit, on the counters of POST
    /redemptions/pickup-code: each try is a guess, whether to look or to hand out."""


def _scanned() -> str:
    return request.form.get("code", "").strip()


def _open_order(actor: Actor, text: str) -> Redemption:
    if _is_pickup_number(text):
        _pickup_number_try()
        code = load_form(PickupCodeIn(), {"pickup_code": text})["pickup_code"]
        return redemptions.open_order_by_code(db.session, actor, code, now=now())
    token = load_form(PickupScanIn(), {"pickup_token": text})["pickup_token"]
    return redemptions.open_order_by_token(db.session, actor, qr_codec(), token, now=now())


def _order_view(redemption: Redemption) -> dict[str, Any]:
    names = redemptions.names_for(db.session, [redemption])
    return {
        "id": redemption.id,
        "status": redemption.status,
        "source": redemption.source,
        "shop": names.shops.get(redemption.shop_id, ""),
        "household": names.households.get(redemption.household_id) or "",
        "member": names.members.get(redemption.member_id, "") if redemption.member_id else "",
        "lines": list(redemption.lines),
        "total_points": redemption.total_points,
        "cash_paid": redemption.cash_paid,
        "points": redemption.points,
        "created_at": redemption.created_at,
        "expires_at": redemption.expires_at,
        "fulfilled_at": redemption.fulfilled_at,
    }


def _open_orders(actor: Actor) -> list[dict[str, Any]]:
    """The shop's orders waiting to be picked up, oldest first, without their codes: only
    the household holds those."""
    rows = list(
        db.session.scalars(
            redemptions.with_lines(
                visible(actor, Redemption)
                .where(Redemption.status == "reserved")
                .order_by(Redemption.id)
                .limit(OPEN_ORDERS_SHOWN)
            )
        )
    )
    names = redemptions.names_for(db.session, rows)
    return [
        {
            "id": r.id,
            "household": names.households.get(r.household_id) or "",
            "goods": redemptions.items_text(r),
            "points": r.points,
            "expires_at": r.expires_at,
        }
        for r in rows
    ]


def _pickup_page(order: dict[str, Any] | None = None, done: dict[str, Any] | None = None) -> str:
    actor = session.load()
    authorize(actor, "redemption.fulfil")
    return render_template(
        "console/clerk/pickup.html",
        order=order,
        done=done,
        code=_scanned() if request.method == "POST" else "",
        open_orders=_open_orders(actor),
    )


@bp.get("/pickup")
def pickup() -> str:
    actor = session.load()
    authorize(actor, "redemption.fulfil")
    done = None
    done_id = request.args.get("done", type=int)
    if done_id:
        redemption = db.session.scalar(
            redemptions.with_lines(visible(actor, Redemption).where(Redemption.id == done_id))
        )
        if redemption is not None and redemption.status == "fulfilled":
            done = _order_view(redemption)
    return _pickup_page(done=done)


@bp.post("/pickup/find")
def pickup_find() -> tuple[str, int] | str:
    """What a scanned code names, before the goods go out; a read, but the code is sent in
    the body (a bearer of the goods, it stays out of addresses and logs)."""
    session.check_csrf()
    actor = session.load()
    authorize(actor, "redemption.fulfil")
    try:
        redemption = _open_order(actor, _scanned())
    except (DomainError, APIError) as exc:
        db.session.rollback()
        g.refusal = forms.refusal_of(exc)
        return _pickup_page(), g.refusal.status
    return _pickup_page(order=_order_view(redemption))


def _pickup_refused() -> str:
    return _pickup_page()


@bp.post("/pickup/fulfil")
@forms.writes(on_refusal=_pickup_refused)
def pickup_fulfil() -> Response:
    """交付: the same services as the API's scan and pickup number; the code is sent again,
    so only the one who holds it has the goods handed out."""
    actor = session.load()
    text = _scanned()
    if _is_pickup_number(text):
        _pickup_number_try()
        code = load_form(PickupCodeIn(), {"pickup_code": text})["pickup_code"]
        redemption = redemptions.fulfil_by_code(db.session, actor, code, now=now(), tz=village_tz())
    else:
        token = load_form(PickupScanIn(), {"pickup_token": text})["pickup_token"]
        redemption = redemptions.fulfil_by_token(
            db.session, actor, qr_codec(), token, now=now(), tz=village_tz()
        )
    return redirect(url_for("console.pickup", done=redemption.id), code=303)


# ---- 柜台兑换: member card, basket, cash for the difference ----------------------------------


def _shelf(actor: Actor) -> list[Reward]:
    """What the clerk's shop has on sale, in the order the shelf API lists it."""
    return list(
        db.session.scalars(
            visible(actor, Reward)
            .where(Reward.shop_id == actor.shop_id, Reward.active.is_(True))
            .order_by(Reward.points, Reward.id)
        )
    )


def _card() -> str:
    return request.form.get("member_token", "").strip()


def _card_holder(actor: Actor, token: str) -> counter.CardHolder:
    body = load_form(MemberLookupIn(), {"member_token": token})
    return counter.card_holder(
        db.session,
        actor,
        qr_codec(),
        _shop_id(actor),
        member_token=body["member_token"],
        now=now(),
        tz=village_tz(),
    )


def _shop_id(actor: Actor) -> int:
    # Only a clerk may sell at the counter (redemption.counter); their shop is their scope.
    authorize(actor, "redemption.counter")
    assert actor.shop_id is not None
    return actor.shop_id


def _basket() -> dict[str, Any]:
    """The basket as the API's counter redemption takes it: one item per reward with a
    quantity above zero (qty-<reward id> fields), and the cash paid as typed."""
    items = []
    for name, value in request.form.items():
        if name.startswith("qty-") and name[4:].isdigit() and value.strip() not in ("", "0"):
            quantity: Any = int(value) if value.strip().isdigit() else value
            items.append({"reward_id": int(name[4:]), "quantity": quantity})
    cash = request.form.get("cash_paid", "").strip()
    return load_form(
        CounterRedemptionIn(),
        {"member_token": _card(), "items": items, "cash_paid": cash or None},
    )


def _counter_page(holder: counter.CardHolder | None = None) -> str:
    actor = session.load()
    _shop_id(actor)
    return render_template(
        "console/clerk/counter.html",
        holder=holder,
        card=_card() if holder is not None else "",
        shelf=_shelf(actor) if holder is not None else [],
    )


@bp.get("/counter", endpoint="counter")
def counter_page() -> str:
    return _counter_page()


@bp.post("/counter/card")
@limit_by(setting("COUNTER_REDEMPTION_RATE_LIMIT"), by_user)  # per clerk, as member-lookup
def counter_card() -> tuple[str, int] | str:
    """Who is at the counter: the same answer as POST /shops/<id>/member-lookup."""
    session.check_csrf()
    actor = session.load()
    try:
        holder = _card_holder(actor, _card())
    except (DomainError, APIError) as exc:
        db.session.rollback()
        g.refusal = forms.refusal_of(exc)
        return _counter_page(), g.refusal.status
    return _counter_page(holder)


@bp.post("/counter/quote")
def counter_quote() -> str:
    """试算: the basket priced and checked by the counter redemption's own service, holding
    nothing, so the points, the cash and every refusal are the service's, never worked out
    here (an htmx fragment)."""
    session.check_csrf()
    actor = session.load()
    if not any(
        n.startswith("qty-") and v.strip() not in ("", "0") for n, v in request.form.items()
    ):
        return render_template("console/clerk/quote.html", quote=None, refusal=None)
    figures = refusal = None
    try:
        body = _basket()
        figures = counter.quote(
            db.session,
            actor,
            qr_codec(),
            _shop_id(actor),
            member_token=body["member_token"],
            items=body["items"],
            cash_paid=counter.parse_cash(body.get("cash_paid")),
            now=now(),
            tz=village_tz(),
        )
    except (DomainError, APIError) as exc:
        refusal = forms.refusal_of(exc)
    finally:
        db.session.rollback()  # an account made on first use is the sale's to make
    return render_template("console/clerk/quote.html", quote=figures, refusal=refusal)


def _counter_refused() -> str:
    actor = session.load()
    try:
        holder = _card_holder(actor, _card())
    except (DomainError, APIError):
        db.session.rollback()
        holder = None
    return _counter_page(holder)


@bp.post("/counter/sale")
@limit_by(setting("COUNTER_REDEMPTION_RATE_LIMIT"), by_user)  # per clerk, as the API
@forms.writes(on_refusal=_counter_refused)
def counter_sale() -> Response:
    """确认兑换: the same service as POST /shops/<id>/counter-redemptions; then the receipt."""
    actor = session.load()
    body = _basket()
    redemption = counter.counter_redeem(
        db.session,
        actor,
        qr_codec(),
        _shop_id(actor),
        member_token=body["member_token"],
        items=body["items"],
        cash_paid=counter.parse_cash(body.get("cash_paid")),
        now=now(),
        tz=village_tz(),
    )
    return redirect(url_for("console.counter_receipt", redemption_id=redemption.id), code=303)


@bp.get("/counter/receipts/<int:redemption_id>")
def counter_receipt(redemption_id: int) -> str:
    """小票: a handed-out redemption of the clerk's shop, for a 58 or 80 mm thermal roll."""
    actor = session.load()
    redemption = get_visible(db.session, actor, Redemption, redemption_id)
    authorize(actor, "redemption.counter")
    paper = request.args.get("paper", "58")
    if paper not in PAPERS:
        paper = "58"
    shop = db.session.get(Shop, redemption.shop_id)
    return render_template(
        "console/clerk/receipt.html",
        order=_order_view(redemption),
        shop=shop,
        paper=paper,
        papers=PAPERS,
    )
