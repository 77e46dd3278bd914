"""Roster import (花名册导入): a village's households and members from the cadres' Excel sheet.

The file is read, every row is checked and only then is anything written: a roster with any
error imports nothing, and the cadre gets every error at once, by the row numbers Excel shows
(the header is row 1), so the sheet can be fixed in one pass."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from rules import excerpt

from . import audit
from .errors import DomainError, NotFound
from .models import HEAD, RELATIONS, Household, Village, Villager, VillagerGroup
from .registry import PHONE_RE
from .scope import Actor, authorize, get_visible

KEY, GROUP, ADDRESS, NAME, RELATION, PHONE, GENDER, BIRTH_YEAR = COLUMNS = (
    "户编号",
    "村民小组",
    "地址",
    "姓名",
    "与户主关系",
    "手机号",
    "性别",
    "出生年份",
)
REQUIRED = (KEY, NAME, RELATION)
# Opening balances (期初积分) are read by the same reader: the household's key, its points.
POINTS, MEMO = "积分", "备注"

# What villages really call the columns, each to the one name above: the one table of header
# aliases, for the roster and the opening-balance file alike. A header is compared after
# its spaces are taken out, so "手 机 号" is 手机号.
HEADER_ALIASES: dict[str, str] = {
    "户号": KEY,
    "户编码": KEY,
    "户代码": KEY,
    "家庭编号": KEY,
    "小组": GROUP,
    "组别": GROUP,
    "组": GROUP,
    "村民组": GROUP,
    "家庭住址": ADDRESS,
    "住址": ADDRESS,
    "家庭地址": ADDRESS,
    "名字": NAME,
    "村民姓名": NAME,
    "关系": RELATION,
    "与户主的关系": RELATION,
    "电话": PHONE,
    "联系电话": PHONE,
    "手机": PHONE,
    "手机号码": PHONE,
    "电话号码": PHONE,
    "联系方式": PHONE,
    "出生年": BIRTH_YEAR,
    "期初积分": POINTS,
    "分值": POINTS,
    "积分数": POINTS,
    "说明": MEMO,
}
MAX_KEY = 40  # Household.code

MAX_ROWS = 5_000  # villagers: a large village has 3,000
MAX_ERRORS = 200
# What is read of a sheet, whatever it claims: an XLSX can declare A1:XFD1048576 in a few
# bytes, and openpyxl would hand out every one of those 17 billion empty cells. The first
# MAX_COLUMNS columns hold the 8 of the roster with room to spare (any other header is
# reported); rows past MAX_SHEET_ROWS (blank rows between households included) are not read.
MAX_COLUMNS = 20
MAX_SHEET_ROWS = 20 * MAX_ROWS
MAX_CELL = 1_000  # characters: the longest field, the address, is 200
# An XLSX is a zip: what its parts unpack to is what reading it costs, whatever its size
# sent. A 5,000-row roster unpacks to about 3 MB.
MAX_UNPACKED_BYTES = 20 * 1024 * 1024
MAX_RATIO = 100  # unpacked / packed: spreadsheet XML packs about 10:1, a zip bomb 1000:1
RATIO_FLOOR = 1024 * 1024  # small files are left alone: their ratio means nothing
# openpyxl parses a whole row before handing it out, at some 30 µs a cell: one row of
# hundreds of thousands of cells would take seconds however few columns are then read. A
# full roster is 40,008 cells; the rest leaves room for formatted empty cells.
MAX_CELLS = 60_000
# A cell element, with or without a namespace prefix: <c r="A1">, <x:c .../>.
_CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")
MAX_NAME = 50  # Villager.name
MAX_GROUP = 100  # VillagerGroup.name
MAX_ADDRESS = 200  # Household.address
MIN_BIRTH_YEAR = 1900

XLSX_MAGIC = b"PK\x03\x04"
XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary Excel (and Word) format
GENDER_ALIASES = {"男": "男", "女": "女", "男性": "男", "女性": "女"}


@dataclass
class RosterSummary:
    households: int  # households created by this import
    members: int  # members added (to new households or to ones already on the roster)
    groups: int  # villager groups created by this import
    # What a re-imported roster changed, by row: members added to a household already on the
    # roster, members updated (which columns), and how many rows changed nothing.
    added: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, int]:
        return {
            "households": self.households,
            "members": self.members,
            "groups": self.groups,
            "updated": len(self.updated),
            "unchanged": self.unchanged,
        }


class RosterInvalid(DomainError):
    status = 422
    code = "roster_invalid"
    message = "花名册有错误，未导入任何数据，请按提示修改后重新上传"

    def __init__(self, errors: list[dict[str, Any]] | None = None) -> None:
        errors = errors or []
        details: dict[str, Any] = {"errors": errors[:MAX_ERRORS]}
        if len(errors) > MAX_ERRORS:
            details["truncated"] = True
        super().__init__(details=details)


class RosterTooLarge(DomainError):
    """A file refused as a whole before its cells are read."""

    status = 422
    code = "roster_too_large"
    message = "花名册文件解压后太大，请只保留花名册这一张表，删除多余的内容后重新保存"


def _error(row: int, column: str | None, message: str) -> dict[str, Any]:
    return {"row": row, "field": column, "message": message}


def _file_error(message: str) -> RosterInvalid:
    return RosterInvalid([_error(0, None, message)])


# --- reading the file -------------------------------------------------------------------------


def parse_roster(filename: str, data: bytes) -> list[dict[str, Any]]:
    """The data rows of a CSV or XLSX roster, each a dict of the COLUMNS (None where absent or
    blank) plus "row", its row number in the sheet. Raises RosterInvalid for a file that cannot
    be read, a bad header or too many rows; the cells themselves are checked on import."""
    return read_sheet(filename, data, COLUMNS, REQUIRED)


def read_sheet(
    filename: str, data: bytes, columns: Sequence[str], required: Sequence[str]
) -> list[dict[str, Any]]:
    """`parse_roster` for any sheet of named columns (headers through HEADER_ALIASES), with
    the same limits against oversized and zip-bomb files."""
    name = (filename or "").strip().lower()
    if not data or not data.strip():
        raise _file_error("文件是空的，请上传填好的花名册")
    if data.startswith(XLSX_MAGIC):
        rows = _xlsx_rows(data)
    elif name.endswith((".xlsx", ".xlsm")):
        raise _file_error("无法读取该 Excel 文件，文件可能已损坏，请重新保存为 .xlsx 后上传")
    elif data.startswith(XLS_MAGIC) or name.endswith(".xls"):
        raise _file_error("不支持旧版 Excel（.xls）格式，请在 Excel 中另存为 .xlsx 或 CSV 后上传")
    else:
        rows = _csv_rows(data)
    return _rows_to_dicts(rows, columns, required)


def _unsupported() -> RosterInvalid:
    return _file_error("不支持该文件格式，请上传 Excel（.xlsx）或 CSV 文件")


def _csv_rows(data: bytes) -> list[tuple[int, list[Any]]]:
    if b"\x00" in data:
        raise _unsupported()  # binary, or UTF-16, which Excel calls "Unicode text"
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _unsupported()
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    try:
        return _take_rows(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:  # also a cell over csv's own limit (131,072 characters)
        raise _unsupported() from exc


def _check_archive(data: bytes) -> None:
    """Refuse an XLSX whose parts unpack to more than a roster can need, from the zip's
    directory alone. zipfile never returns more than a part's declared size (and fails its
    checksum if the data disagree), so the declared sizes bound what openpyxl can read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
            unpacked = sum(part.file_size for part in parts)
            packed = sum(part.compress_size for part in parts)
            if unpacked > MAX_UNPACKED_BYTES or (
                unpacked > RATIO_FLOOR and unpacked > MAX_RATIO * max(packed, 1)
            ):
                raise RosterTooLarge(
                    details={"unpacked_bytes": unpacked, "max_unpacked_bytes": MAX_UNPACKED_BYTES}
                )
            # Every part, not just xl/worksheets/: the workbook may put its sheet anywhere.
            cells = sum(len(_CELL_TAG.findall(archive.read(part))) for part in parts)
    except DomainError:
        raise
    except Exception as exc:  # not a zip, a broken one, encrypted or unknown compression
        raise _file_error(
            "无法读取该 Excel 文件，文件可能已损坏，请重新保存为 .xlsx 后上传"
        ) from exc
    if cells > MAX_CELLS:
        raise RosterTooLarge(
            f"花名册表格里的单元格太多（{cells} 个，最多 {MAX_CELLS} 个），"
            "请删除多余的行、列和格式后重新保存",
            details={"cells": cells, "max_cells": MAX_CELLS},
        )


