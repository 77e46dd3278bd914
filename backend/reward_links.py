"""Where a reward's picture is fetched from."""

from __future__ import annotations

from typing import Any

from flask import current_app


def reward_image_url(reward: Any) -> str | None:
    """The stored picture's address with its version (`v`, from its file name, new for every
    upload), so a phone may keep it for good; else a link typed in before pictures were
    uploaded; else None."""
    name = getattr(reward, "image_name", None)
    if name:
        base = current_app.config["PUBLIC_BASE_URL"]
        return f"{base}/api/v1/rewards/{reward.id}/image?v={image_version(name)}"
    return getattr(reward, "image_url", None)


def image_version(name: str) -> str:
    return name.split(".", 1)[0][:16]
