"""Rule catalogs as stored (积分细则): import and export, items and their versions, policies,
and the dry-run evaluation.

The rules themselves (what a valid item is, what it scores) live in `rules/`; this module
decides who may change them and keeps every wording that was ever in force. Editing an item
inserts a new `RuleItemVersion` and moves the item's current version; nothing that was
recorded against an older version changes. A catalog or item that `rules/` refuses is a
`CatalogInvalid` naming each item and field, raised before anything is written.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, bindparam, cast, func, or_, select
from sqlalchemy.orm import Session, selectinload

import rules

from . import audit
from .errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from .models import (
    RuleCatalog,
    RuleItem,
    RuleItemVersion,
    Township,
    Village,
    utcnow,
)
from .models.rules import stored_policy
from .scope import CADRE, COUNTY, Actor, authorize, get_visible, visible

# A catalog with hundreds of problems is the wrong file; the first ones say enough.
MAX_PROBLEMS = 200


class CatalogInvalid(DomainError):
    status = 422
    code = "catalog_invalid"
    message = "积分细则有错误，未做任何修改，请按提示修改后重试"

    def __init__(self, problems: Iterable[rules.Problem], code: str | None = None) -> None:
        self.problems = list(problems)
        if code is not None:  # a file refused as a whole: its one problem says why
            self.code = code
            self.message = self.problems[0].message
        details: dict[str, Any] = {
            "problems": [
                {"item": p.item, "field": p.field, "message": p.message}
                for p in self.problems[:MAX_PROBLEMS]
            ]
        }
        if len(self.problems) > MAX_PROBLEMS:
            details["truncated"] = True
        super().__init__(details=details)


@dataclass(frozen=True)
class ImportResult:
    catalog: RuleCatalog
    created: int  # items new to the catalog
    revised: int  # items that got a new version (or came back after being dropped)
    unchanged: int
    retired: int  # items the file no longer lists; their versions stay for history


# --- reading ------------------------------------------------------------------------------


def decode_yaml(data: bytes) -> str:
    """The text of an uploaded catalog file: UTF-8 (with or without BOM), or GBK, which is
    what a catalog saved by Notepad on a township office PC often is."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gbk")
    except UnicodeDecodeError:
        raise CatalogInvalid(
            [rules.Problem(None, "yaml", "文件编码无法识别，请另存为 UTF-8 编码后重新上传")]
        ) from None


def township_catalog(session: Session, township_id: int) -> RuleCatalog | None:
    return session.scalar(select(RuleCatalog).where(RuleCatalog.township_id == township_id))


def village_catalog(session: Session, village_id: int) -> RuleCatalog | None:
    return session.scalar(select(RuleCatalog).where(RuleCatalog.village_id == village_id))


def _village(session: Session, village_id: int) -> Village:
    village = session.get(Village, village_id)
    if village is None:
        raise NotFound("未找到该村")
    return village


def catalog_policy(session: Session, catalog: RuleCatalog) -> tuple[rules.Policy, bool]:
    """The policy in force for a catalog, and whether it is the catalog's own (False: a
    village following its township's policy)."""
    if catalog.policy is not None:
        return stored_policy(catalog.policy), True
    assert catalog.village_id is not None
    return effective_policy(session, catalog.village_id), False


def effective_policy(session: Session, village_id: int) -> rules.Policy:
    """The policy a village works under: its own if the township set one for it, else the
    township's, else the defaults of `rules.Policy`. One query reads both catalogs' policies
    (read on every award; `policy_of` is the precedence, for callers that read them along
    with something else)."""
    rows = session.execute(_POLICIES, {"village_id": village_id}).all()
    if not rows and session.get(Village, village_id) is None:
        raise NotFound("未找到该村")
    own = next((policy for v, policy in rows if v == village_id), None)
    township = next((policy for v, policy in rows if v is None), None)
    return policy_of(own, township)