def _xlsx_rows(data: bytes) -> list[tuple[int, list[Any]]]:
    import openpyxl  # only needed here; keeps the import of this module cheap

    _check_archive(data)
    workbook = None
    try:
        # Files saved by WPS and other tools make openpyxl warn about styles; not our concern.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            sheet = workbook.worksheets[0]
            # The sheet's own <dimension> is a claim, not a measure: ignore it, and read
            # within the bounds instead (openpyxl fills the gaps up to them with blanks).
            sheet.reset_dimensions()
            return _take_rows(
                sheet.iter_rows(max_row=MAX_SHEET_ROWS, max_col=MAX_COLUMNS, values_only=True)
            )
    except DomainError:
        raise
    except Exception as exc:  # a corrupt or foreign zip can fail in many ways inside openpyxl
        raise _file_error(
            "无法读取该 Excel 文件，文件可能已损坏，请重新保存为 .xlsx 后上传"
        ) from exc
    finally:
        if workbook is not None:
            with contextlib.suppress(Exception):  # a broken archive must not hide the error
                workbook.close()


def _take_rows(rows: Iterable[Sequence[Any]]) -> list[tuple[int, list[Any]]]:
    """The non-blank rows, numbered as the sheet shows them, each cut to MAX_COLUMNS cells;
    at most MAX_SHEET_ROWS rows are looked at, and reading stops one row past what
    _rows_to_dicts accepts (the header and MAX_ROWS), which is enough to refuse."""
    taken: list[tuple[int, list[Any]]] = []
    for number, cells in enumerate(rows, start=1):
        if number > MAX_SHEET_ROWS:
            break
        row = list(cells[:MAX_COLUMNS])
        if _blank(row):
            continue
        taken.append((number, row))
        if len(taken) > MAX_ROWS + 1:
            break
    return taken


