"""The one place where domain errors become HTTP answers: each class maps to a 4xx status, its message the detail.

Anything not listed here is a bug and stays a 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from latency_models.errors import LatencyError, ModelFileError, UnknownDeviceError
from nas_service.services.export import ExportError
from nas_service.services.jobs import JobStateError, NotFoundError
from nas_service.services.tokens import UserNameError
from nas_service.spec import SpecError
from search_spaces.errors import ArchError


class PayloadTooLargeError(ValueError):
    """An upload over the size limit."""


DOMAIN_ERRORS: dict[type[Exception], int] = {
    NotFoundError: 404,
    JobStateError: 409,
    ExportError: 409,
    PayloadTooLargeError: 413,
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


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """4xx with `{"detail": message}`; a 422 takes FastAPI's validation shape, so every 422 reads the same."""
    code = status_for(exc)
    if code == 422:
        loc = ["body", *getattr(exc, "loc", ())]
        return JSONResponse({"detail": [{"type": "value_error", "loc": loc, "msg": str(exc)}]}, status_code=422)
    return JSONResponse({"detail": str(exc)}, status_code=code)


def install(app: FastAPI) -> None:
    for cls in DOMAIN_ERRORS:
        app.add_exception_handler(cls, domain_error_handler)
