"""Latency prediction for an architecture string or an uploaded `.tflite` file (size-limited).

Both go through `latency_models.predict`: strings are analysed in pure Python, `.tflite` files are read
by the LiteRT interpreter. Neither imports TensorFlow.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

import latency_models
from nas_service.api.deps import AUTH_RESPONSES, Ctx, User
from nas_service.api.errors import PayloadTooLargeError
from nas_service.api.schemas import (
    BAD_BODY,
    ErrorOut,
    LatencyOut,
    LatencyRequest,
    LatencyTotalOut,
    SegmentationOut,
    SegmentRequest,
)
from nas_service.services import latency
from search_spaces import encode, resolve

router = APIRouter(prefix="/latency", tags=["latency"], responses=AUTH_RESPONSES)

MAX_TFLITE_BYTES = 32 * 2**20
"""Largest accepted upload; Edge TPU models are a few MB (the parameter cache is ~8 MB)."""
MULTIPART_SLACK = 64 * 1024
"""Room for multipart headers and the device field: a larger body is refused before it is read."""

Device = Annotated[str, Form(max_length=100, description="A device profile name, see /devices.")]


@router.post("/predict", response_model=LatencyOut, responses=BAD_BODY)
def predict_arch(body: LatencyRequest, user: User) -> LatencyOut:
    """Predicted latency of an architecture string (or reference name) on a device, with its per-layer breakdown."""
    arch = resolve(body.arch)
    estimate = latency.predict(arch, body.device)
    return LatencyOut.model_validate({**estimate.to_dict(), "arch": encode(arch)})


@router.post("/total", response_model=LatencyTotalOut, responses=BAD_BODY)
async def predict_total(body: LatencyRequest, user: User, ctx: Ctx) -> LatencyTotalOut:
    """Predicted total latency only, for clients pricing many architectures: concurrent calls are priced
    together in one vectorised batch per device, after waiting at most 2 ms for others to join."""
    arch = resolve(body.arch)
    latency_models.load_profile(body.device)  # an unknown device fails here, not its batch
    total = await ctx.latency.total_ms(arch, body.device)
    return LatencyTotalOut(arch=encode(arch), device=body.device, total_ms=total)


@router.post("/segment", response_model=SegmentationOut, responses=BAD_BODY)
def segment_arch(body: SegmentRequest, user: User) -> SegmentationOut:
    """An architecture cut into pipeline segments over several Edge TPUs: per segment its layers, parameter
    bytes (cached or streamed on its own TPU), the tensor it is handed and its latency; the pipeline's
    end-to-end latency and throughput."""
    arch = resolve(body.arch)
    cut = latency.segment(arch, body.devices, body.device, body.strategy)
    return SegmentationOut.model_validate({**cut.to_dict(), "arch": encode(arch)})


@router.post("/predict-tflite", response_model=LatencyOut, max_body_size=MAX_TFLITE_BYTES + MULTIPART_SLACK, responses={
    413: {"model": ErrorOut, "description": "The upload is over the size limit."},
    422: {"description": "Not a TFLite model, or an unknown device."}})
def predict_tflite(
    user: User,
    file: Annotated[UploadFile, File(description=f"A .tflite model, at most {MAX_TFLITE_BYTES // 2**20} MiB.")],
    device: Device = "edgetpu_usb",
) -> LatencyOut:
    """Predicted latency of an uploaded TFLite model (read by the LiteRT interpreter, never TensorFlow)."""
    latency_models.load_profile(device)  # an unknown device fails before the upload is read
    data = file.file.read(MAX_TFLITE_BYTES + 1)
    if len(data) > MAX_TFLITE_BYTES:
        raise PayloadTooLargeError(f"upload {file.filename!r} is over {MAX_TFLITE_BYTES} bytes: "
                                   "expected a .tflite model of at most that size")
    return LatencyOut.model_validate(latency.predict_tflite_bytes(data, device).to_dict())
