"""Pydantic request and response bodies of the API. ORM rows never leave `db/`; services hand us dataclasses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from latency_models.pipeline import MAX_DEVICES
from nas_service.spec import JobSpec


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""SQLite hands back naive datetimes for timezone-aware columns (stored in UTC): answer RFC 3339 with the zone."""


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


MAX_ID = 2**63 - 1
"""Ids are 64-bit integers in every database; a larger one is a 422, not an overflow."""


class ErrorOut(BaseModel):
    detail: str


BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not valid JSON."},
    415: {"model": ErrorOut, "description": "The body is not sent as JSON (Content-Type: application/json)."}}


class Health(Out):
    status: str
    version: str
    database: str


class Me(Out):
    user: str


class SpaceOut(Out):
    name: str
    description: str
    size: int = Field(description="Number of distinct architectures in the space.")
    stages: int
    parameters: list[str]
    choices: dict[str, list[int | float | str]]
    default_small: str


class DeviceOut(Out):
    name: str
    kind: str
    description: str
    profile_version: str


T = TypeVar("T")


class Page(Out, Generic[T]):
    items: list[T]
    total: int
    offset: int = 0
    limit: int | None = None


class LatencyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arch: str = Field(min_length=1, max_length=10_000, description="An architecture string or a reference name.",
                      examples=["r96_n10/cn_k3_s2_c16_relu/er_k3_s1_e4_c16_relu/head_c256_relu"])
    device: str = Field("edgetpu_usb", max_length=100, description="A device profile name, see /devices.")


class LayerLatencyOut(Out):
    name: str
    op: str
    ms: float
    bound: str


INTERVAL_HELP = ("Half-width of the estimate's interval, percent of total_ms: the root-mean-square leave-one-"
                 "network-out error of the profile's calibration networks in the estimate's size band (<3, 3-30, "
                 ">30 ms); null for profiles without one (cpu, multi-TPU).")
EXTRAPOLATED_HELP = ("The network lies outside the calibrated range: fewer or more MACs than any calibration network, "
                     "more streamed parameters, or op types none of them has (reasons in `extrapolation`).")


class LatencyOut(Out):
    total_ms: float
    interval_pct: float | None = Field(None, description=INTERVAL_HELP)
    low_ms: float | None = Field(None, description="total_ms minus the interval.")
    high_ms: float | None = Field(None, description="total_ms plus the interval.")
    extrapolated: bool = Field(False, description=EXTRAPOLATED_HELP)
    extrapolation: list[str] = Field(default_factory=list, description="Why the estimate is extrapolated.")
    int8: bool = Field(True, description="Whether the model is full-int8, as the Edge TPU needs; false for an "
                                         "uploaded float (or partly float) .tflite, whose float ops are priced as "
                                         "CPU fallback.")
    float_ops: list[str] = Field(default_factory=list, description="Ops computing in floating point: `OP (tensor, "
                                                                   "dtype)`.")
    device: str
    profile_version: str
    on_chip_param_bytes: int
    streamed_param_bytes: int
    cpu_fallback_ops: list[str]
    unmodeled_ops: list[str]
    layers: list[LayerLatencyOut]
    arch: str | None = None


class SegmentRequest(LatencyRequest):
    devices: int = Field(2, ge=1, le=MAX_DEVICES, description="Edge TPUs to pipeline the network over; a network "
                         "with fewer places to cut uses fewer (`devices_used`).")
    strategy: Literal["latency", "params", "end_to_end"] = Field(
        "latency", description="latency: the slowest stage as fast as it can be (throughput); params: equal "
                               "parameter bytes, as edgetpu_compiler --num_segments cuts; end_to_end: the "
                               "stages' sum as small as it can be.")


class SegmentOut(Out):
    index: int
    start: int
    stop: int
    first_layer: str
    last_layer: str
    param_bytes: int
    cached_param_bytes: int
    streamed_param_bytes: int
    input_bytes: int
    output_bytes: int
    handoff_ms: float
    latency_ms: float
    cpu_fallback_ops: list[str]


class SegmentationOut(Out):
    arch: str
    device: str
    profile_version: str
    devices: int
    devices_used: int
    strategy: str
    end_to_end_ms: float
    slowest_stage_ms: float
    throughput_per_s: float
    cut_after: list[str]
    segments: list[SegmentOut]


