"""Writes that never leave half a file, and a write refused for want of room said in one line."""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

from qa_core.run_files import TMP_SUFFIX

NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a full disk, a quota, a file-size limit


class NoRoomError(RuntimeError):
    """A write refused for want of room (no_room), its partial files removed: one line on what was kept and what
    to do (training says it as a TrainingError, which run.json records)."""


def write_file_atomically(path: Path, text: str) -> None:
    """Write text beside path under a name of this process's own, then rename it over path: a write that fails
    leaves path as it was, and the partial file is removed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def no_room_said(target: str, kept: str, then: str) -> Iterator[None]:
    """A write refused for want of room (no_room) as NoRoomError's one line; the partial files are removed by the
    writers inside, before it is said."""
    try:
        yield
    except OSError as err:
        if (reason := no_room(err)) is None:
            raise
        raise NoRoomError(no_room_line(target, reason, then, kept)) from err


def no_room_line(target: str, reason: str, then: str, kept: str = "") -> str:
    """The one line every write refused for want of room says (training, evaluate, predict): what was not written
    and why, what was kept, and what to do once there is room."""
    return (f"no room to write {target} ({reason}); partial files removed{f', {kept}' if kept else ''}; "
            f"free some space, then {then}")


def no_room(err: BaseException | None) -> str | None:
    """Why a write failed for want of room (a full disk, a quota, a file-size limit), else None.

    torch.save raises a RuntimeError whose context is the OSError; safetensors names the OS error in its message.
    """
    seen: set[int] = set()  # causes can loop (an error raised from itself)
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        code = err.errno if isinstance(err, OSError) else None
        if code is None and (found := re.search(r"os error (\d+)", str(err))):
            code = int(found.group(1))
        if code in NO_ROOM:
            return os.strerror(code) + (f": {err.filename}" if getattr(err, "filename", None) else "")
        err = err.__cause__ or err.__context__
    return None
