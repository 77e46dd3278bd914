"""A reward's picture (商品图片): uploaded by the shop's staff, checked and cleaned like a proof
photo (by content, bounded before decoding, re-encoded without EXIF), scaled to at most
1024 px and stored under UPLOAD_DIR/rewards/ by a new random name for every upload, so the
name is the picture's version and a phone may cache it for good."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy.orm import Session

from . import audit, uploads
from .errors import DomainError, NotFound
from .models import Reward, Shop
from .scope import Actor, authorize, get_visible

MAX_SIDE = 1024  # px on the long side: a shelf picture on a phone screen
SUBDIRECTORY = "rewards"


class FileRequired(DomainError):
    status = 400
    code = "file_required"
    message = "请选择要上传的图片（表单字段 file）"


def image_dir(upload_dir: str | Path) -> Path:
    return Path(upload_dir) / SUBDIRECTORY


def store_image(
    session: Session,
    actor: Actor,
    reward_id: int,
    data: bytes,
    upload_dir: str | Path,
) -> tuple[Reward, str | None]:
    """Check, clean and store the reward's new picture (its shop's clerk, an admin of its
    township); returns the reward and the file name of the picture it replaces, to delete
    once the change is committed. Raises FileTooLarge, NotAPhoto or ImageTooLarge."""
    reward = get_visible(session, actor, Reward, reward_id)
    authorize(actor, "reward.edit")
    # Only now, so that a reward out of reach is not found whatever was sent.
    if not data:
        raise FileRequired()
    if len(data) > uploads.MAX_BYTES:
        raise uploads.FileTooLarge(details={"max_bytes": uploads.MAX_BYTES, "size": len(data)})
    stored, _ = uploads.clean_photo(data, max_side=MAX_SIDE)
    name = f"{secrets.token_hex(16)}.jpg"
    uploads.write_atomically(image_dir(upload_dir), name, stored)
    before = audit.snapshot(reward)
    replaced = reward.image_name
    reward.image_name, reward.image_url = name, None
    shop = session.get(Shop, reward.shop_id)
    assert shop is not None
    try:
        session.flush()
    except Exception:
        (image_dir(upload_dir) / name).unlink(missing_ok=True)
        raise
    audit.record(
        session, actor, "reward.image", reward, before=before, township_id=shop.township_id
    )
    return reward, replaced


def image_path(session: Session, reward_id: int, upload_dir: str | Path) -> tuple[Reward, Path]:
    """The stored picture of a reward: public, like the shelf it is shown on."""
    reward = session.get(Reward, reward_id)
    if reward is None or not reward.image_name:
        raise NotFound("这个商品没有图片", code="no_image")
    path = image_dir(upload_dir) / reward.image_name
    if not path.is_file():
        raise NotFound("这个商品没有图片", code="no_image")
    return reward, path


def remove_file(upload_dir: str | Path, name: str | None) -> None:
    if name:
        (image_dir(upload_dir) / name).unlink(missing_ok=True)
