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

from .errors import DomainError, NotFound
from .models import Upload
from .scope import VILLAGER, Actor, get_visible

MAX_BYTES = 5 * 1024 * 1024
MAX_SIDE = 2048  # px on the long side: enough to read a certificate, small on a village network
JPEG_QUALITY = 85
# The only parsers Pillow may try (its JPEG parser also reads the MPO files many phones make).
# Only the first frame of an animated PNG or WebP, or of an MPO, is ever decoded.
FORMATS = ("JPEG", "PNG", "WEBP")

# Pixel bounds, read from the header before any pixel is decoded: a 9400 x 9400 PNG of one
# colour is 363 KB to send and, decoded in full, took 2 GB and 8 s. Each bound keeps one
# upload's peak memory near 250 MB at worst (Pillow 13, measured by tests/api/test_upload_bombs.py):
# Pillow holds 4 bytes a pixel, and an image with transparency is copied twice more while it
# is made opaque and resampled. 20 MP is a 5000 x 4000 photo or a long phone screenshot
# (1080 x 18500); phones take 12 MP photos unless set otherwise.
MAX_PIXELS = 20_000_000
# A baseline JPEG is decoded at 1/2, 1/4 or 1/8 scale straight away (draft), and only the
# reduced size counts against MAX_PIXELS: this bound admits a phone's 50 MP mode. A
# progressive JPEG keeps every DCT coefficient of the full image (up to 8 bytes a pixel, for
# CMYK) whatever the scale it is decoded at, so it gets MAX_PIXELS.
MAX_BASELINE_JPEG_PIXELS = 64_000_000
# Pillow decodes a WebP through libwebp's animation decoder, which holds the canvas several
# times over: about 15 bytes a pixel. 12 MP is a 4000 x 3000 photo.
MAX_WEBP_PIXELS = 12_000_000


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

    def __init__(self, size: tuple[int, int] | None = None, limit: int | None = None) -> None:
        details: dict[str, int] = {}
        if size is not None:
            details = {"width": size[0], "height": size[1]}
        if limit is not None:
            details["max_pixels"] = limit
        message = (
            f"照片的像素太多（这类照片最多 {limit // 10_000} 万像素），请缩小后再上传"
            if limit is not None
            else None
        )
        super().__init__(message, details=details)


def store_photo(
    session: Session,
    actor: Actor,
    data: bytes,
    upload_dir: str | Path,
    max_bytes: int = MAX_BYTES,
) -> Upload:
    """Check, clean and store one photo; returns the flushed `Upload` row. The file is in
    place before the row exists, so a committed row always has its file."""
    if actor.role == VILLAGER:
        actor.require_household("请先绑定村民身份再上传照片")
    if len(data) > max_bytes:
        raise FileTooLarge(
            f"照片不能超过 {max_bytes / (1024 * 1024):g} MB",
            details={"max_bytes": max_bytes, "size": len(data)},
        )
    stored, (width, height) = clean_photo(data)

    directory = Path(upload_dir)
    name = f"{secrets.token_hex(16)}.jpg"
    write_atomically(directory, name, stored)
    upload = Upload(
        user_id=actor.user_id,
        village_id=actor.village_id,
        stored_name=name,
        content_type="image/jpeg",
        size=len(stored),
        width=width,
        height=height,
        sha256=hashlib.sha256(stored).hexdigest(),
    )
    session.add(upload)
    try:
        session.flush()
    except Exception:
        (directory / name).unlink(missing_ok=True)
        raise
    return upload


def clean_photo(data: bytes, max_side: int = MAX_SIDE) -> tuple[bytes, tuple[int, int]]:
    """The JPEG stored for an uploaded photo, and its size (at most `max_side` px on the
    long side). Raises NotAPhoto or ImageTooLarge; never decodes more pixels than the bounds
    above allow."""
    # no name keeps the decoded image alive past _clean
    clean = _clean(_decode(data, max_side), max_side)
    out = BytesIO()
    clean.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue(), clean.size


def photo_path(upload_dir: str | Path, upload: Upload) -> Path:
    return Path(upload_dir) / upload.stored_name


def open_photo(
    session: Session,
    actor: Actor,
    upload_id: int,
    upload_dir: str | Path,
) -> tuple[Upload, Path]:
    """The upload and its file, for its uploader and the staff of its village only."""
    upload = get_visible(session, actor, Upload, upload_id)
    path = photo_path(upload_dir, upload)
    if not path.is_file():
        raise NotFound("照片文件不存在", code="not_found")
    return upload, path


def open_signed_photo(
    session: Session,
    upload_id: int,
    upload_dir: str | Path,
) -> tuple[Upload, Path]:
    """The upload and its file for a signed link: the link was handed out after the scope
    check of `open_photo`, and its signature names this upload."""
    upload = session.get(Upload, upload_id)
    path = photo_path(upload_dir, upload) if upload is not None else None
    if upload is None or path is None or not path.is_file():
        raise NotFound("照片文件不存在", code="not_found")
    return upload, path


