"""Pointing the app at the fake WeChat server (tests/support/fake_wechat.py)."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support.fake_wechat import FakeWeChat

TIMEOUT = 0.5


def point_at(app: Flask, monkeypatch: pytest.MonkeyPatch, fake: FakeWeChat) -> None:
    monkeypatch.setitem(app.config, "WECHAT_APPID", fake.appid)
    monkeypatch.setitem(app.config, "WECHAT_SECRET", fake.secret)
    monkeypatch.setitem(app.config, "WECHAT_API_BASE", fake.base_url)
    monkeypatch.setitem(app.config, "WECHAT_TIMEOUT", TIMEOUT)
