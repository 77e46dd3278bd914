"""Configuration from environment variables (README, Configuration). Every name here is
documented there with its default."""

from __future__ import annotations

import json
import os
import tempfile
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many


class ConfigError(RuntimeError):
    """A setting the service refuses to start with. wsgi.py prints its message as one line
    and exits (status 3), for gunicorn and for every `flask` command alike."""


# The settings holding a rate limit (backend/ratelimits.py).
LIMIT_SETTINGS = (
    "LOGIN_RATE_LIMIT",
    "WECHAT_LOGIN_RATE_LIMIT",
    "CHECKIN_RATE_LIMIT",
    "PROXY_CHECKIN_RATE_LIMIT",
    "ORDER_RATE_LIMIT",
    "COUNTER_REDEMPTION_RATE_LIMIT",
    "PICKUP_CODE_RATE_LIMIT",
)
DEV_SECRET = "development-only-secret-key-never-use-in-production!"
MIN_SECRET_BYTES = 32
MAX_QR_CLOCK_SKEW = 9  # seconds; less than the shortest rotating step (10)
MAX_JWT_LEEWAY = 60  # seconds
# Every QR code, plate, poster and board printed carries PUBLIC_BASE_URL: a development
# default must never reach paper, so production has none.
DEV_PUBLIC_BASE_URL = "http://127.0.0.1:5000"
MAX_REFRESH_REUSE_GRACE = 60  # seconds


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:  # name the setting: a bare int() error says nothing of which
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from exc


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from exc


def from_environment(instance_path: str) -> dict[str, Any]:
    env = os.environ.get("APP_ENV", "production")
    database_url = os.environ.get("DATABASE_URL") or (
        "sqlite:///" + str(Path(instance_path) / "village_points.sqlite3")
    )
    redis_url = os.environ.get("REDIS_URL", "")
    return {
        "APP_ENV": env,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or (DEV_SECRET if env == "development" else ""),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PUBLIC_BASE_URL": os.environ.get(
            "PUBLIC_BASE_URL", "" if env == "production" else DEV_PUBLIC_BASE_URL
        ).rstrip("/"),
        "WECHAT_APPID": os.environ.get("WECHAT_APPID", ""),
        "WECHAT_SECRET": os.environ.get("WECHAT_SECRET", ""),
        "WECHAT_API_BASE": os.environ.get("WECHAT_API_BASE", "https://api.weixin.qq.com"),
        "WECHAT_TIMEOUT": _float("WECHAT_TIMEOUT", 5.0),
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        # Prefixes every key this deployment writes to Redis, so two deployments (a trial
        # and the real one) sharing one Redis never share rate-limit counters.
        "REDIS_KEY_PREFIX": os.environ.get("REDIS_KEY_PREFIX", "village-points"),
        # Reverse proxies in front of the app whose X-Forwarded-For is believed (ProxyFix);
        # 0 when clients reach the WSGI server directly, else anyone could pick their address.
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", 0),
        # Rate limits (backend/ratelimits.py), in Flask-Limiter's notation. Password login
        # counts per address and per username; WeChat login per address; the rest per user.
        "LOGIN_RATE_LIMIT": os.environ.get("LOGIN_RATE_LIMIT", "10 per minute;50 per hour"),
        "WECHAT_LOGIN_RATE_LIMIT": os.environ.get("WECHAT_LOGIN_RATE_LIMIT", "60 per minute"),
        "CHECKIN_RATE_LIMIT": os.environ.get("CHECKIN_RATE_LIMIT", "30 per minute"),
        "PROXY_CHECKIN_RATE_LIMIT": os.environ.get("PROXY_CHECKIN_RATE_LIMIT", "60 per minute"),
        "ORDER_RATE_LIMIT": os.environ.get("ORDER_RATE_LIMIT", "20 per minute"),
        "COUNTER_REDEMPTION_RATE_LIMIT": os.environ.get(
            "COUNTER_REDEMPTION_RATE_LIMIT", "60 per minute"
        ),
        # A clerk typing an order's 6-digit pickup code: tight, since each try is a guess.
        "PICKUP_CODE_RATE_LIMIT": os.environ.get(
            "PICKUP_CODE_RATE_LIMIT", "10 per minute;60 per hour"
        ),
        "APP_TIMEZONE": os.environ.get("APP_TIMEZONE", "Asia/Shanghai"),
        "UPLOAD_DIR": os.environ.get("UPLOAD_DIR", str(Path(instance_path) / "uploads")),
        # Pictures drawn once (printed boards, statistics charts): empty for
        # `render-cache/` in UPLOAD_DIR (backend/render_cache.py); 0 MB keeps none.
        "RENDER_CACHE_DIR": os.environ.get("RENDER_CACHE_DIR", ""),
        "RENDER_CACHE_MB": _int("RENDER_CACHE_MB", 256),
        # Life of a signed image link (pickup code, member card, proof photo) that the
        # mini-program's <image> opens without a token (backend/signed_urls.py).
        "SIGNED_URL_SECONDS": _int("SIGNED_URL_SECONDS", 600),
        "ACCESS_TOKEN_MINUTES": _int("ACCESS_TOKEN_MINUTES", 15),
        "REFRESH_TOKEN_DAYS": _int("REFRESH_TOKEN_DAYS", 30),
        "BINDING_TOKEN_HOURS": _int("BINDING_TOKEN_HOURS", 72),
        "JWT_ISSUER": os.environ.get("JWT_ISSUER", "village-points"),
        "JWT_AUDIENCE": os.environ.get("JWT_AUDIENCE", "village-points-app"),
        # Several app servers never agree on the time to the second: a token issued by one a
        # little ahead carries an `iat` in the future of the next, which PyJWT refuses
        # without leeway. The leeway also lets a token live that much past its `exp`.
        "JWT_LEEWAY_SECONDS": _int("JWT_LEEWAY_SECONDS", 10),
        # A mini-program starting up refreshes from several pages at once with one refresh
        # token: for this long a spent one answers the pair it was spent for, rather than
        # ending the session as a stolen copy does. 0 turns the grace off.
        "REFRESH_REUSE_GRACE_SECONDS": _int("REFRESH_REUSE_GRACE_SECONDS", 10),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 8 * 1024 * 1024),
        # 积分超市: hours an order holds points and stock before it expires unpicked.
        "REDEMPTION_HOLD_HOURS": _int("REDEMPTION_HOLD_HOURS", 72),
        # A CJK font file for printed boards; empty: the packaged Noto Sans SC, then Debian's.
        "BOARD_FONT_PATH": os.environ.get("BOARD_FONT_PATH", ""),
        "BOARD_DPI": _int("BOARD_DPI", 200),  # resolution of board.png / board.pdf
        # QR keys (points/tokens.py): new codes are signed under QR_KEY_ID; every lower id
        # still verifies unless revoked; QR_OLD_SECRETS ({"1": "the old SECRET_KEY"}) keeps
        # the codes printed before SECRET_KEY itself was changed.
        "QR_KEY_ID": _int("QR_KEY_ID", 1),
        "QR_OLD_SECRETS": os.environ.get("QR_OLD_SECRETS", ""),
        "QR_REVOKED_KEY_IDS": os.environ.get("QR_REVOKED_KEY_IDS", ""),
        # Activities: a rotating code's step, the life of a display-screen link, and when
        # proxy check-ins by one cadre count as a burst (more than COUNT within MINUTES).
        "QR_ROTATE_SECONDS": _int("QR_ROTATE_SECONDS", 30),
        # How far apart the servers' clocks may be when one shows a rotating code and another
        # checks it: a screen fed by a server ahead shows the next step a few seconds early.
        "QR_CLOCK_SKEW_SECONDS": _int("QR_CLOCK_SKEW_SECONDS", 5),
        "PROXY_BURST_COUNT": _int("PROXY_BURST_COUNT", 10),
        "PROXY_BURST_MINUTES": _int("PROXY_BURST_MINUTES", 3),
        # GET /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; empty: only
        # requests from this machine (backend/metrics.py).
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", ""),
        # The staff console (/console/): a login unused this many minutes ends; its cookie is
        # Secure (sent over HTTPS only) unless APP_ENV is development or this says 0.
        "CONSOLE_IDLE_MINUTES": _int("CONSOLE_IDLE_MINUTES", 30),
        "CONSOLE_SECURE_COOKIE": os.environ.get(
            "CONSOLE_SECURE_COOKIE", "0" if env == "development" else "1"
        )
        != "0",
    }


