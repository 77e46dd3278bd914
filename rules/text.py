"""Quoting what someone sent back to them in an error message."""

from __future__ import annotations

ECHO_LIMIT = 50  # characters of a value quoted in an error: enough to find it in the file


def excerpt(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` as text to quote in an error message, cut to `limit` characters with "…".

    A cell, key or line of an uploaded file can be megabytes long, and an error that quotes
    it once per row or item turns a small upload into a huge answer (and a huge log line)."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"
