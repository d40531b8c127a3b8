"""Making writes survive a crash: fsync a file's bytes, and the directory entry naming it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush ``path``'s bytes to disk."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    """Make the directory's entries durable, so a rename never publishes missing files."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(temporary_path)``, then publish it whole by a rename.

    A crash leaves the old file or the new one, never half of one: readers such as
    ``--resume`` trust what is on disk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    fsync_file(temporary)
    os.replace(temporary, path)
    fsync_directory(path.parent)


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only (0600), durably; never replace one.

    For private keys and secrets: an existing file is an error (``FileExistsError``) rather
    than an overwrite, since replacing a key silently locks out everything sealed to it.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_directory(path.parent)