def qr_old_secrets(config: dict[str, Any]) -> dict[int, str]:
    """QR_OLD_SECRETS as {key id: secret}; a JSON object, since a secret may hold any
    character."""
    raw = config.get("QR_OLD_SECRETS") or ""
    if isinstance(raw, dict):
        return {int(kid): str(secret) for kid, secret in raw.items()}
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
        return {int(kid): str(secret) for kid, secret in data.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(
            'QR_OLD_SECRETS must be a JSON object of key id to secret, e.g. {"1": "..."}'
        ) from exc


def qr_revoked_key_ids(config: dict[str, Any]) -> set[int]:
    raw = config.get("QR_REVOKED_KEY_IDS") or ""
    if not isinstance(raw, str):
        return {int(kid) for kid in raw}
    try:
        return {int(part) for part in raw.replace(",", " ").split()}
    except ValueError as exc:
        raise ConfigError("QR_REVOKED_KEY_IDS must list key ids, e.g. 1,2") from exc


def check_rate_limits(config: dict[str, Any]) -> None:
    """Refuse a limit string Flask-Limiter cannot parse: it would skip that limit (log an
    error per request and leave the endpoint unlimited) instead of failing."""
    for name in LIMIT_SETTINGS:
        if name not in config:  # a partial config (a test) checks what it has
            continue
        value = config[name]
        try:
            if not parse_many(value or ""):
                raise ValueError(value)
        except ValueError as exc:
            raise ConfigError(
                f"{name} must be a rate limit such as '30 per minute' or "
                f"'10 per minute;50 per hour', not {value!r}"
            ) from exc


def check(config: dict[str, Any]) -> None:
    """Refuse to start with settings that would be unsafe in production."""
    kid = config.get("QR_KEY_ID", 1)
    if not 1 <= kid <= 255:
        raise ConfigError("QR_KEY_ID must be between 1 and 255")
    if not set(qr_old_secrets(config)) <= set(range(1, 256)):
        raise ConfigError("QR_OLD_SECRETS key ids must be between 1 and 255")
    if kid in qr_revoked_key_ids(config):
        raise ConfigError("QR_KEY_ID cannot be one of QR_REVOKED_KEY_IDS")
    if config.get("REDEMPTION_HOLD_HOURS", 72) < 1:
        raise ConfigError("REDEMPTION_HOLD_HOURS must be at least 1")
    if not 10 <= config.get("QR_ROTATE_SECONDS", 30) <= 600:
        raise ConfigError("QR_ROTATE_SECONDS must be between 10 and 600")
    # Below the shortest step an activity may have (10 s): a code two steps ahead, or two
    # behind, must never come within the tolerance.
    if not 0 <= config.get("QR_CLOCK_SKEW_SECONDS", 5) <= MAX_QR_CLOCK_SKEW:
        raise ConfigError(f"QR_CLOCK_SKEW_SECONDS must be between 0 and {MAX_QR_CLOCK_SKEW}")
    # Far below an access token's life; servers in sync (NTP) differ by milliseconds.
    if not 0 <= config.get("JWT_LEEWAY_SECONDS", 10) <= MAX_JWT_LEEWAY:
        raise ConfigError(f"JWT_LEEWAY_SECONDS must be between 0 and {MAX_JWT_LEEWAY}")
    # A stolen refresh token is answered like its owner's for this long: keep it short.
    if not 0 <= config.get("REFRESH_REUSE_GRACE_SECONDS", 10) <= MAX_REFRESH_REUSE_GRACE:
        raise ConfigError(
            f"REFRESH_REUSE_GRACE_SECONDS must be between 0 and {MAX_REFRESH_REUSE_GRACE}"
        )
    if not 30 <= config.get("SIGNED_URL_SECONDS", 600) <= 86400:
        raise ConfigError("SIGNED_URL_SECONDS must be between 30 and 86400")
    check_rate_limits(config)
    if config.get("TRUSTED_PROXIES", 0) < 0:
        raise ConfigError("TRUSTED_PROXIES must be 0 or more")
    zone = config.get("APP_TIMEZONE", "Asia/Shanghai")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"APP_TIMEZONE must be an IANA time zone such as Asia/Shanghai, not {zone!r}"
        ) from exc
    if config["APP_ENV"] == "development":
        return
    secret = config.get("SECRET_KEY") or ""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"SECRET_KEY must be set to at least {MIN_SECRET_BYTES} bytes outside development "
            "(APP_ENV=development for a local trial)."
        )
    if config["APP_ENV"] == "production":
        check_production(config)


