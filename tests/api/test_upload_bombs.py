"""Photos that are small to send and huge to decode (decompression bombs): refused from their
header, quickly, or decoded at a bounded size; one upload never takes 300 MB.

Memory is measured in a fresh Python process by its peak resident size (VmHWM): Pillow
allocates pixels in C, where tracemalloc does not see them."""

from __future__ import annotations

import functools
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageFile
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from points import uploads
from tests.factories import World
from tests.support.reads import error_code

pytestmark = pytest.mark.usefixtures("empty_upload_dir")

ROOT = Path(__file__).resolve().parents[2]
MAX_PEAK_MB = 300


def png_of_one_colour(width: int, height: int, pixel: bytes = b"\xff\x00\x00") -> bytes:
    """A PNG written by hand, row by row, so a huge one costs the test no memory: colour type
    2 (RGB) for a 3-byte pixel, 6 (RGBA) for a 4-byte one. Every row after the first is
    filtered "Up" from the one above: all zeros, which deflate shrinks to almost nothing."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    colour_type = {3: 2, 4: 6}[len(pixel)]
    deflate = zlib.compressobj(9)
    first, up = b"\x00" + pixel * width, b"\x02" + bytes(len(pixel) * width)
    idat = [deflate.compress(first)] + [deflate.compress(up) for _ in range(height - 1)]
    idat.append(deflate.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(idat))
        + chunk(b"IEND", b"")
    )


@functools.cache
def bomb_png() -> bytes:
    """The reported bomb: 9400 x 9400 pixels (88 MP, just under Pillow's own warning)."""
    data = png_of_one_colour(9400, 9400)
    assert len(data) < 400_000
    return data


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def post_photo(client: FlaskClient, world: World, data: bytes) -> Any:
    boundary, body = encode_multipart({"file": FileStorage(BytesIO(data), filename="p.jpg")})
    return client.post(
        "/api/v1/uploads",
        headers=world.headers("villager_x"),
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def stored_files(app: Flask) -> list[Path]:
    directory = Path(app.config["UPLOAD_DIR"])
    return sorted(directory.iterdir()) if directory.exists() else []


# ---- over the HTTP API ----------------------------------------------------------------------


def test_pixel_bomb_is_refused_from_its_header(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stored_files(app)  # other tests' photos share the directory
    decoded: list[object] = []

    def record_decode(image: ImageFile.ImageFile) -> None:
        decoded.append(image)
        raise AssertionError("a pixel bomb must be refused before any pixel is decoded")

    # Refused from its header: no pixel is decoded at all (the full decode took 8 s and
    # 1.1 GB). Counting decodes, not seconds, keeps this true on a loaded machine.
    monkeypatch.setattr(ImageFile.ImageFile, "load", record_decode)
    response = post_photo(client, world, bomb_png())
    assert response.status_code == 422
    assert error_code(response) == "image_too_large"
    error = response.get_json()["error"]
    assert "万像素" in error["message"]
    assert error["details"] == {"width": 9400, "height": 9400, "max_pixels": uploads.MAX_PIXELS}
    assert decoded == []
    assert stored_files(app) == before


def test_pillows_own_bomb_check_is_a_refusal_not_a_crash(
    client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under Pillow's limit it warns (an error in this suite), at twice the limit it raises.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for side in (12, 40):  # 144 pixels: the warning; 1,600: DecompressionBombError
        response = post_photo(client, world, encoded(Image.new("RGB", (side, side)), "PNG"))
        assert response.status_code == 422, response.get_json()
        assert error_code(response) == "image_too_large"


# ---- each format's bound --------------------------------------------------------------------


def test_a_phones_50_megapixel_jpeg_is_decoded_reduced_and_accepted(
    client: FlaskClient, world: World
) -> None:
    data = encoded(Image.new("RGB", (8160, 6144), "green"), "JPEG")
    response = post_photo(client, world, data)
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["width"], response.get_json()["height"]) == (2048, 1542)


@pytest.mark.parametrize(
    ("size", "fmt", "options"),
    [
        # A progressive JPEG keeps all its coefficients, whatever the scale it is decoded at.
        ((5000, 4001), "JPEG", {"progressive": True}),
        # A baseline JPEG that the reduced decode cannot shrink (its short side is < 2048).
        ((20001, 1000), "JPEG", {}),
        ((4000, 3001), "WEBP", {}),
        ((5000, 4001), "PNG", {}),
    ],
)
def test_each_format_is_bounded_by_what_decoding_it_costs(
    app: Flask,
    client: FlaskClient,
    world: World,
    size: tuple[int, int],
    fmt: str,
    options: dict[str, Any],
) -> None:
    data = encoded(Image.new("RGB", size, "blue"), fmt, **options)
    before = stored_files(app)
    response = post_photo(client, world, data)
    assert response.status_code == 422, response.get_json()
    assert error_code(response) == "image_too_large"
    assert stored_files(app) == before


def test_an_animated_image_keeps_its_first_frame(client: FlaskClient, world: World) -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "lime", "blue")]
    for fmt in ("PNG", "WEBP"):
        data = encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
        response = post_photo(client, world, data)
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert (body["width"], body["height"]) == (64, 48)
        stored = client.get(body["url"], headers=world.headers("villager_x"))
        with Image.open(BytesIO(stored.data)) as image:
            red, green, blue = image.convert("RGB").getpixel((32, 24))  # type: ignore[misc]
            assert red > 200 and green < 60 and blue < 60
        stored.close()


# ---- peak memory, in a fresh process --------------------------------------------------------

MEASURE = textwrap.dedent("""
    import json, sys
    from io import BytesIO
    from pathlib import Path

    from PIL import Image
    from points import uploads

    def status(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    data = Path(sys.argv[1]).read_bytes()
    # Load every decoder once, so the libraries count in the baseline, not in the upload.
    for fmt in ("PNG", "JPEG", "WEBP"):
        sample = BytesIO()
        Image.new("RGB", (8, 8)).save(sample, fmt)
        uploads.clean_photo(sample.getvalue())
    before = status("VmRSS")
    try:
        uploads.clean_photo(data)
        outcome = "stored"
    except uploads.DomainError as error:
        outcome = error.code
    # The high-water mark since the start: at least the peak of the call above.
    print(json.dumps({"outcome": outcome, "peak": status("VmHWM") - before}))
""")


def peak_of_one_upload(data: bytes, tmp_path: Path) -> tuple[str, float]:
    photo = tmp_path / "photo.bin"
    photo.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(photo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["outcome"], result["peak"] / (1024 * 1024)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux /proc")
@pytest.mark.parametrize("case", ["bomb", "rgba png", "progressive cmyk jpeg", "webp"])
def test_one_upload_peaks_under_300_mb(tmp_path: Path, case: str) -> None:
    """The bomb, and the costliest photo each bound still lets in."""
    if case == "bomb":
        data, expected = bomb_png(), "image_too_large"
    elif case == "rgba png":  # transparency: made opaque and resampled, two more copies
        data, expected = png_of_one_colour(5000, 4000, b"\x10\x80\xf0\x80"), "stored"
    elif case == "progressive cmyk jpeg":  # 8 bytes of coefficients a pixel
        image = Image.new("CMYK", (5000, 4000), (10, 200, 30, 5))
        data, expected = encoded(image, "JPEG", progressive=True), "stored"
    else:
        image = Image.new("RGBA", (4000, 3000), (10, 200, 30, 128))
        data, expected = encoded(image, "WEBP"), "stored"
    outcome, peak_mb = peak_of_one_upload(data, tmp_path)
    assert outcome == expected
    assert peak_mb < MAX_PEAK_MB, f"{case}: {peak_mb:.0f} MB"
