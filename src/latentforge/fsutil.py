"""Atomic file and directory writes: an interrupted run never leaves a half-written output."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ArtifactError


def _umask_mode(base: int) -> int:
    """``base`` permissions under the process umask (mkdtemp/mkstemp use 0700/0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextmanager
def atomic_directory(target: str | Path, marker: str = "model.json") -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``target`` in one rename.

    On any failure the temporary directory is removed and ``target`` is left as it was; what a
    killed process (kill -9) left behind is removed by the next write to ``target``. A non-empty
    existing directory without ``marker`` is refused, so nothing of the user's is lost.
    """
    target = Path(target)
    check_output_dir(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    for kind in ("tmp", "old"):  # what a killed write left behind
        for stale in target.parent.glob(f".{glob.escape(target.name)}.{kind}-*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(_umask_mode(0o777))
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            old.rmdir()
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a new empty temporary file beside ``path``; when the block succeeds it is fsynced and
    renamed onto ``path``, when it fails it is removed (``path`` is left as it was). Temporary files
    that a killed process left for ``path`` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _umask_mode(0o666))  # the permissions a plain open would give
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write one file atomically (temporary file in the same folder, then rename)."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def check_output_dir(target: str | Path, marker: str = "model.json") -> None:
    """Fail early (before any work) if ``target`` could not be replaced by an atomic write."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{target} exists and is not a directory.")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).exists():
        raise ArtifactError(f"{target} is a non-empty directory that is not a latentforge output; choose another path.")