def _blank(cells: Any) -> bool:
    return all(cell is None or _text(cell) is None for cell in cells)


def _text(value: Any) -> str | None:
    """A cell as stripped text, None when blank. Integral floats lose their ".0"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _header_name(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    name = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    return HEADER_ALIASES.get(name, name)


def _rows_to_dicts(
    rows: list[tuple[int, list[Any]]], columns: Sequence[str], required: Sequence[str]
) -> list[dict[str, Any]]:
    if not rows:
        raise _file_error("文件是空的，请上传填好的花名册")
    header_row, header = rows[0]
    positions: dict[str, int] = {}
    unknown: list[str] = []
    duplicate: list[str] = []
    for index, cell in enumerate(header):
        column = _header_name(cell)
        if column is None:
            continue  # a blank header cell: stray formatting, not a column
        if column not in columns:
            unknown.append(excerpt(_text(cell)))
        elif column in positions:
            duplicate.append(column)
        else:
            positions[column] = index
    errors = []
    if unknown:
        errors.append(
            _error(
                header_row,
                None,
                "表头有无法识别的列：{}；表头只能是：{}".format(
                    "、".join(unknown), "、".join(columns)
                ),
            )
        )
    if duplicate:
        errors.append(_error(header_row, None, "表头有重复的列：" + "、".join(duplicate)))
    missing = [column for column in required if column not in positions]
    if missing:
        errors.append(_error(header_row, None, "表头缺少必填的列：" + "、".join(missing)))
    if errors:
        raise RosterInvalid(errors)

    data_rows = rows[1:]
    if len(data_rows) > MAX_ROWS:
        raise _file_error(f"花名册最多 {MAX_ROWS} 行村民，请分成几个文件导入")
    out = []
    for number, cells in data_rows:
        record: dict[str, Any] = {"row": number}
        for column in columns:
            position = positions.get(column)
            value = cells[position] if position is not None and position < len(cells) else None
            if isinstance(value, str):
                value = value.strip() or None
            if isinstance(value, str) and len(value) > MAX_CELL:
                errors.append(
                    _error(
                        number,
                        column,
                        f"内容太长（{len(value)} 个字，最多 {MAX_CELL} 个）：{excerpt(value)}",
                    )
                )
            record[column] = value
        out.append(record)
    if errors:  # checked no further: such a cell is not a roster's
        raise RosterInvalid(errors)
    return out


# --- checking the rows ------------------------------------------------------------------------


@dataclass
class _Member:
    row: int
    name: str
    relation: str | None
    phone: str | None
    gender: str | None
    birth_year: int | None
    group: str | None
    address: str | None


@dataclass
class _Household:
    key: str
    members: list[_Member] = field(default_factory=list)
    invalid_rows: list[int] = field(default_factory=list)  # rows whose relation is unusable

    @property
    def head(self) -> _Member | None:
        return next((m for m in self.members if m.relation == HEAD), None)


def _phone(value: Any) -> tuple[str | None, str | None]:
    """(phone, error message)."""
    text = _text(value)
    if text is None:
        return None, None
    if re.fullmatch(r"\d(\.\d+)?[eE]\+?\d+", text):
        return None, "手机号被 Excel 显示成了科学计数法，请把该列设为“文本”后重新填写"
    phone = unicodedata.normalize("NFKC", text)
    phone = re.sub(r"[\s\-]", "", phone)
    phone = re.sub(r"^\+?86(?=1\d{10}$)", "", phone)
    phone = re.sub(r"\.0+$", "", phone)  # 13812345678.0, a number turned to text
    if not PHONE_RE.match(phone):
        return None, f"手机号“{excerpt(text)}”格式不正确，应为 11 位手机号"
    return phone, None


def _birth_year(value: Any, this_year: int) -> tuple[int | None, str | None]:
    text = _text(value)
    if text is None:
        return None, None
    plain = unicodedata.normalize("NFKC", text).removesuffix("年")
    plain = re.sub(r"\.0+$", "", plain)
    if not re.fullmatch(r"\d{4}", plain) or not MIN_BIRTH_YEAR <= int(plain) <= this_year:
        return None, (
            f"出生年份“{excerpt(text)}”不正确，应为 {MIN_BIRTH_YEAR} 到 {this_year} 之间的四位年份"
        )
    return int(plain), None


def _check_rows(
    rows: list[dict[str, Any]],
    taken_phones: dict[str, tuple[str | None, str]],
    this_year: int,
    known: dict[str, Household] | None = None,
) -> tuple[list[_Household], list[dict[str, Any]]]:
    """`taken_phones`: the phones of the village's active villagers, each with its holder's
    household key and name (a row of that holder may keep it). `known`: the village's
    households by key, which a re-imported roster updates."""
    known = known or {}
    errors: list[dict[str, Any]] = []
    households: dict[str, _Household] = {}
    seen_pairs: dict[tuple[str, str], int] = {}
    for record in rows:
        row = record["row"]

        def fail(column: str | None, message: str, row: int = row) -> None:
            errors.append(_error(row, column, message))

        key = _text(record[KEY])
        if key is None:
            fail(KEY, "户编号不能为空；同一户的人填相同的户编号")
        elif len(key) > MAX_KEY:
            fail(KEY, f"户编号不能超过 {MAX_KEY} 个字")
            key = None

        name = _text(record[NAME])
        if name is None:
            fail(NAME, "姓名不能为空")
        elif len(name) > MAX_NAME:
            fail(NAME, f"姓名不能超过 {MAX_NAME} 个字")

        relation = _text(record[RELATION])
        if relation is None:
            fail(RELATION, "与户主关系不能为空，应为：" + "、".join(RELATIONS))
        elif relation not in RELATIONS:
            fail(
                RELATION, f"与户主关系“{excerpt(relation)}”无法识别，应为：" + "、".join(RELATIONS)
            )
            relation = None

        phone, message = _phone(record[PHONE])
        if message:
            fail(PHONE, message)
        elif phone is not None:
            holder = taken_phones.get(phone)
            if holder is not None and holder != (key, name):
                fail(PHONE, f"手机号 {phone} 已登记在本村其他村民名下")
            if name is not None:
                first = seen_pairs.setdefault((name, phone), row)
                if first != row:
                    fail(PHONE, f"与第 {first} 行重复：同一姓名和手机号出现了两次")

        gender_text = _text(record[GENDER])
        gender = GENDER_ALIASES.get(gender_text) if gender_text else None
        if gender_text and gender is None:
            fail(GENDER, f"性别“{excerpt(gender_text)}”无法识别，应为：男、女")

        birth_year, message = _birth_year(record[BIRTH_YEAR], this_year)
        if message:
            fail(BIRTH_YEAR, message)

        group = _text(record[GROUP])
        if group is not None and len(group) > MAX_GROUP:
            fail(GROUP, f"村民小组名称不能超过 {MAX_GROUP} 个字")
        address = _text(record[ADDRESS])
        if address is not None and len(address) > MAX_ADDRESS:
            fail(ADDRESS, f"地址不能超过 {MAX_ADDRESS} 个字")

        if key is None:
            continue
        household = households.setdefault(key, _Household(key))
        if relation is None:
            household.invalid_rows.append(row)
        elif any(m.name == name for m in household.members) and key in known:
            fail(
                NAME,
                f"户编号 {excerpt(key)} 中“{excerpt(name or '')}”出现了两次，"
                "无法与系统中的村民一一对应",
            )
        elif relation == HEAD and household.head is not None:
            fail(
                RELATION,
                f"户编号 {excerpt(key)} 已有户主（第 {household.head.row} 行），一户只能有一位户主",
            )
            household.invalid_rows.append(row)
            relation = None
        if group is not None:
            other = next((m for m in household.members if m.group not in (None, group)), None)
            if other is not None:
                fail(
                    GROUP,
                    f"同一户的村民小组不一致：第 {other.row} 行填的是“{excerpt(other.group)}”",
                )
        household.members.append(
            _Member(
                row=row,
                name=name or "",
                relation=relation,
                phone=phone,
                gender=gender,
                birth_year=birth_year,
                group=group,
                address=address,
            )
        )

    for household in households.values():
        existing = known.get(household.key)
        if existing is not None:
            errors.extend(_head_problems(household, existing))
        elif household.head is None:
            for member in household.members:
                if member.row not in household.invalid_rows:
                    errors.append(
                        _error(
                            member.row,
                            RELATION,
                            f"户编号 {excerpt(household.key)} 没有户主，每户须有一位户主",
                        )
                    )
    errors.sort(key=lambda e: e["row"])  # stable: within a row, the order found
    return list(households.values()), errors


def _head_problems(planned: _Household, existing: Household) -> list[dict[str, Any]]:
    """A household already on the roster keeps one head (户主) once the file's rows are
    applied to it: its members the file does not name keep their relation."""
    named = {m.name: m for m in planned.members}
    heads = [
        m.name
        for m in existing.members
        if m.relation == HEAD and (m.name not in named or named[m.name].relation is None)
    ]
    heads += [m.name for m in planned.members if m.relation == HEAD]
    if len(set(heads)) == 1 or planned.invalid_rows:
        return []
    row = planned.members[0].row
    if not heads:
        return [
            _error(
                row, RELATION, f"户编号 {excerpt(planned.key)} 导入后将没有户主，每户须有一位户主"
            )
        ]
    return [
        _error(
            row,
            RELATION,
            f"户编号 {excerpt(planned.key)} 导入后将有多位户主（"
            + "、".join(excerpt(n) for n in sorted(set(heads)))
            + "），一户只能有一位户主；请同时修改原户主的与户主关系",
        )
    ]


# --- importing --------------------------------------------------------------------------------


def import_roster(
    session: Session,
    actor: Actor | None,
    village_id: int,
    filename: str,
    data: bytes,
    *,
    now: datetime,
    tz: ZoneInfo,
    create_groups: bool = False,
) -> RosterSummary:
    """Check the whole roster, then write its households and members in the village.
    A birth year may be up to this year in the villages' time zone `tz`, not the server's:
    on New Year's morning in the village a server elsewhere may still be in the old year.

    A household whose key (户编号) is already on the village's roster is updated rather than
    added again: its members are matched by name, a changed column is written (a blank cell
    leaves what is stored), a new name is added; members the file leaves out stay as they
    are. A villager group the village does not have is an error, unless `create_groups`:
    a typo would otherwise quietly make a new group.

    Raises RosterInvalid with every error found, having added nothing to the session. Does not
    commit: the caller does. `actor` None: the operator at the command line."""
    if actor is None:
        village = session.get(Village, village_id)
        if village is None:
            raise NotFound()
    else:
        village = get_visible(session, actor, Village, village_id)
        authorize(actor, "roster.import")
    rows = parse_roster(filename, data)
    if not rows:
        raise _file_error("花名册里没有村民，请在表头下面逐行填写")

    known = {
        household.code: household
        for household in session.scalars(
            select(Household)
            .where(Household.village_id == village.id, Household.code.is_not(None))
            .options(selectinload(Household.members))
        )
        if household.code is not None
    }
    taken_phones: dict[str, tuple[str | None, str]] = {
        phone: (code, name)
        for phone, code, name in session.execute(
            select(Villager.phone, Household.code, Villager.name)
            .join(Household, Household.id == Villager.household_id)
            .where(
                Household.village_id == village.id,
                Villager.active.is_(True),
                Villager.phone.is_not(None),
            )
        )
        if phone is not None
    }
    households, errors = _check_rows(rows, taken_phones, now.astimezone(tz).year, known)
    groups = {
        group.name: group
        for group in session.scalars(
            select(VillagerGroup).where(VillagerGroup.village_id == village.id)
        )
    }
    if not create_groups:
        for planned in households:
            for member in planned.members:
                if member.group is not None and member.group not in groups:
                    errors.append(
                        _error(
                            member.row,
                            GROUP,
                            f"本村没有村民小组“{excerpt(member.group)}”；请核对名称，或先添加该小组，"
                            "或上传时选择自动创建小组（create_groups=true）",
                        )
                    )
        errors.sort(key=lambda e: e["row"])
    if errors:
        raise RosterInvalid(errors)

    summary = RosterSummary(households=0, members=0, groups=0)

    def group_of(planned: _Household) -> VillagerGroup | None:
        head = planned.head
        name = (head.group if head else None) or next(
            (m.group for m in planned.members if m.group), None
        )
        if name is None:
            return None
        group = groups.get(name)
        if group is None:
            group = groups[name] = VillagerGroup(village_id=village.id, name=name)
            session.add(group)
            summary.groups += 1
        return group

    promotions: list[tuple[Villager, str]] = []
    for planned in households:
        existing = known.get(planned.key)
        if existing is None:
            _add_household(session, village, planned, group_of(planned))
            summary.households += 1
            summary.members += len(planned.members)
        else:
            promotions += _update_household(session, existing, planned, group_of(planned), summary)
    # A new head only once the old one has stepped down: one head per household is a unique
    # index, checked row by row.
    session.flush()
    for villager, relation in promotions:
        villager.relation = relation
    session.flush()

    audit.record(
        session,
        actor,
        "roster.import",
        village,
        after={**summary.counts(), "filename": filename},
        village_id=village.id,
        township_id=village.township_id,
    )
    return summary


def _add_household(
    session: Session, village: Village, planned: _Household, group: VillagerGroup | None
) -> None:
    head = planned.head
    assert head is not None
    household = Household(
        village_id=village.id,
        code=planned.key,
        group=group,
        name=head.name + "户",
        address=head.address or next((m.address for m in planned.members if m.address), None),
    )
    session.add(household)
    for member in planned.members:
        session.add(
            Villager(
                household=household,
                name=member.name,
                relation=member.relation,
                phone=member.phone,
                gender=member.gender,
                birth_year=member.birth_year,
            )
        )


# The columns a re-imported row may change on a member already on the roster.
_MEMBER_FIELDS = (
    (RELATION, "relation"),
    (PHONE, "phone"),
    (GENDER, "gender"),
    (BIRTH_YEAR, "birth_year"),
)


def _update_household(
    session: Session,
    household: Household,
    planned: _Household,
    group: VillagerGroup | None,
    summary: RosterSummary,
) -> list[tuple[Villager, str]]:
    """Apply a household's rows to it; returns the members to make head (户主) last."""
    household_fields = []
    if group is not None and household.group_id != group.id:
        household.group = group
        household_fields.append(GROUP)
    address = next((m.address for m in planned.members if m.address), None)
    if address is not None and household.address != address:
        household.address = address
        household_fields.append(ADDRESS)
    by_name = {m.name: m for m in household.members}
    promotions = []
    pending = household_fields  # reported on the household's first member already on file
    for row in planned.members:
        label = {"row": row.row, "household": planned.key, "name": row.name}
        member = by_name.get(row.name)
        if member is None:
            relation = row.relation
            assert relation is not None
            member = Villager(
                household=household,
                name=row.name,
                relation="其他" if relation == HEAD else relation,
                phone=row.phone,
                gender=row.gender,
                birth_year=row.birth_year,
            )
            session.add(member)
            if relation == HEAD:
                promotions.append((member, HEAD))
            summary.members += 1
            summary.added.append(label)
            continue
        changed, pending = pending, []
        for column, attribute in _MEMBER_FIELDS:
            value = getattr(row, attribute)
            if value is None or getattr(member, attribute) == value:
                continue
            changed.append(column)
            if attribute == "relation" and value == HEAD:
                promotions.append((member, HEAD))
            else:
                setattr(member, attribute, value)
        if changed:
            summary.updated.append({**label, "fields": changed})
        else:
            summary.unchanged += 1
    return promotions
