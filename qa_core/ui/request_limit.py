"""A bound on request bodies: Gradio parses a whole JSON body into memory before any handler can check it."""

from __future__ import annotations

import json

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa_core.settings import Settings

# Uploads stream to disk under Gradio's own max_file_size; every other body is a handler's inputs.
UPLOAD_PATH = "/gradio_api/upload"
SLACK_BYTES = 1 << 20  # the event's envelope, the other inputs and the form's options, with room to spare
BYTES_PER_CHAR = 12  # a character outside the BMP, JSON-escaped as a surrogate pair: \ud83d\ude00


def body_limit(settings: Settings) -> int:
    """The largest body a caller needs: a question and a context at the server's limits, each character
    escaped at its longest, so text over the limits still reaches the check that names them."""
    return SLACK_BYTES + BYTES_PER_CHAR * (settings.max_context_chars + settings.max_question_chars)


def body_limit_middleware(settings: Settings) -> list[Middleware]:
    """For launch(app_kwargs={"middleware": ...}): Starlette takes middleware when the app is built, not after."""
    return [Middleware(LimitBody, max_bytes=body_limit(settings))]


class LimitBody:
    """Refuses a body over max_bytes with 413 before the app reads it: by its Content-Length, or, sent without
    one, once as much has arrived."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].endswith(UPLOAD_PATH):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
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
        body = json.dumps({"detail": f"request body of {length:,} bytes or more; this server takes at most "
                                     f"{self.max_bytes:,}"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read ahead, then the client's further messages (a disconnect, say)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
