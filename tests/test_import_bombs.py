"""Files that are small to send and huge to read: rule catalogs (YAML) and rosters (XLSX,
CSV). Each is refused quickly, with a stable code and a small answer, and changes nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

import rules
from backend.extensions import db
from points.models import AuditEntry, Household, RuleCatalog, RuleItem, Villager
from rules import default_catalog_path

from .conftest import World, error_code

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
    return client.post(f"{API}/rule-catalogs/import?township_id={world.township_1}",
                       data=text.encode("utf-8"), content_type="application/yaml",
                       headers=world.headers("tadmin1"))


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
    result, elapsed = timed(lambda: runner.invoke(args=[
        "rules", "import", str(bomb), "--township-id", str(world.township_1)]))
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


@pytest.mark.parametrize("edit", [
    ("effective_from: 2024-01-01", "effective_from: 2024-02-30"),  # no such day
    ("points: 3", "points: " + "9" * 5000),  # more digits than int() reads
])
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


def test_a_large_catalog_gets_a_small_error(app: Flask, client: FlaskClient, world: World
                                            ) -> None:
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
    assert rules.excerpt(10 ** 80) == "1" + "0" * 49 + "…"
