"""Atomic file and directory writes: an interrupted run never leaves a half-written output.

Outputs are checked before any work (:func:`check_output_path`, :func:`check_output_dir`): the
path can be created and written, and it is not one of the command's inputs. A symlinked output is
written *through* the link: the link stays and its target is replaced atomically.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ArtifactError, InputError

#: room a temporary sibling (".NAME.tmp-XXXXXXXX") needs beyond the name itself
_TEMP_NAME_EXTRA = 16


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
    target = through_links(target)
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
    path = through_links(path)
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


def through_links(path: str | Path) -> Path:
    """Where a write to ``path`` goes: the real path, every symlink on the way followed (a dangling
    one to the path it names). Writing through keeps the user's links instead of replacing them,
    and the temporary sibling lands in the real target's folder, so the final rename is atomic."""
    return Path(os.path.realpath(path))


def _overlaps(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_output_path(target: str | Path, inputs: Iterable[str | Path] = (), *, folder: bool = False) -> Path:
    """Fail early (before any work, :class:`InputError`) unless ``target`` can be written; returns
    the path the write goes to (through a symlink).

    Refused: a ``target`` that is one of ``inputs`` (however spelt: ``./x``, ``a/../x``, a symlink or
    a hard link), lies inside an input folder, or (``folder=True``: an output folder that replaces
    what is there) contains an input; a ``target`` below an existing file; a folder where nothing
    may be created; a name too long for the file system. ``inputs`` that are not paths on disk
    (a built-in dataset's name) are ignored.
    """
    target = Path(target)
    real = os.path.realpath(target)
    for given in inputs:
        if given is None or not os.path.lexists(given):
            continue
        source = os.path.realpath(given)
        same = source == real or (os.path.exists(real) and os.path.samefile(source, real))
        if same:
            raise InputError(f"the output {target} is the input {given}; writing it would destroy the input, "
                             f"choose another --out.")
        if os.path.isdir(source) and _overlaps(real, source):
            raise InputError(f"the output {target} lies inside the input folder {given}; choose an --out outside it.")
        if folder and _overlaps(source, real):
            raise InputError(f"the output folder {target} holds the input {given}, which replacing it would "
                             f"delete; choose another --out.")
    written = Path(real)
    name_max = 255
    parent = written.parent
    while not parent.exists():
        if parent.is_symlink():  # still a link after realpath: a loop of links
            raise InputError(f"cannot create the output {target}: {parent} is a symbolic link that loops.")
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot create the output {target}: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write the output {target}: no permission to create files in {parent}.")
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        pass
    for part in written.relative_to(parent).parts:
        if len(os.fsencode(part)) + _TEMP_NAME_EXTRA > name_max:
            raise InputError(f"cannot create the output {target}: the name {part[:40]!r}... is too long for the "
                             f"file system (at most {name_max - _TEMP_NAME_EXTRA} bytes).")
    return written


def check_output_dir(target: str | Path, marker: str = "model.json") -> None:
    """Fail early (before any work) if ``target`` could not be replaced by an atomic write."""
    target = Path(target)
    check_output_path(target, folder=True)
    target = through_links(target)
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{target} exists and is not a directory.")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).exists():
        raise ArtifactError(f"{target} is a non-empty directory that is not a latentforge output; choose another path.")
