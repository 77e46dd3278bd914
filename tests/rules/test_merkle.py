"""rules.merkle: the RFC 6962 tree the printed board commits to."""

import hashlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rules import merkle

leaves_st = st.lists(st.binary(max_size=12), min_size=1, max_size=40)

# The leaves of RFC 6962's reference test data (certificate-transparency merkle tests) and the
# roots of their prefixes, so the tree is the standard one and not merely self-consistent.
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _shape(index, size):
    """Which side each sibling of leaf `index` sits on, bottom up (True: on the right), read off
    RFC 6962's PATH recursion rather than the verifier under test."""
    if size <= 1:
        return []
    k = 1
    while k * 2 < size:
        k *= 2
    if index < k:
        return _shape(index, k) + [True]
    return _shape(index - k, size - k) + [False]


def test_empty_tree_is_hash_of_nothing():
    assert merkle.root([]) == hashlib.sha256(b"").digest()


def test_one_leaf_tree_is_its_leaf_hash():
    assert merkle.root([b"abc"]) == merkle.leaf_hash(b"abc")
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert merkle.inclusion_proof([b"abc"], 0) == []
    assert merkle.verify_inclusion(b"abc", 0, 1, [], merkle.leaf_hash(b"abc"))


def test_two_and_three_leaves_by_hand():
    a, b, c = (merkle.leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.root([b"a", b"b"]) == merkle.node_hash(a, b)
    # Three leaves: a full left subtree of two, then c alone (no duplication of c).
    assert merkle.root([b"a", b"b", b"c"]) == merkle.node_hash(merkle.node_hash(a, b), c)
    assert merkle.inclusion_proof([b"a", b"b", b"c"], 2) == [merkle.node_hash(a, b)]
    assert merkle.inclusion_proof([b"a", b"b", b"c"], 0) == [b, c]


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_reference_roots(size):
    assert merkle.root(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]
    for index in range(size):
        proof = merkle.inclusion_proof(CT_LEAVES[:size], index)
        assert merkle.verify_inclusion(
            CT_LEAVES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size - 1])
        )


@settings(max_examples=150, deadline=None)
@given(leaves_st)
def test_every_index_proves_against_the_root(leaves):
    r = merkle.root(leaves)
    for index, leaf in enumerate(leaves):
        proof = merkle.inclusion_proof(leaves, index)
        assert merkle.verify_inclusion(leaf, index, len(leaves), proof, r)


