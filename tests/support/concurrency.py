"""Helpers for the concurrency tests: run work on threads released together by a barrier,
POST from many test clients at once, and mark the tests that only PostgreSQL can prove."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from flask import Flask

from tests.support.databases import is_postgres

on_postgres = pytest.mark.skipif(
    not is_postgres(), reason="concurrency is proven on PostgreSQL; SQLite serialises writers"
)


# Generous: 50 threads share the app's pool (5 + 10 overflow, 30 s checkout timeout).
JOIN_TIMEOUT = 120.0

T = TypeVar("T")


# ---- run things at once -------------------------------------------------------------------


def together(n: int, work: Callable[[int], T], timeout: float = JOIN_TIMEOUT) -> list[T]:
    """Run `work(0) … work(n-1)` on n threads released at the same moment by a barrier; the
    results in order. A thread that raises or does not finish in time fails the test."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException | None] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below, with the thread's index
            errors[i] = exc

    threads = [
        threading.Thread(target=run, args=(i,), name=f"concurrent-{i}", daemon=True)
        for i in range(n)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"{len(stuck)} thread(s) still running after {timeout} s: {stuck[:5]}"
    failed = [(i, exc) for i, exc in enumerate(errors) if exc is not None]
    if failed:
        first = failed[0][1]
        raise AssertionError(
            f"{len(failed)} of {n} thread(s) raised; first (thread {failed[0][0]}): {first!r}"
        ) from first
    return results


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    replayed: bool

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and "error" in self.body:
            return self.body["error"]["code"]
        return None


def post_together(
    app: Flask,
    n: int,
    path: str,
    headers: Callable[[int], dict[str, str]],
    body: Callable[[int], Any] | None = None,
) -> list[Reply]:
    """n POSTs at once, each thread with its own test client (and so its own request context
    and database session)."""
    clients = [app.test_client() for _ in range(n)]

    def send(i: int) -> Reply:
        response = clients[i].post(
            path, headers=headers(i), json=body(i) if body is not None else None
        )
        return Reply(
            response.status_code,
            response.get_json(),
            response.headers.get("Idempotent-Replayed") == "true",
        )

    return together(n, send)


def assert_no_server_errors(replies: list[Reply]) -> None:
    errors = [(r.status, r.body) for r in replies if r.status >= 500]
    assert not errors, f"{len(errors)} server error(s), first: {errors[0]}"
