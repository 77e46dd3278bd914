"""The rule catalog: the default 积分细则, validation of bad catalogs, and the YAML round trip."""

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import (
    CLASSES,
    KINDS,
    PERIODS,
    RESET_CYCLES,
    SUBMITTERS,
    Cap,
    Catalog,
    CatalogError,
    Policy,
    Problem,
    RuleItem,
    VetoEffect,
    catalog_to_dict,
    default_catalog_path,
    dump_yaml,
    item_to_dict,
    load_default_catalog,
    load_yaml,
    parse_catalog,
    parse_item,
    parse_policy,
    policy_to_dict,
)

# --- the default catalog -----------------------------------------------------------------


def test_default_catalog_loads_with_every_category_used() -> None:
    catalog = load_default_catalog()
    assert len(catalog.items) >= 30
    assert {
        "生态宜居",
        "共建共治",
        "热心公益",
        "乡风文明",
        "孝老爱亲",
        "奖励荣誉",
        "产业兴旺",
    } <= set(catalog.categories)
    assert {item.category for item in catalog.items} == set(catalog.categories)
    assert {item.klass for item in catalog.items} >= {"bonus", "deduction"}
    assert {item.kind for item in catalog.items} == {"fixed", "per_unit", "once", "veto"}


def test_default_file_is_its_own_canonical_dump() -> None:
    text = default_catalog_path().read_text(encoding="utf-8")
    assert dump_yaml(load_yaml(text)) == text


def test_default_policy_is_the_common_village_scheme() -> None:
    policy = load_default_catalog().policy
    assert policy == Policy(
        notice_days=5,
        two_cadre_threshold=50,
        monthly_budget=3000,
        reset_cycle="none",
        qualification_line=60,
        star_levels=(60, 70, 80, 90),
        exchange_rate=Decimal("1"),
    )


def test_default_items_match_real_schemes() -> None:
    catalog = load_default_catalog()
    yard = catalog.find("ENV-YARD")
    assert yard is not None
    assert (yard.points, yard.submit_by, yard.caps) == (3, ("cadre",), (Cap("month", 1),))

    volunteer = catalog.find("PUB-VOLUNTEER")
    assert volunteer is not None
    assert (volunteer.kind, volunteer.unit, volunteer.points, volunteer.max_units) == (
        "per_unit",
        "小时",
        2,
        8,
    )
    assert volunteer.caps == (Cap("month", max_points=40),)

    wedding = catalog.find("CIV-WEDDING")
    assert wedding is not None and (wedding.kind, wedding.points) == ("once", 200)

    lavish = catalog.find("CIV-LAVISH")
    assert lavish is not None and lavish.kind == "veto"
    assert lavish.veto == VetoEffect(wipe_available=True, bar_periods=12)

    honours = [catalog.find(code) for code in ("HON-NATIONAL", "HON-PROVINCE", "HON-VILLAGE")]
    assert [item.points for item in honours if item] == [50, 30, 5]

    for item in catalog.items:
        if item.klass == "deduction":
            assert item.points < 0 or item.kind == "veto"
            assert item.submit_by == ("cadre",), item.code  # nobody reports a deduction on themself
        if "villager" in item.submit_by:
            assert item.requires_review, item.code  # self-reports are always checked


# --- refusing bad catalogs ---------------------------------------------------------------


def _item(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "code": "ENV-YARD",
        "name": "庭院整洁",
        "category": "生态宜居",
        "class": "bonus",
        "points": 3,
        "kind": "fixed",
        "applies_to": "household",
        "submit_by": ["cadre"],
        "caps": [{"period": "month", "max_count": 1}],
    }
    item.update(changes)
    return item


def _catalog(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "测试细则",
        "categories": ["生态宜居", "乡风文明"],
        "policy": {"notice_days": 5},
        "items": list(items) or [_item()],
    }


def _problems(data: Any) -> list[Problem]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data)
    return caught.value.problems


