"""A demo township with villages, households, a catalog and shops, so a newcomer sees the
service work (`flask demo`)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import rules
from rules.periods import add_months, month_bounds, month_key

from . import catalogs, claims
from .activities import activities
from .errors import Conflict
from .models import (
    Household,
    Reward,
    RuleItem,
    Shop,
    StockMovement,
    Township,
    User,
    Village,
    Villager,
    VillagerGroup,
)
from .passwords import hash_password
from .scope import Actor

DEMO_PASSWORD = "cunwu-demo-2026"

SURNAMES = "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林罗高"
GIVEN = (
    "建国",
    "秀英",
    "桂兰",
    "志强",
    "玉梅",
    "德福",
    "春花",
    "海军",
    "丽娟",
    "国庆",
    "明华",
    "淑珍",
    "永红",
    "小龙",
    "晓燕",
    "金山",
    "凤英",
    "家乐",
    "子涵",
    "宇轩",
)

VILLAGES = (
    # name, code, groups, households, login suffix
    ("清水村", "QS", ("第一村民小组", "第二村民小组", "第三村民小组"), 16, "qs"),
    ("桃源村", "TY", ("上湾组", "下湾组"), 14, "ty"),
)

# A village shop's shelf: name, points, stock.
SHELF = (
    ("食盐 500g", 2, 100),
    ("香皂", 5, 60),
    ("酱油 500ml", 6, 50),
    ("牙膏", 8, 40),
    ("洗洁精", 9, 40),
    ("毛巾", 10, 40),
    ("卫生纸 10卷", 15, 30),
    ("洗衣粉 1kg", 20, 30),
    ("本地大米 10斤", 50, 20),
    ("玉米油 5L", 85, 10),
)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    scope: str


def is_empty(session: Session) -> bool:
    return not session.scalar(select(func.count()).select_from(Township))


def seed(session: Session, seed_value: int = 2026) -> list[DemoLogin]:
    """Seed the demo township. Refuses a database that already has a township."""
    if not is_empty(session):
        raise Conflict("数据库不是空的，演示数据只能装入空库", code="database_not_empty")
    rng = random.Random(seed_value)
    password = hash_password(DEMO_PASSWORD)
    logins: list[DemoLogin] = []

    township = Township(name="青石镇", code="QSZ")
    session.add(township)
    session.flush()
    # The reference 积分细则, loaded the way a township imports its own (`flask rules import`).
    catalogs.install_catalog(session, None, township.id, rules.load_default_catalog())
    session.add_all(
        [
            User(
                username="county_admin",
                password_hash=password,
                role="county_admin",
                name="县平台管理员",
            ),
            User(
                username="township_admin",
                password_hash=password,
                role="township_admin",
                name="青石镇管理员",
                township_id=township.id,
            ),
        ]
    )
    logins += [
        DemoLogin("county_admin", "county_admin", "全县"),
        DemoLogin("township_admin", "township_admin", "青石镇"),
    ]

    phone_serial = 0
    for name, code, group_names, household_count, suffix in VILLAGES:
        village = Village(township=township, name=name, code=code)
        groups = [VillagerGroup(name=g) for g in group_names]
        session.add(village)
        session.flush()
        for group in groups:
            group.village_id = village.id
        session.add_all(groups)
        session.flush()
        for n in range(household_count):
            surname = SURNAMES[n % len(SURNAMES)]
            head_name = surname + rng.choice(GIVEN)
            household = Household(
                village_id=village.id,
                group_id=groups[n % len(groups)].id,
                name=f"{head_name}户",
                address=f"{name}{n + 1}号",
            )
            session.add(household)
            session.flush()
            born = rng.randint(1950, 1985)
            members = [(head_name, "户主", rng.choice("男女"), born)]
            if rng.random() < 0.85:
                members.append(
                    (
                        rng.choice(SURNAMES) + rng.choice(GIVEN),
                        "配偶",
                        rng.choice("男女"),
                        born + rng.randint(-3, 3),
                    )
                )
            for _ in range(rng.randint(0, 2)):
                members.append(
                    (
                        surname + rng.choice(GIVEN),
                        "子女",
                        rng.choice("男女"),
                        born + rng.randint(22, 32),
                    )
                )
            if rng.random() < 0.3:
                members.append(
                    (
                        surname + rng.choice(GIVEN),
                        "父母",
                        rng.choice("男女"),
                        born - rng.randint(22, 30),
                    )
                )
            for member_name, relation, gender, birth_year in members:
                phone_serial += 1
                # Older villagers often have no phone: cadres check them in by member card.
                phone = None if birth_year < 1950 else f"139{phone_serial:08d}"
                session.add(
                    Villager(
                        household_id=household.id,
                        name=member_name,
                        relation=relation,
                        phone=phone,
                        gender=gender,
                        birth_year=birth_year,
                    )
                )
        shop = Shop(township_id=township.id, name=f"{name}积分超市", villages=[village])
        session.add(shop)
        session.flush()
        stock_shelf(session, shop)
        session.add_all(
            [
                User(
                    username=f"cadre_{suffix}",
                    password_hash=password,
                    role="cadre",
                    name=f"{name}村干部",
                    township_id=township.id,
                    village_id=village.id,
                ),
                User(
                    username=f"clerk_{suffix}",
                    password_hash=password,
                    role="clerk",
                    name=f"{name}超市店员",
                    township_id=township.id,
                    shop_id=shop.id,
                ),
            ]
        )
        logins += [
            DemoLogin(f"cadre_{suffix}", "cadre", name),
            DemoLogin(f"clerk_{suffix}", "clerk", shop.name),
        ]
    session.flush()
    demo_activities(session)
    return logins


# Awards a cadre enters after the monthly inspection (no review, five days' notice):
# (code, target, chance per household per month, note).
HISTORY_AWARDS = (
    ("ENV-YARD", "household", 0.7, "月度庭院检查"),
    ("ENV-SORTING", "household", 0.5, "垃圾分类检查合格"),
    ("ENV-FRONT", "household", 0.6, "门前三包检查"),
    ("GOV-ASSEMBLY", "member", 0.8, "参加村民大会"),
    ("GOV-NIGHTSCHOOL", "member", 0.3, "参加农民夜校"),
    ("GOV-PATROL", "member", 0.15, "参加夜间治安巡防"),
    ("IND-TRAINING", "member", 0.25, "参加果树修剪培训"),
    ("GOV-LATE", "member", 0.1, "村民大会迟到"),
)


def seed_history(
    session: Session, now: datetime, tz: ZoneInfo, months: int = 2, seed_value: int = 2026
) -> int:
    """Last months' awards, entered by each village's cadre and posted after their notice,
    so a newcomer sees passbooks, boards and statistics with something in them. Goes through
    the same services as real awards (caps, notice, ledger). Commits as it posts."""
    rng = random.Random(seed_value)
    local_now = now.astimezone(tz)
    posted_months = []
    for back in range(months, 0, -1):
        month = add_months(month_key(local_now), -back)
        posted_months.append(month_bounds(month, tz)[0].replace(day=10, hour=10))
    for village in session.scalars(select(Village).order_by(Village.id)).all():
        cadre = session.scalar(
            select(User).where(User.role == "cadre", User.village_id == village.id)
        )
        assert cadre is not None
        actor = Actor.of(session, cadre)
        items = {i.code: i.id for i in catalogs.effective_items(session, village.id)}
        households = session.scalars(
            select(Household).where(Household.village_id == village.id).order_by(Household.id)
        ).all()
        for day in posted_months:
            for household in households:
                for code, target, chance, note in HISTORY_AWARDS:
                    if rng.random() >= chance:
                        continue
                    members = household.members
                    spec = (
                        {"household_id": household.id}
                        if target == "household"
                        else {"villager_id": rng.choice(members).id}
                    )
                    claims.award(
                        session,
                        actor,
                        rule_item_id=items[code],
                        units=None,
                        note=note,
                        evidence=[],
                        targets=[spec],
                        tz=tz,
                        now=day,
                    )
    session.commit()
    return claims.post_due(session, now, tz)


def stock_shelf(session: Session, shop: Shop) -> None:
    for reward_name, points, stock in SHELF:
        reward = Reward(shop_id=shop.id, name=reward_name, points=points, stock=stock)
        session.add(reward)
        session.flush()
        session.add(
            StockMovement(
                reward_id=reward.id,
                shop_id=shop.id,
                kind="initial",
                change=stock,
                stock_after=stock,
                reason="演示数据上架",
            )
        )


# Upcoming activities, so the check-in works on the first day: (village login suffix, title,
# rule item, days ahead, local start and end hour, QR mode, geofence, capacity).
ACTIVITIES = (
    ("qs", "村民代表大会", "GOV-ASSEMBLY", 1, (19, 30), (21, 0), "static", None, None),
    (
        "qs",
        "村道环境卫生整治",
        "ENV-CLEANUP",
        2,
        (8, 0),
        (11, 0),
        "rotating",
        (30.5728, 114.2792, 300, "flag"),
        40,
    ),
    ("ty", "敬老院志愿服务", "PUB-VOLUNTEER", 3, (9, 0), (16, 0), "static", None, None),
)


def demo_activities(session: Session, now: datetime | None = None) -> None:
    """A meeting with a printable code, a clean-up with a rotating code on a screen and a
    geofence, and an hourly volunteer shift (scored at check-out), created by the village
    cadres as they would through the API."""
    tz = ZoneInfo("Asia/Shanghai")
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    for suffix, title, code, days, start, end, mode, fence, capacity in ACTIVITIES:
        cadre = session.scalar(select(User).where(User.username == f"cadre_{suffix}"))
        assert cadre is not None and cadre.village_id is not None
        item_id = session.scalar(select(RuleItem.id).where(RuleItem.code == code))
        assert item_id is not None
        day = today + timedelta(days=days)
        plan = activities.ActivityPlan(
            village_id=cadre.village_id,
            title=title,
            rule_item_id=item_id,
            starts_at=datetime.combine(day, time(*start), tz),
            ends_at=datetime.combine(day, time(*end), tz),
            qr_mode=mode,
            step_seconds=30,
            geofence=activities.Geofence(*fence) if fence else None,
            capacity=capacity,
        )
        activities.create_activity(session, Actor.of(session, cadre), plan, datetime.now(UTC))
