"""A bound on request bodies: Gradio parses a whole JSON body into memory before any handler can check it."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from pathlib import Path

from gradio.utils import get_upload_folder
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa_core.settings import Settings
from qa_core.train_policy import SWITCHED_OFF

# Uploads stream to disk under Gradio's own max_file_size; every other body is a handler's inputs.
UPLOAD_PATH = "/gradio_api/upload"
# Only a training job reads an uploaded file: without one an upload would only take the server's disk.
UPLOADS_OFF = f"uploads are refused: {SWITCHED_OFF}, and nothing else here reads a file"
SLACK_BYTES = 1 << 20  # the event's envelope, the other inputs and the form's options, with room to spare
BYTES_PER_CHAR = 12  # a character outside the BMP, JSON-escaped as a surrogate pair: \ud83d\ude00
# The upload folder is walked at most this often (a walk of many files takes a while); uploads admitted in between
# are added to the last walk's total.
REMEASURE_S = 10.0
BLOCK_BYTES = 4096  # a file takes at least one block of disk, so many tiny uploads count as what they cost


def body_limit(settings: Settings) -> int:
    """The largest body a caller needs: a question and a context at the server's limits, each character
    escaped at its longest, so text over the limits still reaches the check that names them."""
    return SLACK_BYTES + BYTES_PER_CHAR * (settings.max_context_chars + settings.max_question_chars)


def body_limit_middleware(settings: Settings, sweep_age_s: int) -> list[Middleware]:
    """For launch(app_kwargs={"middleware": ...}): Starlette takes middleware when the app is built, not after.
    sweep_age_s: how old an upload is when the app's sweep deletes it (for the message of a full upload folder)."""
    uploads = None
    if settings.training_enabled:
        uploads = UploadBudget(Path(get_upload_folder()), settings.max_uploads_bytes, settings.max_upload_bytes,
                               sweep_age_s)
    return [Middleware(LimitBody, max_bytes=body_limit(settings), uploads=uploads)]


class UploadBudget:
    """The disk all uploads may take at once in Gradio's upload folder, so that uploading again and again cannot
    fill the server's disk before the sweep deletes them. What the folder holds is measured on disk (what the sweep
    deleted frees room), at most every REMEASURE_S, with the uploads admitted since added."""

    def __init__(self, folder: Path, max_bytes: int, max_upload_bytes: int, sweep_age_s: int) -> None:
        self.folder, self.max_bytes, self.max_upload_bytes, self.sweep_age_s = (folder, max_bytes, max_upload_bytes,
                                                                                sweep_age_s)
        self.held, self.measured_at, self.lock = 0, -math.inf, asyncio.Lock()

    async def admit(self, length: int | None) -> str | None:
        """Count an upload of `length` bytes (None: not declared, so as large as one may be) in, or say why not."""
        async with self.lock:
            if time.monotonic() - self.measured_at >= REMEASURE_S:
                self.held = await asyncio.to_thread(folder_bytes, self.folder)
                self.measured_at = time.monotonic()
            if self.held + (length or self.max_upload_bytes) > self.max_bytes:
                return (f"uploads are refused for now: the uploads on this server take {self.held / 1e6:,.1f} MB of "
                        f"the {self.max_bytes / 1e6:,.1f} MB it keeps for them (QA_MAX_UPLOADS_MB); each is deleted "
                        f"{spoken_age(self.sweep_age_s)} after it arrived, so try again later")
            self.held += length or self.max_upload_bytes
            return None


def folder_bytes(folder: Path) -> int:
    """The disk a folder's files take, each at least one block (a file swept meanwhile takes none)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += max(os.stat(os.path.join(parent, name)).st_size, BLOCK_BYTES)
            except OSError:
                continue
    return total


def spoken_age(seconds: int) -> str:
    return "an hour" if seconds == 3600 else f"{seconds:,} s"


class LimitBody:
    """Refuses a body over max_bytes with 413 before the app reads it: by its Content-Length, or, sent without
    one, once as much has arrived; and every upload, before a byte of it is written: with 403 where `uploads` is
    None (the server takes none), with 507 where it would take the uploads past their budget."""

    def __init__(self, app: ASGIApp, max_bytes: int, uploads: UploadBudget | None = None) -> None:
        self.app, self.max_bytes, self.uploads = app, max_bytes, uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if scope["path"].endswith(UPLOAD_PATH):
            if self.uploads is None:
                return await refuse(send, 403, UPLOADS_OFF)
            full = await self.uploads.admit(int(length) if length.isdigit() else None)
            return await (refuse(send, 507, full) if full else self.app(scope, receive, send))
        if length.isdigit():
            if int(length) > self.max_bytes:
                return await self.refuse(send, int(length))
            return await self.app(scope, receive, send)
        # No length declared (chunked): read it here, up to the limit, then hand it on whole
        chunks, size, message = [], 0, {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self.refuse(send, size)
        return await self.app(scope, replay(b"".join(chunks), receive), send)

    async def refuse(self, send: Send, length: int) -> None:
        """413, naming the body's size (as declared, or as far as it was read) and the limit."""
        await refuse(send, 413, f"request body of {length:,} bytes or more; this server takes at most "
                                f"{self.max_bytes:,}")


async def refuse(send: Send, status: int, detail: str) -> None:
    """A JSON error response, {"detail": ...} as FastAPI words its own, sent without reading the request body."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read ahead, then the client's further messages (a disconnect, say)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