def _fields(problems: list[Problem]) -> set[tuple[str | None, str]]:
    return {(problem.item, problem.field) for problem in problems}


def test_a_minimal_catalog_is_accepted() -> None:
    catalog = parse_catalog(_catalog())
    assert catalog.items[0].caps == (Cap("month", max_count=1),)
    assert catalog.items[0].requires_review is True  # safe default when left out


def test_unknown_category_is_named() -> None:
    problems = _problems(_catalog(_item(category="体育运动")))
    assert _fields(problems) == {("ENV-YARD", "category")}
    assert "体育运动" in problems[0].message


def test_negative_cap_is_refused() -> None:
    problems = _problems(_catalog(_item(caps=[{"period": "month", "max_points": -5}])))
    assert _fields(problems) == {("ENV-YARD", "caps[0].max_points")}


def test_zero_cap_and_empty_cap_are_refused() -> None:
    problems = _problems(
        _catalog(_item(caps=[{"period": "day", "max_count": 0}, {"period": "week"}]))
    )
    assert _fields(problems) == {("ENV-YARD", "caps[0].max_count"), ("ENV-YARD", "caps[1]")}


def test_two_caps_for_one_period_are_refused() -> None:
    caps = [{"period": "day", "max_count": 1}, {"period": "day", "max_points": 5}]
    assert _fields(_problems(_catalog(_item(caps=caps)))) == {("ENV-YARD", "caps")}


def test_duplicate_code_is_refused() -> None:
    problems = _problems(_catalog(_item(), _item(name="庭院整洁（复查）")))
    assert _fields(problems) == {("ENV-YARD", "code")}
    assert "第 1、2 条" in problems[0].message


def test_bad_yaml_names_the_line() -> None:
    text = "name: 测试细则\ncategories: [生态宜居\nitems: []\n"
    with pytest.raises(CatalogError) as caught:
        load_yaml(text)
    [problem] = caught.value.problems
    assert problem.field == "yaml"
    assert "第 3 行" in problem.message


def test_yaml_key_written_twice_is_refused() -> None:
    text = dump_yaml(parse_catalog(_catalog())).replace(
        "  points: 3\n", "  points: 3\n  points: 30\n"
    )
    with pytest.raises(CatalogError) as caught:
        load_yaml(text)
    [problem] = caught.value.problems
    assert problem.field == "yaml" and "points" in problem.message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just words\n"])