def effective_policies(session: Session, townships: Mapping[int, int]) -> dict[int, rules.Policy]:
    """`effective_policy` of many villages (village id → its township's id) in one query:
    the pages that list a budget for each village of a township or county."""
    if not townships:
        return {}
    own: dict[int, Any] = {}
    township: dict[int, Any] = {}
    for village_id, township_id, policy in session.execute(
        select(RuleCatalog.village_id, RuleCatalog.township_id, _POLICY_TEXT).where(
            or_(
                RuleCatalog.village_id.in_(townships),
                RuleCatalog.township_id.in_(set(townships.values())),
            )
        )
    ):
        if village_id is not None:
            own[village_id] = policy
        elif township_id is not None:
            township[township_id] = policy
    return {
        village_id: policy_of(own.get(village_id), township.get(township_id))
        for village_id, township_id in townships.items()
    }


def policy_of(
    own: dict[str, Any] | str | None, township: dict[str, Any] | str | None
) -> rules.Policy:
    """`effective_policy` from the stored policies of the village's own catalog and of its
    township's catalog (None: no catalog, or no policy of its own)."""
    if own is not None:
        return stored_policy(own)
    if township is not None:
        return stored_policy(township)
    return rules.Policy()


def policy_text(catalog: type[RuleCatalog]) -> ColumnElement[str | None]:
    """A catalog's policy read as its JSON text, the key `stored_policy` keeps its parsed
    value by: no decoding by the driver and encoding again to find it (an award, a check-in,
    each village of a county's budget page). A JSON null, which the mapped column reads as
    None (a village catalog without a policy of its own: the township's), reads as NULL, not
    as the text 'null' for the parser."""
    return func.nullif(cast(catalog.policy, Text), "null")


_POLICY_TEXT = policy_text(RuleCatalog)

# Built once (effective_policy runs on every award and check-in): the village's own catalog
# and its township's, with their policies.
_POLICIES = select(RuleCatalog.village_id, _POLICY_TEXT).where(
    or_(
        RuleCatalog.village_id == bindparam("village_id"),
        RuleCatalog.township_id
        == select(Village.township_id)
        .where(Village.id == bindparam("village_id"))
        .scalar_subquery(),
    )
)


def live_items(session: Session, catalog_id: int) -> list[RuleItem]:
    """The items a catalog lists now, in its order, with their current versions loaded."""
    return list(
        session.scalars(
            select(RuleItem)
            .where(RuleItem.catalog_id == catalog_id, RuleItem.retired_at.is_(None))
            .order_by(RuleItem.position, RuleItem.id)
            .options(selectinload(RuleItem.current_version))
        )
    )


def item_count(session: Session, catalog_ids: Iterable[int]) -> dict[int, int]:
    ids = list(catalog_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(RuleItem.catalog_id, func.count())
        .where(RuleItem.catalog_id.in_(ids), RuleItem.retired_at.is_(None))
        .group_by(RuleItem.catalog_id)
    )
    counts = {catalog_id: 0 for catalog_id in ids}
    counts.update({catalog_id: n for catalog_id, n in rows})
    return counts


def as_catalog(session: Session, catalog: RuleCatalog) -> rules.Catalog:
    """The stored catalog as `rules/` reads it, built from each item's current version."""
    policy, _ = catalog_policy(session, catalog)
    return rules.Catalog(
        name=catalog.name,
        categories=tuple(catalog.categories),
        policy=policy,
        items=tuple(
            item.current_version.rule
            for item in live_items(session, catalog.id)
            if item.current_version is not None
        ),
    )


def export_yaml(session: Session, catalog_id: int, actor: Actor | None = None) -> str:
    """The catalog as canonical YAML (`rules.dump_yaml`): importing a file and exporting it
    gives the same bytes back, so a township can keep its 积分细则 in a file and diff it.
    `actor` None is the operator at the command line."""
    if actor is None:
        catalog = session.get(RuleCatalog, catalog_id)
        if catalog is None:
            raise NotFound("未找到该积分细则")
    else:
        catalog = get_visible(session, actor, RuleCatalog, catalog_id)
    return rules.dump_yaml(as_catalog(session, catalog))


