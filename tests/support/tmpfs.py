"""A tiny filesystem of a test's own: a ``tmpfs`` of a given size mounted on a folder, to fill up.

A test that fills a disk must fill one of its own: a tmpfs holds at most its ``size`` and then
fails writes with ENOSPC, as a full disk does, and can be given more room while mounted
(``grow``), as an operator frees space. Mounting needs root (CI runs the tests as root); where it
is not permitted the tests that need it skip and say why, except under CI (``CI`` set), where
that is a failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30, check=False)


class Tmpfs:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def grow(self, size: str) -> None:
        """More room (``size`` as mount takes it: "64m"), keeping what is stored."""
        result = _mount("-o", f"remount,size={size}", str(self.folder))
        if result.returncode != 0:
            raise RuntimeError(f"could not remount {self.folder}: {result.stderr}")


@contextmanager
def mounted_tmpfs(folder: Path, size: str) -> Iterator[Tmpfs]:
    """A tmpfs of ``size`` ("10m") mounted on ``folder`` (made if missing) for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    result = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    if result.returncode != 0:
        problem = f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode})"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {problem}: the tests run as root in CI")
        pytest.skip(f"{problem}; run as root to fill a filesystem of the test's own (CI does)")
    try:
        yield Tmpfs(folder)
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], timeout=30, check=False)
