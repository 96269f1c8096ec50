"""A bound on request bodies: Gradio parses a whole JSON body into memory before any handler can check it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from gradio.utils import get_upload_folder
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa_core.settings import Settings
from qa_core.train_policy import SWITCHED_OFF
from qa_core.ui.upload_budget import PART_BYTES, PartCounter, UploadBudget

# Uploads stream to disk under Gradio's own max_file_size; every other body is a handler's inputs.
UPLOAD_PATH = "/gradio_api/upload"
# Only a training job reads an uploaded file: without one an upload would only take the server's disk.
UPLOADS_OFF = f"uploads are refused: {SWITCHED_OFF}, and nothing else here reads a file"
SLACK_BYTES = 1 << 20  # the event's envelope, the other inputs and the form's options, with room to spare
BYTES_PER_CHAR = 12  # a character outside the BMP, JSON-escaped as a surrogate pair: \ud83d\ude00


def body_limit(settings: Settings) -> int:
    """The largest body a caller needs: a question and a context at the server's limits, each character
    escaped at its longest, so text over the limits still reaches the check that names them."""
    return SLACK_BYTES + BYTES_PER_CHAR * (settings.max_context_chars + settings.max_question_chars)


def body_limit_middleware(settings: Settings, sweep_age_s: int) -> list[Middleware]:
    """For launch(app_kwargs={"middleware": ...}): Starlette takes middleware when the app is built, not after.
    sweep_age_s: how old an upload is when the app's sweep deletes it (for the message of a full upload folder)."""
    uploads = None
    if settings.training_enabled:
        uploads = UploadBudget(Path(get_upload_folder()), settings.max_uploads_bytes, sweep_age_s)
    return [Middleware(LimitBody, max_bytes=body_limit(settings), uploads=uploads)]


class LimitBody:
    """Refuses a body over max_bytes with 413 before the app reads it: by its Content-Length, or, sent without
    one (or chunked: the server then reads chunks, whatever the length says), once as much has arrived; and every
    upload with 403 where `uploads` is None (the server takes none), else with 507 where it would take the uploads
    past their budget: before a byte is written where its length says so, else as soon as it does."""

    def __init__(self, app: ASGIApp, max_bytes: int, uploads: UploadBudget | None = None) -> None:
        self.app, self.max_bytes, self.uploads = app, max_bytes, uploads
        self.upload_ids = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        declared = int(length) if length.isdigit() and b"transfer-encoding" not in headers else None
        if scope["path"].endswith(UPLOAD_PATH):
            if self.uploads is None:
                return await refuse(send, 403, UPLOADS_OFF)
            return await self.upload(scope, receive, send, declared or 0, headers.get(b"content-type", b""))
        if declared is not None:
            if declared > self.max_bytes:
                return await self.refuse(send, declared)
            return await self.app(scope, receive, send)
        # No length to go by: read it here, up to the limit, then hand it on whole
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

    async def upload(self, scope: Scope, receive: Receive, send: Send, declared: int, content_type: bytes) -> None:
        """Pass an upload on while the budget holds it; past it, answer 507 and end the app's read of it (its
        reply, its error at the cut-off body, are then dropped: the caller has its answer)."""
        budget, upload = self.uploads, next(self.upload_ids)
        assert budget is not None
        if full := await budget.admit(upload, declared):
            return await refuse(send, 507, full)
        parts, stopped = PartCounter(content_type), ""

        async def counted() -> Message:
            nonlocal stopped
            message = await receive()
            if message["type"] == "http.request" and not stopped:
                body = message.get("body", b"")
                stopped = budget.receive(upload, len(body) + PART_BYTES * parts.feed(body)) or ""
                if stopped:
                    await refuse(send, 507, stopped)
            return {"type": "http.disconnect"} if stopped else message

        async def unless_stopped(message: Message) -> None:
            if not stopped:
                await send(message)

        try:
            await self.app(scope, counted, unless_stopped)
        except Exception:
            if not stopped:
                raise
        finally:
            budget.end(upload)

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
