"""The settings file: the environment variables of the configuration, kept in one file that
gunicorn, every `flask` command and the scheduled jobs read alike (wsgi.py).

The file named by VILLAGE_POINTS_ENV (e.g. /etc/village-points.env), else instance/.env if
it exists. `KEY=value` lines; blank lines and lines starting with `#` are skipped; a value
may be wrapped in '…' or "…" (taken as is, no escapes); a value holding a backslash must be
in single quotes. A `#` after a value is part of the value (a secret may hold one). This
is the subset systemd's EnvironmentFile= reads the same way, so the gunicorn unit may load
the file too. A variable already in the environment wins over the file.

Not python-dotenv: it skips a line it cannot read with a warning, and a mistyped line in
production must stop the start instead, naming the line (never its value: a secret)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .config import ConfigError

VARIABLE = "VILLAGE_POINTS_ENV"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse(text: str, source: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not NAME.match(key):
            raise ConfigError(f"{source} line {number}: expected KEY=value")
        single_quoted = len(value) >= 2 and value[0] == value[-1] == "'"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value[:1] in ("'", '"'):
            raise ConfigError(f"{source} line {number}: {key} has an unclosed quote")
        if "\\" in value and not single_quoted:
            # systemd's EnvironmentFile= reads a backslash as an escape outside single
            # quotes, and this reader does not: the app server and the timers would get two
            # different secrets. Refused, so that both read one value.
            raise ConfigError(
                f"{source} line {number}: {key}: put a value holding a backslash in single quotes"
            )
        values[key] = value
    return values


def settings_path(instance_path: str | Path) -> Path | None:
    """The file to read: VILLAGE_POINTS_ENV's (which must exist), else instance/.env when
    it exists, else none."""
    named = os.environ.get(VARIABLE)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{VARIABLE} names {named}, which is not a file")
        return path
    default = Path(instance_path) / ".env"
    return default if default.is_file() else None


def load(instance_path: str | Path) -> Path | None:
    """Put the settings file's variables into os.environ, leaving those already set; the
    file read, or None."""
    path = settings_path(instance_path)
    if path is None:
        return None
    try:
        # utf-8-sig: Windows Notepad starts a file with a byte-order mark
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the settings file {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    for key, value in parse(text, str(path)).items():
        os.environ.setdefault(key, value)
    return path