def in_effect_for(stmt: Select[RuleItem], village: Village) -> Select[RuleItem]:
    """Narrow a select of items to those a village uses now: its township's catalog, then its
    own items (村规民约), each in catalog order."""
    return (
        stmt.join(RuleCatalog, RuleCatalog.id == RuleItem.catalog_id)
        .where(
            or_(
                RuleCatalog.township_id == village.township_id,
                RuleCatalog.village_id == village.id,
            ),
            RuleItem.retired_at.is_(None),
        )
        .order_by(RuleCatalog.village_id.is_not(None), RuleItem.position, RuleItem.id)
    )


def effective_items(session: Session, village_id: int) -> list[RuleItem]:
    """The items a village can award or claim: the township's plus the village's own."""
    village = _village(session, village_id)
    stmt = in_effect_for(select(RuleItem), village).options(selectinload(RuleItem.current_version))
    return list(session.scalars(stmt))


def get_version(session: Session, actor: Actor, version_id: int) -> RuleItemVersion:
    return get_visible(session, actor, RuleItemVersion, version_id)


def versions_of(item_id: int) -> Select[RuleItemVersion]:
    """Every version of an item, newest first: the history of what it said (the caller has
    checked the item is visible)."""
    return (
        select(RuleItemVersion)
        .where(RuleItemVersion.item_id == item_id)
        .order_by(RuleItemVersion.version.desc())
    )


def item_for(session: Session, version_id: int) -> rules.RuleItem:
    """The rule a recorded award was made under. Claims and ledger entries keep the version
    id, so this answers with the points and wording of that day, whatever was edited since.
    No scope check: the caller has already authorised access to the record holding the id."""
    version = session.get(RuleItemVersion, version_id)
    if version is None:
        raise NotFound("未找到该细则版本")
    return version.rule


# --- who may write ------------------------------------------------------------------------


def _owner(catalog: RuleCatalog) -> audit.Filing:
    """Audit filing: a township catalog under its township, village items under the village
    (and through it, its township)."""
    return {"township_id": catalog.township_id, "village_id": catalog.village_id}


def _authorize_write(session: Session, actor: Actor | None, catalog: RuleCatalog) -> None:
    if actor is None:
        return
    if catalog.village_id is None:
        authorize(actor, "catalog.edit")
        return
    authorize(actor, "village_items.edit")
    _check_village_items_allowed(session, actor, _village(session, catalog.village_id))


def _check_village_items_allowed(session: Session, actor: Actor, village: Village) -> None:
    # The township decides whether its villages write their own items; its admins may always
    # write them (e.g. entering a village assembly's 村规民约 on the village's behalf).
    if actor.role != CADRE:
        return
    township = township_catalog(session, village.township_id)
    policy = stored_policy(township.policy) if township and township.policy else None
    if policy is None or not policy.allow_village_items:
        raise Forbidden(
            "本乡镇未允许各村自行增设积分细则（村规民约），请联系乡镇管理员",
            code="village_items_not_allowed",
        )


def _check_floor(session: Session, catalog: RuleCatalog, rule: rules.RuleItem) -> None:
    """A village's own item is refused, naming the field, when it says less than the
    township's policy allows (fewer notice days, no review): clamping would store something
    other than what the village assembly voted and the cadre typed. Claims are decided under
    the floor in force then anyway (claims.rule_in_force), since the township may raise it
    after the item was written."""
    if catalog.village_id is None:
        return
    problems = rules.village_item_problems(rule, effective_policy(session, catalog.village_id))
    if problems:
        raise CatalogInvalid(problems)


def _township_of(session: Session, catalog: RuleCatalog) -> int:
    if catalog.township_id is not None:
        return catalog.township_id
    assert catalog.village_id is not None
    return _village(session, catalog.village_id).township_id


