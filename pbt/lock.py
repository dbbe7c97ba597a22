"""The run's lock: the one process that trains, resumes or deletes a run owns its directory through
``RUN_DIR/pbt.lock`` (``RunLock``), and the store records that owner (``owner_identity``) so readers can tell a live
run from a killed one."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

from pbt.space import ConfigError

LOCK_NAME = "pbt.lock"


class RunBusy(ConfigError):
    """Another process owns the run directory."""


class LockLost(ConfigError):
    """The owner's lock file was deleted or replaced while it trained: it stops, since another process may own the
    run now."""


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux), or None when it is not running or unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_identity(pid: int) -> dict[str, Any]:
    """A process as the store records its owner: PID and start time (so a reused PID is not taken for it)."""
    return {"pid": pid, "start": process_start(pid)}


def recorded_owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process recorded as a run's owner (``owner_identity``) is still running."""
    pid = owner.get("pid")
    return isinstance(pid, int) and owner.get("start") is not None and process_start(pid) == owner.get("start")


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/pbt.lock``, held by the one process that trains, resumes or deletes a run,
    for as long as it does. The kernel drops it when that process dies (kill -9 included), so a dead owner never
    blocks a resume. The file holds the owner's PID, for messages; readers (status, compare) never take it.

    A lock counts only on the file that is at ``RUN_DIR/pbt.lock`` once it is held: ``--force`` (or restarting a run
    that never trained) moves the old run, lock file and all, out of the way, and a process that opened the old file
    just before would otherwise own a run directory that is no longer there while the new run has another owner."""

    def __init__(self, run_dir: Path | str, wait: float = 1.0):
        self.path = Path(run_dir) / LOCK_NAME
        self.created = False  # whether this lock made the file (so a folder that is not a run keeps nothing of ours)
        deadline = time.monotonic() + wait  # a reader's momentary shared lock (RunLock.owner) is waited out
        while True:
            fd = self._open()
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    if self._is_current(fd):
                        break
                except BlockingIOError:
                    pass
                os.close(fd)  # held by another process, or a file that has left the run directory: try again
            if time.monotonic() >= deadline:
                if fd < 0 and not self.path.parent.is_dir():
                    raise ConfigError(f"{run_dir} was moved or deleted by another process; try again", path=run_dir)
                raise RunBusy(
                    f"{run_dir} is in use by process {self._pid() or '?'} (it owns this run); wait for it "
                    "to end or stop it, then try again",
                    path=run_dir,
                )
            time.sleep(0.05)
        self.fd = fd
        held = os.fstat(fd)
        self.file_id = (held.st_dev, held.st_ino)  # what verify compares the path with (one stat per transaction)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def _open(self) -> int:
        """A descriptor of the lock file (created if missing), or -1 while the run directory is missing (between
        the two renames of a replacement)."""
        self.created = False
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                self.created = True
                return fd
            except FileExistsError:
                return os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return -1
        except PermissionError as exc:
            raise ConfigError(f"{self.path.parent} is not writable ({exc.strerror})", path=self.path.parent) from exc

    def _is_current(self, fd: int) -> bool:
        """Whether the file locked through ``fd`` is still the one at ``self.path`` (not moved away or deleted)."""
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)

    def verify(self) -> None:
        """Raise ``LockLost`` unless the file at ``RUN_DIR/pbt.lock`` is still the one this process holds: deleted
        or replaced, it no longer keeps a second owner out, so this one stops (at its next commit)."""
        try:
            here = os.stat(self.path)
            current = self.fd >= 0 and (here.st_dev, here.st_ino) == self.file_id
        except FileNotFoundError:
            current = False
        if not current:
            raise LockLost(
                f"{self.path} was deleted or replaced while this process owned the run, so it stopped; "
                "what was committed is kept (`pbt-repro resume DIR` continues it)",
                path=self.path.parent,
            )

    def moved(self, run_dir: Path | str) -> None:
        """The locked directory was renamed to ``run_dir`` (a new run put into place): the lock goes with it."""
        self.path = Path(run_dir) / LOCK_NAME

    def discard(self) -> None:
        """Release, removing the lock file if this lock created it: a folder that turned out not to be a run is left
        as it was. Safe while others wait on the file: a lock on a file no longer at its path does not count."""
        if self.fd >= 0 and self.created:
            self.path.unlink(missing_ok=True)
        self.release()

    def _pid(self) -> int | None:
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = -1

    @staticmethod
    def owner(run_dir: Path | str) -> int | None:
        """The PID of the live process that owns ``run_dir``, or None when nobody does."""
        path = Path(run_dir) / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it exclusively
        except BlockingIOError:
            try:
                return int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return -1
        finally:
            os.close(fd)
