"""docs/notice_test_vectors.json, recomputed by rules.merkle and by tools/verify_month.py, so
neither the docs nor the standalone checker can drift from what the server computes."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rules import merkle

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO / "docs" / "notice_test_vectors.json").read_text(encoding="utf-8"))


def _tool() -> ModuleType:
    # By path: tools/ is not a package, and the checker must stand alone.
    spec = importlib.util.spec_from_file_location(
        "verify_month", REPO / "tools" / "verify_month.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _tool()


def _proof(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


def test_empty_and_rfc6962_roots():
    assert merkle.root([]).hex() == VECTORS["empty_root"]
    rfc = VECTORS["rfc6962"]
    leaves = [bytes.fromhex(h) for h in rfc["leaves_hex"]]
    for size, expected in enumerate(rfc["roots_by_size"], start=1):
        assert merkle.root(leaves[:size]).hex() == expected
        for index in range(size):
            proof = merkle.inclusion_proof(leaves[:size], index)
            assert tool.verify_inclusion(leaves[index], index, size, proof, bytes.fromhex(expected))


@pytest.mark.parametrize("tree", VECTORS["village_trees"], ids=lambda t: t["name"])
def test_village_trees(tree: dict[str, Any]):
    leaves = [merkle.household_leaf(**h) for h in tree["households"]]
    assert [tool.household_leaf(h) for h in tree["households"]] == leaves
    if "leaf_text" in tree:
        assert leaves[0].decode() == tree["leaf_text"]
    assert [merkle.leaf_hash(leaf).hex() for leaf in leaves] == tree["leaf_hashes"]
    assert [tool.leaf_hash(leaf).hex() for leaf in leaves] == tree["leaf_hashes"]
    assert merkle.root(leaves).hex() == tree["root"]
    assert tree["size"] == len(leaves)
    assert merkle.fingerprint(tree["root"]) == tool.fingerprint(tree["root"]) == tree["fingerprint"]
    root = bytes.fromhex(tree["root"])
    for case in tree["proofs"]:
        i = case["index"]
        assert [h.hex() for h in merkle.inclusion_proof(leaves, i)] == case["proof"]
        for verify in (merkle.verify_inclusion, tool.verify_inclusion):
            assert verify(leaves[i], i, len(leaves), _proof(case["proof"]), root)


def test_township_tree():
    township = VECTORS["township"]
    villages = township["villages"]
    assert [(v["root"], v["size"]) for v in villages] == [
        (t["root"], t["size"]) for t in VECTORS["village_trees"]
    ]
    leaves = [
        merkle.village_leaf(v["village_id"], v["period"], v["root"], v["size"]) for v in villages
    ]
    assert leaves == [
        tool.village_leaf(v["village_id"], v["period"], v["root"], v["size"]) for v in villages
    ]
    assert leaves[0].decode() == township["leaf_text"]
    assert merkle.root(leaves).hex() == township["root"]
    assert tool.fingerprint(township["root"]) == township["fingerprint"]
    root = bytes.fromhex(township["root"])
    for case in township["proofs"]:
        i = case["index"]
        assert [h.hex() for h in merkle.inclusion_proof(leaves, i)] == case["proof"]
        for verify in (merkle.verify_inclusion, tool.verify_inclusion):
            assert verify(leaves[i], i, len(leaves), _proof(case["proof"]), root)


@pytest.mark.parametrize("case", VECTORS["must_fail"], ids=lambda c: c["why"])
def test_vectors_that_must_fail(case: dict[str, Any]):
    args = (case["index"], case["size"], _proof(case["proof"]), bytes.fromhex(case["root"]))
    assert not merkle.verify_inclusion(merkle.household_leaf(**case["household"]), *args)
    assert not tool.verify_inclusion(tool.household_leaf(case["household"]), *args)


@pytest.mark.parametrize("case", VECTORS["fingerprint_checks"]["cases"], ids=lambda c: c["typed"])
def test_fingerprint_checks(case: dict[str, Any]):
    root_hex = VECTORS["fingerprint_checks"]["root"]
    assert merkle.fingerprint_matches(root_hex, case["typed"]) is case["matches"]
    assert tool.typed_matches(root_hex, case["typed"]) is case["matches"]


def test_the_docs_name_every_leaf_tag_and_the_vectors_file():
    doc = (REPO / "docs" / "NOTICE_PROOFS.md").read_text(encoding="utf-8")
    for needed in (
        merkle.HOUSEHOLD_TAG,
        merkle.VILLAGE_TAG,
        merkle.TOWNSHIP_TAG,
        "notice_test_vectors.json",
        VECTORS["village_trees"][0]["leaf_text"],
    ):
        assert needed in doc
