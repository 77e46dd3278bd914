"""Configuration from environment variables (README, Configuration). Every name here is
documented there with its default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEV_SECRET = "development-only-secret-key-never-use-in-production!"
MIN_SECRET_BYTES = 32


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


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
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "WECHAT_APPID": os.environ.get("WECHAT_APPID", ""),
        "WECHAT_SECRET": os.environ.get("WECHAT_SECRET", ""),
        "WECHAT_API_BASE": os.environ.get("WECHAT_API_BASE", "https://api.weixin.qq.com"),
        "WECHAT_TIMEOUT": float(os.environ.get("WECHAT_TIMEOUT", "5")),
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "LOGIN_RATE_LIMIT": os.environ.get("LOGIN_RATE_LIMIT", "10 per minute;50 per hour"),
        "APP_TIMEZONE": os.environ.get("APP_TIMEZONE", "Asia/Shanghai"),
        "UPLOAD_DIR": os.environ.get("UPLOAD_DIR", str(Path(instance_path) / "uploads")),
        "ACCESS_TOKEN_MINUTES": _int("ACCESS_TOKEN_MINUTES", 15),
        "REFRESH_TOKEN_DAYS": _int("REFRESH_TOKEN_DAYS", 30),
        "BINDING_TOKEN_HOURS": _int("BINDING_TOKEN_HOURS", 72),
        "JWT_ISSUER": os.environ.get("JWT_ISSUER", "village-points"),
        "JWT_AUDIENCE": os.environ.get("JWT_AUDIENCE", "village-points-app"),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 8 * 1024 * 1024),
    }


def check(config: dict[str, Any]) -> None:
    """Refuse to start with settings that would be unsafe in production."""
    if config["APP_ENV"] == "development":
        return
    secret = config.get("SECRET_KEY") or ""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise RuntimeError(
            f"SECRET_KEY must be set to at least {MIN_SECRET_BYTES} bytes outside development "
            "(APP_ENV=development for a local trial)."
        )
