"""Names a job spec refers to (search space, device) checked against what is registered, before a job is queued.

A job queued with an unknown name would only fail later in a worker; checking here gives the CLI and the
API the same immediate error naming the field and the allowed values.
"""

from __future__ import annotations

from latency_models import profile_names
from nas_service.spec import JobSpec, SpecError
from search_spaces import space_names


class UnknownNameError(SpecError):
    """A spec field naming something not registered; `loc` is the field's path in the spec."""

    def __init__(self, field: str, what: str, value: str, known: list[str]) -> None:
        super().__init__(f"invalid job spec: {field}: unknown {what} {value!r}: expected one of {', '.join(known)}")
        self.loc = (field,)


def check_names(spec: JobSpec) -> None:
    """Raise `UnknownNameError` when `spec.space` or `spec.device` is not registered."""
    if spec.space not in (spaces := space_names()):
        raise UnknownNameError("space", "search space", spec.space, spaces)
    if spec.device not in (devices := profile_names()):
        raise UnknownNameError("device", "device", spec.device, devices)