def test_yaml_that_is_not_a_mapping_is_refused(text: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_yaml(text)
    assert [p.field for p in caught.value.problems] == ["yaml"]


def test_yaml_cannot_build_python_objects() -> None:
    with pytest.raises(CatalogError):
        load_yaml("name: !!python/object/apply:os.system ['true']\n")


def test_unknown_keys_are_named_at_every_level() -> None:
    data = _catalog(_item(bonus_points=3, caps=[{"period": "month", "max_count": 1, "every": 2}]))
    data["policy"]["budget"] = 100
    data["version"] = 2
    assert _fields(_problems(data)) == {
        ("ENV-YARD", "bonus_points"),
        ("ENV-YARD", "caps[0].every"),
        (None, "policy.budget"),
        (None, "version"),
    }


def test_bool_is_not_an_integer() -> None:
    problems = _problems(_catalog(_item(points=True, caps=[{"period": "day", "max_count": True}])))
    assert _fields(problems) == {("ENV-YARD", "points"), ("ENV-YARD", "caps[0].max_count")}
    assert all("整数" in problem.message for problem in problems)


def test_wrong_types_are_named() -> None:
    problems = _problems(
        _catalog(_item(points="3", submit_by="cadre", requires_review="yes", notice_days=2.5))
    )
    assert _fields(problems) == {
        ("ENV-YARD", "points"),
        ("ENV-YARD", "submit_by"),
        ("ENV-YARD", "requires_review"),
        ("ENV-YARD", "notice_days"),
    }


def test_deduction_with_positive_points_is_refused() -> None:
    problems = _problems(_catalog(_item(code="ENV-STRAW", **{"class": "deduction"}, points=5)))
    assert _fields(problems) == {("ENV-STRAW", "points")}
    assert "小于 0" in problems[0].message


def test_bonus_with_negative_points_is_refused() -> None:
    assert _fields(_problems(_catalog(_item(points=-3)))) == {("ENV-YARD", "points")}


def test_per_unit_without_unit_is_refused() -> None:
    problems = _problems(_catalog(_item(code="PUB-VOL", kind="per_unit", max_units=8)))
    assert _fields(problems) == {("PUB-VOL", "unit")}


def test_max_units_only_for_per_unit_items() -> None:
    assert _fields(_problems(_catalog(_item(max_units=3)))) == {("ENV-YARD", "max_units")}
    problems = _problems(_catalog(_item(kind="per_unit", unit="小时")))
    assert _fields(problems) == {("ENV-YARD", "max_units")}


def test_unknown_enum_values_are_named() -> None:
    problems = _problems(
        _catalog(
            _item(
                kind="daily",
                applies_to="village",
                submit_by=["cadre", "robot", "cadre"],
                caps=[{"period": "fortnight", "max_count": 1}],
                **{"class": "extra"},
            )
        )
    )
    assert _fields(problems) == {
        ("ENV-YARD", "kind"),
        ("ENV-YARD", "applies_to"),
        ("ENV-YARD", "submit_by"),
        ("ENV-YARD", "caps[0].period"),
        ("ENV-YARD", "class"),
    }


def test_veto_items_need_an_effect_no_points_and_a_cadre() -> None:
    veto = _item(code="CIV-LAVISH", kind="veto", points=0, **{"class": "deduction"})
    veto.pop("caps")
    assert _fields(_problems(_catalog(veto))) == {("CIV-LAVISH", "veto")}

    veto.update(points=-5, veto={"wipe_available": False}, submit_by=["villager"])
    assert _fields(_problems(_catalog(veto))) == {
        ("CIV-LAVISH", "points"),
        ("CIV-LAVISH", "veto"),  # wipes nothing and bars nothing
        ("CIV-LAVISH", "submit_by"),
    }
    plain = _item(veto={"wipe_available": True, "bar_periods": 12})
    assert _fields(_problems(_catalog(plain))) == {("ENV-YARD", "veto")}


def test_dates_are_iso_strings_or_dates_in_order() -> None:
    item = parse_item(_item(effective_from="2024-01-01", effective_to=date(2024, 12, 31)), None)
    assert (item.effective_from, item.effective_to) == (date(2024, 1, 1), date(2024, 12, 31))

    problems = _problems(
        _catalog(
            _item(effective_from="2024-13-01"), _item(code="B", effective_to=datetime(2024, 1, 1))
        )
    )
    assert _fields(problems) == {("ENV-YARD", "effective_from"), ("B", "effective_to")}

    backwards = _item(effective_from="2024-06-01", effective_to="2024-05-31")
    assert _fields(_problems(_catalog(backwards))) == {("ENV-YARD", "effective_to")}


def test_every_problem_is_reported_at_once() -> None:
    no_code = _item(points=-1)
    del no_code["code"]
    problems = _problems(
        {
            "name": "",
            "categories": ["生态宜居"],
            "policy": {"star_levels": [60, 60, 90], "exchange_rate": "0", "reset_cycle": "daily"},
            "items": [_item(category="体育运动"), no_code, "庭院整洁"],
        }
    )
    assert _fields(problems) == {
        (None, "name"),
        (None, "policy.star_levels"),
        (None, "policy.exchange_rate"),
        (None, "policy.reset_cycle"),
        ("ENV-YARD", "category"),
        ("#2", "code"),
        ("#2", "points"),
        ("#3", ""),
    }


def test_error_text_lists_every_problem_in_chinese() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(_catalog(_item(points=-3, category="体育运动")))
    text = str(caught.value)
    assert text.startswith("积分细则有 2 处问题")
    assert "[ENV-YARD / points]" in text and "体育运动" in text


def test_building_an_invalid_item_directly_is_refused_too() -> None:
    with pytest.raises(CatalogError):
        RuleItem(
            code="X",
            name="乱扔垃圾",
            category="生态宜居",
            klass="deduction",
            points=2,
            kind="fixed",
            applies_to="member",
            submit_by=("cadre",),
        )
    with pytest.raises(CatalogError):
        Cap("month")
    with pytest.raises(CatalogError):
        Policy(star_levels=(90, 80))


def test_policy_parses_alone_with_defaults() -> None:
    assert parse_policy({}) == Policy()
    policy = parse_policy({"exchange_rate": 0.5, "monthly_budget": None, "reset_cycle": "yearly"})
    assert policy.exchange_rate == Decimal("0.5") and policy.reset_cycle == "yearly"
    assert parse_policy(policy_to_dict(policy)) == policy
    with pytest.raises(CatalogError) as caught:
        parse_policy({"notice_days": -1, "monthly_budget": 0})
    assert _fields(caught.value.problems) == {(None, "notice_days"), (None, "monthly_budget")}


def test_item_dict_is_json_safe_and_parses_back() -> None:
    for item in load_default_catalog().items:
        data = item_to_dict(item)
        assert parse_item(json.loads(json.dumps(data, ensure_ascii=False)), None) == item
    data = item_to_dict(parse_item(_item(effective_from="2024-01-01"), ["生态宜居"]))
    assert data["effective_from"] == "2024-01-01"
    assert "unit" not in data and "veto" not in data and "description" not in data


def test_single_item_is_checked_against_the_catalog_categories() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_item(_item(), ["乡风文明"])
    assert _fields(caught.value.problems) == {("ENV-YARD", "category")}


# --- round trip for any valid catalog ----------------------------------------------------

_TEXT_CHARS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"))


def _text(max_size: int, multiline: bool = False) -> st.SearchStrategy[str]:
    chars = st.one_of(_TEXT_CHARS, st.just("\n")) if multiline else _TEXT_CHARS
    return st.text(chars, min_size=1, max_size=max_size).map(str.strip).filter(bool)


_CODES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}", fullmatch=True)
_DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@st.composite
def _caps(draw: st.DrawFn) -> tuple[Cap, ...]:
    periods = draw(st.lists(st.sampled_from(PERIODS), unique=True, max_size=3))
    caps = []
    for period in periods:
        count = draw(st.none() | st.integers(1, 100))
        points = draw(st.integers(1, 1000) if count is None else st.none() | st.integers(1, 1000))
        caps.append(Cap(period, count, points))
    return tuple(caps)


