"""What a job can ask for: the registered search spaces and device profiles, and the spec's defaults."""

from __future__ import annotations

from fastapi import APIRouter

import latency_models
from nas_service.api.deps import AUTH_RESPONSES, User
from nas_service.api.schemas import DeviceOut, Page, SpaceOut
from nas_service.spec import JobSpec
from search_spaces import load_space, space_names

router = APIRouter(tags=["catalog"], responses=AUTH_RESPONSES)


@router.get("/spaces", response_model=Page[SpaceOut])
def list_spaces(user: User) -> Page[SpaceOut]:
    """The registered search spaces, with their choices and sizes."""
    items = [SpaceOut.model_validate(load_space(name).to_dict()) for name in space_names()]
    return Page[SpaceOut](items=items, total=len(items))


@router.get("/spec/defaults", response_model=JobSpec)
def spec_defaults(user: User) -> JobSpec:
    """The job a spec leaves to its defaults (the README's default job): what the dashboard's form starts from."""
    return JobSpec()


@router.get("/devices", response_model=Page[DeviceOut])
def list_devices(user: User) -> Page[DeviceOut]:
    """The device profiles latency can be predicted for."""
    profiles = [latency_models.load_profile(name) for name in latency_models.profile_names()]
    items = [DeviceOut(name=p.name, kind=p.kind, description=p.description, profile_version=p.version)
             for p in profiles]
    return Page[DeviceOut](items=items, total=len(items))
