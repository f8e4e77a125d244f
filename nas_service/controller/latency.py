"""Latency of a candidate on the job's device: the one place the controller asks for it.

It is `latency_models.predict` (the calibrated device profile); the result keeps the profile
version so that a stored latency always says which model produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import latency_models
from search_spaces import ArchSpec


@dataclass(frozen=True)
class LatencyResult:
    total_ms: float
    device: str
    profile_version: str
    detail: dict[str, Any] = field(default_factory=dict)
    cpu_ms: float = 0.0
    """The part of `total_ms` spent on the host CPU (ops the accelerator cannot run, and all after them)."""


def device_names() -> list[str]:
    return latency_models.profile_names()


def predict_latency(arch: ArchSpec, device: str) -> LatencyResult:
    """Predicted single-image latency of `arch` on `device`, with the profile version it came from."""
    estimate = latency_models.predict(arch, device=device)
    cpu_ms = sum(layer.ms for layer in estimate.layers if layer.bound == "cpu")
    return LatencyResult(round(float(estimate.total_ms), 5), estimate.device, estimate.profile_version,
                         estimate.to_dict(), round(float(cpu_ms), 5))
