"""The villager's screens (tests/typed_client/src) type-check against TypeScript types that
openapi-typescript generates from this app's /api/v1/openapi.json, under `tsc --strict`: a
response field that loses `required`, or a closed set that loses its `enum`, breaks the
build here before it breaks the mini-program.

Needs node and npm (tests/typed_client/package-lock.json pins openapi-typescript and
typescript); skipped without them unless REQUIRE_NODE=1, as CI sets."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from flask import Flask

PROJECT = Path(__file__).resolve().parents[1] / "typed_client"


def _tools() -> tuple[str, str] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


def _run(*command: str) -> None:
    done = subprocess.run(
        command, cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"


def test_villager_client_type_checks_against_the_document(app: Flask) -> None:
    tools = _tools()
    if tools is None:
        if os.environ.get("REQUIRE_NODE") == "1":
            pytest.fail("REQUIRE_NODE=1 but node or npm is not on PATH")
        pytest.skip("node and npm are needed to type-check the TypeScript client")
    _, npm = tools
    if not (PROJECT / "node_modules" / ".bin" / "tsc").exists():
        _run(npm, "ci", "--no-audit", "--no-fund")
    generated = PROJECT / "generated"
    generated.mkdir(exist_ok=True)
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    bin_ = PROJECT / "node_modules" / ".bin"
    # CI runs the suite on SQLite and on PostgreSQL at once from one checkout: one run at a
    # time writes generated/ and type-checks it, or tsc could read the other's half-written file.
    with (generated / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (generated / "openapi.json").write_text(
            json.dumps(document, ensure_ascii=False), encoding="utf-8"
        )
        _run(str(bin_ / "openapi-typescript"), "generated/openapi.json", "-o", "generated/api.d.ts")
        _run(str(bin_ / "tsc"), "--noEmit", "-p", "tsconfig.json")
