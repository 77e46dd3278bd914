"""`flask county init FILE.yaml`: a county's townships, villages, groups, shops, staff and
starting catalogs from one file, in one transaction, every problem named by its line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from backend.extensions import db
from points.models import (
    AuditEntry,
    Household,
    RuleCatalog,
    Shop,
    Township,
    User,
    Village,
    Villager,
    VillagerGroup,
)
from points.passwords import verify_password

MODELS = (
    Township,
    Village,
    VillagerGroup,
    Shop,
    User,
    RuleCatalog,
    Household,
    Villager,
    AuditEntry,
)


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            m.__tablename__: db.session.scalar(select(func.count()).select_from(m)) or 0
            for m in MODELS
        }


def write(tmp_path: Path, text: str, name: str = "county.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def init(runner: Any, path: Path) -> Any:
    return runner.invoke(args=["county", "init", str(path)])


GOOD = """\
townships:
  - name: 青山镇
    code: QS
    catalog: 乡村治理积分细则（参考版）
    villages:
      - name: 青山村
        groups: [一组, 二组]
        roster: 青山村.csv
      - name: 石桥村
    shops:
      - name: 青山超市
        villages: [青山村, 石桥村]
  - name: 白水镇
    catalog: default
    villages:
      - name: 白水村
staff:
  - username: boss
    role: county_admin
  - username: qs_admin
    role: township_admin
    township: 青山镇
  - username: qs_cadre
    role: cadre
    township: 青山镇
    village: 青山村
    villager: {household: "Q1", name: 张支书}
  - username: qs_clerk
    role: clerk
    township: 青山镇
    shop: 青山超市
"""
ROSTER = "户号,名字,关系,电话,小组\nQ1,张支书,户主,13812345678,一组\nQ1,李大姐,配偶,,一组\n"


def test_a_county_file_creates_everything_and_prints_passwords_once(
    app: Flask,
    runner: Any,
    tmp_path: Path,
) -> None:
    (tmp_path / "青山村.csv").write_text(ROSTER, encoding="utf-8")
    before = counts(app)
    result = init(runner, write(tmp_path, GOOD))
    assert result.exit_code == 0, result.output
    after = counts(app)
    grown = {k: after[k] - before[k] for k in after}
    assert (
        grown["townships"],
        grown["villages"],
        grown["villager_groups"],
        grown["shops"],
        grown["users"],
        grown["rule_catalogs"],
        grown["households"],
    ) == (2, 3, 2, 1, 4, 2, 1)

    with app.app_context():
        s = db.session
        qs = s.scalars(select(Township).where(Township.name == "青山镇")).one()
        assert qs.code == "QS"
        cadre = s.scalars(select(User).where(User.username == "qs_cadre")).one()
        village = s.get(Village, cadre.village_id)
        assert village is not None and village.name == "青山村"
        assert cadre.villager is not None and cadre.villager.name == "张支书"
        clerk = s.scalars(select(User).where(User.username == "qs_clerk")).one()
        shop = s.get(Shop, clerk.shop_id)
        assert shop is not None and {v.name for v in shop.villages} == {"青山村", "石桥村"}
        names = set(s.scalars(select(RuleCatalog.name)))
        assert names == {"乡村治理积分细则（参考版）"}
        # each password printed once, and it is the account's
        for user in s.scalars(
            select(User).where(User.username.in_(["boss", "qs_admin", "qs_cadre", "qs_clerk"]))
        ):
            line = next(
                x for x in result.output.splitlines() if x.split() and x.split()[0] == user.username
            )
            password = line.split()[2]
            assert verify_password(user.password_hash, password)
            assert result.output.count(password) == 1


def test_running_it_twice_is_refused_by_line_and_duplicates_nothing(
    app: Flask,
    runner: Any,
    tmp_path: Path,
) -> None:
    (tmp_path / "青山村.csv").write_text(ROSTER, encoding="utf-8")
    path = write(tmp_path, GOOD)
    assert init(runner, path).exit_code == 0
    before = counts(app)
    again = init(runner, path)
    assert again.exit_code != 0
    assert "第 2 行：乡镇“青山镇”已存在" in again.output
    assert "用户名“boss”已存在" in again.output
    assert counts(app) == before


def test_one_bad_entity_refuses_the_whole_file_and_names_its_line(
    app: Flask,
    runner: Any,
    tmp_path: Path,
) -> None:
    before = counts(app)
    result = init(
        runner,
        write(
            tmp_path,
            """\
        townships:
          - name: 青山镇
            villages:
              - name: 青山村
        staff:
          - username: qs_admin
            role: township_admin
            township: 青山镇
          - username: ghost
            role: cadre
            township: 青山镇
            village: 不存在村
          - username: pw
            role: county_admin
            password: secret123
        """,
        ),
    )
    assert result.exit_code != 0
    assert "第 9 行：村“不存在村”不在乡镇“青山镇”中" in result.output
    assert "第 13 行" in result.output and "密码不写在文件里" in result.output
    assert counts(app) == before


def test_an_error_met_while_writing_undoes_everything(
    app: Flask,
    runner: Any,
    tmp_path: Path,
) -> None:
    # The roster of the second village is wrong: the first village, the township and the
    # accounts before it are not kept either.
    (tmp_path / "bad.csv").write_text(
        "户号,名字,关系\nB1,王五,户主\nB1,王六,户主\n", encoding="utf-8"
    )
    before = counts(app)
    result = init(
        runner,
        write(
            tmp_path,
            """\
        townships:
          - name: 青山镇
            villages:
              - name: 青山村
              - name: 石桥村
                roster: bad.csv
        staff:
          - username: boss
            role: county_admin
        """,
        ),
    )
    assert result.exit_code != 0
    assert "第 5 行：花名册第 3 行" in result.output
    assert counts(app) == before


def test_yaml_errors_name_their_line(app: Flask, runner: Any, tmp_path: Path) -> None:
    result = init(runner, write(tmp_path, "townships:\n  - name: [unclosed\n"))
    assert result.exit_code != 0
    assert "第 3 行" in result.output or "第 2 行" in result.output
    dup = init(runner, write(tmp_path, "townships:\n  - name: 甲\n    name: 乙\n"))
    assert "第 3 行：“name”写了两次" in dup.output


def test_the_example_prints_and_loads(app: Flask, runner: Any, tmp_path: Path) -> None:
    example = runner.invoke(args=["county", "init", "--example"])
    assert example.exit_code == 0
    assert example.output.lstrip().startswith("#")
    path = tmp_path / "example.yaml"
    path.write_text(example.output, encoding="utf-8")
    before = counts(app)
    result = init(runner, path)
    assert result.exit_code == 0, result.output
    assert counts(app)["townships"] == before["townships"] + 1
    assert counts(app)["users"] == before["users"] + 4
