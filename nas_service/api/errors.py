"""The one place where domain errors become HTTP answers: each class maps to a 4xx status, its message the detail.

Anything not listed here is a bug and stays a 500.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from latency_models.errors import LatencyError, ModelFileError, UnknownDeviceError
from nas_service.db.artifacts import ArtifactCorruptError, ArtifactMissingError
from nas_service.services.export import ExportError
from nas_service.services.jobs import JobStateError, NotFoundError
from nas_service.services.tokens import UserNameError
from nas_service.services.uploads import DatasetTooLargeError, UploadRefusedError
from nas_service.spec import SpecError
from search_spaces.errors import ArchError


class PayloadTooLargeError(ValueError):
    """An upload over the size limit."""


DOMAIN_ERRORS: dict[type[Exception], int] = {
    NotFoundError: 404,
    ArtifactMissingError: 404,
    ArtifactCorruptError: 409,
    JobStateError: 409,
    ExportError: 409,
    PayloadTooLargeError: 413,
    DatasetTooLargeError: 413,
    UploadRefusedError: 422,
    ModelFileError: 422,
    UnknownDeviceError: 422,
    LatencyError: 422,
    SpecError: 422,
    ArchError: 422,
    UserNameError: 422,
}
"""Most specific first: the first class an error is an instance of decides its status."""


def status_for(exc: Exception) -> int:
    for cls, code in DOMAIN_ERRORS.items():
        if isinstance(exc, cls):
            return code
    raise exc


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error may quote hostile input, and a lone surrogate
    (valid in a JSON escape, not in UTF-8) would otherwise fail the response itself."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """4xx with `{"detail": message}`; a 422 takes FastAPI's validation shape, so every 422 reads the same."""
    code = status_for(exc)
    if code == 422:
        loc = ["body", *getattr(exc, "loc", ())]
        return AsciiJSONResponse({"detail": [{"type": "value_error", "loc": loc, "msg": str(exc)}]}, status_code=422)
    return AsciiJSONResponse({"detail": str(exc)}, status_code=code)


def _echo(value: Any) -> Any:
    """The rejected input as echoed in a 422: short scalars as they are, bytes decoded leniently, the rest cut."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "..."
    return value if isinstance(value, str | int | float | bool) or value is None else "(omitted)"


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 shape (type, loc, msg, input), safe whatever the body held: invalid UTF-8, lone surrogates,
    megabyte strings."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": str(e.get("msg")),
               "input": _echo(e.get("input"))} for e in errors]
    return AsciiJSONResponse({"detail": detail}, status_code=422)


def install(app: FastAPI) -> None:
    for cls in DOMAIN_ERRORS:
        app.add_exception_handler(cls, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
