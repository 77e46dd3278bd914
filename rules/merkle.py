"""Merkle tree over a month of households, so a printed board commits to every passbook.

The tree is the one of RFC 6962 / RFC 9162 (Certificate Transparency) with SHA-256: a leaf is
hashed as sha256(0x00 || data) and an inner node as sha256(0x01 || left || right), so a leaf
can never pass for an inner node. The board prints the root (and its fingerprint, the first 16
hex digits, large enough to read from a metre); a household checks on its phone that its month,
re-encoded from its passbook, sits at its index under that root.

Pure standard library on purpose: the mini-program and tools/verify_month.py reimplement these
few functions, and docs/NOTICE_PROOFS.md with its test vectors keeps them all in step.
"""

import hashlib
import re
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
NO_ENTRY_HEAD = "0" * 64

# The version tags are part of the hashed bytes: a later encoding gets a new tag, so an old proof
# can never be read as a new one.
HOUSEHOLD_TAG = "vp-household-month-v1"
VILLAGE_TAG = "vp-village-month-v1"
TOWNSHIP_TAG = "vp-township-month-v1"

_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]*")


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    # The largest power of two strictly below n: RFC 6962 puts a full subtree on the left.
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _subtree_root(hashes: Sequence[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(_subtree_root(hashes[:k]), _subtree_root(hashes[k:]))


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the leaves' data (not their hashes); sha256(b"") for no leaves."""
    if not leaves:
        return EMPTY_ROOT
    return _subtree_root([leaf_hash(leaf) for leaf in leaves])


def _path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return _path(index, hashes[:k]) + [_subtree_root(hashes[k:])]
    return _path(index - k, hashes[k:]) + [_subtree_root(hashes[:k])]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962: sibling hashes from the leaf up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} outside a tree of {len(leaves)} leaves")
    return _path(index, [leaf_hash(leaf) for leaf in leaves])


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when `leaf` (the leaf's DATA) is leaf number `index` of a `size`-leaf tree with
    that root. The algorithm of RFC 9162 section 2.1.3.2; any malformed input is just False,
    because the caller is checking something a stranger handed over."""
    try:
        if not (isinstance(index, int) and isinstance(size, int)) or not 0 <= index < size:
            return False
        if not isinstance(root, bytes) or len(root) != HASH_SIZE:
            return False
        if any(not isinstance(p, bytes) or len(p) != HASH_SIZE for p in proof):
            return False
        fn, sn = index, size - 1
        r = leaf_hash(leaf)
        for p in proof:
            if sn == 0:
                return False  # proof longer than the tree is tall
            if fn & 1 or fn == sn:
                r = node_hash(p, r)
                # A right edge without a sibling on this level: climb until we are a right child.
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
            else:
                r = node_hash(r, p)
            fn >>= 1
            sn >>= 1
        return sn == 0 and r == root
    except TypeError:
        return False


def _check_int(name: str, value: int) -> None:
    # bool is an int in Python but "True" in a leaf would never match what a phone computes.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, not {value!r}")


def _check_period(period: str) -> None:
    if not isinstance(period, str) or not _PERIOD.fullmatch(period):
        raise ValueError(f"period must be YYYY-MM, not {period!r}")


def _check_hex64(name: str, value: str) -> None:
    # Lower-case only: the leaf is hashed as text, so "AB" and "ab" would be different leaves.
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"{name} must be 64 lower-case hex digits, not {value!r}")


def household_leaf(
    household_id: int, period: str, points: int, available: int, head_hash: str
) -> bytes:
    """One household's month: its board score, its available balance at month end and its
    ledger chain head at month end (NO_ENTRY_HEAD before its first entry)."""
    _check_int("household_id", household_id)
    _check_period(period)
    _check_int("points", points)
    _check_int("available", available)
    _check_hex64("head_hash", head_hash)
    return (
        f"{HOUSEHOLD_TAG}\n{household_id}\n{period}\n{points}\n{available}\n{head_hash}"
    ).encode()


def _rollup_leaf(tag: str, unit_id: int, period: str, root_hex: str, size: int) -> bytes:
    _check_int("id", unit_id)
    _check_period(period)
    _check_hex64("root_hex", root_hex)
    _check_int("size", size)
    return f"{tag}\n{unit_id}\n{period}\n{root_hex}\n{size}".encode()


def village_leaf(village_id: int, period: str, root_hex: str, size: int) -> bytes:
    return _rollup_leaf(VILLAGE_TAG, village_id, period, root_hex, size)


def township_leaf(township_id: int, period: str, root_hex: str, size: int) -> bytes:
    return _rollup_leaf(TOWNSHIP_TAG, township_id, period, root_hex, size)


def _hex_digits(text: str) -> str:
    return "".join(text.split()).lower()


def fingerprint(root_hex: str) -> str:
    """The first 16 hex digits grouped by four, "a1b2 c3d4 e5f6 0718": what the wall shows
    large and what a villager types. 64 bits: no one can make a second tree with the same one."""
    digits = _hex_digits(root_hex)
    if len(digits) < 16 or not _HEX.fullmatch(digits):
        raise ValueError(f"not a hex root: {root_hex!r}")
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def fingerprint_matches(root_hex: str, typed: str) -> bool:
    """Whether what was typed from the wall names this root: spaces and case are ignored, and any
    prefix of the root of at least 16 hex digits will do (the fingerprint or the full root)."""
    digits, want = _hex_digits(typed), _hex_digits(root_hex)
    return len(digits) >= 16 and bool(_HEX.fullmatch(digits)) and want.startswith(digits)
