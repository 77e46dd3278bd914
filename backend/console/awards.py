"""积分录入: a cadre's award or deduction for many households or members at once.

A thin view over the service of POST /api/v1/awards (`points.claims.award`, all or nothing):
the item is found in the catalog in force for the village, as GET /rule-items lists it; the
targets are ticked by villager group or found by name, phone or address; the dry run (试算)
before sending is the engine's own (`points.claims.evaluate_for`, behind POST
/api/v1/rules/evaluate), so the caps it shows are the ones the award applies. A photo is
checked and stored by the uploads service of POST /api/v1/uploads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

import rules
from points import catalogs, claims, registry, uploads
from points.errors import DomainError, Invalid
from points.models import Claim, Household, RuleItem, Village, Villager, VillagerGroup
from points.scope import Actor, authorize, get_visible, visible
from rules.periods import PERIOD_NAMES

from ..clock import now, village_tz
from ..errors import APIError, chinese_messages
from ..extensions import db
from ..schemas.claims import AwardIn
from . import bp, forms, menu_item, session

menu_item("console.award_new", "积分录入", "claim.award")

# How many households a group or a search lists at once; a village has a few hundred.
LIST_LIMIT = 100

# The form's fields by the API's names, for a refusal of the API's own input bounds.
FIELD_LABELS = {
    "rule_item_id": "细则条目",
    "units": "数量",
    "note": "说明",
    "evidence": "照片",
    "targets": "对象",
}


@dataclass(frozen=True)
class ItemRow:
    """A rule item as the picker shows it: its current rule and its caps in words."""

    id: int
    rule: rules.RuleItem
    caps: str

    @property
    def deduction(self) -> bool:
        return self.rule.klass == "deduction"


def _caps_text(rule: rules.RuleItem) -> str:
    parts = []
    for cap in rule.caps:
        name = PERIOD_NAMES[cap.period]
        if cap.max_count is not None:
            parts.append(f"{name}最多 {cap.max_count} 次")
        if cap.max_points is not None:
            parts.append(f"{name}最多 {cap.max_points} 分")
    return "，".join(parts)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# ---- what the page reads ------------------------------------------------------------------


def _village(actor: Actor, values: MultiDict[str, str]) -> Village | None:
    """The village the award is for: a cadre's own; a township or county admin picks one."""
    village_id = actor.village_id or _int(values.get("village_id"))
    if village_id is None:
        return None
    return get_visible(db.session, actor, Village, village_id)


def _items(actor: Actor, village: Village) -> list[ItemRow]:
    """The items a cadre may award in the village, as GET /rule-items?submit_by=cadre lists
    them: the township's catalog, then the village's own, in catalog order."""
    stmt = catalogs.in_effect_for(visible(actor, RuleItem), village).options(
        selectinload(RuleItem.current_version)
    )
    rows = []
    for item in db.session.scalars(stmt):
        rule = claims.current_rule(item)
        if rule.may_submit("cadre"):
            rows.append(ItemRow(item.id, rule, _caps_text(rule)))
    return rows


def _matching(rows: list[ItemRow], category: str, q: str, chosen: int | None) -> list[ItemRow]:
    """The items of a category whose code or name holds `q`; the chosen one stays listed, so
    a new search does not lose it."""
    needle = q.strip().lower()
    shown = [
        row
        for row in rows
        if (not category or row.rule.category == category)
        and (not needle or needle in row.rule.code.lower() or needle in row.rule.name.lower())
    ]
    if chosen is not None and all(row.id != chosen for row in shown):
        shown = [row for row in rows if row.id == chosen] + shown
    return shown


def _categories(rows: list[ItemRow]) -> list[str]:
    return list(dict.fromkeys(row.rule.category for row in rows))


def _groups(actor: Actor, village: Village) -> list[VillagerGroup]:
    stmt = visible(actor, VillagerGroup).where(VillagerGroup.village_id == village.id)
    return list(db.session.scalars(stmt.order_by(VillagerGroup.id)))


def _households(actor: Actor, village: Village) -> Any:
    return (
        visible(actor, Household)
        .where(Household.village_id == village.id)
        .options(selectinload(Household.members))
        .order_by(Household.id)
    )


def _candidates(actor: Actor, village: Village, group_id: int | None, q: str) -> list[Household]:
    """Households of a group, or found by their name or address or a member's name or phone."""
    needle = q.strip()
    if group_id is None and not needle:
        return []
    stmt = _households(actor, village)
    if group_id is not None:
        stmt = stmt.where(Household.group_id == group_id)
    if needle:
        stmt = stmt.where(registry.household_matches(actor, village.id, needle))
    return list(db.session.scalars(stmt.limit(LIST_LIMIT)))


@dataclass(frozen=True)
class Chosen:
    """What the form ticked: households and members (`h:<id>`, `v:<id>`), whole groups."""

    households: list[int]
    members: list[int]
    groups: list[int]
    malformed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.households or self.members or self.groups)


