"""Files that are small to send and huge to read: rule catalogs (YAML) and rosters (XLSX,
CSV). Each is refused quickly, with a stable code and a small answer, and changes nothing."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

import rules
from backend.extensions import db
from points.models import AuditEntry, Household, RuleCatalog, RuleItem, Villager
from points.roster import COLUMNS
from rules import default_catalog_path
from tests.factories import World
from tests.support.reads import error_code

API = "/api/v1"
DEFAULT_TEXT = default_catalog_path().read_text(encoding="utf-8")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# What "fast" means here: generous for a loaded two-core machine, far below the tens of
# seconds (or minutes) these files took.
FAST = 3.0
SMALL = 64 * 1024  # bytes of an error answer


def row_counts(app: Flask) -> tuple[int, ...]:
    with app.app_context():
        counts = tuple(
            db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (RuleCatalog, RuleItem, Household, Villager, AuditEntry)
        )
        db.session.rollback()
    return counts


def timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def assert_small_refusal(response: Any, elapsed: float, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.data[:500]
    assert error_code(response) == code
    assert len(response.data) < SMALL, len(response.data)
    assert elapsed < FAST, elapsed
    return response.get_json()["error"]


def echoed_pieces(error: dict[str, Any]) -> list[str]:
    """Every text of an error answer that could quote the file."""
    texts = [error["message"]]
    for problem in error["details"].get("problems", []) + error["details"].get("errors", []):
        texts += [str(problem.get(key) or "") for key in ("item", "field", "message")]
    return texts


# ---- rule catalogs (YAML) -------------------------------------------------------------------


def import_yaml(client: FlaskClient, world: World, text: str) -> Any:
    return client.post(
        f"{API}/rule-catalogs/import?township_id={world.township_1}",
        data=text.encode("utf-8"),
        content_type="application/yaml",
        headers=world.headers("tadmin1"),
    )


def billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    # Where the catalog's reader would walk it: nine levels of nine, 387 million "lol"s.
    lines += ["name: 细则", "categories: *i", "items: *i"]
    return "\n".join(lines) + "\n"


def test_billion_laughs_catalog_is_refused_at_its_first_anchor(
    app: Flask, client: FlaskClient, world: World
) -> None:
    before = row_counts(app)
    response, elapsed = timed(lambda: import_yaml(client, world, billion_laughs()))
    error = assert_small_refusal(response, elapsed, 422, "yaml_aliases")
    assert "锚点和别名" in error["message"]
    assert error["details"]["problems"][0]["field"] == "yaml"
    assert row_counts(app) == before


def test_a_single_alias_is_refused_too(client: FlaskClient, world: World) -> None:
    # Even a harmless-looking one: the check is on the event, not on how far it expands.
    text = DEFAULT_TEXT.replace("  monthly_budget: 3000\n", "  monthly_budget: &b 3000\n", 1)
    text = text.replace("  qualification_line: 60\n", "  qualification_line: *b\n", 1)
    response = import_yaml(client, world, text)
    assert response.status_code == 422
    assert error_code(response) == "yaml_aliases"


def test_cli_refuses_a_billion_laughs_file(
    app: Flask, runner: Any, world: World, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs(), encoding="utf-8")
    before = row_counts(app)
    result, elapsed = timed(
        lambda: runner.invoke(
            args=["rules", "import", str(bomb), "--township-id", str(world.township_1)]
        )
    )
    assert result.exit_code != 0
    assert "锚点和别名" in result.output
    assert elapsed < FAST
    assert row_counts(app) == before


def test_an_oversized_catalog_is_refused_before_it_is_parsed(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # A valid catalog followed by a comment: only its size is wrong.
    text = DEFAULT_TEXT + "# " + "注" * 300_000 + "\n"
    before = row_counts(app)
    response, elapsed = timed(lambda: import_yaml(client, world, text))
    error = assert_small_refusal(response, elapsed, 422, "yaml_too_large")
    assert "250000" in error["message"]
    assert row_counts(app) == before


def test_deep_nesting_is_a_refusal_not_a_crash(client: FlaskClient, world: World) -> None:
    for text in ("[" * 5000, "name: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n"):
        response, elapsed = timed(lambda text=text: import_yaml(client, world, text))
        assert_small_refusal(response, elapsed, 422, "yaml_too_deep")


@pytest.mark.parametrize(
    "edit",
    [
        ("effective_from: 2024-01-01", "effective_from: 2024-02-30"),  # no such day
        ("points: 3", "points: " + "9" * 5000),  # more digits than int() reads
    ],
)
def test_unreadable_scalars_are_a_catalog_problem_not_a_crash(
    client: FlaskClient, world: World, edit: tuple[str, str]
) -> None:
    text = DEFAULT_TEXT.replace("  points: 3\n", "  points: 3\n  effective_from: 2024-01-01\n", 1)
    text = text.replace(f"  {edit[0]}\n", f"  {edit[1]}\n", 1)
    assert edit[1] in text
    response = import_yaml(client, world, text)
    assert response.status_code == 422, response.data[:300]
    assert error_code(response) == "catalog_invalid"
    assert response.get_json()["error"]["details"]["problems"][0]["field"] == "yaml"


def amplifying_catalog() -> str:
    """~100 KB whose every problem used to quote the whole file back: 2,000 categories that
    each item's wrong category listed, long unknown keys and long codes."""
    categories = [f"分类{n:05d}" for n in range(2_000)]
    lines = ["name: 细则", "categories:"] + [f"- {c}" for c in categories] + ["items:"]
    for n in range(150):
        lines += [
            f"- code: {'C' * 100}{n}",
            "  name: 项目",
            "  category: 没有这个分类",
            "  class: " + "奖" * 60,
            "  points: 1",
            "  kind: fixed",
            "  applies_to: household",
            "  submit_by: [cadre]",
            f"  {'k' * 100}: 1",
        ]
    return "\n".join(lines) + "\n"