@st.composite
def _items(draw: st.DrawFn, code: str, categories: tuple[str, ...]) -> RuleItem:
    kind = draw(st.sampled_from(KINDS))
    klass = "deduction" if kind == "veto" else draw(st.sampled_from(CLASSES))
    size = draw(st.integers(1, 10_000))
    veto = None
    if kind == "veto":
        points = 0
        wipe = draw(st.booleans())
        veto = VetoEffect(wipe, draw(st.integers(0 if wipe else 1, 120)))
    else:
        points = -size if klass == "deduction" else size
    per_unit = kind == "per_unit"
    bounds = sorted(draw(st.lists(_DATES, min_size=2, max_size=2)))
    return RuleItem(
        code=code,
        name=draw(_text(100)),
        category=draw(st.sampled_from(categories)),
        klass=klass,
        points=points,
        kind=kind,
        unit=draw(
            st.sampled_from(("小时", "次")) | _text(10) if per_unit else st.none() | _text(10)
        ),
        max_units=draw(st.integers(1, 1000)) if per_unit else None,
        hourly=draw(st.none() | st.booleans()) if per_unit else None,
        applies_to=draw(st.sampled_from(("member", "household"))),
        submit_by=("cadre",)
        if kind == "veto"
        else tuple(draw(st.lists(st.sampled_from(SUBMITTERS), min_size=1, unique=True))),
        requires_review=draw(st.booleans()),
        evidence_required=draw(st.booleans()),
        notice_days=draw(st.none() | st.integers(0, 90)),
        caps=draw(_caps()),
        effective_from=draw(st.sampled_from((None, bounds[0]))),
        effective_to=draw(st.sampled_from((None, bounds[1]))),
        veto=veto,
        description=draw(st.none() | _text(200, multiline=True)),
    )


