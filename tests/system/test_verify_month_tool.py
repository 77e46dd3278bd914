"""tools/verify_month.py, run as a villager's nephew would: a separate process on a proof file."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from rules import merkle

TOOL = Path(__file__).resolve().parents[2] / "tools" / "verify_month.py"
PERIOD = "2026-03"


def month_proof(index: int = 3, size: int = 6, village_index: int = 1) -> dict:
    """A proof shaped like GET /api/v1/households/{id}/month-proof, built with rules.merkle."""
    rows = [
        (10 + i, PERIOD, 5 * i - 7, 100 + i, (f"{i:02x}" * 32) if i % 2 else "0" * 64)
        for i in range(size)
    ]
    leaves = [merkle.household_leaf(*row) for row in rows]
    village_root = merkle.root(leaves).hex()
    villages = [merkle.village_leaf(v, PERIOD, "ab" * 32, 9) for v in range(1, 4)]
    villages[village_index] = merkle.village_leaf(7, PERIOD, village_root, size)
    township_root = merkle.root(villages).hex()
    household_id, _, points, available, head = rows[index]
    return {
        "period": PERIOD,
        "leaf": {
            "household_id": household_id,
            "period": PERIOD,
            "points": points,
            "available": available,
            "head_hash": head,
        },
        "index": index,
        "size": size,
        "proof": [h.hex() for h in merkle.inclusion_proof(leaves, index)],
        "root": village_root,
        "fingerprint": merkle.fingerprint(village_root),
        "village": {
            "village_id": 7,
            "index": village_index,
            "size": len(villages),
            "proof": [h.hex() for h in merkle.inclusion_proof(villages, village_index)],
            "township_root": township_root,
            "township_fingerprint": merkle.fingerprint(township_root),
        },
    }


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        timeout=60,
        encoding="utf-8",
    )


def write(tmp_path, proof) -> str:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof), encoding="utf-8")
    return str(path)


def test_the_tool_imports_nothing_from_the_project():
    source = TOOL.read_text(encoding="utf-8")
    for package in ("rules", "points", "backend"):
        assert f"import {package}" not in source and f"from {package}" not in source


@pytest.mark.parametrize("index", [0, 3, 5])
def test_a_genuine_proof_passes_with_the_wall_fingerprint(tmp_path, index):
    proof = month_proof(index=index)
    result = run(write(tmp_path, proof), proof["fingerprint"].upper())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "通过" in result.stdout and "OK" in result.stdout
    assert proof["fingerprint"] in result.stdout


def test_the_full_root_or_the_township_fingerprint_also_pass(tmp_path):
    proof = month_proof()
    assert run(write(tmp_path, proof), proof["root"]).returncode == 0
    result = run(write(tmp_path, proof), proof["village"]["township_fingerprint"])
    assert result.returncode == 0, result.stdout
    assert "乡镇" in result.stdout and "township" in result.stdout


@pytest.mark.parametrize(
    "tamper, zh, en",
    [
        (lambda p: p["leaf"].update(points=p["leaf"]["points"] + 1), "不在", "not in the village"),
        (lambda p: p["leaf"].update(available=0), "不在", "not in the village"),
        (lambda p: p.update(index=p["index"] + 1), "不在", "not in the village"),
        (lambda p: p["proof"].pop(), "不在", "not in the village"),
        (lambda p: p.update(period="2026-04"), "月份", "another month"),
    ],
)
def test_a_tampered_proof_fails_and_says_which_check(tmp_path, tamper, zh, en):
    proof = month_proof()
    tamper(proof)
    result = run(write(tmp_path, proof), proof["fingerprint"])
    assert result.returncode == 1
    assert "未通过" in result.stdout and zh in result.stdout
    assert "FAILED" in result.stdout and en in result.stdout


def test_a_genuine_proof_of_another_board_fails_on_the_fingerprint(tmp_path):
    proof = month_proof()
    result = run(write(tmp_path, proof), "0000 1111 2222 3333")
    assert result.returncode == 1
    assert "指纹" in result.stdout and "fingerprint" in result.stdout


def test_too_short_a_fingerprint_is_not_enough(tmp_path):
    proof = month_proof()
    assert run(write(tmp_path, proof), proof["fingerprint"][:-1]).returncode == 1


def test_a_village_root_swapped_out_of_the_township_fails(tmp_path):
    proof = month_proof()
    proof["village"]["index"] = 0
    result = run(write(tmp_path, proof), proof["village"]["township_fingerprint"])
    assert result.returncode == 1
    assert "township" in result.stdout


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "{}",
        '{"leaf": 3}',
        json.dumps(
            {
                "period": PERIOD,
                "leaf": {
                    "household_id": 1,
                    "period": PERIOD,
                    "points": 0,
                    "available": 0,
                    "head_hash": "0" * 64,
                },
                "index": "0",
                "size": 1,
                "proof": ["zz"],
                "root": "00",
            }
        ),
    ],
)
def test_an_unreadable_proof_fails_without_a_traceback(tmp_path, content):
    path = tmp_path / "proof.json"
    path.write_text(content, encoding="utf-8")
    result = run(str(path), "a1b2 c3d4 e5f6 0718")
    assert result.returncode == 1
    assert "无法读取证明" in result.stdout and "Traceback" not in result.stderr


def test_a_url_is_fetched_with_the_token(tmp_path):
    proof = month_proof()
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            seen.append((self.path, self.headers.get("Authorization")))
            body = json.dumps(proof).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/v1/households/13/month-proof"
        result = run(url, proof["fingerprint"], "--token", "tok123")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert seen == [("/api/v1/households/13/month-proof", "Bearer tok123")]
