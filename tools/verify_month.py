"""Check that a household's month is part of the board printed in the village square.

    python tools/verify_month.py PROOF.json "a1b2 c3d4 e5f6 0718"
    python tools/verify_month.py https://HOST/api/v1/households/12/month-proof?period=2026-03 \
        "a1b2 c3d4 e5f6 0718" --token TOKEN

The second argument is the fingerprint (公示指纹) read off the printed board: 16 hex digits, or
the full root. Exit 0: the month is in the printed board. Exit 1: it is not (the failed check is
named).

Standard library only and no import from the project, so anyone can read this file and run it
without trusting the rest of the code. The tree is RFC 6962 (Certificate Transparency) over
SHA-256; docs/NOTICE_PROOFS.md describes it and the test vectors beside it.
"""

import argparse
import hashlib
import json
import sys
import urllib.request


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def household_leaf(leaf: dict) -> bytes:
    fields = [
        "vp-household-month-v1",
        leaf["household_id"],
        leaf["period"],
        leaf["points"],
        leaf["available"],
        leaf["head_hash"],
    ]
    return "\n".join(str(f) for f in fields).encode()


def village_leaf(village_id, period, root_hex, size) -> bytes:
    return "\n".join(
        str(f) for f in ["vp-village-month-v1", village_id, period, root_hex, size]
    ).encode()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list, root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: climb from the leaf to the root with the sibling hashes."""
    if not 0 <= index < size or any(len(p) != 32 for p in proof):
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            r = node_hash(r, p)
        fn, sn = fn // 2, sn // 2
    return sn == 0 and r == root


def fingerprint(root_hex: str) -> str:
    return " ".join(root_hex[i : i + 4] for i in range(0, 16, 4))


def typed_matches(root_hex: str, typed: str) -> bool:
    # Spaces and case do not matter; 16 hex digits (the fingerprint) or more of the root do.
    digits = "".join(typed.split()).lower()
    return len(digits) >= 16 and root_hex.lower().startswith(digits)


def load(source: str, token: str | None) -> dict:
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"Accept": "application/json"})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    with open(source, encoding="utf-8") as f:
        return json.load(f)


def check(proof: dict, typed: str) -> tuple[bool, str, str]:
    """(ok, 中文, English) for one proof and the fingerprint typed from the wall."""
    leaf = proof["leaf"]
    if leaf["period"] != proof["period"]:
        return False, "证明里的月份不一致", "the leaf is for another month than the proof"
    root_hex = proof["root"].lower()
    if not verify_inclusion(
        household_leaf(leaf),
        proof["index"],
        proof["size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(root_hex),
    ):
        return (
            False,
            "本户本月数据不在这个村的月度树里",
            "the household's month is not in the village root",
        )
    if typed_matches(root_hex, typed):
        return (
            True,
            f"本户本月在村公示里（指纹 {fingerprint(root_hex)}）",
            f"the household's month is in the village board (fingerprint {fingerprint(root_hex)})",
        )
    village = proof.get("village")
    if village:
        township_hex = village["township_root"].lower()
        if typed_matches(township_hex, typed):
            vleaf = village_leaf(village["village_id"], proof["period"], root_hex, proof["size"])
            if not verify_inclusion(
                vleaf,
                village["index"],
                village["size"],
                [bytes.fromhex(h) for h in village["proof"]],
                bytes.fromhex(township_hex),
            ):
                return (
                    False,
                    "本村月度树不在乡镇公示里",
                    "the village root is not in the township root",
                )
            return (
                True,
                f"本户本月在乡镇公示里（指纹 {fingerprint(township_hex)}）",
                f"the household's month is in the township board ({fingerprint(township_hex)})",
            )
    return (
        False,
        (f"输入的指纹与证明不符：证明的指纹是 {fingerprint(root_hex)}"),
        f"the fingerprint typed does not match the proof's ({fingerprint(root_hex)})",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="核对本户月度数据是否在张贴的红黑榜里 / "
        "check a household's month against the printed board"
    )
    parser.add_argument("proof", help="PROOF.json or its URL")
    parser.add_argument("fingerprint", help='公示指纹, e.g. "a1b2 c3d4 e5f6 0718"')
    parser.add_argument("--token", help="sent as Authorization: Bearer TOKEN when fetching a URL")
    args = parser.parse_args(argv)
    try:
        ok, zh, en = check(load(args.proof, args.token), args.fingerprint)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # OSError covers a missing file and a failed download; the others, a malformed proof.
        ok, zh, en = False, "无法读取证明", f"cannot read the proof: {exc!r}"
    print(("通过 ✓ " if ok else "未通过 ✗ ") + zh)
    print(("OK: " if ok else "FAILED: ") + en)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
