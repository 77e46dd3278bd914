"""The scoring engine and calendar periods: caps, units, deductions, effective dates, once
items, and reasons a villager can read."""

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import (
    PERIODS,
    Cap,
    Evaluation,
    EvaluationError,
    History,
    RuleItem,
    Usage,
    VetoEffect,
    evaluate,
    load_default_catalog,
    month_key,
    period_end,
    period_key,
    period_start,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BEIJING_OFFSET = timezone(timedelta(hours=8))
NOW = datetime(2024, 5, 20, 9, 30, tzinfo=SHANGHAI)


def _default(code: str) -> RuleItem:
    item = load_default_catalog().find(code)
    assert item is not None
    return item


def _month(points: int = 0, count: int = 0) -> History:
    return History(by_period={"month": Usage(count=count, points=points)})


# --- readable examples from the default catalog ------------------------------------------


def test_a_clean_yard_scores_three_points() -> None:
    assert evaluate(_default("ENV-YARD"), NOW, History()) == Evaluation(
        3, False, None, "按细则计 3 分"
    )


def test_a_second_yard_inspection_in_a_month_does_not_count() -> None:
    result = evaluate(_default("ENV-YARD"), NOW, _month(points=3, count=1))
    assert result == Evaluation(0, True, None, "本月已达上限 1 次，本次不计分")


def test_volunteer_hours_are_paid_per_hour() -> None:
    result = evaluate(_default("PUB-VOLUNTEER"), NOW, History(), units=3)
    assert result == Evaluation(6, False, 3, "按细则每小时计 2 分，3 小时共计 6 分")


def test_volunteer_hours_beyond_the_limit_per_report_are_cut() -> None:
    result = evaluate(_default("PUB-VOLUNTEER"), NOW, History(), units=10)
    assert (result.points, result.capped, result.units) == (16, True, 8)
    assert result.reason.startswith("每次最多计 8 小时，申报 10 小时")


def test_volunteering_stops_at_the_monthly_limit() -> None:
    result = evaluate(_default("PUB-VOLUNTEER"), NOW, _month(points=36, count=5), units=4)
    assert (result.points, result.capped) == (4, True)
    assert "本月最多计 40 分，已计 36 分，本次只计 4 分" in result.reason

    full = evaluate(_default("PUB-VOLUNTEER"), NOW, _month(points=40, count=6), units=1)
    assert full == Evaluation(0, True, 1, "本月已达上限 40 分，本次不计分")


def test_burning_straw_deducts_five_points() -> None:
    assert evaluate(_default("ENV-STRAW"), NOW, History()) == Evaluation(
        -5, False, None, "按细则扣 5 分"
    )


def test_a_deduction_cap_limits_how_much_is_taken() -> None:
    item = _capped_item(-5, Cap("month", max_points=10))
    assert evaluate(item, NOW, _month(points=-5, count=1)).points == -5
    last = evaluate(item, NOW, _month(points=-8, count=2))
    assert (last.points, last.capped) == (-2, True)
    assert "本月最多扣 10 分，已扣 8 分，本次只扣 2 分" in last.reason
    done = evaluate(item, NOW, _month(points=10, count=2))  # usage may be given unsigned too
    assert done == Evaluation(0, True, None, "本月已达上限 10 分，本次不扣分")


def test_the_tightest_cap_wins() -> None:
    item = _capped_item(5, Cap("day", max_count=2), Cap("week", max_points=12))
    history = History(by_period={"day": Usage(1, 5), "week": Usage(2, 10)})
    result = evaluate(item, NOW, history)
    assert (result.points, result.capped) == (2, True)
    assert "本周" in result.reason


def test_a_simple_wedding_pays_once_per_household() -> None:
    item = _default("CIV-WEDDING")
    assert evaluate(item, NOW, History()).points == 200
    again = evaluate(item, NOW, History(ever_count=1))
    assert (again.points, again.capped) == (0, True)
    assert "已享受过" in again.reason


def test_a_lavish_wedding_is_a_veto_that_scores_nothing() -> None:
    result = evaluate(_default("CIV-LAVISH"), NOW, History())
    assert (result.points, result.capped, result.units) == (0, False, None)
    assert "一票否决" in result.reason and "清零" in result.reason and "12 个月" in result.reason


def test_items_outside_their_dates_give_nothing_and_say_so() -> None:
    item = _capped_item(5, effective_from=date(2024, 6, 1), effective_to=date(2024, 12, 31))
    early = evaluate(item, NOW, History())
    assert (early.points, early.capped) == (0, False)
    assert "2024-06-01 起施行" in early.reason
    late = evaluate(item, datetime(2025, 1, 1, 0, 0, tzinfo=SHANGHAI), History())
    assert late.points == 0 and "已于 2024-12-31 停止施行" in late.reason
    last_day = evaluate(item, datetime(2024, 12, 31, 23, 59, tzinfo=SHANGHAI), History())
    assert last_day.points == 5  # the end date is inclusive


def test_the_local_date_decides_the_effective_day() -> None:
    item = _capped_item(5, effective_from=date(2024, 6, 1))
    # 2024-05-31 16:30 UTC is already 2024-06-01 00:30 in the village.
    at = datetime(2024, 5, 31, 16, 30, tzinfo=UTC).astimezone(SHANGHAI)
    assert evaluate(item, at, History()).points == 5


@pytest.mark.parametrize(
    ("code", "units", "message"),
    [
        ("PUB-VOLUNTEER", None, "请填写数量"),
        ("PUB-VOLUNTEER", 0, "至少为 1"),
        ("PUB-VOLUNTEER", True, "整数"),
        ("PUB-VOLUNTEER", 2.5, "整数"),
        ("ENV-YARD", 3, "不需要填写数量"),
        ("ENV-YARD", True, "不需要填写数量"),
    ],
)
def test_wrong_units_are_refused_in_chinese(code: str, units: object, message: str) -> None:
    with pytest.raises(EvaluationError) as caught:
        evaluate(_default(code), NOW, History(), units=units)  # type: ignore[arg-type]
    assert message in caught.value.message


def test_one_unit_is_accepted_for_items_that_are_not_counted() -> None:
    assert evaluate(_default("ENV-YARD"), NOW, History(), units=1).points == 3


def test_a_time_without_zone_is_refused() -> None:
    with pytest.raises(EvaluationError):
        evaluate(_default("ENV-YARD"), datetime(2024, 5, 20, 9, 30), History())


# --- periods -----------------------------------------------------------------------------


def test_period_examples() -> None:
    at = datetime(2024, 12, 30, 23, 59, tzinfo=SHANGHAI)  # a Monday in ISO week 2025-W01
    assert period_start("week", at) == datetime(2024, 12, 30, tzinfo=SHANGHAI)
    assert period_key("week", at) == "2025-W01"
    assert period_start("quarter", at) == datetime(2024, 10, 1, tzinfo=SHANGHAI)
    assert period_end("quarter", at) == datetime(2025, 1, 1, tzinfo=SHANGHAI)
    assert period_end("month", datetime(2024, 2, 29, 12, tzinfo=SHANGHAI)) == datetime(
        2024, 3, 1, tzinfo=SHANGHAI
    )
    assert month_key(datetime(2024, 1, 31, 17, tzinfo=UTC)) == "2024-01"
    assert month_key(datetime(2024, 1, 31, 17, tzinfo=UTC).astimezone(SHANGHAI)) == "2024-02"


def test_periods_refuse_naive_times_and_unknown_periods() -> None:
    with pytest.raises(ValueError):
        period_start("day", datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        month_key(datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        period_end("fortnight", NOW)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(PERIODS),
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2100, 12, 31),
        timezones=st.sampled_from([SHANGHAI, BEIJING_OFFSET, UTC]),
    ),
)
def test_every_moment_lies_in_exactly_one_period(period: str, at: datetime) -> None:
    start, end = period_start(period, at), period_end(period, at)
    assert start <= at < end
    assert period_start(period, start) == start
    assert period_start(period, end) == end  # the next period opens where this one closes
    assert period_key(period, start) == period_key(period, at) != period_key(period, end)
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert period != "week" or start.weekday() == 0