# ---- scored by the hour (hourly) ----------------------------------------------------------------


def test_an_item_without_hourly_is_scored_by_the_hour_when_its_unit_is_hours() -> None:
    hours = parse_item(_item(kind="per_unit", unit=" Hours", max_units=8), None)
    times = parse_item(_item(kind="per_unit", unit="次", max_units=8), None)
    assert (hours.hourly, times.hourly, parse_item(_item(), None).hourly) == (True, False, False)
    # Written only when it differs from what the unit says, so items stored before the
    # field keep their form.
    assert "hourly" not in item_to_dict(hours) and "hourly" not in item_to_dict(times)


def test_an_item_may_say_hourly_itself_whatever_its_unit() -> None:
    times = parse_item(_item(kind="per_unit", unit="次", max_units=8, hourly=True), None)
    hours = parse_item(_item(kind="per_unit", unit="小时", max_units=8, hourly=False), None)
    assert (times.hourly, hours.hourly) == (True, False)
    assert item_to_dict(times)["hourly"] is True and item_to_dict(hours)["hourly"] is False
    assert parse_item(item_to_dict(times), None) == times


def test_only_per_unit_items_are_scored_by_the_hour() -> None:
    problems = _problems(_catalog(_item(hourly=True)))
    assert [(p.field, p.message) for p in problems] == [
        ("hourly", "只有按单位计分（kind: per_unit）的项目才能按签到签退的小时数计分（hourly）")
    ]
    assert [p.field for p in _problems(_catalog(_item(hourly="yes")))] == ["hourly"]


@st.composite
def _catalogs(draw: st.DrawFn) -> Catalog:
    categories = tuple(draw(st.lists(_text(20), min_size=1, max_size=4, unique=True)))
    codes = draw(st.lists(_CODES, max_size=5, unique=True))
    policy = Policy(
        notice_days=draw(st.integers(0, 90)),
        two_cadre_threshold=draw(st.integers(1, 10_000)),
        monthly_budget=draw(st.none() | st.integers(1, 10**6)),
        reset_cycle=draw(st.sampled_from(RESET_CYCLES)),
        qualification_line=draw(st.integers(0, 1000)),
        star_levels=tuple(sorted(draw(st.sets(st.integers(0, 1000), max_size=5)))),
        exchange_rate=draw(
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2)
        ),
        min_redemption_points=draw(st.integers(0, 100)),
        allow_village_items=draw(st.booleans()),
    )
    items = tuple(draw(_items(code, categories)) for code in codes)
    return Catalog(name=draw(_text(100)), categories=categories, policy=policy, items=items)


@settings(max_examples=150, deadline=None)
@given(_catalogs())
def test_yaml_round_trip_is_exact_for_any_valid_catalog(catalog: Catalog) -> None:
    text = dump_yaml(catalog)
    again = load_yaml(text)
    assert again == catalog
    assert dump_yaml(again) == text


@settings(max_examples=50, deadline=None)
@given(_catalogs())
def test_json_round_trip_for_any_valid_catalog(catalog: Catalog) -> None:
    # The API serves and accepts catalogs as JSON, where dates and the rate travel as strings.
    data = json.loads(json.dumps(catalog_to_dict(catalog), ensure_ascii=False))
    assert parse_catalog(data) == catalog