def check_production(config: dict[str, Any]) -> None:
    """What production needs beyond a secret: the address printed on paper, and an upload
    directory this process can write (the photos of claims)."""
    base = config.get("PUBLIC_BASE_URL") or ""
    if not base:
        raise ConfigError(
            "PUBLIC_BASE_URL must be set in production: the https address printed in every QR "
            "code, plate, poster and board, e.g. https://jf.example.gov.cn"
        )
    if not base.startswith(("https://", "http://")):
        raise ConfigError(f"PUBLIC_BASE_URL must start with https://, not {base!r}")
    check_upload_dir(config.get("UPLOAD_DIR") or "")


def check_upload_dir(path: str) -> None:
    """Make UPLOAD_DIR if missing and write a file there, so a missing NFS mount or a
    read-only directory stops the start rather than the first photo. (Writing, not
    os.access: permission bits say little on NFS with root squash or on a read-only mount.)"""
    if not path:
        raise ConfigError("UPLOAD_DIR must be set")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"UPLOAD_DIR {path} is not a directory this service can write: {exc.strerror or exc}"
        ) from exc


def production_warnings(config: dict[str, Any]) -> list[str]:
    """Settings production starts with but that are almost surely a mistake; logged as
    warnings at every start (each worker, each command)."""
    if config.get("APP_ENV") != "production":
        return []
    warnings = []
    host = urlsplit(config.get("PUBLIC_BASE_URL") or "").hostname or ""
    if is_loopback(host):
        warnings.append(
            f"PUBLIC_BASE_URL is {config['PUBLIC_BASE_URL']}, a loopback address: every "
            "printed QR code, plate and board will point at the villager's own phone"
        )
    if str(config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite"):
        warnings.append(
            "DATABASE_URL is SQLite: one file on one server, no concurrent writers across "
            "workers or servers; use PostgreSQL in production"
        )
    if not (config.get("WECHAT_APPID") and config.get("WECHAT_SECRET")):
        warnings.append(
            "WECHAT_APPID/WECHAT_SECRET are not set: villagers cannot log in from the mini-program"
        )
    return warnings


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
