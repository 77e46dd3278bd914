"""Typed, signed, compact tokens for QR codes (docs/DESIGN.md, QR tokens).

A token is base64url(header | key id | varint expiry | varint fields | tag), the tag being
HMAC-SHA256 truncated to 12 bytes; the header byte carries the format version and the type.
An activity code is about 28 characters, so `{PUBLIC_BASE_URL}/q/{token}` stays at QR version
4, which prints sharp at 3 cm. The type is inside the signed bytes: a member card is refused
where a binding or activity code is expected and the other way round.

Keys rotate without voiding printed codes: the key id is in the token, new codes are signed
with the current id, and every id still on the key ring verifies (`TokenCodec.keyring`).
Format 1 (a fixed 5-byte expiry), used by the first printed member cards and binding codes,
is still read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from .errors import DomainError

VERSION = 2
V1 = 1  # format 1: version | type | kid | 5-byte expiry | varints | tag
V2_HEADER = 0x20  # format 2: 0x20 | type, then kid, then varints (expiry first) and the tag
TAG_BYTES = 12
MAX_TOKEN_CHARS = 200  # far above any real token; bounds the work a hostile string can cause
MAX_KID = 255
# What a scanner may hand over: `{PUBLIC_BASE_URL}/q/{token}` and whatever a scanner adds.
MAX_SCANNED_CHARS = 500


class TokenType:
    ACTIVITY = 1
    MEMBER_CARD = 2
    PICKUP = 3
    BINDING = 4
    DISPLAY = 5  # the key of an activity's display screen (not a QR a villager scans)


# A QR code's problems have codes of their own, and none is a 401: to the mini-program a 401
# `token_expired` means "refresh the login", which cures nothing for an old poster. All are
# 422 (the scanned text is what is wrong); a spent binding code is a 409 (binding_token_used).
class QRTokenInvalid(DomainError):
    status = 422
    code = "qr_invalid"
    message = "二维码无效，请确认扫描的是村务积分的二维码"


class QRTokenExpired(DomainError):
    status = 422
    code = "qr_expired"
    message = "二维码已过期，请向村干部索取新的二维码"


class QRTokenWrongType(DomainError):
    status = 422
    code = "qr_wrong_type"
    message = "这个二维码不能在这里使用"


@dataclass(frozen=True)
class Decoded:
    type: int
    fields: tuple[int, ...]
    expires_at: datetime | None
    kid: int = 0


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


def scanned_token(scanned: str) -> str:
    """The token in whatever was scanned. Every code holds `{PUBLIC_BASE_URL}/q/{token}`, and
    scanners hand over that whole text: the mini-program's, a clerk's USB scanner (which
    types a newline after it), WeChat opening the mini-program from a link (percent-encoded);
    a villager may also paste the token alone. A token is base64url, which has none of
    `%?#/` nor whitespace, so cutting at them never cuts into a token; what is left is
    then checked by its signature like any token, so a wrong text is still refused."""
    if len(scanned) > MAX_SCANNED_CHARS:
        raise QRTokenInvalid()
    text = unquote(scanned.strip())
    text = text.split("#", 1)[0].split("?", 1)[0]
    text = text.rsplit("/q/", 1)[-1]
    return text.strip().strip("/")


class TokenCodec:
    def __init__(self, keys: dict[int, bytes], current_kid: int) -> None:
        if current_kid not in keys:
            raise ValueError("current key id has no key")
        if any(not 1 <= kid <= MAX_KID for kid in keys):
            raise ValueError(f"key ids are 1..{MAX_KID}")
        self.keys = keys
        self.current_kid = current_kid

    @classmethod
    def from_secret(cls, secret: str, kid: int = 1) -> TokenCodec:
        return cls({kid: derive_key(secret, kid)}, kid)

    @classmethod
    def keyring(
        cls,
        secret: str,
        current_kid: int = 1,
        old_secrets: Mapping[int, str] | None = None,
        revoked: Iterable[int] = (),
    ) -> TokenCodec:
        """New codes under `current_kid`; every earlier id derived from `secret` still
        verifies, so raising the id voids nothing already printed. `old_secrets` keeps the
        codes of ids signed before the server secret itself was changed; `revoked` ids are
        refused (a key, or a batch of posters, known to be compromised)."""
        revoked = set(revoked)
        if current_kid in revoked:
            raise ValueError("the current key id cannot be revoked")
        keys = {kid: derive_key(secret, kid) for kid in range(1, current_kid + 1)}
        keys.update({kid: derive_key(old, kid) for kid, old in (old_secrets or {}).items()})
        return cls({kid: key for kid, key in keys.items() if kid not in revoked}, current_kid)

    def encode(
        self, type_: int, fields: tuple[int, ...], expires_at: datetime | None = None
    ) -> str:
        if not 0 < type_ < 16:
            raise ValueError("token types are 1..15")
        expiry = int(expires_at.timestamp()) if expires_at else 0
        body = bytes([V2_HEADER | type_, self.current_kid]) + _varint(expiry)
        body += b"".join(_varint(f) for f in fields)
        tag = hmac.new(self.keys[self.current_kid], body, hashlib.sha256).digest()[:TAG_BYTES]
        return _b64(body + tag)

    def decode(self, token: str, expected_type: int, now: datetime | None = None) -> Decoded:
        raw = _unb64(token)
        if raw[0] == V1 and len(raw) >= 8 + TAG_BYTES:
            type_, kid, header = raw[1], raw[2], 8
        elif raw[0] & 0xF0 == V2_HEADER and len(raw) >= 3 + TAG_BYTES:
            type_, kid, header = raw[0] & 0x0F, raw[1], 2
        else:
            raise QRTokenInvalid()
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        key = self.keys.get(kid)
        if key is None:
            raise QRTokenInvalid()
        expected = hmac.new(key, body, hashlib.sha256).digest()[:TAG_BYTES]
        if not hmac.compare_digest(tag, expected):
            raise QRTokenInvalid()
        # Only a genuine token earns the more precise refusals below.
        if type_ != expected_type:
            raise QRTokenWrongType()
        try:
            values = _read_varints(body[header:])
        except ValueError as exc:
            raise QRTokenInvalid() from exc
        if header == 8:
            expiry, fields = int.from_bytes(body[3:8], "big"), values
        elif values:
            expiry, fields = values[0], values[1:]
        else:
            raise QRTokenInvalid()
        expires_at = datetime.fromtimestamp(expiry, UTC) if expiry else None
        if expires_at is not None and (now or datetime.now(UTC)) >= expires_at:
            raise QRTokenExpired()
        return Decoded(type_, fields, expires_at, kid)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(token: str) -> bytes:
    """Strict base64url: only the one canonical spelling of the bytes is read. The lenient
    decoder skips stray characters and ignores the spare bits of the last one, so many
    strings would otherwise stand for one signed token."""
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise QRTokenInvalid()
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise QRTokenInvalid() from exc
    if not raw or _b64(raw) != token:
        raise QRTokenInvalid()
    return raw
