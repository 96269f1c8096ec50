"""The disk all uploads may take at once, counted as their bytes arrive, whatever a request declares."""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from pathlib import Path

# The upload folder is walked at most this often (a walk of many files takes a while); what uploads received in
# between is added to the last walk's total.
REMEASURE_S = 10.0
# Gradio writes each uploaded file into a folder of its own: a file and a folder, each at least one block of disk,
# so that many tiny files count as what they cost.
BLOCK_BYTES = 4096
PART_BYTES = 2 * BLOCK_BYTES


class UploadBudget:
    """What Gradio's upload folder may hold at once, so that uploading again and again cannot fill the server's
    disk before the sweep deletes the files. The folder's disk use is measured (what the sweep deleted frees room),
    at most every REMEASURE_S; uploads count by the bytes and the files they send as those arrive, since a
    declared length can lie (or be absent) and a request that declares much and sends nothing reserves nothing."""

    def __init__(self, folder: Path, max_bytes: int, sweep_age_s: int) -> None:
        self.folder, self.max_bytes, self.sweep_age_s = folder, max_bytes, sweep_age_s
        self.on_disk, self.measured_at, self.lock = 0, -math.inf, asyncio.Lock()
        self.since = 0  # what uploads that ended since the last walk received
        self.live: dict[int, int] = {}  # what each upload in progress received so far

    def held(self) -> int:
        return self.on_disk + self.since + sum(self.live.values())

    async def admit(self, upload: int, declared: int) -> str | None:
        """Count an upload in (by `declared`: its Content-Length, 0 where it has none), or say why not."""
        async with self.lock:
            if time.monotonic() - self.measured_at >= REMEASURE_S:
                # in-progress uploads count twice until the next walk (on disk and live): on the safe side
                self.on_disk, self.since = await asyncio.to_thread(disk_use, self.folder), 0
                self.measured_at = time.monotonic()
            if declared + PART_BYTES > self.max_bytes:
                return self.too_large(declared)
            if self.held() + declared + PART_BYTES > self.max_bytes:
                return self.refusal()
            self.live[upload] = 0
            return None

    def receive(self, upload: int, size: int) -> str | None:
        """Count `size` more bytes (a part's overhead included) of an upload in, or say why it must stop."""
        self.live[upload] += size
        if self.live[upload] > self.max_bytes:
            return self.too_large(self.live[upload], so_far=True)
        return self.refusal() if self.held() > self.max_bytes else None

    def end(self, upload: int) -> None:
        self.since += self.live.pop(upload, 0)

    def too_large(self, size: int, so_far: bool = False) -> str:
        """The refusal of an upload that could not fit even with no other upload held (a host may allow one file
        more than all of them), so waiting is no advice."""
        return (f"this upload ({size / 1e6:,.1f} MB{' so far' if so_far else ''}) is larger than the "
                f"{self.max_bytes / 1e6:,.1f} MB this server keeps for all uploads at once (QA_MAX_UPLOADS_MB)")

    def refusal(self) -> str:
        return (f"uploads are refused for now: the uploads on this server take {self.held() / 1e6:,.1f} MB of the "
                f"{self.max_bytes / 1e6:,.1f} MB it keeps for them (QA_MAX_UPLOADS_MB); each is deleted "
                f"{spoken_age(self.sweep_age_s)} after it arrived, so try again later")


class PartCounter:
    """Counts the parts (files) of a multipart body as its chunks arrive, by their delimiter lines (the closing
    one too, on the safe side). The tail kept from one chunk to the next is a byte shorter than a delimiter: one
    split between two chunks is found once, and none is found twice."""

    def __init__(self, content_type: bytes) -> None:
        found = re.search(rb'boundary="?([^";]+)"?', content_type)
        self.delimiter = b"--" + (found.group(1) if found else b"")
        self.tail = b""

    def feed(self, chunk: bytes) -> int:
        """How many delimiters this chunk ends."""
        data = self.tail + chunk
        self.tail = data[-(len(self.delimiter) - 1):]
        return data.count(self.delimiter)


def disk_use(folder: Path) -> int:
    """The disk a folder's files and folders take, each at least one block (a file swept meanwhile takes none)."""
    total = 0
    for parent, folders, files in os.walk(folder):
        total += BLOCK_BYTES * len(folders)
        for name in files:
            try:
                total += max(os.stat(os.path.join(parent, name)).st_blocks * 512, BLOCK_BYTES)
            except OSError:
                continue
    return total


def spoken_age(seconds: int) -> str:
    return "an hour" if seconds == 3600 else f"{seconds:,} s"