def _chosen(values: MultiDict[str, str]) -> Chosen:
    households: list[int] = []
    members: list[int] = []
    malformed = False
    for value in values.getlist("target"):
        kind, _, raw = value.partition(":")
        number = _int(raw)
        if number is None or kind not in ("h", "v"):
            malformed = True
            continue
        chosen = households if kind == "h" else members
        if number not in chosen:
            chosen.append(number)
    groups = [g for g in (_int(v) for v in values.getlist("all_group")) if g is not None]
    return Chosen(households, members, list(dict.fromkeys(groups)), malformed)


@dataclass(frozen=True)
class Picked:
    """The ticked targets as the page names them (only what the staff member may see)."""

    households: list[Household]
    members: list[Villager]
    groups: list[tuple[VillagerGroup, list[Household]]]


def _picked(actor: Actor, village: Village, chosen: Chosen) -> Picked:
    households = []
    if chosen.households:
        stmt = _households(actor, village).where(Household.id.in_(chosen.households))
        found = {h.id: h for h in db.session.scalars(stmt)}
        households = [found[i] for i in chosen.households if i in found]
    members = []
    if chosen.members:
        stmt = (
            visible(actor, Villager)
            .join(Household, Household.id == Villager.household_id)
            .where(Villager.id.in_(chosen.members), Household.village_id == village.id)
            .options(selectinload(Villager.household))
        )
        found_members = {v.id: v for v in db.session.scalars(stmt)}
        members = [found_members[i] for i in chosen.members if i in found_members]
    groups = []
    for group in _groups(actor, village):
        if group.id in chosen.groups:
            stmt = _households(actor, village).where(Household.group_id == group.id)
            groups.append((group, list(db.session.scalars(stmt))))
    return Picked(households, members, groups)


def _targets(actor: Actor, village: Village, chosen: Chosen) -> list[dict[str, int]]:
    """The award's targets, as POST /api/v1/awards names them: the ticked members and
    households, then the households of each whole group not ticked already. The ids are the
    form's; the service finds each within the staff member's scope (404 otherwise)."""
    specs: list[dict[str, int]] = [{"villager_id": i} for i in chosen.members]
    specs += [{"household_id": i} for i in chosen.households]
    seen = set(chosen.households)
    for group_id in chosen.groups:
        group = get_visible(db.session, actor, VillagerGroup, group_id)
        if group.village_id != village.id:
            raise Invalid("村民小组不属于所选的村", code="wrong_village")
        in_group = visible(actor, Household).where(Household.group_id == group.id)
        ids = in_group.with_only_columns(Household.id).order_by(Household.id)
        for household_id in db.session.scalars(ids):
            if household_id not in seen:
                seen.add(household_id)
                specs.append({"household_id": household_id})
    return specs


def _page(values: MultiDict[str, str], done: list[Claim] | None = None) -> str:
    actor = session.load()
    authorize(actor, "claim.award")
    village = _village(actor, values)
    context: dict[str, Any] = {
        "values": values,
        "village": village,
        "done": done or [],
        "villages": []
        if actor.village_id
        else list(db.session.scalars(visible(actor, Village).order_by(Village.id))),
    }
    if village is not None:
        rows = _items(actor, village)
        chosen_item = _int(values.get("rule_item_id"))
        group_id = _int(values.get("group"))
        context.update(
            categories=_categories(rows),
            items=_matching(rows, values.get("category", ""), values.get("q", ""), chosen_item),
            chosen_item=chosen_item,
            groups=_groups(actor, village),
            group_id=group_id,
            picked=_picked(actor, village, _chosen(values)),
            candidates=_candidates(actor, village, group_id, values.get("tq", "")),
        )
    return render_template("console/awards/new.html", **context)


# ---- pages ----------------------------------------------------------------------------------


@bp.get("/awards/new")
def award_new() -> str:
    actor = session.load()
    done: list[Claim] = []
    ids = [i for i in (_int(v) for v in request.args.getlist("claim")) if i is not None]
    if ids:
        done = list(
            db.session.scalars(visible(actor, Claim).where(Claim.id.in_(ids)).order_by(Claim.id))
        )
    return _page(request.args, done)


@bp.get("/awards/items")
def award_items() -> str:
    """The item picker's list, for a category and a search."""
    actor = session.load()
    authorize(actor, "claim.award")
    village = _village(actor, request.args)
    if village is None:
        return ""
    chosen = _int(request.args.get("rule_item_id"))
    rows = _matching(
        _items(actor, village), request.args.get("category", ""), request.args.get("q", ""), chosen
    )
    return render_template("console/awards/_items.html", items=rows, chosen_item=chosen)


@bp.get("/awards/targets")
def award_targets() -> str:
    """The target picker: what is ticked, then a group's households or a search's."""
    actor = session.load()
    authorize(actor, "claim.award")
    village = _village(actor, request.args)
    if village is None:
        return ""
    group_id = _int(request.args.get("group"))
    return render_template(
        "console/awards/_targets.html",
        values=request.args,
        group_id=group_id,
        groups=_groups(actor, village),
        picked=_picked(actor, village, _chosen(request.args)),
        candidates=_candidates(actor, village, group_id, request.args.get("tq", "")),
    )