def _pixel_limit(image: Image.Image) -> int:
    if image.format == "WEBP":
        return MAX_WEBP_PIXELS
    if image.format in ("JPEG", "MPO") and not image.info.get("progressive"):
        return MAX_BASELINE_JPEG_PIXELS
    return MAX_PIXELS


def _refuse_if_too_many(size: tuple[int, int], limit: int) -> None:
    if size[0] * size[1] > limit:
        raise ImageTooLarge(size, limit)


def _decode(data: bytes, max_side: int = MAX_SIDE) -> Image.Image:
    """The photo's first frame, decoded at no more than about twice MAX_SIDE: never a full
    decode of more pixels than the bounds above allow."""
    try:
        with Image.open(BytesIO(data), formats=FORMATS) as probe:
            # open() reads the header only: the size is known before any pixel is decoded.
            _refuse_if_too_many(probe.size, _pixel_limit(probe))
            probe.verify()
        # verify() leaves the image unusable, so it is opened again to decode.
        image: Image.Image = Image.open(BytesIO(data), formats=FORMATS)
        # Decode big JPEGs at a reduced scale straight away (the box is square, so the
        # orientation applied later does not matter); then what is decoded is bounded too.
        image.draft(None, (max_side, max_side))
        _refuse_if_too_many(image.size, MAX_PIXELS)
        image.load()
        image = _shrink(image, max_side)
    # Pillow's own check (MAX_IMAGE_PIXELS) raises the error, or warns, which the tests turn
    # into an error: either is the same refusal.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge() from exc
    except DomainError:
        raise
    except Exception as exc:
        # Pillow reports a malformed file through many exception types (OSError,
        # SyntaxError, ValueError, EOFError, struct.error...): all of them mean "not a photo".
        raise NotAPhoto() from exc
    return image


def _shrink(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """Scale down to MAX_SIDE before anything else copies the pixels (turning upright and
    converting colours each make a new image): the full-size one is let go here."""
    if max(image.size) <= max_side:
        return image
    transparent = image.mode == "PA" or "transparency" in image.info
    # A palette is resampled by picking pixels, and a transparent colour (a PNG's tRNS key)
    # no longer matches once resampled: give such images plain pixels first.
    if image.mode in ("1", "P", "PA") or (transparent and image.mode in ("L", "RGB")):
        image = image.convert("RGBA" if transparent else "RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def _clean(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
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
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
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


def write_atomically(
    directory: Path, name: str, data: bytes, *, part_prefix: str = ".upload-"
) -> None:
    """Write to a temporary file beside the target (named `part_prefix`…`.part`) and rename
    it, so a crash never leaves a half-written file under a real name."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=part_prefix, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- smaller copies for a phone on a village network -----------------------------------------

# The widths a photo is offered at: a fixed few, so the copies on disk stay a handful per
# photo whatever a client asks for (a list thumbnail, a detail view, a full-screen view).
THUMBNAIL_WIDTHS = (160, 320, 640, 1280)
THUMBNAIL_FORMATS = {"jpeg": ("JPEG", "jpg", "image/jpeg"), "webp": ("WEBP", "webp", "image/webp")}
THUMBNAIL_QUALITY = 80


def thumbnail_path(
    upload_dir: str | Path,
    upload: Upload,
    width: int,
    fmt: str = "jpeg",
) -> Path:
    """A copy of the photo `width` px wide at most (never wider than the photo), made on first
    use and kept beside the original (`<name>.w320.jpg`). The stored original is one this
    service encoded, at most MAX_SIDE: decoding it is bounded."""
    if width not in THUMBNAIL_WIDTHS or fmt not in THUMBNAIL_FORMATS:
        raise ValueError(f"no thumbnail {width} {fmt}")
    pil_format, extension, _ = THUMBNAIL_FORMATS[fmt]
    original = photo_path(upload_dir, upload)
    stem = upload.stored_name.rsplit(".", 1)[0]
    path = original.with_name(f"{stem}.w{width}.{extension}")
    if path.is_file():
        return path
    with Image.open(original, formats=("JPEG",)) as image:
        # Decode at a reduced scale when possible: at least `width` wide, whatever the height.
        image.draft("RGB", (width, 1))
        image.load()
        copy = image.convert("RGB")
    if copy.width > width:
        copy = copy.resize(
            (width, max(1, round(copy.height * width / copy.width))), Image.Resampling.LANCZOS
        )
    out = BytesIO()
    copy.save(out, pil_format, quality=THUMBNAIL_QUALITY)
    # Two requests for the same copy may both make it: each writes its own temporary file
    # and renames it over the name, so a reader only ever sees a whole file.
    write_atomically(path.parent, path.name, out.getvalue())
    return path
