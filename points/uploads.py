"""Photos that prove a claim (证明照片): checked by content, re-encoded without EXIF (a phone
photo carries the GPS position of the villager's home), stored under a random name.

Only the bytes Pillow itself re-encodes are ever stored or served, so whatever a client sent
(metadata, trailing data, a script disguised as a picture) never reaches another user."""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageCms, ImageOps
from sqlalchemy.orm import Session

from .errors import DomainError, Forbidden, NotFound
from .models import Upload
from .scope import VILLAGER, Actor, get_visible

MAX_BYTES = 5 * 1024 * 1024
MAX_SIDE = 2048  # px on the long side: enough to read a certificate, small on a village network
JPEG_QUALITY = 85
# The only parsers Pillow may try (its JPEG parser also reads the MPO files many phones make).
FORMATS = ("JPEG", "PNG", "WEBP")


class FileTooLarge(DomainError):
    status = 413
    code = "file_too_large"
    message = f"照片不能超过 {MAX_BYTES // (1024 * 1024)} MB"


class NotAPhoto(DomainError):
    status = 422
    code = "not_a_photo"
    message = "只能上传照片（JPEG、PNG 或 WEBP 格式）"


class ImageTooLarge(DomainError):
    status = 422
    code = "image_too_large"
    message = "照片的像素太多，请缩小后再上传"


def store_photo(
    session: Session, actor: Actor, data: bytes, upload_dir: str | Path,
    max_bytes: int = MAX_BYTES,
) -> Upload:
    """Check, clean and store one photo; returns the flushed `Upload` row. The file is in
    place before the row exists, so a committed row always has its file."""
    if actor.role == VILLAGER and actor.household_id is None:
        raise Forbidden("请先绑定村民身份再上传照片", code="not_bound")
    if len(data) > max_bytes:
        raise FileTooLarge(f"照片不能超过 {max_bytes / (1024 * 1024):g} MB",
                           details={"max_bytes": max_bytes, "size": len(data)})
    image = _decode(data)
    clean = _clean(image)
    out = BytesIO()
    clean.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    stored = out.getvalue()

    directory = Path(upload_dir)
    name = f"{secrets.token_hex(16)}.jpg"
    _write_atomically(directory, name, stored)
    upload = Upload(
        user_id=actor.user_id, village_id=actor.village_id, stored_name=name,
        content_type="image/jpeg", size=len(stored), width=clean.width, height=clean.height,
        sha256=hashlib.sha256(stored).hexdigest(),
    )
    session.add(upload)
    try:
        session.flush()
    except Exception:
        (directory / name).unlink(missing_ok=True)
        raise
    return upload


def photo_path(upload_dir: str | Path, upload: Upload) -> Path:
    return Path(upload_dir) / upload.stored_name


def open_photo(
    session: Session, actor: Actor, upload_id: int, upload_dir: str | Path,
) -> tuple[Upload, Path]:
    """The upload and its file, for its uploader and the staff of its village only."""
    upload = get_visible(session, actor, Upload, upload_id)
    path = photo_path(upload_dir, upload)
    if not path.is_file():
        raise NotFound("照片文件不存在", code="not_found")
    return upload, path


def _decode(data: bytes) -> Image.Image:
    try:
        with Image.open(BytesIO(data), formats=FORMATS) as probe:
            probe.verify()
        # verify() leaves the image unusable, so it is opened again to decode.
        image = Image.open(BytesIO(data), formats=FORMATS)
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a photo that big is
        # refused before its pixels are decoded, without touching the process-wide warning
        # filters (not thread-safe).
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and image.width * image.height > limit:
            raise ImageTooLarge(details={"width": image.width, "height": image.height})
        # Decode big JPEGs at a reduced scale straight away (the box is square, so the
        # orientation applied later does not matter).
        image.draft(None, (MAX_SIDE, MAX_SIDE))
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge() from exc
    except DomainError:
        raise
    except Exception as exc:
        # Pillow reports a malformed file through many exception types (OSError,
        # SyntaxError, ValueError, EOFError, struct.error...): all of them mean "not a photo".
        raise NotAPhoto() from exc
    return image


def _clean(image: Image.Image) -> Image.Image:
    """Upright, sRGB, no transparency, at most MAX_SIDE, and no metadata at all."""
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # a malformed EXIF block
        raise NotAPhoto() from exc
    image = _to_srgb(image)
    if image.mode.startswith("I"):  # 16-bit greyscale PNG: scale, or convert() clips to white
        image = image.convert("I").point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    rgb = image.convert("RGB")
    rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    # A fresh image carries no info (exif, icc_profile, xmp, comments) into the encoder.
    clean = Image.new("RGB", rgb.size)
    clean.paste(rgb)
    return clean


def _to_srgb(image: Image.Image) -> Image.Image:
    # Phones shoot in wide-gamut profiles (Display P3); the profile is dropped with the rest
    # of the metadata, so convert first or the colours come out washed out.
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, target, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # an unreadable profile: keep the pixels as they are
    return converted if converted is not None else image


def _write_atomically(directory: Path, name: str, data: bytes) -> None:
    """Write to a temporary file beside the target and rename it, so a crash never leaves a
    half-written photo under a real name."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