@dataclass(frozen=True)
class PreviewRow:
    label: str
    points: int | None = None
    capped: bool = False
    reason: str = ""
    refused: str = ""


@bp.post("/awards/preview")
def award_preview() -> str:
    """The engine's dry run for each target, recording nothing: what the award would give
    now, with the cap's reason. A household is tried through its head, as the award scores
    a household through its head."""
    session.check_csrf()
    actor = session.load()
    authorize(actor, "claim.award")
    village = _village(actor, request.form)
    item_id = _int(request.form.get("rule_item_id"))
    chosen = _chosen(request.form)
    if village is None or item_id is None or chosen.empty:
        return render_template("console/awards/_preview.html", rows=[], missing=True)
    raw_units = request.form.get("units", "").strip()
    units = _int(raw_units)
    if raw_units and units is None:
        return render_template(
            "console/awards/_preview.html", rows=[], problem="数量应为整数", missing=False
        )
    picked = _picked(actor, village, chosen)
    tried: list[tuple[str, int | None]] = [
        (f"{m.name}（{m.household.name or ''}）", m.id) for m in picked.members
    ]
    seen = set()
    for household in picked.households + [h for _, hs in picked.groups for h in hs]:
        if household.id not in seen:
            seen.add(household.id)
            head = household.head
            tried.append((household.name or f"#{household.id}", head.id if head else None))
    # Held for the loop: the session keeps loaded rows only while something refers to them,
    # so each target's dry run finds the item's catalog and version here instead of reading
    # them again.
    held = db.session.scalars(
        visible(actor, RuleItem)
        .where(RuleItem.id == item_id)
        .options(joinedload(RuleItem.catalog), joinedload(RuleItem.current_version))
    ).first()
    rows = []
    at, tz = now(), village_tz()
    for label, villager_id in tried:
        if villager_id is None:
            rows.append(PreviewRow(label, refused="该户没有登记户主，无法试算"))
            continue
        try:
            result = claims.evaluate_for(
                db.session, actor, item_id, villager_id, units, at.astimezone(tz), tz
            )
        except DomainError as exc:
            rows.append(PreviewRow(label, refused=exc.message))
            continue
        rows.append(PreviewRow(label, result["points"], result["capped"], result["reason"]))
    total = sum(row.points or 0 for row in rows)
    del held
    return render_template("console/awards/_preview.html", rows=rows, total=total, missing=False)


def _award_body(actor: Actor, village: Village, form: MultiDict[str, str]) -> dict[str, Any]:
    """The award as POST /api/v1/awards takes it, checked by its own schema (its bounds on
    units, note and the number of targets)."""
    chosen = _chosen(form)
    if chosen.malformed:
        raise Invalid("所选对象不正确，请重新勾选", code="validation_error")
    if _int(form.get("rule_item_id")) is None:
        raise Invalid("请选择细则条目", code="validation_error")
    if chosen.empty:
        raise Invalid("请勾选至少一户或一位村民", code="validation_error")
    raw_units = form.get("units", "").strip()
    if raw_units and _int(raw_units) is None:
        raise Invalid("数量应为整数", code="validation_error")
    note = form.get("note", "").strip()
    body = {
        "rule_item_id": _int(form.get("rule_item_id")),
        "units": _int(raw_units),
        "note": note or None,
        "targets": _targets(actor, village, chosen),
    }
    try:
        loaded: dict[str, Any] = AwardIn().load(body)
    except ValidationError as exc:
        messages = chinese_messages(exc.messages)
        name = next(iter(messages)) if isinstance(messages, dict) else ""
        detail = messages.get(name) if isinstance(messages, dict) else messages
        while isinstance(detail, dict | list) and detail:
            detail = next(iter(detail.values())) if isinstance(detail, dict) else detail[0]
        label = FIELD_LABELS.get(name, name)
        raise APIError(422, "validation_error", f"{label}：{detail}") from exc
    return loaded


def _refused() -> str:
    return _page(request.form)


@bp.post("/awards")
@forms.writes(on_refusal=_refused)
def award_post() -> Response:
    """The award for all the targets at once; one refused target refuses them all."""
    actor = session.load()
    village = _village(actor, request.form)
    if village is None:
        raise Invalid("请先选择村", code="village_required")
    body = _award_body(actor, village, request.form)
    photo = request.files.get("photo")
    data = photo.read() if photo is not None else b""
    upload_dir = current_app.config["UPLOAD_DIR"]
    stored = uploads.store_photo(db.session, actor, data, upload_dir) if data else None
    try:
        created = claims.award(
            db.session,
            actor,
            rule_item_id=body["rule_item_id"],
            units=body.get("units"),
            note=body.get("note"),
            evidence=[stored.id] if stored else [],
            targets=body["targets"],
            tz=village_tz(),
            now=now(),
        )
    except Exception:
        # The row goes with the rollback; its file must go too.
        if stored is not None:
            uploads.photo_path(upload_dir, stored).unlink(missing_ok=True)
        raise
    done = url_for(
        "console.award_new",
        village_id=None if actor.village_id else village.id,
        done=len(created),
        claim=[claim.id for claim in created],
    )
    return redirect(done, code=303)