def _township_for_write(session: Session, actor: Actor | None, township_id: int | None) -> Township:
    """The township whose catalog is written. Left out, it is the caller's: a township
    admin's scope holds exactly one; a county admin's holds them all, so they must name it."""
    if actor is None:
        township = session.get(Township, township_id) if township_id is not None else None
        if township is None:
            raise NotFound("未找到该乡镇")
        return township
    authorize(actor, "catalog.edit")
    if township_id is None:
        if actor.role == COUNTY or actor.township_id is None:
            raise Invalid(
                "请指定乡镇（township_id）",
                code="township_required",
                details={"field": "township_id"},
            )
        township_id = actor.township_id
    return get_visible(session, actor, Township, township_id)


def _codes_used_elsewhere(
    session: Session, catalog: RuleCatalog | None, township_id: int, codes: Iterable[str]
) -> dict[str, str]:
    """Codes already used at the other level of the same township, each with where: a
    village's own item must not share a code with its township's catalog, or "ENV-YARD"
    would mean two different things in one village."""
    wanted = set(codes)
    if not wanted:
        return {}
    if catalog is not None and catalog.village_id is not None:
        others = select(RuleCatalog.id).where(RuleCatalog.township_id == township_id)
    else:
        others = select(RuleCatalog.id).where(
            RuleCatalog.village_id.in_(select(Village.id).where(Village.township_id == township_id))
        )
    rows = session.execute(
        select(RuleItem.code, RuleCatalog.name)
        .join(RuleCatalog, RuleCatalog.id == RuleItem.catalog_id)
        .where(
            RuleItem.catalog_id.in_(others),
            RuleItem.code.in_(wanted),
            RuleItem.retired_at.is_(None),
        )
    )
    return {code: name for code, name in rows}


def _code_problems(used: Mapping[str, str]) -> list[rules.Problem]:
    return [
        rules.Problem(code, "code", f"编码「{code}」已在「{where}」中使用，请换一个编码")
        for code, where in sorted(used.items())
    ]


# --- writing ------------------------------------------------------------------------------


def _add_version(
    session: Session, actor: Actor | None, item: RuleItem, rule: rules.RuleItem, number: int
) -> RuleItemVersion:
    version = RuleItemVersion(
        item=item,
        version=number,
        data=rules.item_to_dict(rule),
        points=rule.points,
        hourly=bool(rule.hourly),
        created_by=actor.user_id if actor else None,
    )
    session.add(version)
    item.current_version = version
    return version


def _new_item(
    session: Session,
    actor: Actor | None,
    catalog: RuleCatalog,
    rule: rules.RuleItem,
    position: int,
) -> RuleItem:
    item = RuleItem(catalog=catalog, code=rule.code, position=position)
    session.add(item)
    _add_version(session, actor, item, rule, 1)
    return item


@dataclass(frozen=True)
class ItemRef:
    """A rule item as a claim, a check-in's activity or an entry names it: the item, the
    version it was scored under (None where the caller names the item only), and what that
    version says of it. Built here, by `item_ref`, from the version's stored data; the
    schema that shows it picks its fields."""

    id: int
    version_id: int | None
    version: int | None
    code: str | None
    name: str | None
    category: str | None
    points: int | None
    kind: str | None
    unit: str | None
    requires_review: bool | None


def item_ref(
    item_id: int,
    version_id: int | None = None,
    version: RuleItemVersion | None = None,
    data: Mapping[str, Any] | None = None,
) -> ItemRef:
    """The reference to an item, by its version row (`version`) or, where the caller has
    read only its stored data, by `data`; a version that is gone leaves the rest None."""
    if version is not None:
        data = version.data
    data = data or {}
    return ItemRef(
        id=item_id,
        version_id=version_id,
        version=version.version if version else None,
        code=data.get("code"),
        name=data.get("name"),
        category=data.get("category"),
        points=data.get("points"),
        kind=data.get("kind"),
        unit=data.get("unit"),
        requires_review=data.get("requires_review"),
    )


