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
import tempfile
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

from bench._pg import checkpoint, machine_cpu_seconds, pgbench, pgbench_tps

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
    alike, the ids of row i (`first`: row 0's id per variable; row i's is that plus i), the
    ids of its group (`group_first`: group 0's; row i is of group i mod `groups`, whose id is
    that plus i mod `groups`: households spread over villages, each with its cadre) and,
    with `sweep`, an id that changes each time the transactions have been through all rows
    (a check-in may be made once per villager and activity)."""

    rows: int
    first: dict[str, int]  # variable → row 0's id
    recorded_ids: dict[int, str]  # the recorded operation's row and group ids → variable
    sweep: tuple[str, int, int] | None = None  # (variable, its recorded id, the first sweep's)
    groups: int = 1
    group_first: dict[str, int] = field(default_factory=dict)  # variable → group 0's id


@dataclass
class Step:
    """A statement of the transaction replayed (or BEGIN, COMMIT, ROLLBACK), in psycopg's
    %(name)s style: each parameter either sent as recorded (`values`) or a variable of the
    transaction (`variables`); `successors`: variables set to another's value plus one just
    before it (an entry's sequence); `gset`: the prefix under which the row it returns sets
    variables <prefix><column> (None when nothing later takes a value from it)."""

    statement: str
    values: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    successors: dict[str, str] = field(default_factory=dict)
    gset: str | None = None


def replay_steps(
    recorded: list[Recorded], plan: ScriptPlan, new_from: dict[int, int]
) -> list[Step]:
    """The recorded statements as steps of a fresh operation on row i, whose ids are `plan`'s
    variables. An id an earlier statement returned (one the operation made, at or past
    `new_from` of its table, must have been) or a chain head it read is taken from the first
    statement that returned it; an entry's sequence is its account's entry count plus one."""
    steps: list[Step] = []
    given: dict[Any, str] = {}  # a returned value → the variable its row sets
    counts: dict[int, str] = {}  # an account's entry count → its variable
    for number, entry in enumerate(recorded):
        if entry.statement in _WORDS:
            steps.append(Step(entry.statement))
            continue
        step = Step(" ".join(entry.statement.split()))
        for name, value in entry.parameters.items():
            variable = _variable_of(name, value, plan, new_from, given)
            if variable is None and isinstance(value, int) and not isinstance(value, bool):
                if name.endswith(("seq", "entry_count")) and value - 1 in counts:
                    step.successors["next_seq"] = counts[value - 1]
                    variable = "next_seq"
            if variable is None:
                step.values[name] = value
            else:
                step.variables[name] = variable
        steps.append(step)
        if len(entry.rows) == 1:
            step.gset = f"r{number}_"
            for column, value in zip(entry.columns, entry.rows[0], strict=True):
                if column.endswith("entry_count"):
                    counts.setdefault(value, step.gset + column)
                if isinstance(value, int | str) and value not in given:
                    given[value] = step.gset + column
    used = {v for step in steps for v in (*step.variables.values(), *step.successors.values())}
    for step in steps:
        if step.gset is not None and not any(v.startswith(step.gset) for v in used):
            step.gset = None
    return steps


def _variable_of(
    name: str, value: Any, plan: ScriptPlan, new_from: dict[int, int], given: dict[Any, str]
) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if value in plan.recorded_ids:
            return plan.recorded_ids[value]
        if plan.sweep is not None and value == plan.sweep[1]:
            return plan.sweep[0]
        if value >= ID_SPAN and value in given:  # an id read or made before
            return given[value]
        if value >= ID_SPAN and value >= new_from.get(value // ID_SPAN, value + 1):
            raise RuntimeError(f"{name}={value}: made by the operation, but from where?")
    if isinstance(value, str) and len(value) >= 32 and value in given:
        return given[value]
    return None


_PARAMETER = re.compile(r"%\((\w+)\)s")


def pgbench_script(steps: list[Step], plan: ScriptPlan) -> str:
    """The steps as a pgbench script: each transaction a fresh operation on row permute(n mod
    R), n counting the transactions of all clients (pgbench -D k=0 -D clients=C); a
    returned row's values are carried by gset."""
    lines = [
        "\\set k :k + 1",
        "\\set n (:k - 1) * :clients + :client_id",
        f"\\set i permute(:n % {plan.rows}, {plan.rows})",
        *(f"\\set {name} {first} + :i" for name, first in plan.first.items()),
        *(f"\\set {name} {first} + :i % {plan.groups}" for name, first in plan.group_first.items()),
    ]
    if plan.sweep is not None:
        lines.append(f"\\set {plan.sweep[0]} {plan.sweep[2]} + :n / {plan.rows}")
    for step in steps:
        if step.statement in _WORDS:
            lines.append(step.statement + ";")
            continue
        lines += [f"\\set {name} :{source} + 1" for name, source in step.successors.items()]
        if re.search(r"(?<!:):[A-Za-z0-9_]", _PARAMETER.sub("", step.statement)):
            raise RuntimeError(f"a colon pgbench would misread: {step.statement[:120]}")

        def substitute(match: re.Match[str], step: Step = step) -> str:
            name = match.group(1)
            if name in step.variables:
                return ":" + step.variables[name]
            return sql_literal(step.values[name])

        text = _PARAMETER.sub(substitute, step.statement).replace("%%", "%")
        lines.append(text + (f" \\gset {step.gset}" if step.gset else ";"))
    return "\n".join(lines) + "\n"


def row_variables(plan: ScriptPlan, n: int) -> dict[str, Any]:
    """Transaction n's variables of its row (row n mod R, in order: the clients' transactions
    at one moment are of different rows, as with pgbench's permute)."""
    i = n % plan.rows
    variables: dict[str, Any] = {name: first + i for name, first in plan.first.items()}
    variables |= {name: first + i % plan.groups for name, first in plan.group_first.items()}
    if plan.sweep is not None:
        variables[plan.sweep[0]] = plan.sweep[2] + n // plan.rows
    return variables


def run_steps(conn: psycopg.Connection[Any], steps: list[Step], variables: dict[str, Any]) -> None:
    """One transaction of the steps on `conn` (not in autocommit: psycopg sends BEGIN before
    the first statement, as under SQLAlchemy), from Python with no more than the driver."""
    for step in steps:
        if step.statement == "BEGIN":
            continue
        if step.statement in ("COMMIT", "ROLLBACK"):
            conn.commit() if step.statement == "COMMIT" else conn.rollback()
            continue
        for name, source in step.successors.items():
            variables[name] = variables[source] + 1
        parameters = step.values | {name: variables[v] for name, v in step.variables.items()}
        cursor = conn.execute(step.statement, parameters)
        if step.gset is not None:
            row = cursor.fetchone()
            if row is None or cursor.description is None:
                raise RuntimeError(f"no row where the recording had one: {step.statement[:80]}")
            for column, value in zip(cursor.description, row, strict=True):
                variables[step.gset + column.name] = value


@dataclass
class Replay:
    processed: int  # transactions pgbench ran to their end
    tps: float
    machine_cpu_s: float  # all of the machine's while pgbench ran


def run_script(url: str, script: str, clients: int, *limit: str) -> Replay:
    """`script` (`pgbench_script`) run by `pgbench -M prepared` with `clients` clients, one
    thread each, for `limit` (`-t N` transactions a client, or `-T seconds`), after a
    CHECKPOINT. psycopg prepares the app's repeated statements too."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="replay-") as file:
        file.write(script)
        file.flush()
        checkpoint(url)
        machine = machine_cpu_seconds()
        output = pgbench(
            url,
            *("-n", "-M", "prepared", "-f", file.name),
            *("-c", str(clients), "-j", str(clients), *limit),
            *("-D", "k=0", "-D", f"clients={clients}"),
        )
        machine = machine_cpu_seconds() - machine
    found = re.search(r"actually processed: (\d+)", output)
    return Replay(int(found.group(1)) if found else 0, pgbench_tps(output), machine)
