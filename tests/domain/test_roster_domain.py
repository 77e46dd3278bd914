"""Roster import (points/roster.py) against the domain layer alone: no Flask, own database."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.orm import Session

from points import roster
from points.errors import Forbidden, NotFound
from points.models import (
    AuditEntry,
    Base,
    Household,
    Township,
    User,
    Village,
    Villager,
    VillagerGroup,
)
from points.roster import COLUMNS, MAX_ERRORS, MAX_ROWS, RosterInvalid, parse_roster
from points.scope import Actor

HEADER = list(COLUMNS)
# Birth years are checked against this year in the villages' time zone, read from `now`.
# These rosters name groups the village does not have yet: created (create_groups).
import_roster = partial(
    roster.import_roster,
    now=datetime(2026, 6, 1, tzinfo=UTC),
    tz=ZoneInfo("Asia/Shanghai"),
    create_groups=True,
)


@dataclass
class RosterWorld:
    session: Session
    township: Township
    village_a: Village
    village_b: Village
    cadre: Actor
    villager: Actor


@pytest.fixture
def roster_world():
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def _foreign_keys(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    Base.metadata.create_all(engine)
    session = Session(engine)
    township = Township(name="清河镇")
    session.add(township)
    session.flush()
    village_a = Village(township_id=township.id, name="东村")
    village_b = Village(township_id=township.id, name="西村")
    session.add_all([village_a, village_b])
    session.flush()
    cadre_user = User(
        role="cadre",
        username="cadre_a",
        name="李书记",
        township_id=township.id,
        village_id=village_a.id,
    )
    villager_user = User(role="villager", openid="openid-villager")
    session.add_all([cadre_user, villager_user])
    session.commit()
    world = RosterWorld(
        session=session,
        township=township,
        village_a=village_a,
        village_b=village_b,
        cadre=Actor(
            user_id=cadre_user.id, role="cadre", township_id=township.id, village_id=village_a.id
        ),
        villager=Actor(
            user_id=villager_user.id,
            role="villager",
            township_id=township.id,
            village_id=village_a.id,
        ),
    )
    yield world
    session.close()
    engine.dispose()


def roster_csv(
    rows: list[list[Any]], header: list[str] | None = None, encoding: str = "utf-8-sig"
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER if header is None else header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


GOOD_ROWS = [
    # 户编号, 村民小组, 地址, 姓名, 与户主关系, 手机号, 性别, 出生年份
    ["1", "一组", "东村12号", "张大山", "户主", "13812345678", "男", "1960"],
    ["1", "一组", "", "王秀英", "配偶", "", "女", "1962"],
    ["1", "一组", "", "张小明", "子女", "13912345678", "男", "1988"],
    ["2", "二组", "东村30号", "李红", "户主", "13700000001", "女", ""],
    ["2", "", "", "李强", "子女", "", "", ""],
    ["3", "", "", "赵四", "户主", "", "", ""],
]


def counts(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Household, Villager, VillagerGroup, AuditEntry)
    }


def errors_of(excinfo: pytest.ExceptionInfo[RosterInvalid]) -> list[dict[str, Any]]:
    return excinfo.value.details["errors"]


def test_good_csv_imports_households_members_and_groups(roster_world: RosterWorld) -> None:
    w = roster_world
    before = counts(w.session)
    summary = import_roster(w.session, w.cadre, w.village_a.id, "花名册.csv", roster_csv(GOOD_ROWS))
    w.session.commit()

    assert summary.counts() == {
        "households": 3,
        "members": 6,
        "groups": 2,
        "updated": 0,
        "unchanged": 0,
    }
    after = counts(w.session)
    assert after["households"] - before["households"] == summary.households
    assert after["villagers"] - before["villagers"] == summary.members
    assert after["villager_groups"] - before["villager_groups"] == summary.groups
    assert after["audit_log"] - before["audit_log"] == 1

    households = w.session.scalars(select(Household).order_by(Household.id)).all()
    assert [h.name for h in households] == ["张大山户", "李红户", "赵四户"]
    assert all(h.village_id == w.village_a.id for h in households)
    zhang, li, zhao = households
    assert zhang.address == "东村12号"
    assert zhang.group is not None and zhang.group.name == "一组"
    assert li.group is not None and li.group.name == "二组"
    assert zhao.group is None and zhao.address is None
    assert [(m.name, m.relation) for m in zhang.members] == [
        ("张大山", "户主"),
        ("王秀英", "配偶"),
        ("张小明", "子女"),
    ]
    assert zhang.head is not None and zhang.head.phone == "13812345678"
    assert zhang.head.gender == "男" and zhang.head.birth_year == 1960
    assert zhang.members[1].phone is None and zhang.members[1].birth_year == 1962
    assert all(m.active for h in households for m in h.members)

    entry = w.session.scalars(select(AuditEntry)).one()
    assert entry.action == "roster.import"
    assert entry.actor_id == w.cadre.user_id
    assert entry.village_id == w.village_a.id and entry.township_id == w.township.id
    assert entry.object_type == "villages" and entry.object_id == str(w.village_a.id)
    assert entry.after == {
        "households": 3,
        "members": 6,
        "groups": 2,
        "updated": 0,
        "unchanged": 0,
        "filename": "花名册.csv",
    }


def test_existing_group_is_reused(roster_world: RosterWorld) -> None:
    w = roster_world
    existing = VillagerGroup(village_id=w.village_a.id, name="一组")
    w.session.add(existing)
    w.session.commit()
    summary = import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS))
    assert summary.groups == 1  # only 二组 is new
    zhang = w.session.scalars(select(Household).where(Household.name == "张大山户")).one()
    assert zhang.group_id == existing.id


def test_gbk_csv_with_spaced_reordered_header(roster_world: RosterWorld) -> None:
    w = roster_world
    header = [" 姓名 ", "与户主关系", "户编号 ", "手机号", "村民小组"]
    rows = [["孙建国", "户主", "A1", "13512345678", "三组"], ["孙丽", "子女", "A1", "", "三组"]]
    data = roster_csv(rows, header=header, encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # really GBK, as Excel saves it
    summary = import_roster(w.session, w.cadre, w.village_a.id, "花名册.csv", data)
    assert summary.counts() == {
        "households": 1,
        "members": 2,
        "groups": 1,
        "updated": 0,
        "unchanged": 0,
    }
    names = set(w.session.scalars(select(Villager.name)))
    assert names == {"孙建国", "孙丽"}


def test_xlsx_with_numeric_phones_and_years(roster_world: RosterWorld) -> None:
    w = roster_world
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["户编号", "姓名", "与户主关系", "手机号", "出生年份", "性别", "地址", "村民小组"])
    sheet.append([1, "周老汉", "户主", 13812345678, 1950, "男", "北坡5号", "一组"])
    sheet.append([1.0, "周大娘", "配偶", 13812345679.0, 1952.0, "女", None, None])
    sheet.append([None, None, None, None, None, None, None, None])  # an empty row is skipped
    sheet.append([2, "吴一", "户主", "13612345678", "1970", None, None, None])
    buffer = io.BytesIO()
    workbook.save(buffer)

    # Recognised by its content, whatever the upload was called.
    summary = import_roster(w.session, w.cadre, w.village_a.id, "upload", buffer.getvalue())
    assert summary.counts() == {
        "households": 2,
        "members": 3,
        "groups": 1,
        "updated": 0,
        "unchanged": 0,
    }
    phones = dict(w.session.execute(select(Villager.name, Villager.phone)).all())
    assert phones == {"周老汉": "13812345678", "周大娘": "13812345679", "吴一": "13612345678"}
    years = dict(w.session.execute(select(Villager.name, Villager.birth_year)).all())
    assert years == {"周老汉": 1950, "周大娘": 1952, "吴一": 1970}
    zhou = w.session.scalars(select(Household).where(Household.name == "周老汉户")).one()
    assert zhou.address == "北坡5号" and len(zhou.members) == 2


def test_xlsx_row_numbers_follow_the_sheet(roster_world: RosterWorld) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    sheet.append([1, None, None, "甲", "户主", None, None, None])
    sheet.append([None] * 8)
    sheet.append([1, None, None, "乙", "子女", "12345", None, None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    rows = parse_roster("r.xlsx", buffer.getvalue())
    assert [r["row"] for r in rows] == [2, 4]
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(
            roster_world.session,
            roster_world.cadre,
            roster_world.village_a.id,
            "r.xlsx",
            buffer.getvalue(),
        )
    assert [(e["row"], e["field"]) for e in errors_of(excinfo)] == [(4, "手机号")]


BAD_CASES = {
    "bad phone on row 4": (
        HEADER,
        [
            ["1", "", "", "甲", "户主", "", "", ""],
            ["1", "", "", "乙", "子女", "", "", ""],
            ["2", "", "", "丙", "户主", "1381234", "", ""],
        ],
        (4, "手机号"),
    ),
    "household without head": (
        HEADER,
        [
            ["1", "", "", "甲", "户主", "", "", ""],
            ["2", "", "", "乙", "配偶", "", "", ""],
            ["2", "", "", "丙", "子女", "", "", ""],
        ],
        (3, "与户主关系"),
    ),
    "unknown relation": (
        HEADER,
        [["1", "", "", "甲", "户主", "", "", ""], ["1", "", "", "乙", "表哥", "", "", ""]],
        (3, "与户主关系"),
    ),
    "unknown column": (
        [*HEADER, "身份证号"],
        [["1", "", "", "甲", "户主", "", "", "", "110101196001011234"]],
        (1, None),
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES), ids=list(BAD_CASES))
def test_one_bad_row_imports_nothing(roster_world: RosterWorld, case: str) -> None:
    w = roster_world
    header, rows, (row, column) = BAD_CASES[case]
    before = counts(w.session)
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows, header))
    assert not w.session.new and not w.session.dirty
    assert counts(w.session) == before
    error = excinfo.value
    assert error.status == 422 and error.code == "roster_invalid"
    assert "未导入任何数据" in error.message
    assert (row, column) in [(e["row"], e["field"]) for e in errors_of(excinfo)]
    if case == "unknown column":
        assert "身份证号" in errors_of(excinfo)[0]["message"]
    if case == "household without head":  # every row of that household
        assert [(e["row"], e["field"]) for e in errors_of(excinfo)] == [
            (3, "与户主关系"),
            (4, "与户主关系"),
        ]


def test_several_bad_rows_are_all_reported(roster_world: RosterWorld) -> None:
    w = roster_world
    rows = [
        ["1", "", "", "甲", "户主", "13812345678", "男", "1960"],
        ["1", "", "", "", "子女", "", "", ""],  # row 3: no name
        ["1", "", "", "丙", "子女", "abc", "未知", "1800"],  # row 4: phone, gender, year
        ["", "", "", "丁", "户主", "", "", ""],  # row 5: no household key
        ["2", "", "", "戊", "户主", "", "", ""],
        ["2", "", "", "己", "户主", "", "", ""],  # row 7: second head
        ["1", "", "", "甲", "父母", "13812345678", "", ""],  # row 8: same name and phone
    ]
    before = counts(w.session)
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows))
    assert counts(w.session) == before
    found = [(e["row"], e["field"]) for e in errors_of(excinfo)]
    assert found == [
        (3, "姓名"),
        (4, "手机号"),
        (4, "性别"),
        (4, "出生年份"),
        (5, "户编号"),
        (7, "与户主关系"),
        (8, "手机号"),
    ]
    assert all(isinstance(e["message"], str) and e["message"] for e in errors_of(excinfo))
    assert "truncated" not in excinfo.value.details


def test_missing_required_columns(roster_world: RosterWorld) -> None:
    w = roster_world
    data = roster_csv([["张三", "13812345678"]], header=["姓名", "手机号"])
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", data)
    [error] = errors_of(excinfo)
    assert error["row"] == 1 and "户编号" in error["message"] and "与户主关系" in error["message"]


def test_errors_are_capped(roster_world: RosterWorld) -> None:
    w = roster_world
    rows = [[str(i), "", "", "某人", "户主", "bad", "", ""] for i in range(MAX_ERRORS + 50)]
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows))
    assert len(errors_of(excinfo)) == MAX_ERRORS
    assert excinfo.value.details["truncated"] is True
    assert counts(w.session)["villagers"] == 0


def test_too_many_rows(roster_world: RosterWorld) -> None:
    w = roster_world
    rows = [[str(i), "", "", "某人", "户主", "", "", ""] for i in range(MAX_ROWS + 1)]
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows))
    [error] = errors_of(excinfo)
    assert error["row"] == 0 and str(MAX_ROWS) in error["message"]
    assert counts(w.session)["villagers"] == 0


def test_cadre_of_village_a_cannot_import_into_village_b(roster_world: RosterWorld) -> None:
    w = roster_world
    before = counts(w.session)
    with pytest.raises(NotFound):
        import_roster(w.session, w.cadre, w.village_b.id, "r.csv", roster_csv(GOOD_ROWS))
    with pytest.raises(NotFound):
        import_roster(w.session, w.cadre, 9999, "r.csv", roster_csv(GOOD_ROWS))
    assert counts(w.session) == before


def test_villager_is_forbidden(roster_world: RosterWorld) -> None:
    w = roster_world
    before = counts(w.session)
    with pytest.raises(Forbidden):
        import_roster(w.session, w.villager, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS))
    assert counts(w.session) == before


@pytest.mark.parametrize(
    "filename, data",
    [
        ("r.csv", bytes(range(256)) * 8),  # binary garbage
        ("r.xlsx", b"PK\x03\x04" + b"\x00garbage" * 50),  # looks like a zip, is not one
        ("r.xlsx", b"not a spreadsheet at all"),
        ("r.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100),  # old binary Excel
        ("r.csv", b""),
        ("r.pdf", b"%PDF-1.4\n\x00\x01\x02\xff"),
    ],
)
def test_unreadable_files_are_roster_errors(
    roster_world: RosterWorld, filename: str, data: bytes
) -> None:
    w = roster_world
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, filename, data)
    [error] = errors_of(excinfo)
    assert error["row"] == 0 and error["field"] is None and error["message"]
    assert counts(w.session)["villagers"] == 0


def test_zip_that_is_not_a_workbook(roster_world: RosterWorld) -> None:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "你好")
    with pytest.raises(RosterInvalid) as excinfo:
        parse_roster("r.xlsx", buffer.getvalue())
    assert errors_of(excinfo)[0]["row"] == 0


def test_header_only_is_an_error(roster_world: RosterWorld) -> None:
    w = roster_world
    with pytest.raises(RosterInvalid):
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv([]))


def test_phone_of_an_existing_villager_in_the_village(roster_world: RosterWorld) -> None:
    w = roster_world
    household_a = Household(village_id=w.village_a.id, name="老户")
    household_b = Household(village_id=w.village_b.id, name="西村户")
    w.session.add_all([household_a, household_b])
    w.session.flush()
    w.session.add_all(
        [
            Villager(
                household_id=household_a.id, name="老张", relation="户主", phone="13812345678"
            ),
            Villager(
                household_id=household_a.id,
                name="老伴",
                relation="配偶",
                phone="13700000001",
                active=False,
            ),
            Villager(
                household_id=household_b.id, name="西村人", relation="户主", phone="13912345678"
            ),
        ]
    )
    w.session.commit()
    before = counts(w.session)

    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS))
    # 13812345678 is taken in this village; an inactive villager's phone (13700000001) and
    # a phone used in another village (13912345678) are not.
    assert [(e["row"], e["field"]) for e in errors_of(excinfo)] == [(2, "手机号")]
    assert "13812345678" in errors_of(excinfo)[0]["message"]
    assert counts(w.session) == before


def test_phone_spellings_from_excel_are_accepted(roster_world: RosterWorld) -> None:
    w = roster_world
    rows = [
        ["1", "", "", "甲", "户主", "13812345678.0", "男性", "1960.0"],
        ["1", "", "", "乙", "配偶", "138-1234-5679", "女", "1961年"],
        ["1", "", "", "丙", "子女", "+86 13812345670", "", ""],
        ["2", "", "", "丁", "户主", "1.38123E+10", "", ""],
    ]
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows))
    [error] = errors_of(excinfo)
    assert (error["row"], error["field"]) == (5, "手机号") and "科学计数法" in error["message"]

    summary = import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows[:3]))
    assert summary.members == 3
    found = set(w.session.execute(select(Villager.phone, Villager.gender, Villager.birth_year)))
    assert found == {
        ("13812345678", "男", 1960),
        ("13812345679", "女", 1961),
        ("13812345670", None, None),
    }


def test_family_may_share_a_phone(roster_world: RosterWorld) -> None:
    # Elderly parents often give their child's number: only the same name twice is refused.
    w = roster_world
    rows = [
        ["1", "", "", "甲", "户主", "13812345678", "", ""],
        ["1", "", "", "乙", "父母", "13812345678", "", ""],
    ]
    summary = import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows))
    assert summary.members == 2


def test_conflicting_groups_in_a_household(roster_world: RosterWorld) -> None:
    w = roster_world
    rows = [
        ["1", "一组", "", "甲", "户主", "", "", ""],
        ["1", "二组", "", "乙", "配偶", "", "", ""],
    ]
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows))
    assert [(e["row"], e["field"]) for e in errors_of(excinfo)] == [(3, "村民小组")]


def test_parse_roster_returns_rows_by_column() -> None:
    data = roster_csv(
        [["1", "", "", "甲", "户主", "", "", ""]],
        header=["户编号", "地址", "性别", "姓名", "与户主关系", "村民小组", "出生年份", "手机号"],
    )
    [row] = parse_roster("r.csv", data)
    assert row["row"] == 2 and row["户编号"] == "1" and row["姓名"] == "甲"
    assert row["与户主关系"] == "户主" and row["手机号"] is None


# ---- header aliases, groups the village lacks, re-importing -----------------------------------


def test_headers_villages_really_use(roster_world: RosterWorld) -> None:
    w = roster_world
    header = ["户号", "名字", "关系", "联系电话", "组别", "家庭住址"]
    rows = [
        ["H1", "钱多多", "户主", "13512345670", "一组", "东村1号"],
        ["H1", "钱少少", "子女", "", "一组", ""],
    ]
    summary = import_roster(
        w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(rows, header=header)
    )
    assert (summary.households, summary.members, summary.groups) == (1, 2, 1)
    household = w.session.scalars(select(Household)).one()
    assert household.code == "H1" and household.address == "东村1号"
    assert household.head is not None and household.head.phone == "13512345670"
    for alias in ("电话", "手机", "手机号码"):
        assert roster.HEADER_ALIASES[alias] == roster.PHONE
    for alias in ("户编码", "户号"):
        assert roster.HEADER_ALIASES[alias] == roster.KEY
    for alias in ("小组", "组别"):
        assert roster.HEADER_ALIASES[alias] == roster.GROUP


def test_a_group_the_village_lacks_is_an_error_unless_asked_to_create(
    roster_world: RosterWorld,
) -> None:
    w = roster_world
    w.session.add(VillagerGroup(village_id=w.village_a.id, name="一组"))
    w.session.commit()
    before = counts(w.session)
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(
            w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS), create_groups=False
        )
    assert [(e["row"], e["field"]) for e in errors_of(excinfo)] == [(5, "村民小组")]
    assert "二组" in errors_of(excinfo)[0]["message"]
    w.session.rollback()
    assert counts(w.session) == before
    summary = import_roster(
        w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS), create_groups=True
    )
    assert summary.groups == 1


def test_reimport_updates_members_by_household_key_and_name(roster_world: RosterWorld) -> None:
    w = roster_world
    import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS))
    w.session.commit()
    before = counts(w.session)
    updated_rows = [
        ["1", "一组", "东村12号", "张大山", "户主", "13812345678", "男", "1960"],  # unchanged
        ["1", "一组", "", "王秀英", "配偶", "13600000009", "女", "1963"],  # phone, year
        ["1", "一组", "", "张小花", "子女", "", "女", "2010"],  # new member
        ["2", "二组", "东村31号", "李红", "户主", "", "", ""],  # address (household)
        ["4", "二组", "", "孙五", "户主", "", "", ""],  # new household
    ]
    summary = import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(updated_rows))
    w.session.commit()
    assert (summary.households, summary.members, summary.groups) == (1, 2, 0)
    assert summary.added == [{"row": 4, "household": "1", "name": "张小花"}]
    assert summary.updated == [
        {"row": 3, "household": "1", "name": "王秀英", "fields": ["手机号", "出生年份"]},
        {"row": 5, "household": "2", "name": "李红", "fields": ["地址"]},
    ]
    assert summary.unchanged == 1
    after = counts(w.session)
    assert after["households"] - before["households"] == 1
    assert after["villagers"] - before["villagers"] == 2
    wang = w.session.scalars(select(Villager).where(Villager.name == "王秀英")).one()
    assert (wang.phone, wang.birth_year) == ("13600000009", 1963)
    # a blank cell leaves what is stored; a member the file leaves out stays
    li = w.session.scalars(select(Villager).where(Villager.name == "李红")).one()
    assert li.phone == "13700000001"
    assert w.session.scalars(select(Villager).where(Villager.name == "李强")).one().active


def test_reimport_moves_the_head_and_refuses_two(roster_world: RosterWorld) -> None:
    w = roster_world
    import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS))
    w.session.commit()
    # 张小明 becomes head while 张大山 (not in the file) stays one: two heads.
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(
            w.session,
            w.cadre,
            w.village_a.id,
            "r.csv",
            roster_csv([["1", "一组", "", "张小明", "户主", "", "", ""]]),
        )
    assert [(e["row"], e["field"]) for e in errors_of(excinfo)] == [(2, "与户主关系")]
    w.session.rollback()
    summary = import_roster(
        w.session,
        w.cadre,
        w.village_a.id,
        "r.csv",
        roster_csv(
            [
                ["1", "一组", "", "张大山", "父母", "", "", ""],
                ["1", "一组", "", "张小明", "户主", "", "", ""],
            ]
        ),
    )
    w.session.commit()
    assert [u["fields"] for u in summary.updated] == [["与户主关系"], ["与户主关系"]]
    zhang = w.session.scalars(select(Household).where(Household.code == "1")).one()
    assert zhang.head is not None and zhang.head.name == "张小明"


def test_reimport_keeps_a_members_own_phone(roster_world: RosterWorld) -> None:
    w = roster_world
    import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS))
    w.session.commit()
    summary = import_roster(w.session, w.cadre, w.village_a.id, "r.csv", roster_csv(GOOD_ROWS))
    assert summary.households == 0 and summary.members == 0
    assert summary.unchanged == len(GOOD_ROWS) and summary.updated == []
    # another member's phone is still refused
    with pytest.raises(RosterInvalid) as excinfo:
        import_roster(
            w.session,
            w.cadre,
            w.village_a.id,
            "r.csv",
            roster_csv([["3", "", "", "赵四", "户主", "13812345678", "", ""]]),
        )
    assert [(e["row"], e["field"]) for e in errors_of(excinfo)] == [(2, "手机号")]