def test_a_large_catalog_gets_a_small_error(app: Flask, client: FlaskClient, world: World) -> None:
    text = amplifying_catalog()
    assert 80_000 < len(text.encode()) < 200_000
    before = row_counts(app)
    response, elapsed = timed(lambda: import_yaml(client, world, text))
    error = assert_small_refusal(response, elapsed, 422, "catalog_invalid")
    assert error["details"]["truncated"] is True  # more problems than are listed
    for piece in echoed_pieces(error):
        assert "C" * 51 not in piece and "k" * 51 not in piece and "奖" * 51 not in piece
        assert "分类01000" not in piece  # the category list is cut well before its middle
    messages = [p["message"] for p in error["details"]["problems"]]
    assert any("「" + "k" * 50 + "…」" in m for m in messages)  # cut, and says so
    assert row_counts(app) == before


def test_excerpt_cuts_at_fifty_characters_with_an_ellipsis() -> None:
    assert rules.excerpt("短") == "短"
    assert rules.excerpt("字" * 50) == "字" * 50
    assert rules.excerpt("字" * 51) == "字" * 50 + "…"
    assert rules.excerpt(10**80) == "1" + "0" * 49 + "…"


# ---- rosters (XLSX and CSV) -----------------------------------------------------------------

SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
ROW = ["A1", "第一村民小组", "清水村8号", "孙有福", "户主", "13922223333", "男", "1970"]


def inline_row(number: int, values: list[str]) -> str:
    cells = "".join(
        f'<c r="{chr(65 + i)}{number}" t="inlineStr"><is><t>{value}</t></is></c>'
        for i, value in enumerate(values)
    )
    return f'<row r="{number}">{cells}</row>'


def sheet_xml(dimension: str, rows: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<worksheet xmlns="{SHEET_NS}"><dimension ref="{dimension}"/>'
        f"<sheetData>{rows}</sheetData></worksheet>"
    )