def _version_record(version: RuleItemVersion) -> dict[str, Any]:
    return {"version": version.version, "version_id": version.id, "data": version.data}


def import_catalog(
    session: Session,
    actor: Actor | None,
    township_id: int | None,
    yaml_text: str | bytes,
    replace: bool = False,
) -> ImportResult:
    """Load a township's catalog from YAML (`flask rules import`, the import endpoint).

    A malformed file changes nothing and names every item and field at fault. A township
    that already has a catalog keeps it unless `replace`: then each item whose code is in the
    file gets a new version if its wording changed, new codes become new items, and items the
    file leaves out are retired (their versions stay, since awards point at them).
    `township_id` None: the township admin's own township.
    """
    township = _township_for_write(session, actor, township_id)
    text = decode_yaml(yaml_text) if isinstance(yaml_text, bytes) else yaml_text
    try:
        catalog = rules.load_yaml(text)
    except rules.CatalogError as error:
        raise CatalogInvalid(error.problems, error.code) from None
    return _install(session, actor, township, catalog, replace)


def install_catalog(
    session: Session,
    actor: Actor | None,
    township_id: int,
    catalog: rules.Catalog,
    replace: bool = False,
) -> ImportResult:
    """`import_catalog` for a catalog already parsed, e.g. `rules.load_default_catalog()`."""
    return _install(
        session, actor, _township_for_write(session, actor, township_id), catalog, replace
    )


def _install(
    session: Session,
    actor: Actor | None,
    township: Township,
    catalog: rules.Catalog,
    replace: bool,
) -> ImportResult:
    row = session.scalar(
        select(RuleCatalog).where(RuleCatalog.township_id == township.id).with_for_update()
    )
    if row is not None and not replace:
        raise Conflict(
            "本乡镇已有积分细则；如需整体替换请选择“替换”（replace），已记的分仍按原版本，不受影响",
            code="catalog_exists",
            details={"catalog_id": row.id},
        )
    used = _codes_used_elsewhere(session, row, township.id, (i.code for i in catalog.items))
    if used:
        raise CatalogInvalid(_code_problems(used))

    before = audit.snapshot(row) if row is not None else None
    if row is None:
        row = RuleCatalog(township_id=township.id)
        session.add(row)
    row.name = catalog.name
    row.categories = list(catalog.categories)
    row.policy = rules.policy_to_dict(catalog.policy)
    session.flush()

    # Locked like a single edit, so an edit running meanwhile waits rather than racing it.
    existing = {
        item.code: item
        for item in session.scalars(
            select(RuleItem)
            .where(RuleItem.catalog_id == row.id)
            .with_for_update()
            .options(selectinload(RuleItem.current_version))
        )
    }
    created = revised = unchanged = retired = 0
    for position, rule in enumerate(catalog.items):
        item = existing.pop(rule.code, None)
        if item is None:
            _new_item(session, actor, row, rule, position)
            created += 1
            continue
        item.position = position
        current = item.current_version
        assert current is not None
        if current.data != rules.item_to_dict(rule):
            _add_version(session, actor, item, rule, current.version + 1)
            revised += 1
        elif item.retired_at is not None:
            revised += 1
        else:
            unchanged += 1
        item.retired_at = None
    now = utcnow()
    for item in existing.values():
        if item.retired_at is None:
            item.retired_at = now
            retired += 1
    session.flush()
    summary = {"created": created, "revised": revised, "unchanged": unchanged, "retired": retired}
    audit.record(
        session,
        actor,
        "rule_catalog.import",
        row,
        before=before,
        after={**audit.snapshot(row), "summary": summary},
        township_id=township.id,
    )
    return ImportResult(row, **summary)


