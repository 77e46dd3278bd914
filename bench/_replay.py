"""A transaction of the app's, replayed by pgbench: PostgreSQL's own rate at exactly the
statements the app sends for one operation (a check-in, an award), with no Python in between.

One real operation is recorded (`recording`: every statement the engine sends, with its
parameters and result rows, and BEGIN/COMMIT), then written as a pgbench custom script
(`pgbench_script`) in which each transaction is a fresh operation on row permute(n mod R) of
R rows made alike (a household, a villager with their user and household), n counting the
transactions of all clients. Ids are told apart by table because every table's sequence
starts at its own multiple of ID_SPAN (`spread_ids`, before anything is inserted).

Run from a benchmark script, which puts the repository root on sys.path first."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import psycopg
from psycopg.types.json import Json, Jsonb
from sqlalchemy import Engine, event

# Every table's ids start at a multiple of this (`spread_ids`), so an id names its table.
ID_SPAN = 10_000_000
_WORDS = ("BEGIN", "COMMIT", "ROLLBACK")


def spread_ids(url: str) -> dict[str, int]:
    """Start each table's id sequence at its own multiple of ID_SPAN, so that in a recorded
    statement an id tells which table it is of; the start of each table's sequence."""
    starts = {}
    with psycopg.connect(url, autocommit=True) as conn:
        sequences = conn.execute(
            "SELECT c.relname, t.relname FROM pg_class c JOIN pg_depend d ON d.objid = c.oid "
            "JOIN pg_class t ON t.oid = d.refobjid WHERE c.relkind = 'S' ORDER BY c.relname"
        ).fetchall()
        for k, (sequence, table) in enumerate(sequences, start=1):
            conn.execute(f"ALTER SEQUENCE {sequence} RESTART WITH {k * ID_SPAN}")
            starts[table] = k * ID_SPAN
    return starts


