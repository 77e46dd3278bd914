"""Typed, signed, compact tokens for QR codes (DESIGN.md, QR codes and tokens).

A token is base64url(version | type | key id | expiry | varint fields | tag), the tag being
HMAC-SHA256 truncated to 12 bytes. A binding token for one villager is about 30 characters, so
`{PUBLIC_BASE_URL}/q/{token}` stays a low QR version that prints sharp at a few centimetres.
The type is inside the signed bytes: a member card is refused where a binding code is
expected and the other way round. The key id lets keys rotate without voiding printed codes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import DomainError

VERSION = 1
TAG_BYTES = 12


class TokenType:
    ACTIVITY = 1
    MEMBER_CARD = 2
    PICKUP = 3
    BINDING = 4


class QRTokenInvalid(DomainError):
    status = 422
    code = "token_invalid"
    message = "二维码无效，请确认扫描的是村务积分的二维码"


class QRTokenExpired(DomainError):
    status = 422
    code = "token_expired"
    message = "二维码已过期，请向村干部索取新的二维码"


class QRTokenWrongType(DomainError):
    status = 422
    code = "token_wrong_type"
    message = "这个二维码不能在这里使用"


@dataclass(frozen=True)
class Decoded:
    type: int
    fields: tuple[int, ...]
    expires_at: datetime | None


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("fields are non-negative integers")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varints(data: bytes) -> tuple[int, ...]:
    values, n, shift = [], 0, 0
    for byte in data:
        n |= (byte & 0x7F) << shift
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
        if not byte & 0x80:
            values.append(n)
            n, shift = 0, 0
    if shift:
        raise ValueError("truncated varint")
    return tuple(values)


def derive_key(secret: str, kid: int) -> bytes:
    """A key per id from the server secret, so QR signing never reuses the JWT key as is."""
    return hmac.new(secret.encode(), f"qr-token:{kid}".encode(), hashlib.sha256).digest()


class TokenCodec:
    def __init__(self, keys: dict[int, bytes], current_kid: int) -> None:
        if current_kid not in keys:
            raise ValueError("current key id has no key")
        self.keys = keys
        self.current_kid = current_kid

    @classmethod
    def from_secret(cls, secret: str, kid: int = 1) -> TokenCodec:
        return cls({kid: derive_key(secret, kid)}, kid)

    def encode(
        self, type_: int, fields: tuple[int, ...], expires_at: datetime | None = None
    ) -> str:
        expiry = int(expires_at.timestamp()) if expires_at else 0
        body = bytes([VERSION, type_, self.current_kid]) + expiry.to_bytes(5, "big")
        body += b"".join(_varint(f) for f in fields)
        tag = hmac.new(self.keys[self.current_kid], body, hashlib.sha256).digest()[:TAG_BYTES]
        return base64.urlsafe_b64encode(body + tag).rstrip(b"=").decode()

    def decode(self, token: str, expected_type: int, now: datetime | None = None) -> Decoded:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise QRTokenInvalid() from exc
        if len(raw) < 8 + TAG_BYTES or raw[0] != VERSION:
            raise QRTokenInvalid()
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        key = self.keys.get(body[2])
        if key is None:
            raise QRTokenInvalid()
        expected = hmac.new(key, body, hashlib.sha256).digest()[:TAG_BYTES]
        if not hmac.compare_digest(tag, expected):
            raise QRTokenInvalid()
        # Only a genuine token earns the more precise refusals below.
        if body[1] != expected_type:
            raise QRTokenWrongType()
        try:
            fields = _read_varints(body[8:])
        except ValueError as exc:
            raise QRTokenInvalid() from exc
        expiry = int.from_bytes(body[3:8], "big")
        expires_at = datetime.fromtimestamp(expiry, UTC) if expiry else None
        if expires_at is not None and (now or datetime.now(UTC)) >= expires_at:
            raise QRTokenExpired()
        return Decoded(body[1], fields, expires_at)