def create_catalog(
    session: Session,
    actor: Actor,
    name: str,
    *,
    township_id: int | None = None,
    village_id: int | None = None,
    categories: list[str] | None = None,
) -> RuleCatalog:
    """An empty catalog: a township's (admins), or a village's own items (村规民约; cadres
    too when the township allows). Categories default to the township's, or the reference
    catalog's; a village catalog follows the township's policy until one is set for it."""
    if (township_id is None) == (village_id is None):
        raise Invalid("请指定乡镇或村（二选一）", code="owner_required")
    policy: dict[str, Any] | None
    if township_id is not None:
        township = _township_for_write(session, actor, township_id)
        if township_catalog(session, township.id) is not None:
            raise Conflict("本乡镇已有积分细则", code="catalog_exists")
        default_categories = rules.load_default_catalog().categories
        policy = rules.policy_to_dict(rules.Policy())
    else:
        assert village_id is not None
        village = get_visible(session, actor, Village, village_id)
        authorize(actor, "village_items.edit")
        _check_village_items_allowed(session, actor, village)
        if village_catalog(session, village.id) is not None:
            raise Conflict(
                "本村已有自设细则（村规民约），请直接在其中增加条目", code="catalog_exists"
            )
        parent = township_catalog(session, village.township_id)
        default_categories = (
            tuple(parent.categories) if parent else rules.load_default_catalog().categories
        )
        policy = None
    chosen = tuple(categories) if categories is not None else default_categories
    try:
        # An empty catalog checks the name and categories the same way a file would be.
        rules.Catalog(name=name, categories=chosen, policy=rules.Policy(), items=())
    except rules.CatalogError as error:
        raise CatalogInvalid(error.problems) from None
    catalog = RuleCatalog(
        name=name,
        township_id=township_id,
        village_id=village_id,
        categories=list(chosen),
        policy=policy,
    )
    session.add(catalog)
    audit.record(session, actor, "rule_catalog.create", catalog, **_owner(catalog))
    return catalog


def add_item(session: Session, actor: Actor, catalog_id: int, data: Mapping[str, Any]) -> RuleItem:
    """A new item at the end of a catalog, as version 1."""
    catalog = get_visible(session, actor, RuleCatalog, catalog_id)
    _authorize_write(session, actor, catalog)
    try:
        rule = rules.parse_item(data, catalog.categories)
    except rules.CatalogError as error:
        raise CatalogInvalid(error.problems) from None
    _check_floor(session, catalog, rule)
    used = _codes_used_elsewhere(session, catalog, _township_of(session, catalog), [rule.code])
    if used:
        raise Conflict(_code_problems(used)[0].message, code="duplicate_code")
    item = session.scalar(
        select(RuleItem).where(RuleItem.catalog_id == catalog.id, RuleItem.code == rule.code)
    )
    position = session.scalar(
        select(func.coalesce(func.max(RuleItem.position) + 1, 0)).where(
            RuleItem.catalog_id == catalog.id
        )
    )
    if item is None:
        item = _new_item(session, actor, catalog, rule, position or 0)
    elif item.retired_at is None:
        raise Conflict(
            f"本细则已有编码为「{rule.code}」的条目",
            code="duplicate_code",
            details={"item_id": item.id},
        )
    else:
        # A dropped item added again comes back as itself, so its history stays in one place.
        current = item.current_version
        assert current is not None
        _add_version(session, actor, item, rule, current.version + 1)
        item.retired_at, item.position = None, position or 0
    session.flush()
    version = item.current_version
    assert version is not None
    audit.record(
        session,
        actor,
        "rule_item.create",
        item,
        after={"code": item.code, **_version_record(version)},
        **_owner(catalog),
    )
    return item


