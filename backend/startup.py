"""How a refused start reads: one line on stderr and exit status 3, for gunicorn and for every
`flask --app wsgi` command (wsgi.py). A configuration mistake (a setting, the settings file,
the database's address, or a database that does not answer at start) is the operator's to
fix, and cron mails what a command prints: a traceback there hides the one line that
matters. Status 3 is what gunicorn reads as a worker that cannot boot, so its master stops
rather than starting workers again and again."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from .config import ConfigError

REFUSED = 3


def refuse(line: str) -> None:
    print(line, file=sys.stderr)
    raise SystemExit(REFUSED)


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@contextmanager
def refusing_in_one_line() -> Iterator[None]:
    try:
        yield
    except ConfigError as error:
        refuse(str(error))
    except sa_exc.ArgumentError as error:  # a DATABASE_URL SQLAlchemy cannot read
        refuse(f"DATABASE_URL is not a database address SQLAlchemy can use: {first_line(error)}")
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
        # the driver's own message (the address, "Connection refused", "password
        # authentication failed"); never the password, which drivers do not repeat
        refuse(f"database error at start: {first_line(error.orig or error)}")
