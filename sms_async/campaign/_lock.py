"""One process per campaign: an exclusive lock on ``<journal>.lock``.

The operating system drops the lock when its process dies (``kill -9``
included), so a crash never leaves a campaign locked; the file itself is
then left behind, and the next run takes it over. A run that ends in order
removes it while still holding the lock. That is safe because a process
takes the lock only if, once locked, the path still names the very file it
locked: one that locked a file just removed lets it go and tries again.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Final

from sms_async.campaign._errors import CampaignError, StorageError

__all__ = ["CampaignLock", "lock_path"]

# Another process removing the file between our open and our lock: rare; a
# few tries settle it.
_TRIES: Final = 5


def lock_path(journal: Path) -> Path:
    """Where the lock of the campaign whose journal is ``journal`` lives."""
    return journal.with_name(journal.name + ".lock")


class CampaignLock:
    """Held for as long as one process works on one campaign.

    Raises:
        CampaignError: another process holds it.
        StorageError: the lock file cannot be created or locked.
    """

    def __init__(self, journal: Path) -> None:
        self.path = lock_path(journal)
        for _ in range(_TRIES):
            fd = self._open_and_lock(journal)
            try:
                if _names(self.path, fd):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # removed by a run that just finished: lock the new file
        else:  # pragma: no cover - needs another process removing the file again and again
            raise StorageError(f"cannot lock the journal {journal}: its lock file keeps being replaced")
        self._fd: int | None = fd

    def _open_and_lock(self, journal: Path) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StorageError(f"cannot use the journal {journal}: {error.strerror or error}") from None
        try:
            _try_lock(fd)
        except (BlockingIOError, PermissionError):
            try:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise CampaignError(
                f"the campaign journal {journal} is in use by another sms-async process{who}; "
                "wait for it to finish, or stop it first"
            ) from None
        except OSError as error:
            os.close(fd)
            raise StorageError(f"cannot lock the journal {journal}: {error.strerror or error}") from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self, *, remove: bool = True) -> None:
        """Let the campaign go; ``remove`` deletes the lock file first (a run that ended in order)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if remove and sys.platform != "win32":  # an open file cannot be removed there
            with contextlib.suppress(OSError):  # left behind: the next run takes it over
                self.path.unlink()
        os.close(fd)


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd``."""
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
