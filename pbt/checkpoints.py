"""Checkpoint files, and the checksums that vouch for them.

Checkpoints are written atomically (temp file, fsync, rename) and their SHA-256 is recorded in the store in the same
transaction that publishes the member's new step, so a run killed at any moment resumes from a consistent state. A
checkpoint is checked against its SHA-256 before it is loaded (``verify_checkpoint``).
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file is missing, truncated or does not match its recorded checksum."""


def _sha256(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return _sha256(f)


def write_atomic(path: Path, write: Callable[[Path], None]) -> str:
    """Run ``write(tmp)``, fsync it, rename it over ``path`` and return its SHA-256.

    A reader sees either no file or the complete file, never a partial one, even if the process is killed mid-write.
    The temporary name keeps ``path``'s suffix, for writers that add their own (``np.save``).
    """
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
            checksum = _sha256(f)
        os.replace(tmp, path)
    except Exception as exc:
        # a writer such as torch.save reports a full disk in its own words: the free space at the moment it failed
        # (the partial file still there) tells a full disk from a failure of the writer's own
        full = _free_bytes(path.parent) < FULL_BELOW_BYTES
        tmp.unlink(missing_ok=True)
        if full and not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
            raise OSError(errno.ENOSPC, f"no space left on the device to write {path.name} ({exc})") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The directory is not fsynced: the store commits with synchronous=NORMAL, which is durable across process
    # deaths (kill -9, OOM) but may lose its last commits on power loss; a rename lost with them shows up as a
    # checksum mismatch on load, and the member is then replaced like any failed member.
    return checksum


FULL_BELOW_BYTES = 1 << 20  # a file system with less room than this when a write failed was full


def _free_bytes(folder: Path) -> int:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return FULL_BELOW_BYTES  # unknown: not taken for full
    return stat.f_bavail * stat.f_frsize


def verify_checkpoint(path: Path, checksum: str) -> None:
    """Raise ``CorruptCheckpoint`` unless ``path`` exists and hashes to ``checksum``."""
    if not path.is_file():
        raise CorruptCheckpoint(f"checkpoint {path} is missing")
    actual = sha256_file(path)
    if actual != checksum:
        raise CorruptCheckpoint(f"checkpoint {path} is corrupt: sha256 {actual[:12]}… != recorded {checksum[:12]}…")
