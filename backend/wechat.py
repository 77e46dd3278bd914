"""Adapter for WeChat's ``jscode2session`` login API.

The mini-program calls ``wx.login()`` and sends us the short-lived ``code``; we trade it
with WeChat for the user's ``openid`` (and ``unionid`` when the app is bound to an open
platform account).  WeChat also returns a ``session_key``: it is deliberately dropped here.
It must never leave the server, be stored or be logged, and neither may the AppSecret or the
code, so no log line or exception raised by this module carries any of them.

Every failure is turned into an :class:`~backend.errors.APIError` with a message a villager
can read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backend.errors import APIError

if TYPE_CHECKING:
    import requests

# `requests` (5 MB and 120 modules in every worker) is imported by the first WeChat login,
# not at start: most workers never make one (tests/api/test_worker_imports.py).

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeChatSession:
    """Who the user is, according to WeChat. The session_key is intentionally absent."""

    openid: str
    unionid: str | None


class WeChatClient:
    """Calls ``GET {api_base}/sns/jscode2session``."""

    # Seconds a client should wait after WeChat's frequency limit (errcode 45011).
    RATE_LIMIT_RETRY_AFTER = 60
    # Real codes are 32 characters; anything far longer is not worth sending to WeChat.
    MAX_CODE_LENGTH = 256

    ERRCODE_SYSTEM_BUSY = -1
    ERRCODE_INVALID_CODE = 40029
    ERRCODE_CODE_USED = 40163
    ERRCODE_HIGH_RISK_USER = 40226
    ERRCODE_FREQUENCY_LIMIT = 45011

    def __init__(
        self,
        api_base: str,
        appid: str,
        secret: str,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.appid = appid
        self._secret = secret
        self.timeout = timeout
        if session is None:
            import requests

            session = requests.Session()
        self._session = session

    def __repr__(self) -> str:  # never show the secret
        return f"WeChatClient(api_base={self.api_base!r}, appid={self.appid!r})"

    def code_to_session(self, code: str) -> WeChatSession:
        """Trade a ``wx.login()`` code for the user's identity, or raise ``APIError``."""
        if not isinstance(code, str) or not code or len(code) > self.MAX_CODE_LENGTH:
            raise self._code_invalid()

        import requests

        started = time.monotonic()
        # The request is made here, and any exception is turned into an outcome label, so that
        # the APIError raised below carries no __context__: requests' exception messages
        # contain the full URL, i.e. the secret and the code.
        failure: str | None = None
        response: requests.Response | None = None
        try:
            response = self._session.get(
                f"{self.api_base}/sns/jscode2session",
                params={
                    "appid": self.appid,
                    "secret": self._secret,
                    "js_code": code,
                    "grant_type": "authorization_code",
                },
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            failure = "timeout"
        except requests.ConnectionError:
            failure = "connection_error"
        except requests.RequestException:
            failure = "request_error"
        elapsed_ms = (time.monotonic() - started) * 1000

        if failure is not None or response is None:
            logger.warning("wechat jscode2session %s elapsed_ms=%.0f", failure, elapsed_ms)
            raise self._unavailable()

        status = response.status_code
        if status >= 500:
            logger.warning(
                "wechat jscode2session http_status=%d elapsed_ms=%.0f", status, elapsed_ms
            )
            raise self._unavailable()
        if status != 200:
            logger.warning(
                "wechat jscode2session http_status=%d elapsed_ms=%.0f", status, elapsed_ms
            )
            raise self._error({"http_status": status})

        payload = self._parse(response)
        if payload is None:
            logger.warning("wechat jscode2session invalid_body elapsed_ms=%.0f", elapsed_ms)
            raise self._unavailable()

        errcode = self._errcode(payload.get("errcode", 0))
        logger.info("wechat jscode2session errcode=%s elapsed_ms=%.0f", errcode, elapsed_ms)
        if errcode != 0:
            raise self._map_errcode(errcode)

        openid = payload.get("openid")
        if not isinstance(openid, str) or not openid:
            raise self._error({"errcode": 0})
        unionid = payload.get("unionid")
        if not isinstance(unionid, str) or not unionid:
            unionid = None
        return WeChatSession(openid=openid, unionid=unionid)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _parse(response: requests.Response) -> dict[str, Any] | None:
        # WeChat answers with Content-Type text/plain, so don't rely on the header.
        try:
            payload = response.json()
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    @staticmethod
    def _errcode(raw: Any) -> int | None:
        """The errcode as an int; None when WeChat sent something that isn't one."""
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                return None
        return None

    def _map_errcode(self, errcode: int | None) -> APIError:
        if errcode == self.ERRCODE_INVALID_CODE:
            return self._code_invalid()
        if errcode == self.ERRCODE_CODE_USED:
            return APIError(401, "wechat_code_used", "登录凭证已使用，请重新进入小程序")
        if errcode == self.ERRCODE_HIGH_RISK_USER:
            return APIError(403, "wechat_login_blocked", "微信判定当前账号存在风险，暂时无法登录")
        if errcode == self.ERRCODE_FREQUENCY_LIMIT:
            return APIError(
                429,
                "wechat_rate_limited",
                "登录太频繁了，请一分钟后再试",
                headers={"Retry-After": str(self.RATE_LIMIT_RETRY_AFTER)},
            )
        if errcode == self.ERRCODE_SYSTEM_BUSY:
            return self._unavailable()
        # errmsg is deliberately not passed on: only the number.
        return self._error({"errcode": errcode})

    @staticmethod
    def _code_invalid() -> APIError:
        return APIError(401, "wechat_code_invalid", "登录凭证无效，请重新进入小程序")

    def _unavailable(self) -> APIError:
        # No Retry-After: the API sends it with 429 only (a 503 is retried at will).
        return APIError(503, "wechat_unavailable", "微信服务暂时不可用，请稍后再试")

    @staticmethod
    def _error(details: dict[str, Any]) -> APIError:
        return APIError(502, "wechat_error", "微信登录出错了，请稍后再试", details=details)