def edit_item(
    session: Session, actor: Actor, item_id: int, changes: Mapping[str, Any]
) -> RuleItemVersion:
    """Change an item: the current wording with `changes` applied (None clears an optional
    field) becomes a new version. Returns the current version, which is the old one when
    nothing changed."""
    # Locked as it is read; the unique (item_id, version) is the backstop.
    item = _item_to_write(session, actor, item_id)
    catalog = item.catalog
    if item.retired_at is not None:
        raise Conflict("该条目已从细则中停用，不能再修改", code="item_retired")
    if "code" in changes and changes["code"] != item.code:
        raise Invalid(
            "编码是条目的标识，不能修改；如需新编码请新增条目",
            code="code_immutable",
            details={"field": "code"},
        )
    current = item.current_version
    assert current is not None
    merged = dict(current.data)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    try:
        rule = rules.parse_item(merged, catalog.categories)
    except rules.CatalogError as error:
        raise CatalogInvalid(error.problems) from None
    if rules.item_to_dict(rule) == current.data:
        return current
    _check_floor(session, catalog, rule)
    version = _add_version(session, actor, item, rule, current.version + 1)
    session.flush()
    audit.record(
        session,
        actor,
        "rule_item.edit",
        item,
        before=_version_record(current),
        after=_version_record(version),
        **_owner(catalog),
    )
    return version


def _item_to_write(session: Session, actor: Actor, item_id: int) -> RuleItem:
    """The item, locked as it is read (two writes at once must not both make version N+1;
    SQLite serialises writers anyway), once the actor may write its catalog."""
    item = session.scalars(
        visible(actor, RuleItem)
        .where(RuleItem.id == item_id)
        .with_for_update(of=RuleItem)
        .execution_options(populate_existing=True)
    ).first()
    if item is None:
        raise NotFound()
    _authorize_write(session, actor, item.catalog)
    return item


def retire_item(session: Session, actor: Actor, item_id: int) -> RuleItem:
    """Take an item out of its catalog (停用): it is no longer awarded or reported, and
    everything recorded under its versions keeps them. Adding its code again brings the
    same item back (`add_item`), as an import that lists it again does."""
    item = _item_to_write(session, actor, item_id)
    catalog = item.catalog
    if item.retired_at is not None:
        raise Conflict("该条目已从细则中停用", code="item_retired")
    item.retired_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "rule_item.retire",
        item,
        before={"code": item.code, "retired_at": None},
        after={"code": item.code, "retired_at": item.retired_at.isoformat()},
        **_owner(catalog),
    )
    return item


def set_policy(
    session: Session, actor: Actor, catalog_id: int, changes: Mapping[str, Any]
) -> RuleCatalog:
    """Township admins set a catalog's policy (公示 days, budget, stars …); on a village's
    catalog this gives the village a policy of its own, starting from the township's."""
    catalog = get_visible(session, actor, RuleCatalog, catalog_id)
    authorize(actor, "catalog.edit")
    if catalog.village_id is not None and "allow_village_items" in changes:
        raise CatalogInvalid(
            [
                rules.Problem(
                    None,
                    "allow_village_items",
                    "是否允许各村自设细则由乡镇的积分细则决定，不能在村一级设置",
                )
            ]
        )
    current, _ = catalog_policy(session, catalog)
    try:
        policy = rules.parse_policy({**rules.policy_to_dict(current), **changes})
    except rules.CatalogError as error:
        raise CatalogInvalid(error.problems) from None
    before = audit.snapshot(catalog)
    catalog.policy = rules.policy_to_dict(policy)
    audit.record(session, actor, "rule_catalog.policy", catalog, before=before, **_owner(catalog))
    return catalog


# --- the dry run --------------------------------------------------------------------------


def applicable_item(session: Session, actor: Actor, item_id: int, village_id: int) -> RuleItem:
    """An item the actor may see that applies in the village now, for the dry run (试算):
    it names what is wrong with the item rather than not finding it."""
    item = get_visible(session, actor, RuleItem, item_id)
    village = _village(session, village_id)
    catalog = item.catalog
    if catalog.village_id != village.id and catalog.township_id != village.township_id:
        raise Invalid("该细则条目不适用于这位村民所在的村", code="item_not_applicable")
    if item.retired_at is not None:
        raise Invalid("该细则条目已停用", code="item_retired")
    assert item.current_version is not None
    return item
