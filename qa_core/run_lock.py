"""The training lock of a run folder, and whether a run that says running is trained now or was interrupted."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from qa_core.run_files import MODEL_DIR, TRAINING_LOCK, RunInfo, RunRefused, unwritten

try:
    import fcntl
except ImportError:  # Windows: no flock, so no run is locked (training_lock) and no lock tells (lock_held)
    fcntl = None

logger = logging.getLogger(__name__)

# The status of a run whose run.json says running while no process holds its training lock (run_status).
INTERRUPTED = "interrupted"
LOCK_TRIES, LOCK_RETRY_S = 10, 0.02  # how long a trainer waits for a lock taken to look at it (take_lock)


@contextlib.contextmanager
def training_lock(folder: Path) -> Iterator[None]:
    """Hold a run folder while this process trains it (or evaluates it into the folder), so a second trainer
    (another CLI, the app's Resume) is refused at once instead of writing checkpoints over this one's. The lock
    file stays beside a run: removing it would let a newcomer lock a fresh file while another holds the old one. A trainer that stops before writing
    anything (a later check refused the run) leaves nothing, nor the folder if made here; one refused the lock
    leaves its holder's alone. Where flock is missing (Windows) nothing is locked."""
    if fcntl is None:
        yield
        return
    if folder.exists() and not folder.is_dir():
        yield  # check_output_dir refuses it with its own message
        return
    made, taken = not folder.exists(), False
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(folder / TRAINING_LOCK, "a", encoding="utf-8") as handle:
            try:
                taken = take_lock(handle)
            except OSError as err:  # a file system without locks (some network mounts): train unguarded
                logger.warning("%s cannot be locked (%s); nothing stops a second trainer of this run", folder, err)
                taken = True
            if not taken:
                busy = ("is in use by another process right now (training or evaluating it); wait for it to end "
                        "or stop it, then")
                raise RunRefused(f"{folder} {busy} --resume", f"run {folder.name} {busy} press Resume")
            yield
    finally:
        # a trainer that stopped before writing anything leaves nothing; one refused leaves the holder's lock alone
        if taken and unwritten(folder):
            (folder / TRAINING_LOCK).unlink()
            if made:
                folder.rmdir()


def take_lock(handle: IO[str]) -> bool:
    """flock the open lock file; False where another process holds it for longer than a reader's look (lock_held
    takes it for an instant), which a trainer starting meanwhile waits out rather than being refused."""
    for _ in range(LOCK_TRIES):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(LOCK_RETRY_S)
    return False


def being_trained(folder: Path) -> bool:
    """Whether some process (this one included) holds the run's training lock now."""
    return lock_held(folder) is True


def lock_held(folder: Path) -> bool | None:
    """Whether some process (this one included) holds the run's training lock now; None where no lock can tell
    (no flock: Windows; a file system without locks, where training goes on unlocked)."""
    if fcntl is None:
        return None
    try:
        with open(folder / TRAINING_LOCK, encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except FileNotFoundError:  # never trained by a version that locks, or not a run
        return False
    except OSError:
        return None
    return False


def run_status(folder: Path, info: RunInfo) -> str:
    """A run's status as it stands now: "running" where a process holds its training lock (a resume still loading
    has not rewritten run.json yet), and run.json's "running" only then. A trainer that was killed, or a server
    stopped mid-job, left run.json saying "running": its run is INTERRUPTED, resumable from its last checkpoint.
    Told, not written back: a reader rewriting run.json could overwrite the run.json of a trainer that took the
    lock meanwhile; the run's next trainer rewrites it."""
    held = lock_held(folder) if info.status != "finished" else None
    if held:
        return "running"
    return INTERRUPTED if info.status == "running" and held is False else info.status


def without_final_model(run: Path) -> str:
    """Why a run folder gives no model yet: its model/ is written when its training finishes."""
    if being_trained(run):
        return (f"{run}: a run being trained right now, without a final model yet ({MODEL_DIR}/ is written when "
                f"its training finishes)")
    return (f"{run}: a run without a final model ({MODEL_DIR}/ is written when training finishes; continue a "
            f"stopped run: Resume in the Train tab, --resume with train.py)")
