"""Scoring rules (积分细则): catalog schema and validation, calendar periods, and the engine
that turns a rule item plus a subject's history into points.

Pure Python on purpose: no database and no Flask, so the rules can be checked from a test, a
CLI import or the API alike, and `points/` decides how history is read and results stored.
"""

from functools import cache
from pathlib import Path

from rules.catalog import (
    APPLIES_TO,
    CLASSES,
    KINDS,
    RESET_CYCLES,
    SUBMITTERS,
    Cap,
    Catalog,
    CatalogError,
    Policy,
    Problem,
    RuleItem,
    VetoEffect,
    cap_to_dict,
    catalog_to_dict,
    dump_yaml,
    item_to_dict,
    load_yaml,
    parse_catalog,
    parse_item,
    parse_policy,
    policy_to_dict,
    stars,
    village_item_in_force,
    village_item_problems,
)
from rules.engine import Evaluation, EvaluationError, History, Usage, evaluate
from rules.periods import PERIODS, month_key, period_end, period_key, period_start
from rules.text import excerpt

__all__ = [
    "APPLIES_TO",
    "CLASSES",
    "KINDS",
    "PERIODS",
    "RESET_CYCLES",
    "SUBMITTERS",
    "Cap",
    "Catalog",
    "CatalogError",
    "Evaluation",
    "EvaluationError",
    "History",
    "Policy",
    "Problem",
    "RuleItem",
    "Usage",
    "VetoEffect",
    "cap_to_dict",
    "catalog_to_dict",
    "default_catalog_path",
    "dump_yaml",
    "evaluate",
    "excerpt",
    "item_to_dict",
    "load_default_catalog",
    "load_yaml",
    "month_key",
    "parse_catalog",
    "parse_item",
    "parse_policy",
    "period_end",
    "period_key",
    "period_start",
    "policy_to_dict",
    "stars",
    "village_item_in_force",
    "village_item_problems",
]


def default_catalog_path() -> Path:
    return Path(__file__).resolve().parent / "catalogs" / "default.yaml"


@cache
def load_default_catalog() -> Catalog:
    # Catalogs are frozen, so one parsed copy can be shared by every caller.
    return load_yaml(default_catalog_path().read_text(encoding="utf-8"))
