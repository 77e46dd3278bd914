"""backend/allocator.py: a worker gives the memory of a login's scrypt back to the system
once the login is done, instead of keeping it in its heap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import re
from backend.allocator import map_big_blocks
from points.passwords import hash_password, verify_password

def anon_mb():
    status = open("/proc/self/status").read()
    return int(re.search(r"^RssAnon:\s+(\d+) kB", status, re.M).group(1)) / 1024

print(map_big_blocks())
before = anon_mb()
stored = hash_password("Pw-0123456789")
# glibc raises its threshold when the first 16 MB block is freed: the second and third are
# the ones a worker kept.
assert verify_password(stored, "Pw-0123456789")
assert not verify_password(stored, "wrong")
print(anon_mb() - before)
"""


def test_the_memory_of_a_login_is_given_back() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True
    )
    mapped, grown = done.stdout.split()
    if mapped != "True":  # not glibc: nothing to fix
        return
    # scrypt with the stored parameters takes 16 MB a hash.
    assert float(grown) < 4, done.stdout
