"""JSON responses in readable UTF-8 Chinese, safe for any input echoed back."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider


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