def xlsx_by_hand(sheet: str, shared: Any = None) -> bytes:
    """A minimal workbook written part by part, as a crafted file would be. `shared` writes
    xl/sharedStrings.xml: a str, or an iterable of str chunks streamed into the zip."""
    types = (
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats'
        '-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    )
    relations = (
        f'<Relationship Id="rId1" Type="{REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
    )
    if shared is not None:
        types += (
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        )
        relations += (
            f'<Relationship Id="rId2" Type="{REL_NS}/sharedStrings" Target="sharedStrings.xml"/>'
        )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="rels" ContentType="application'
            '/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
            f'ContentType="application/xml"/>{types}</Types>'
        ),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG_REL_NS}">'
            f'<Relationship Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{SHEET_NS}" '
            f'xmlns:r="{REL_NS}"><sheets><sheet name="花名册" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG_REL_NS}">'
            f"{relations}</Relationships>"
        ),
        "xl/worksheets/sheet1.xml": sheet,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
        if isinstance(shared, str):
            archive.writestr("xl/sharedStrings.xml", shared)
        elif shared is not None:
            with archive.open("xl/sharedStrings.xml", "w") as part:
                for chunk in shared:
                    part.write(chunk.encode())
    return buffer.getvalue()


def post_roster(client: FlaskClient, world: World, data: bytes, filename: str) -> Any:
    # As the raw body (the test client would spool a large multipart body to a temporary
    # file it never closes); the content type names the format, as a file name would.
    content_type = XLSX_TYPE if filename.endswith(".xlsx") else "text/csv"
    return client.post(
        f"{API}/villages/{world.village_a}/roster",
        data=data,
        headers=world.headers("cadre_a"),
        content_type=content_type,
    )


@pytest.mark.parametrize("last_row", [20_000, 1_048_576])
def test_a_claimed_dimension_is_not_read_cell_by_cell(
    app: Flask, client: FlaskClient, world: World, last_row: int
) -> None:
    # Every column of the sheet claimed, down to the row given, where one empty cell sits in
    # the last column: openpyxl filled every row above it to the full width. 1.6 KB took 27 s
    # for 20,000 rows, about 25 minutes for all of them. Now the real rows are read, within
    # bounds, and the rest is blank.
    rows = (
        inline_row(1, list(COLUMNS))
        + inline_row(2, ROW)
        + f'<row r="{last_row}"><c r="XFD{last_row}"/></row>'
    )
    data = xlsx_by_hand(sheet_xml(f"A1:XFD{last_row}", rows))
    assert len(data) < 2_000
    response, elapsed = timed(lambda: post_roster(client, world, data, "花名册.xlsx"))
    assert response.status_code == 201, response.data[:300]
    assert {k: response.get_json()[k] for k in ("households", "members", "groups")} == {
        "households": 1,
        "members": 1,
        "groups": 0,
    }
    assert elapsed < FAST


