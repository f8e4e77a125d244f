"""What a job spec refers to (search space, device, warm-start architectures) checked before a job is queued.

A job queued with an unknown name or a warm start outside its space would only fail later in a worker;
checking here gives the CLI and the API the same immediate error naming the field.
"""

from __future__ import annotations

from latency_models import profile_names
from nas_service.spec import JobSpec, SpecError
from search_spaces import ArchError, decode, load_space, space_names
from search_spaces.space import Value


class UnknownNameError(SpecError):
    """A spec field naming something not registered; `loc` is the field's path in the spec."""

    def __init__(self, field: str, what: str, value: str, known: list[str]) -> None:
        super().__init__(f"invalid job spec: {field}: unknown {what} {value!r}: expected one of {', '.join(known)}")
        self.loc = (field,)


class InitialArchError(SpecError):
    """A warm-start architecture that does not decode or is not a member of the job's space."""

    def __init__(self, index: int, reason: ArchError) -> None:
        super().__init__(f"invalid job spec: initial.{index}: {reason}")
        self.loc = ("initial", index)


class ResolutionError(SpecError):
    """A fixed resolution that the job's space does not list: its candidates would not be members of the space."""

    def __init__(self, resolution: int, space: str, allowed: list[int]) -> None:
        listed = ", ".join(map(str, allowed[:-1])) + f" or {allowed[-1]}" if len(allowed) > 1 else str(allowed[0])
        super().__init__(f"invalid job spec: resolution: {resolution} is not a resolution of search space "
                         f"{space!r}: expected {listed}, or null to search them")
        self.loc = ("resolution",)


def initial_params(spec: JobSpec) -> list[dict[str, Value]]:
    """The parameters of the spec's warm-start architectures in its space."""
    space = load_space(spec.space)
    params = []
    for index, text in enumerate(spec.initial):
        try:
            arch = space.default_small() if text == "small" else decode(text)
            if spec.resolution is not None:
                arch = arch.with_resolution(spec.resolution)
            params.append(dict(space.params_for(arch, resolution=spec.resolution)))
        except ArchError as exc:
            raise InitialArchError(index, exc) from None
    return params


def check_names(spec: JobSpec) -> None:
    """Raise `UnknownNameError` when `spec.space` or `spec.device` is not registered, `ResolutionError` when the
    space does not allow `spec.resolution`, `InitialArchError` when a warm-start architecture is not in the space."""
    if spec.space not in (spaces := space_names()):
        raise UnknownNameError("space", "search space", spec.space, spaces)
    allowed = load_space(spec.space).resolutions()
    if spec.resolution is not None and spec.resolution not in allowed:
        raise ResolutionError(spec.resolution, spec.space, allowed)
    if spec.device not in (devices := profile_names()):
        raise UnknownNameError("device", "device", spec.device, devices)
    initial_params(spec)
