"""Latency prediction for an architecture string or an uploaded `.tflite` file (size-limited)."""

from __future__ import annotations

from fastapi import APIRouter

from nas_service.api.deps import User
from nas_service.api.schemas import LatencyOut, LatencyRequest
from nas_service.cli.arch import resolve_arch
from nas_service.controller import latency
from search_spaces import encode

router = APIRouter(prefix="/latency", tags=["latency"])

MAX_TFLITE_BYTES = 32 * 2**20
"""Largest accepted upload; Edge TPU models are a few MB (the parameter cache is ~8 MB)."""


@router.post("/predict", response_model=LatencyOut)
def predict_arch(body: LatencyRequest, user: User) -> LatencyOut:
    """Predicted latency of an architecture string (or reference name) on a device, with its per-layer breakdown."""
    arch = resolve_arch(body.arch)
    result = latency.predict_latency(arch, body.device)
    return LatencyOut.model_validate({**result.detail, "arch": encode(arch)})
