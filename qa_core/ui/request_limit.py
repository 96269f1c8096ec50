"""A bound on request bodies: Gradio parses a whole JSON body into memory before any handler can check it."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from starlette.middleware import Middleware

from qa_core.hosting import Settings

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Uploads stream to disk under Gradio's own max_file_size; every other body is a handler's inputs.
UPLOAD_PATH = "/gradio_api/upload"
SLACK_BYTES = 1 << 20  # the event's envelope, the other inputs and the form's options, with room to spare
BYTES_PER_CHAR = 12  # a character outside the BMP, JSON-escaped as a surrogate pair: \ud83d\ude00


class BodyTooLarge(Exception):
    """A body sent without a length (chunked) ran past the limit while it was read."""


def body_limit(settings: Settings) -> int:
    """The largest body a caller needs: a question and a context at the server's limits, each character
    escaped at its longest, so text over the limits still reaches the check that names them."""
    return SLACK_BYTES + BYTES_PER_CHAR * (settings.max_context_chars + settings.max_question_chars)


def body_limit_middleware(settings: Settings) -> list[Middleware]:
    """For launch(app_kwargs={"middleware": ...}): Starlette takes middleware when the app is built, not after."""
    return [Middleware(LimitBody, max_bytes=body_limit(settings))]


class LimitBody:
    """Refuses a body over max_bytes with 413 before the app reads it, by its Content-Length, or stops reading a
    chunked one at the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].endswith(UPLOAD_PATH):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self.refuse(send, int(length))
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(f"request body over {self.max_bytes:,} bytes")
            return message

        return await self.app(scope, counted, send)

    async def refuse(self, send: Send, length: int) -> None:
        body = json.dumps({"detail": f"request body of {length:,} bytes; this server takes at most "
                                     f"{self.max_bytes:,}"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
