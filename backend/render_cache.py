"""Pictures drawn once: the printed board (PNG, PDF), the statistics chart, member cards and
activity posters (`drawn_once`), kept as files
under RENDER_CACHE_DIR (by default `render-cache/` in UPLOAD_DIR), shared by every worker
and every app server that shares the directory.

A picture is kept under a name made from everything it is drawn from (the caller's `key`: a
hash of the board as posted, the paper, the QR's link, the date line, the font, the
resolution and points.boards.render.RENDER_VERSION), so a changed board, a household's
privacy choice or new drawing code names another file and never meets the old one. Nothing
is ever invalidated: stale files are merely no longer asked for, and go when the directory
outgrows RENDER_CACHE_MB (oldest used first; a hit refreshes the file's mtime).

Written to a temp file and renamed (os.replace), so a reader sees a whole file or none. The
directory is swept on a write, at most once per SWEEP_EVERY writes of a process (a write
follows a drawing that costs far more than the sweep), never on a hit. A cache that cannot
be read or written (disk full, permissions, a missing mount) is logged and skipped: the
picture is drawn and served as without it. Nothing is held in the workers' memory."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import current_app

from points.boards import render
from points.boards.page import FontSpec
from points.uploads import write_atomically

log = logging.getLogger(__name__)

SUBDIR = "render-cache"
# The bound on the number of files, beside RENDER_CACHE_MB: a sweep reads the whole
# directory, which must stay a few milliseconds.
MAX_FILES = 4000
# A process sweeps on its first write, then every SWEEP_EVERY writes: between sweeps the
# directory may overshoot its bound by that many files per worker.
SWEEP_EVERY = 16
# A temp file left by a worker killed mid-write goes after this long.
STALE_PART_SECONDS = 3600
PART_PREFIX = ".render-"
_KEY = re.compile(r"^[a-z]+-[0-9a-f]{16,64}\.(png|pdf)$")

_writes = 0
_lock = threading.Lock()


def cache_dir() -> Path:
    configured = current_app.config.get("RENDER_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(current_app.config["UPLOAD_DIR"]) / SUBDIR


def max_bytes() -> int:
    return int(current_app.config.get("RENDER_CACHE_MB", 256)) * 1024 * 1024


def font_key(font: FontSpec) -> list[Any]:
    """The font as a picture's key knows it: its file and face, and the file's size and
    time, so that a font replaced under the same name draws anew."""
    try:
        stat = os.stat(font.path)
    except OSError:
        return [str(font.path), font.index]
    return [str(font.path), font.index, stat.st_size, stat.st_mtime_ns]


def content_key(*inputs: Any) -> str:
    """A picture's name for its ETag and the render cache: the hash of what it is drawn
    from, with the drawing code's version (points.boards.render.RENDER_VERSION)."""
    text = json.dumps(
        [*inputs, render.RENDER_VERSION], sort_keys=True, default=str, ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def drawn_once(kind: str, ext: str, draw: Callable[[], bytes], *inputs: Any) -> bytes:
    """`draw()`'s picture, kept under a name made from `inputs` (everything it is drawn
    from, the font included) and its kind: a print job asked for again (the same cards,
    the same poster) is read, not drawn."""
    return cached(f"{kind}-{content_key(*inputs)}.{ext}", draw)


def cached(name: str, draw: Callable[[], bytes]) -> bytes:
    """The bytes kept under `name` (`board-<hash>.png`), else `draw()`'s, kept for next
    time. Never fails for the cache's sake."""
    if not _KEY.match(name):
        raise ValueError(f"not a render cache name: {name!r}")
    limit = max_bytes()
    if limit <= 0:  # RENDER_CACHE_MB=0: no cache
        return draw()
    directory = cache_dir()
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("render cache: cannot read %s: %s", path, exc)
    else:
        try:
            os.utime(path)  # used now: the sweep keeps it over older ones
        except OSError:
            pass
        return data
    data = draw()
    try:
        write_atomically(directory, name, data, part_prefix=PART_PREFIX)
    except OSError as exc:
        log.warning("render cache: cannot keep %s: %s", path, exc)
        return data
    if _sweep_due():
        try:
            sweep(directory, limit)
        except OSError as exc:
            log.warning("render cache: cannot sweep %s: %s", directory, exc)
    return data


def _sweep_due() -> bool:
    global _writes
    with _lock:
        due = _writes % SWEEP_EVERY == 0
        _writes += 1
    return due


def sweep(directory: Path, limit_bytes: int, max_files: int = MAX_FILES) -> int:
    """Keep the most recently used files within `limit_bytes` and `max_files`, remove the
    rest and temp files left over; how many files went. Another worker may sweep at the same
    time: a file already gone is no matter."""
    now = time.time()
    entries: list[tuple[float, int, str]] = []
    removed = 0
    with os.scandir(directory) as listing:
        for entry in listing:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if entry.name.startswith(PART_PREFIX):
                if now - stat.st_mtime > STALE_PART_SECONDS:
                    removed += _unlink(entry.path)
                continue
            if _KEY.match(entry.name):
                entries.append((stat.st_mtime, stat.st_size, entry.path))
    entries.sort(reverse=True)  # newest first
    total = 0
    for kept, (_, size, path) in enumerate(entries):
        total += size
        if kept >= max_files or total > limit_bytes:
            removed += _unlink(path)
    return removed


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return 1