class LatencyTotalOut(Out):
    arch: str
    device: str
    total_ms: float


class JobOut(Out):
    id: int
    name: str | None
    owner: str | None
    status: str
    spec: JobSpec
    trials_budget: int | None
    trials_done: int
    front_size: int
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    error: str | None
    trial_counts: dict[str, int] = Field(default_factory=dict, description=(
        "Trials per state: complete, stopped (early), infeasible, failed, stale, running"))
    estimated: bool = Field(default=False, description=(
        "Accuracies come from the cheap estimator (training.scorer: estimate), not from training"))


class TrialOut(Out):
    number: int
    state: str
    arch: str | None
    candidate_id: int | None
    accuracy: float | None
    latency_ms: float | None
    params: int | None
    model_bytes: int | None
    reward: float | None
    reused: bool
    on_front: bool
    worker: str | None
    error: str | None
    origin: str = Field(description="initial (the job's warm start) or sampler")
    fidelity: str = Field(default="standalone", description=(
        "standalone (trained from scratch) or oneshot (scored by the job's supernet with inherited weights)"))


class FrontPointOut(Out):
    candidate_id: int
    arch: str
    accuracy: float
    latency_ms: float
    params: int
    model_bytes: int
    int8_accuracy: float | None
    latency_profile: str
    has_tflite: bool
    origin: str = Field(description="initial (the job's warm start) or sampler: who first proposed it")
    cpu_fraction: float = Field(description="Share of the latency on the host CPU (ops the accelerator cannot run)")
    fidelity: str = Field(default="standalone", description=(
        "standalone: accuracy from training from scratch (a one-shot job's confirmed front); oneshot: from the "
        "job's supernet (its front before confirmation)"))
    oneshot_accuracy: float | None = Field(default=None, description="A confirmed member's one-shot accuracy")


class TrialPointsOut(Out):
    """Columns of equal length, one entry per scored trial (see `services.plot`)."""

    job_id: int
    status: str
    trials_done: int
    trial: list[int]
    candidate: list[int | None]
    accuracy: list[float | None]
    latency_ms: list[float]
    feasible: list[bool]
    stopped: list[bool]
    failed: list[bool]
    cpu: list[bool]
    front: list[bool]
    oneshot: list[bool] = Field(default_factory=list, description="Scored by the job's supernet (one-shot)")
    confirmed: list[float | None] = Field(default_factory=list, description=(
        "Standalone accuracy of a one-shot trial's candidate once its front confirmed it"))


class LayerOut(Out):
    name: str
    op: str
    input_shape: list[int]
    output_shape: list[int]
    kernel: int
    stride: int
    activation: str | None
    params: int
    macs: int


class CandidateOut(Out):
    id: int
    job_id: int
    arch: str
    status: str
    params: int
    macs: int
    model_bytes_estimate: int
    latency_ms: float
    latency_profile: str
    violations: dict[str, Any]
    accuracy: float | None
    int8_accuracy: float | None
    epochs_trained: int | None
    stopped_early: bool
    curve: list[Any]
    train_seconds: float | None
    model_bytes: int | None
    on_front: bool
    has_tflite: bool
    origin: str = Field(description="initial (the job's warm start) or sampler: who first proposed it")
    cpu_fraction: float = Field(description="Share of the latency on the host CPU (ops the accelerator cannot run)")
    estimated: bool = Field(description="The accuracy comes from the cheap estimator, not from training")
    layers: list[LayerOut] | None = Field(None, description="Per-layer analysis; omitted with `layers=false`.")
    latency_layers: list[LayerLatencyOut] | None = Field(None, description="Per-layer latency breakdown.")
    latency_interval_pct: float | None = Field(None, description=INTERVAL_HELP)
    latency_extrapolated: bool = Field(False, description=EXTRAPOLATED_HELP)
    latency_extrapolation: list[str] = Field(default_factory=list, description="Why the latency is extrapolated.")


class DatasetOut(Out):
    """An uploaded dataset; a job names it `upload:<id>`."""

    id: int
    name: str
    format: str
    size: int
    sha256: str
    classes: list[str]
    num_classes: int
    train_shape: list[int]
    test_shape: list[int]
    created_at: UtcDatetime
