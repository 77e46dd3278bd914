"""WeChatClient against a real (fake) WeChat HTTP server."""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from backend.errors import APIError
from backend.wechat import WeChatClient, WeChatSession
from tests.support.fake_wechat import FakeWeChat


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with FakeWeChat() as server:
        yield server


def make_client(fake: FakeWeChat, **overrides: object) -> WeChatClient:
    kwargs: dict[str, object] = {
        "api_base": fake.base_url,
        "appid": fake.appid,
        "secret": fake.secret,
        "timeout": 2.0,
    }
    kwargs.update(overrides)
    return WeChatClient(**kwargs)  # type: ignore[arg-type]


def login_error(client: WeChatClient, code: str) -> APIError:
    with pytest.raises(APIError) as excinfo:
        client.code_to_session(code)
    return excinfo.value


# -- success ----------------------------------------------------------------------------


def test_success_returns_openid_and_no_session_key(fake: FakeWeChat) -> None:
    result = make_client(fake).code_to_session("ok-alice")

    assert result == WeChatSession(openid="openid-alice", unionid=None)
    assert {f.name for f in dataclasses.fields(result)} == {"openid", "unionid"}
    assert not hasattr(result, "session_key")
    assert not hasattr(result, "__dict__") or "session_key" not in vars(result)
    [session_key] = fake.issued_session_keys
    assert session_key not in repr(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.openid = "someone-else"  # type: ignore[misc]


def test_sends_the_jscode2session_protocol(fake: FakeWeChat) -> None:
    make_client(fake).code_to_session("ok-bob")

    assert fake.requests == [
        {
            "appid": fake.appid,
            "secret": fake.secret,
            "js_code": "ok-bob",
            "grant_type": "authorization_code",
        }
    ]


def test_unionid_is_returned_when_present(fake: FakeWeChat) -> None:
    fake.unionids["carol"] = "union-carol"

    result = make_client(fake).code_to_session("ok-carol")

    assert result == WeChatSession(openid="openid-carol", unionid="union-carol")


def test_errcode_zero_with_openid_is_success(fake: FakeWeChat) -> None:
    fake.errcode_zero_on_success = True

    assert make_client(fake).code_to_session("ok-dan").openid == "openid-dan"


def test_api_base_trailing_slash_is_tolerated(fake: FakeWeChat) -> None:
    client = make_client(fake, api_base=fake.base_url + "/")

    assert client.code_to_session("ok-erin").openid == "openid-erin"


def test_repr_does_not_show_the_secret(fake: FakeWeChat) -> None:
    assert fake.secret not in repr(make_client(fake))


# -- errcode mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error_code"),
    [
        ("bad", 401, "wechat_code_invalid"),
        ("blocked", 403, "wechat_login_blocked"),
        ("busy", 429, "wechat_rate_limited"),
        ("sys", 503, "wechat_unavailable"),
        ("garbage", 503, "wechat_unavailable"),
        ("boom", 503, "wechat_unavailable"),
        ("noopenid", 502, "wechat_error"),
    ],
)
def test_error_mapping(fake: FakeWeChat, code: str, status: int, error_code: str) -> None:
    err = login_error(make_client(fake), code)

    assert (err.status, err.code) == (status, error_code)
    assert err.message and err.message.isascii() is False  # a Chinese, human message
    assert len(fake.requests) == 1  # it really went to the server


def test_invalid_code_message(fake: FakeWeChat) -> None:
    err = login_error(make_client(fake), "bad")

    assert err.message == "登录凭证无效，请重新进入小程序"


def test_rate_limited_has_retry_after_60(fake: FakeWeChat) -> None:
    err = login_error(make_client(fake), "busy")

    assert err.headers == {"Retry-After": "60"}
    assert WeChatClient.RATE_LIMIT_RETRY_AFTER == 60


@pytest.mark.parametrize("code", ["sys", "garbage", "boom"])
def test_unavailable_has_no_retry_after(fake: FakeWeChat, code: str) -> None:
    # The API sends Retry-After with 429 only; a 503 is the client's to retry.
    err = login_error(make_client(fake), code)

    assert (err.status, err.code) == (503, "wechat_unavailable")
    assert "Retry-After" not in err.headers


def test_code_used_twice(fake: FakeWeChat) -> None:
    client = make_client(fake)

    assert client.code_to_session("ok-frank").openid == "openid-frank"
    err = login_error(client, "ok-frank")

    assert (err.status, err.code) == (401, "wechat_code_used")
    assert len(fake.requests) == 2


def test_wrong_secret_is_a_wechat_error_with_errcode_only(fake: FakeWeChat) -> None:
    err = login_error(make_client(fake, secret="not-the-secret"), "ok-gina")

    assert (err.status, err.code) == (502, "wechat_error")
    assert err.details == {"errcode": 40125}  # errmsg (with its rid) is not passed on
    assert "not-the-secret" not in str(err)


def test_wrong_appid_is_a_wechat_error(fake: FakeWeChat) -> None:
    err = login_error(make_client(fake, appid="wx-other"), "ok-hank")

    assert (err.status, err.code, err.details) == (502, "wechat_error", {"errcode": 40013})


def test_empty_code_is_rejected_without_calling_wechat(fake: FakeWeChat) -> None:
    err = login_error(make_client(fake), "")

    assert (err.status, err.code) == (401, "wechat_code_invalid")
    assert fake.requests == []


# -- transport failures -----------------------------------------------------------------


def test_hanging_server_times_out_quickly(fake: FakeWeChat) -> None:
    fake.hang_seconds = 10
    client = make_client(fake, timeout=0.5)

    started = time.monotonic()
    err = login_error(client, "hang")
    elapsed = time.monotonic() - started

    assert (err.status, err.code) == (503, "wechat_unavailable")
    assert elapsed < 0.5 + 1
    # stop() must release the handler that is still hanging.
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1


def test_slow_but_within_timeout_succeeds(fake: FakeWeChat) -> None:
    fake.hang_seconds = 0.2

    assert make_client(fake, timeout=2).code_to_session("hang").openid == "openid-hang"


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = WeChatClient(f"http://127.0.0.1:{port}", "wx-app", "top-secret", timeout=1)

    started = time.monotonic()
    err = login_error(client, "ok-ivy")

    assert (err.status, err.code) == (503, "wechat_unavailable")
    assert time.monotonic() - started < 2
    # requests' own exception message contains the URL (secret, code): it must not be chained.
    assert err.__cause__ is None and err.__context__ is None
    assert "top-secret" not in str(err) and "ok-ivy" not in str(err)


# -- logging ----------------------------------------------------------------------------


def test_no_secrets_in_logs(fake: FakeWeChat, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(fake, timeout=0.5)
    fake.hang_seconds = 5

    client.code_to_session("ok-jack")
    for code in ["ok-jack", "bad", "busy", "sys", "garbage", "boom", "noopenid", "hang"]:
        login_error(client, code)

    assert len(fake.issued_session_keys) == 2  # ok-jack and noopenid
    for session_key in fake.issued_session_keys:
        assert session_key not in caplog.text
    ours = [r for r in caplog.records if r.name == "backend.wechat"]
    assert len(ours) == 9  # one line per call, with errcode / elapsed time
    assert any("errcode=45011" in r.getMessage() for r in ours)
    assert all("elapsed_ms=" in r.getMessage() for r in ours)
    for record in ours:
        message = record.getMessage()
        assert fake.secret not in message
        assert "ok-jack" not in message