def test_a_claimed_dimension_with_no_villagers_is_refused_fast(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # The header, then a lone empty cell in the sheet's very last row and column.
    rows = inline_row(1, list(COLUMNS)) + '<row r="1048576"><c r="XFD1048576"/></row>'
    data = xlsx_by_hand(sheet_xml("A1:XFD1048576", rows))
    before = row_counts(app)
    response, elapsed = timed(lambda: post_roster(client, world, data, "花名册.xlsx"))
    assert_small_refusal(response, elapsed, 422, "roster_invalid")
    assert row_counts(app) == before


def test_a_huge_shared_string_is_refused_from_the_zip_directory(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # 100 MB of one shared string packs to about 100 KB; it used to come back in the error.
    def shared() -> Any:
        yield f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{SHEET_NS}"><si><t>'
        for _ in range(100):
            yield "户" * (1024 * 1024 // 3)
        yield "</t></si></sst>"

    sheet = sheet_xml("A1:H1", '<row r="1"><c r="A1" t="s"><v>0</v></c></row>')
    data = xlsx_by_hand(sheet, shared())
    assert len(data) < 200_000
    before = row_counts(app)
    response, elapsed = timed(lambda: post_roster(client, world, data, "花名册.xlsx"))
    error = assert_small_refusal(response, elapsed, 422, "roster_too_large")
    assert error["details"]["unpacked_bytes"] > 100_000_000
    assert row_counts(app) == before


def test_a_ratio_bomb_under_the_size_bound_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # 10 MB of blank rows that pack a thousand to one: no spreadsheet packs like that.
    blank = "".join(f'<row r="{n}"/>' for n in range(2, 12))
    rows = inline_row(1, list(COLUMNS)) + blank * 70_000
    data = xlsx_by_hand(sheet_xml("A1:H2", rows))
    response, elapsed = timed(lambda: post_roster(client, world, data, "花名册.xlsx"))
    assert_small_refusal(response, elapsed, 422, "roster_too_large")


def test_long_cells_are_echoed_cut_to_fifty_characters(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # Every text the checks quote, 900 characters long, on enough rows to hit the cap.
    long = "长" * 900
    header = ",".join([*COLUMNS, "备注" + "列" * 900])
    rows = [",".join(["1", "", "", "某人", long, long, long, long])] * 300
    data = "\n".join([header, *rows]).encode()
    response, elapsed = timed(lambda: post_roster(client, world, data, "花名册.csv"))
    error = assert_small_refusal(response, elapsed, 422, "roster_invalid")
    for piece in echoed_pieces(error):
        assert "长" * 51 not in piece and "列" * 51 not in piece
    assert "列" * 48 + "…" in error["details"]["errors"][0]["message"]


def test_an_overlong_cell_is_its_own_error(client: FlaskClient, world: World) -> None:
    data = "\n".join(
        [",".join(COLUMNS), ",".join(["1", "", "地" * 2_000, "某人", "户主", "", "", ""])]
    ).encode()
    response = post_roster(client, world, data, "花名册.csv")
    assert response.status_code == 422
    [error] = response.get_json()["error"]["details"]["errors"]
    assert (error["row"], error["field"]) == (2, "地址")
    assert "2000" in error["message"] and "地" * 50 + "…" in error["message"]


def test_wide_and_long_csv_files_are_read_within_bounds(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # 100,000 columns in the header, and 2 million empty lines under the only villager.
    header = ",".join([*COLUMNS, *(f"x{n}" for n in range(100_000))])
    data = "\n".join([header, ",".join(ROW)]).encode() + b"\n" * 2_000_000
    before = row_counts(app)
    response, elapsed = timed(lambda: post_roster(client, world, data, "花名册.csv"))
    error = assert_small_refusal(response, elapsed, 422, "roster_invalid")
    assert "x0" in error["details"]["errors"][0]["message"]  # the extra columns are named
    assert row_counts(app) == before


def test_a_row_of_a_hundred_thousand_cells_is_refused_before_it_is_parsed(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # Within the size and ratio bounds, but openpyxl parses a whole row at once.
    cells = "".join(f'<c r="A2"><v>{n}</v></c>' for n in range(100_000))
    rows = inline_row(1, list(COLUMNS)) + f'<row r="2">{cells}</row>'
    data = xlsx_by_hand(sheet_xml("A1:H2", rows))
    before = row_counts(app)
    response, elapsed = timed(lambda: post_roster(client, world, data, "花名册.xlsx"))
    error = assert_small_refusal(response, elapsed, 422, "roster_too_large")
    assert error["details"]["cells"] > 100_000
    assert row_counts(app) == before


def test_an_unknown_json_field_is_quoted_cut(client: FlaskClient, world: World) -> None:
    # The same cut for a request's own field names, quoted in unknown_fields.
    response = client.post(
        f"{API}/rule-catalogs/import",
        headers=world.headers("tadmin1"),
        json={"township_id": world.township_1, "yaml": DEFAULT_TEXT, "字" * 20_000: 1},
    )
    assert response.status_code == 422
    assert error_code(response) == "unknown_fields"
    error = response.get_json()["error"]
    assert error["details"]["fields"] == ["字" * 50 + "…"]
    assert "字" * 51 not in error["message"]
    assert len(response.data) < 2_000
