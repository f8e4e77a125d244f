"""Names a job spec refers to (search space, device) checked against what is registered, before a job is queued.

A job queued with an unknown name would only fail later in a worker; checking here gives the CLI and the
API the same immediate error naming the field and the allowed values.
"""

from __future__ import annotations

from latency_models import profile_names
from nas_service.spec import JobSpec, SpecError
from search_spaces import space_names


def check_names(spec: JobSpec) -> None:
    """Raise `SpecError` when `spec.space` or `spec.device` is not registered."""
    spaces = space_names()
    if spec.space not in spaces:
        raise SpecError(f"invalid job spec: space: unknown search space {spec.space!r}: expected one of "
                        f"{', '.join(spaces)}")
    devices = profile_names()
    if spec.device not in devices:
        raise SpecError(f"invalid job spec: device: unknown device {spec.device!r}: expected one of "
                        f"{', '.join(devices)}")