def sequence_positions(url: str) -> dict[int, int]:
    """Per table (by its ID_SPAN block), the first id not yet given out: an id at or past it
    in a recorded statement was made by the operation recorded."""
    with psycopg.connect(url) as conn:
        names = [row[0] for row in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'S'")]
        positions = {}
        for name in names:
            last, called = conn.execute(f"SELECT last_value, is_called FROM {name}").fetchall()[0]
            positions[last // ID_SPAN] = last + 1 if called else last
    return positions


@dataclass
class Recorded:
    """A statement one operation sent (or BEGIN, COMMIT, ROLLBACK), its parameters and what
    it returned."""

    statement: str
    parameters: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@contextmanager
def recording(engine: Engine) -> Iterator[list[Recorded]]:
    """Every statement `engine` sends inside the block, in order, with its parameters and
    result rows (read here, then rewound for SQLAlchemy), and each BEGIN, COMMIT, ROLLBACK."""
    recorded: list[Recorded] = []

    def executed(
        _conn: Any, cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        assert not many and isinstance(parameters, dict), statement
        entry = Recorded(statement, dict(parameters))
        if cursor.description:
            entry.columns = [column.name for column in cursor.description]
            entry.rows = cursor.fetchall()
            if entry.rows:
                cursor.scroll(0, mode="absolute")  # SQLAlchemy reads the rows after this
        recorded.append(entry)

    def mark(word: str, _conn: Any) -> None:
        recorded.append(Recorded(word))

    listeners = [("after_cursor_execute", executed)]
    listeners += [(word.lower(), partial(mark, word)) for word in _WORDS]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield recorded
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def statements_and_transactions(recorded: list[Recorded]) -> tuple[int, int]:
    return (
        sum(1 for r in recorded if r.statement not in _WORDS),
        sum(1 for r in recorded if r.statement == "BEGIN"),
    )


def sql_literal(value: Any) -> str:
    """A constant as SQL text with no colon in it (pgbench would read `:x` as a variable,
    quoted or not): strings as E'' with a colon escaped."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return repr(value) if not isinstance(value, Decimal) else str(value)
    if isinstance(value, datetime):
        cast = "timestamptz" if value.tzinfo is not None else "timestamp"
        return f"{sql_literal(value.isoformat())}::{cast}"
    if isinstance(value, date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, Json | Jsonb):  # as the column's JSON: the text converts
        return sql_literal(json.dumps(value.obj, ensure_ascii=False))
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "''").replace(":", "\\x3a")
        return f"E'{escaped}'"
    raise TypeError(f"no literal for {value!r}")


@dataclass
class ScriptPlan:
    """What the script chooses afresh per transaction: row i (0 … rows-1) of the rows made
    alike, the ids of row i (`first`: row 0's id per variable; row i's is that plus i), and,
    with `sweep`, an id that changes each time the transactions have been through all rows
    (a check-in may be made once per villager and activity)."""

    rows: int
    first: dict[str, int]  # variable → row 0's id
    recorded_ids: dict[int, str]  # the recorded operation's row ids → variable
    sweep: tuple[str, int, int] | None = None  # (variable, its recorded id, the first sweep's)


def pgbench_script(recorded: list[Recorded], plan: ScriptPlan, new_from: dict[int, int]) -> str:
    """The recorded statements as a pgbench script: each transaction a fresh operation on row
    permute(n mod R), n counting the transactions of all clients (pgbench -D k=0 -D
    clients=C). An id an earlier statement returned (one the operation made, at or past
    `new_from` of its table, must have been) or a chain head it read is taken from the first
    statement that returned it (gset); an entry's sequence is its account's entry count plus
    one."""
    lines = [
        "\\set k :k + 1",
        "\\set n (:k - 1) * :clients + :client_id",
        f"\\set i permute(:n % {plan.rows}, {plan.rows})",
        *(f"\\set {name} {first} + :i" for name, first in plan.first.items()),
    ]
    if plan.sweep is not None:
        lines.append(f"\\set {plan.sweep[0]} {plan.sweep[2]} + :n / {plan.rows}")
    given: dict[Any, str] = {}  # a returned value → the variable gset gives it
    counts: dict[int, str] = {}  # an account's entry count → its variable
    gsets: dict[int, str] = {}  # line index of a statement → its gset prefix
    for number, entry in enumerate(recorded):
        if entry.statement in _WORDS:
            lines.append(entry.statement + ";")
            continue

        def substitute(match: re.Match[str], entry: Recorded = entry) -> str:
            name = match.group(1)
            value = entry.parameters[name]
            if isinstance(value, int) and not isinstance(value, bool):
                if value in plan.recorded_ids:
                    return ":" + plan.recorded_ids[value]
                if plan.sweep is not None and value == plan.sweep[1]:
                    return ":" + plan.sweep[0]
                if value >= ID_SPAN and value in given:  # an id read or made before
                    return ":" + given[value]
                if value >= ID_SPAN and value >= new_from.get(value // ID_SPAN, value + 1):
                    raise RuntimeError(f"{name}={value} in {entry.statement[:80]}: from where?")
                if name.endswith(("seq", "entry_count")) and value - 1 in counts:
                    lines.append(f"\\set next_seq :{counts[value - 1]} + 1")
                    return ":next_seq"
            if isinstance(value, str) and len(value) >= 32 and value in given:
                return ":" + given[value]
            return sql_literal(value)

        template = " ".join(entry.statement.split())
        if re.search(r"(?<!:):[A-Za-z0-9_]", re.sub(r"%\(\w+\)s", "", template)):
            raise RuntimeError(f"a colon pgbench would misread: {template[:120]}")
        text = re.sub(r"%\((\w+)\)s", substitute, template).replace("%%", "%")
        lines.append(text + ";")
        if len(entry.rows) == 1:
            prefix = f"r{number}_"
            for column, value in zip(entry.columns, entry.rows[0], strict=True):
                variable = prefix + column
                if column.endswith("entry_count"):
                    counts.setdefault(value, variable)
                if isinstance(value, int | str) and value not in given:
                    given[value] = variable
            gsets[len(lines) - 1] = prefix
    used = "\n".join(lines)
    for index, prefix in gsets.items():
        if f":{prefix}" in used:  # only where a later statement takes a value from it
            lines[index] = lines[index].removesuffix(";") + f" \\gset {prefix}"
    return "\n".join(lines) + "\n"
