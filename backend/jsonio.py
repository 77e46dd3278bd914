"""JSON in and out: responses in readable UTF-8 Chinese, safe for any input echoed back;
bodies nested deeper than any request of the API refused before they are parsed."""

from __future__ import annotations

import json
import re
from typing import Any

from flask.json.provider import DefaultJSONProvider

# No request body of the API nests more than a few levels (an award's targets, a rule item's
# caps). Every layer that reads a body walks it recursively (the parser, the text guard,
# marshmallow), so a body of a few kilobytes nested a few hundred deep exhausts Python's
# recursion limit: a 500 and a traceback of thousands of lines for each such request.
MAX_DEPTH = 32

# Openers to "(", closers to ")", every other byte dropped.
_TO_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# A string once its escapes are gone; one never closed runs to the end (no later quote can
# start another match, so the scan stays linear).
_STRING = re.compile(rb'"[^"]*+"')


class TooDeep(json.JSONDecodeError):
    """A body nested deeper than MAX_DEPTH: malformed for this API, refused as bad JSON is."""

    def __init__(self, doc: str) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels", doc, 0)


def too_deep(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON text nests arrays and objects more than `limit` deep, found without
    parsing it (so without recursion, and with bytes methods only, linear on any input): with
    the strings and everything but brackets removed, each pass removes the innermost pairs,
    and a document `d` deep is gone after `d` passes. Brackets that never pair up count as
    too deep; such a text is not JSON either way."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    # Without its escaped backslashes and quotes (in that order: `\\"` ends a string), a
    # string is the text between two quotes; empty ones go first, cheaply.
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"").replace(b'""', b"")
    parens = _STRING.sub(b"", unescaped).translate(_TO_PARENS, _NOT_BRACKETS)
    too_many_open = b"(" * (limit + 1)
    for _ in range(limit):
        if too_many_open in parens:  # the usual hostile body: found on the first pass
            return True
        shorter = parens.replace(b"()", b"")
        if not shorter:
            return False
        if shorter == parens:
            return True
        parens = shorter
    return True


class ChineseJSONProvider(DefaultJSONProvider):
    ensure_ascii = False  # 积分不足, not \u79ef\u5206\u4e0d\u8db3

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        text = super().dumps(obj, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate from a hostile request (echoed in an error) cannot be UTF-8:
            # escape everything for this one response rather than answer 500.
            kwargs["ensure_ascii"] = True
            text = super().dumps(obj, **kwargs)
        return text

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        # request.get_json() reads bodies here (the login limit's key, the text guard): a
        # body too deep is malformed, which get_json(silent=True) takes as no body at all.
        if too_deep(s):
            raise TooDeep(s if isinstance(s, str) else s.decode("utf-8", "replace"))
        return super().loads(s, **kwargs)
