"""JSON request bodies must say so: a body sent as `text/plain` (or any other non-JSON type) gets 415.

FastAPI reads a body as JSON only when its Content-Type is JSON; otherwise it validates the raw text against
the route's model and answers a 422 ("Input should be a valid dictionary") that blames the content, not
the header. Multipart (the .tflite upload), raw files to the routes that take them (`RAW_BODY_PATHS`, the
dataset upload) and bodies without a Content-Type pass through unchanged.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

BODY_METHODS = (b"POST", b"PUT", b"PATCH")
RAW_BODY_PATHS = ("/datasets",)
"""Routes under the prefix whose body is a file (`application/octet-stream` or `application/zip`)."""
RAW_TYPES = ("application/octet-stream", "application/zip", "application/x-zip-compressed")


def is_accepted(content_type: str) -> bool:
    """JSON (`application/json`, `application/*+json`), a multipart upload, or no type at all."""
    media = content_type.split(";", 1)[0].strip().lower()
    return (not media or media == "application/json" or (media.startswith("application/") and
                                                          media.endswith("+json"))
            or media == "multipart/form-data")


class JsonBodiesOnly:
    """ASGI middleware answering 415 for a non-empty body of another media type under the API prefix."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"].encode() in BODY_METHODS
                and scope["path"].startswith(self.prefix)):
            headers = dict(scope["headers"])
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
            raw = (scope["path"].removeprefix(self.prefix) in RAW_BODY_PATHS
                   and content_type.split(";", 1)[0].strip().lower() in RAW_TYPES)
            if has_body and not raw and not is_accepted(content_type):
                detail = (f"unsupported Content-Type {content_type[:100]!r}: send the body as JSON with "
                          "Content-Type: application/json")
                body = json.dumps({"detail": detail}, ensure_ascii=True).encode()
                await send({"type": "http.response.start", "status": 415,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