# --- properties of the engine ------------------------------------------------------------


def _capped_item(
    points: int,
    *caps: Cap,
    kind: str = "fixed",
    max_units: int | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> RuleItem:
    return RuleItem(
        code="TEST",
        name="测试项目",
        category="测试",
        klass="deduction" if points < 0 else "bonus",
        points=points,
        kind=kind,
        unit="小时" if kind == "per_unit" else None,
        max_units=max_units,
        applies_to="member",
        submit_by=("villager", "cadre"),
        caps=caps,
        effective_from=effective_from,
        effective_to=effective_to,
    )


@st.composite
def _cap_sets(draw: st.DrawFn) -> tuple[Cap, ...]:
    periods = draw(st.lists(st.sampled_from(PERIODS), min_size=1, max_size=3, unique=True))
    caps = []
    for period in periods:
        count = draw(st.none() | st.integers(1, 6))
        points = draw(st.integers(1, 60) if count is None else st.none() | st.integers(1, 60))
        caps.append(Cap(period, count, points))
    return tuple(caps)


@st.composite
def _capped_items(draw: st.DrawFn) -> RuleItem:
    size = draw(st.integers(1, 20))
    points = size if draw(st.booleans()) else -size
    if draw(st.booleans()):
        return _capped_item(
            points, *draw(_cap_sets()), kind="per_unit", max_units=draw(st.integers(1, 10))
        )
    return _capped_item(points, *draw(_cap_sets()))


@st.composite
def _award_times(draw: st.DrawFn) -> list[datetime]:
    # A narrow window makes awards share days and weeks, so the small caps really bite.
    window = draw(
        st.sampled_from(
            [timedelta(days=1), timedelta(days=10), timedelta(days=100), timedelta(days=366)]
        )
    )
    start = datetime(2024, 1, 1, tzinfo=SHANGHAI) + timedelta(
        seconds=draw(st.integers(0, int((timedelta(days=366) - window).total_seconds())))
    )
    offsets = st.integers(0, int(window.total_seconds()) - 1)
    return [start + timedelta(seconds=s) for s in draw(st.lists(offsets, min_size=1, max_size=40))]


@settings(max_examples=300, deadline=None)
@given(_capped_items(), _award_times(), st.data())
def test_applying_awards_never_passes_a_cap(
    item: RuleItem, times: list[datetime], data: st.DataObject
) -> None:
    usage: dict[tuple[str, str], Usage] = {}
    for at in times:
        units = data.draw(st.integers(1, 15)) if item.kind == "per_unit" else None
        keys = {period: (period, period_key(period, at)) for period in PERIODS}
        before = {period: usage.get(key, Usage()) for period, key in keys.items()}
        result = evaluate(item, at, History(by_period=before), units)

        counted = min(units, item.max_units or units) if units is not None else 1
        raw = abs(item.points) * counted
        if item.klass == "deduction":
            assert result.points <= 0
        else:
            assert result.points >= 0
        assert abs(result.points) <= raw
        assert result.reason
        if units is not None:
            assert result.units == counted <= (item.max_units or 0)
            if units > counted:
                assert result.capped

        would_pass = any(
            (cap.max_count is not None and before[cap.period].count + 1 > cap.max_count)
            or (
                cap.max_points is not None and abs(before[cap.period].points) + raw > cap.max_points
            )
            for cap in item.caps
        )
        if would_pass:
            assert result.capped, result
        if not result.capped:
            assert abs(result.points) == raw

        if result.points:
            for key in keys.values():
                old = usage.get(key, Usage())
                usage[key] = Usage(old.count + 1, old.points + result.points)
        for cap in item.caps:
            after = usage.get(keys[cap.period], Usage())
            assert cap.max_count is None or after.count <= cap.max_count
            assert cap.max_points is None or abs(after.points) <= cap.max_points


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-20, 20).filter(bool),
    st.dates(min_value=date(2024, 1, 1), max_value=date(2024, 12, 31)),
    st.dates(min_value=date(2024, 1, 1), max_value=date(2024, 12, 31)),
    st.datetimes(
        min_value=datetime(2023, 6, 1), max_value=datetime(2025, 6, 1), timezones=st.just(SHANGHAI)
    ),
)
def test_items_count_only_between_their_dates(
    points: int, first: date, second: date, at: datetime
) -> None:
    start, end = sorted((first, second))
    item = _capped_item(points, Cap("day", max_count=1), effective_from=start, effective_to=end)
    result = evaluate(item, at, History())
    if start <= at.date() <= end:
        assert result.points == points
    else:
        assert (result.points, result.capped) == (0, False)
        assert "施行" in result.reason


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 500),
    st.lists(
        st.datetimes(
            min_value=datetime(2020, 1, 1),
            max_value=datetime(2030, 1, 1),
            timezones=st.just(SHANGHAI),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_once_items_pay_exactly_once(points: int, times: list[datetime]) -> None:
    item = _capped_item(points, kind="once")
    paid: list[int] = []
    for at in times:
        result = evaluate(item, at, History(ever_count=len(paid)))
        if result.points:
            paid.append(result.points)
    assert paid == [points]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(load_default_catalog().items),
    st.integers(0, 50),
    st.integers(-300, 300),
    st.integers(0, 3),
    st.integers(1, 20),
)
def test_every_default_item_keeps_its_sign(
    item: RuleItem, count: int, used: int, ever: int, units: int
) -> None:
    history = History(by_period={p: Usage(count, used) for p in PERIODS}, ever_count=ever)
    result = evaluate(item, NOW, history, units if item.kind == "per_unit" else None)
    if item.klass == "deduction":
        assert result.points <= 0
    else:
        assert result.points >= 0
    if item.kind == "veto":
        assert result.points == 0 and item.veto == VetoEffect(True, 12)
    assert result.reason