@settings(max_examples=150, deadline=None)
@given(leaves_st, st.data())
def test_a_proof_proves_nothing_else(leaves, data):
    r, size = merkle.root(leaves), len(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(leaves, index)
    leaf = leaves[index]

    other_leaf = data.draw(st.binary(max_size=12))
    assume(other_leaf != leaf)
    assert not merkle.verify_inclusion(other_leaf, index, size, proof, r)

    other_index = data.draw(st.integers(-2, size + 2))
    # Another index holding the very same bytes would rightly verify with its own proof, but
    # not with this one unless its path coincides, which only happens for equal subtrees.
    if other_index != index:
        assert not merkle.verify_inclusion(leaf, other_index, size, proof, r) or (
            0 <= other_index < size
            and leaves[other_index] == leaf
            and merkle.inclusion_proof(leaves, other_index) == proof
        )

    other_size = data.draw(st.integers(0, size * 2 + 2))
    if other_size != size:
        # RFC 6962 proofs do not bind the size: in a tree of 3 or of 4 leaves, leaf 0 climbs the
        # same way (sibling right, sibling right). So another size passes exactly when the path
        # has the same shape; that is why the village leaf, which the township root commits to,
        # carries the size.
        passed = merkle.verify_inclusion(leaf, index, other_size, proof, r)
        assert passed == (index < other_size and _shape(index, other_size) == _shape(index, size))

    other_root = data.draw(st.binary(min_size=32, max_size=32))
    assume(other_root != r)
    assert not merkle.verify_inclusion(leaf, index, size, proof, other_root)


@settings(max_examples=100, deadline=None)
@given(leaves_st, st.data())
def test_a_tampered_proof_fails(leaves, data):
    assume(len(leaves) > 1)
    r, size = merkle.root(leaves), len(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(leaves, index)
    at = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    flipped = bytearray(proof[at])
    flipped[bit // 8] ^= 1 << (bit % 8)
    bad = proof[:at] + [bytes(flipped)] + proof[at + 1 :]
    assert not merkle.verify_inclusion(leaves[index], index, size, bad, r)
    assert not merkle.verify_inclusion(leaves[index], index, size, proof[:-1], r)
    assert not merkle.verify_inclusion(leaves[index], index, size, proof + [r], r)


@settings(max_examples=150, deadline=None)
@given(leaves_st, st.data())
def test_changing_any_leaf_changes_the_root(leaves, data):
    index = data.draw(st.integers(0, len(leaves) - 1))
    new = data.draw(st.binary(max_size=12))
    assume(new != leaves[index])
    changed = leaves[:index] + [new] + leaves[index + 1 :]
    assert merkle.root(changed) != merkle.root(leaves)


@settings(max_examples=100, deadline=None)
@given(leaves_st, st.binary(max_size=12))
def test_adding_or_removing_a_leaf_changes_the_root(leaves, extra):
    assert merkle.root(leaves + [extra]) != merkle.root(leaves)
    assert merkle.root(leaves[:-1]) != merkle.root(leaves)


@pytest.mark.parametrize(
    "args",
    [
        (b"x", 0, 0, [], b"\0" * 32),  # empty tree holds nothing
        (b"x", 1, 1, [], merkle.leaf_hash(b"x")),  # index past the end
        (b"x", -1, 1, [], merkle.leaf_hash(b"x")),
        (b"x", 0, 1, [], merkle.leaf_hash(b"x")[:31]),  # short root
        (b"x", 0, 2, [b"\0" * 31], merkle.leaf_hash(b"x")),  # short sibling
        (b"x", 0, 2, ["00" * 32], merkle.leaf_hash(b"x")),  # hex where bytes belong
        (b"x", 0, 1, [b"\0" * 32], merkle.leaf_hash(b"x")),  # proof taller than the tree
        (b"x", "0", 1, [], merkle.leaf_hash(b"x")),
        (b"x", 0, 1, None, merkle.leaf_hash(b"x")),
        ("x", 0, 1, [], merkle.leaf_hash(b"x")),
    ],
)
def test_malformed_input_is_false_not_an_error(args):
    assert merkle.verify_inclusion(*args) is False


def test_inclusion_proof_refuses_an_index_outside_the_tree():
    with pytest.raises(IndexError):
        merkle.inclusion_proof([b"a"], 1)
    with pytest.raises(IndexError):
        merkle.inclusion_proof([], 0)


def test_household_leaf_encoding():
    head = "ab" * 32
    assert merkle.household_leaf(12, "2026-03", -5, 120, head) == (
        b"vp-household-month-v1\n12\n2026-03\n-5\n120\n" + head.encode()
    )
    assert merkle.village_leaf(1, "2026-03", head, 40) == (
        b"vp-village-month-v1\n1\n2026-03\n" + head.encode() + b"\n40"
    )
    assert merkle.township_leaf(2, "2026-03", head, 3) == (
        b"vp-township-month-v1\n2\n2026-03\n" + head.encode() + b"\n3"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"household_id": True},
        {"household_id": "12"},
        {"period": "2026-3"},
        {"period": "2026-13"},
        {"period": "2026-03\n1"},
        {"points": 1.5},
        {"head_hash": "AB" * 32},
        {"head_hash": "ab" * 31},
        {"head_hash": None},
    ],
)
def test_household_leaf_refuses_what_a_phone_would_encode_differently(kwargs):
    fields = {
        "household_id": 12,
        "period": "2026-03",
        "points": 1,
        "available": 2,
        "head_hash": merkle.NO_ENTRY_HEAD,
    } | kwargs
    with pytest.raises(ValueError):
        merkle.household_leaf(**fields)


def test_fingerprint():
    root_hex = "A1B2C3D4E5F60718" + "9" * 48
    assert merkle.fingerprint(root_hex) == "a1b2 c3d4 e5f6 0718"
    assert merkle.fingerprint("a1b2 c3d4 e5f6 0718") == "a1b2 c3d4 e5f6 0718"
    with pytest.raises(ValueError):
        merkle.fingerprint("a1b2 c3d4")
    with pytest.raises(ValueError):
        merkle.fingerprint("zz" * 32)


def test_fingerprint_matches_what_is_typed_from_the_wall():
    root_hex = "a1b2c3d4e5f60718" + "9" * 48
    assert merkle.fingerprint_matches(root_hex, "a1b2 c3d4 e5f6 0718")
    assert merkle.fingerprint_matches(root_hex, " A1B2C3D4 E5F6 0718 ")
    assert merkle.fingerprint_matches(root_hex, root_hex)
    assert merkle.fingerprint_matches(root_hex, "a1b2c3d4e5f607189")
    assert not merkle.fingerprint_matches(root_hex, "a1b2 c3d4 e5f6 071")  # too short to trust
    assert not merkle.fingerprint_matches(root_hex, "a1b2 c3d4 e5f6 0719")
    assert not merkle.fingerprint_matches(root_hex, "a1b2 c3d4 e5f6 0718 0")
    assert not merkle.fingerprint_matches(root_hex, "")


def test_size_is_bound_only_by_the_path_shape():
    leaves = [b"\x00", b"", b"", b""]
    proof = merkle.inclusion_proof(leaves, 0)
    r = merkle.root(leaves)
    assert merkle.verify_inclusion(b"\x00", 0, 3, proof, r)  # same shape as in 4
    assert not merkle.verify_inclusion(b"\x00", 0, 2, proof, r)
    assert not merkle.verify_inclusion(b"\x00", 0, 5, proof, r)
