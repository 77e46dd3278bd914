"""Onboarding a county (`flask county init FILE.yaml`): its townships, villages, villager
groups, shops, staff accounts and each township's starting catalog (积分细则), from one YAML
file, in one transaction.

The file is checked as a whole before anything is written, and every problem is named by
its line in the file; a problem met while writing (a rule of the services below) names the
line of the entity being written and undoes everything. Everything is written through the
same services as the API (registry, shops, users, catalogs, roster): no rule twice.

Passwords are never read from the file (a county file gets committed and mailed around):
each account gets a generated one, returned once for the operator to hand out."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

import rules
from rules import excerpt

from . import catalogs, registry, roster, users
from .errors import DomainError
from .models import STAFF_ROLES, Household, Shop, Township, User, Village, Villager
from .shop import shops

MAX_FILE_CHARS = 1_000_000
EXAMPLE = Path(__file__).resolve().parent / "county_example.yaml"
PASSWORD_BYTES = 9  # 12 URL-safe characters


class CountyFileInvalid(DomainError):
    status = 422
    code = "county_file_invalid"
    message = "县级初始化文件有错误，未写入任何数据"

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = sorted(problems)
        super().__init__(
            details={
                "problems": [{"line": line, "message": message} for line, message in self.problems]
            }
        )


@dataclass
class Login:
    username: str
    role: str
    password: str
    scope: str


@dataclass
class InitResult:
    townships: int = 0
    villages: int = 0
    groups: int = 0
    shops: int = 0
    households: int = 0
    logins: list[Login] = field(default_factory=list)


# --- reading the file, keeping each entity's line ----------------------------------------


class _Map(dict[str, Any]):
    """A YAML mapping that remembers the line it starts on (1-based)."""

    line: int = 0


def _load(text: str) -> tuple[Any, list[tuple[int, str]]]:
    """The document, its mappings as _Map; problems of the YAML itself (line, message)."""
    if len(text) > MAX_FILE_CHARS:
        return None, [(1, "文件太大，请检查是否选错了文件")]
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            problems: list[tuple[int, str]] = []
            return (_value(loader, node, problems) if node is not None else None), problems
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        return None, [(line, f"YAML 格式错误：{excerpt(getattr(error, 'problem', error))}")]


def _value(loader: yaml.SafeLoader, node: yaml.Node, problems: list[tuple[int, str]]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = _Map()
        out.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node))
            if key in out:
                problems.append((key_node.start_mark.line + 1, f"“{excerpt(key)}”写了两次"))
            out[key] = _value(loader, value_node, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_value(loader, item, problems) for item in node.value]
    return loader.construct_object(node)


# --- checking -----------------------------------------------------------------------------


TOP_KEYS = {"townships", "staff"}
TOWNSHIP_KEYS = {"name", "code", "catalog", "villages", "shops"}
VILLAGE_KEYS = {"name", "code", "groups", "roster"}
SHOP_KEYS = {"name", "villages"}
STAFF_KEYS = {"username", "role", "name", "township", "village", "shop", "villager"}
LINK_KEYS = {"household", "name"}


def catalog_files() -> dict[str, Path]:
    """The catalogs a township may start from, by file stem and by catalog name."""
    found: dict[str, Path] = {}
    for path in sorted(rules.default_catalog_path().parent.glob("*.yaml")):
        found[path.stem] = path
        try:
            name = yaml.safe_load(path.read_text(encoding="utf-8")).get("name")
        except (yaml.YAMLError, AttributeError):
            continue
        if isinstance(name, str):
            found[name] = path
    return found


class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []

    def fail(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def mapping(self, value: Any, line: int, what: str, keys: set[str]) -> _Map | None:
        if not isinstance(value, _Map):
            self.fail(line, f"{what}应为“键: 值”的形式")
            return None
        for key in value:
            if key not in keys:
                hint = "；密码不写在文件里，导入时自动生成" if key == "password" else ""
                self.fail(
                    value.line,
                    f"{what}有无法识别的项“{excerpt(key)}”，"
                    f"可用的项：{'、'.join(sorted(keys))}{hint}",
                )
        return value

    def items(self, parent: _Map, key: str, what: str, keys: set[str]) -> Iterator[_Map]:
        value = parent.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.fail(parent.line, f"“{key}”应为列表（每项以“- ”开头）")
            return
        for item in value:
            checked = self.mapping(item, parent.line, what, keys)
            if checked is not None:
                yield checked

    def text(
        self, item: _Map, key: str, what: str, *, required: bool = True, limit: int = 100
    ) -> str | None:
        value = item.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(item.line, f"{what}缺少“{key}”")
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            self.fail(item.line, f"{what}的“{key}”应为文字")
            return None
        text = str(value).strip()
        if len(text) > limit:
            self.fail(item.line, f"{what}的“{key}”不能超过 {limit} 个字")
            return None
        return text

    def names(self, item: _Map, key: str, what: str) -> list[str]:
        value = item.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in value
        ):
            self.fail(item.line, f"{what}的“{key}”应为名称列表，如 [一组, 二组]")
            return []
        return [str(v).strip() for v in value]


@dataclass
class _Plan:
    """The file, checked: what to write, each with the line it came from."""

    townships: list[dict[str, Any]] = field(default_factory=list)
    staff: list[dict[str, Any]] = field(default_factory=list)


def check(session: Session, text: str, base: Path | None = None) -> _Plan:
    """The file's plan, or CountyFileInvalid naming every problem by line. Reads the
    database to refuse names that already exist: running a file twice is refused, by line."""
    data, problems = _load(text)
    c = _Checker()
    c.problems += problems
    plan = _Plan()
    if c.problems:
        raise CountyFileInvalid(c.problems)
    top = c.mapping(data, 1, "文件", TOP_KEYS)
    if top is None:
        raise CountyFileInvalid(c.problems)
    known_catalogs = catalog_files()
    township_names: dict[str, int] = {}
    codes: dict[str, int] = {}
    villages_of: dict[str, set[str]] = {}
    shops_of: dict[str, set[str]] = {}

    def code_once(code: str | None, line: int) -> None:
        if code is None:
            return
        first = codes.setdefault(code, line)
        if first != line:
            c.fail(line, f"编码“{excerpt(code)}”与第 {first} 行重复")

    if not isinstance(top.get("townships"), list) or not top["townships"]:
        c.fail(top.line, "请在“townships”下列出至少一个乡镇")
    for t in c.items(top, "townships", "乡镇", TOWNSHIP_KEYS):
        name = c.text(t, "name", "乡镇")
        code = c.text(t, "code", "乡镇", required=False, limit=40)
        code_once(code, t.line)
        catalog = c.text(t, "catalog", "乡镇", required=False, limit=200)
        if catalog is not None and catalog not in known_catalogs:
            c.fail(
                t.line,
                f"没有名为“{excerpt(catalog)}”的积分细则，可选："
                + "、".join(sorted(known_catalogs)),
            )
        if name is not None:
            first = township_names.setdefault(name, t.line)
            if first != t.line:
                c.fail(t.line, f"乡镇“{excerpt(name)}”与第 {first} 行重复")
        villages: list[dict[str, Any]] = []
        village_names: dict[str, int] = {}
        for v in c.items(t, "villages", "村", VILLAGE_KEYS):
            vname = c.text(v, "name", "村")
            vcode = c.text(v, "code", "村", required=False, limit=40)
            code_once(vcode, v.line)
            groups = c.names(v, "groups", "村")
            if len(set(groups)) != len(groups) or any(not g or len(g) > 100 for g in groups):
                c.fail(v.line, "村民小组名称不能为空、不能超过 100 个字、不能重复")
            roster_path = c.text(v, "roster", "村", required=False, limit=500)
            if roster_path is not None:
                path = (base or Path.cwd()) / roster_path
                if not path.is_file():
                    c.fail(v.line, f"找不到花名册文件“{excerpt(roster_path)}”")
            if vname is not None:
                first = village_names.setdefault(vname, v.line)
                if first != v.line:
                    c.fail(v.line, f"村“{excerpt(vname)}”与第 {first} 行重复")
            villages.append(
                {
                    "line": v.line,
                    "name": vname,
                    "code": vcode,
                    "groups": groups,
                    "roster": roster_path,
                }
            )
        shop_list: list[dict[str, Any]] = []
        shop_names: dict[str, int] = {}
        for s in c.items(t, "shops", "积分超市", SHOP_KEYS):
            sname = c.text(s, "name", "积分超市")
            served = c.names(s, "villages", "积分超市")
            if not served:
                c.fail(s.line, "积分超市须列出它服务的村（villages）")
            for village_name in served:
                if village_name not in village_names:
                    c.fail(
                        s.line, f"积分超市服务的村“{excerpt(village_name)}”不在本乡镇的 villages 中"
                    )
            if sname is not None:
                first = shop_names.setdefault(sname, s.line)
                if first != s.line:
                    c.fail(s.line, f"积分超市“{excerpt(sname)}”与第 {first} 行重复")
            shop_list.append({"line": s.line, "name": sname, "villages": served})
        if name is not None:
            villages_of[name] = set(village_names)
            shops_of[name] = set(shop_names)
        plan.townships.append(
            {
                "line": t.line,
                "name": name,
                "code": code,
                "catalog": catalog,
                "villages": villages,
                "shops": shop_list,
            }
        )

    usernames: dict[str, int] = {}
    for u in c.items(top, "staff", "工作人员", STAFF_KEYS):
        username = c.text(u, "username", "工作人员", limit=64)
        role = c.text(u, "role", "工作人员", limit=20)
        if role is not None and role not in STAFF_ROLES:
            c.fail(u.line, f"角色“{excerpt(role)}”无法识别，应为：" + "、".join(STAFF_ROLES))
            role = None
        township = c.text(u, "township", "工作人员", required=False)
        village = c.text(u, "village", "工作人员", required=False)
        shop = c.text(u, "shop", "工作人员", required=False)
        needs = {
            "county_admin": (),
            "township_admin": ("township",),
            "cadre": ("township", "village"),
            "clerk": ("township", "shop"),
        }
        if role is not None:
            for key in needs[role]:
                if u.get(key) is None:
                    c.fail(u.line, f"{role} 须写明“{key}”")
            for key in ("township", "village", "shop"):
                if key not in needs[role] and u.get(key) is not None:
                    c.fail(u.line, f"{role} 不需要“{key}”")
        if township is not None and township not in township_names:
            c.fail(u.line, f"乡镇“{excerpt(township)}”不在本文件的 townships 中")
        elif township is not None:
            if village is not None and village not in villages_of.get(township, set()):
                c.fail(u.line, f"村“{excerpt(village)}”不在乡镇“{excerpt(township)}”中")
            if shop is not None and shop not in shops_of.get(township, set()):
                c.fail(u.line, f"积分超市“{excerpt(shop)}”不在乡镇“{excerpt(township)}”中")
        link = None
        if u.get("villager") is not None:
            link_map = c.mapping(u["villager"], u.line, "花名册关联（villager）", LINK_KEYS)
            if link_map is not None:
                link = {
                    "household": c.text(link_map, "household", "花名册关联", limit=40),
                    "name": c.text(link_map, "name", "花名册关联", limit=50),
                    "line": link_map.line,
                }
        if username is not None:
            first = usernames.setdefault(username, u.line)
            if first != u.line:
                c.fail(u.line, f"用户名“{excerpt(username)}”与第 {first} 行重复")
        plan.staff.append(
            {
                "line": u.line,
                "username": username,
                "role": role,
                "name": c.text(u, "name", "工作人员", required=False, limit=50),
                "township": township,
                "village": village,
                "shop": shop,
                "villager": link,
            }
        )

    # What the database already has: the file was run before, or names clash.
    for planned in plan.townships:
        if planned["name"] and session.scalar(
            select(Township.id).where(Township.name == planned["name"])
        ):
            c.fail(
                planned["line"],
                f"乡镇“{excerpt(planned['name'])}”已存在（本文件是否已经导入过？），未重复创建",
            )
    for code, line in codes.items():
        if session.scalar(select(Township.id).where(Township.code == code)) or session.scalar(
            select(Village.id).where(Village.code == code)
        ):
            c.fail(line, f"编码“{excerpt(code)}”已被使用")
    for staff in plan.staff:
        if staff["username"] and session.scalar(
            select(User.id).where(User.username == staff["username"])
        ):
            c.fail(
                staff["line"],
                f"用户名“{excerpt(staff['username'])}”已存在（本文件是否已经导入过？）",
            )
    if c.problems:
        raise CountyFileInvalid(c.problems)
    return plan


# --- writing ------------------------------------------------------------------------------


def init_county(
    session: Session,
    text: str,
    *,
    base: Path | None = None,
    now: datetime,
    tz: ZoneInfo,
) -> InitResult:
    """Check the file, then write it; CountyFileInvalid (by line) and nothing written, else
    the result with each account's generated password. Does not commit."""
    plan = check(session, text, base)
    known_catalogs = catalog_files()
    result = InitResult()
    townships: dict[str, Township] = {}
    villages: dict[tuple[str, str], Village] = {}
    shop_rows: dict[tuple[str, str], Shop] = {}
    line = 0
    try:
        for t in plan.townships:
            line = t["line"]
            township = registry.create_township(session, None, t["name"], t["code"])
            session.flush()
            townships[t["name"]] = township
            result.townships += 1
            if t["catalog"] is not None:
                catalog = rules.load_yaml(known_catalogs[t["catalog"]].read_text("utf-8"))
                catalogs.install_catalog(session, None, township.id, catalog)
            for v in t["villages"]:
                line = v["line"]
                village = registry.create_village(session, None, township.id, v["name"], v["code"])
                session.flush()
                villages[(t["name"], v["name"])] = village
                result.villages += 1
                for group in v["groups"]:
                    registry.create_group(session, None, village.id, group)
                    result.groups += 1
                if v["roster"] is not None:
                    data = ((base or Path.cwd()) / v["roster"]).read_bytes()
                    summary = roster.import_roster(
                        session,
                        None,
                        village.id,
                        v["roster"],
                        data,
                        now=now,
                        tz=tz,
                        create_groups=True,
                    )
                    result.households += summary.households
                    result.groups += summary.groups
            for s in t["shops"]:
                line = s["line"]
                served = [villages[(t["name"], name)].id for name in s["villages"]]
                shop_rows[(t["name"], s["name"])] = shops.create_shop(
                    session, None, s["name"], township.id, served
                )
                session.flush()
                result.shops += 1
        for u in plan.staff:
            line = u["line"]
            its_township = townships.get(u["township"]) if u["township"] else None
            its_village = villages.get((u["township"], u["village"])) if u["village"] else None
            shop = shop_rows.get((u["township"], u["shop"])) if u["shop"] else None
            villager_id = None
            if u["villager"] is not None:
                line = u["villager"]["line"]
                villager_id = _roster_entry(session, its_township, its_village, u["villager"])
                line = u["line"]
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            users.create_staff(
                session,
                None,
                username=u["username"],
                password=password,
                role=u["role"],
                name=u["name"],
                township_id=its_township.id if its_township else None,
                village_id=its_village.id if its_village else None,
                shop_id=shop.id if shop else None,
                villager_id=villager_id,
            )
            result.logins.append(
                Login(
                    u["username"],
                    u["role"],
                    password,
                    " / ".join(n for n in (u["township"], u["village"], u["shop"]) if n) or "全县",
                )
            )
        session.flush()
    except roster.RosterInvalid as error:
        raise CountyFileInvalid(
            [
                (line, f"花名册第 {e['row']} 行 {e['field'] or ''}：{e['message']}")
                for e in error.details["errors"]
            ]
        ) from None
    except DomainError as error:
        raise CountyFileInvalid([(line, error.message)]) from None
    return result


def _roster_entry(
    session: Session, township: Township | None, village: Village | None, link: dict[str, Any]
) -> int:
    """The villager a staff account is linked to: by household key and name, within the
    account's village (a cadre) or township, from a roster this file imported."""
    query = (
        select(Villager.id)
        .join(Household, Household.id == Villager.household_id)
        .where(Household.code == link["household"], Villager.name == link["name"])
    )
    if village is not None:
        query = query.where(Household.village_id == village.id)
    elif township is not None:
        query = query.where(
            Household.village_id.in_(select(Village.id).where(Village.township_id == township.id))
        )
    found = session.scalars(query.limit(2)).all()
    if len(found) != 1:
        raise DomainError(
            f"花名册中没有（或不止一位）户编号“{excerpt(link['household'])}”、"
            f"姓名“{excerpt(link['name'])}”的村民；请在该村的 roster 文件中登记"
        )
    return found[0]
