"""Latency of a candidate on the job's device, the one place the controller asks for it.

Until `latency_models.predict` is available this is a documented MACs-based stand-in for the Edge
TPU (profile `macs-standin-1`): per layer, MACs over peak throughput (2 TMAC/s: 4 TOPS int8) at an
op-dependent array utilisation (conv 25%, depthwise 6%, dense 3%), plus parameter streaming over
the host link for parameters beyond the ~7.9 MiB on-chip cache, plus a fixed invocation and
input-transfer overhead. It orders candidates sensibly; it is not calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from search_spaces import ArchSpec, analyze
from search_spaces.errors import ArchError

STANDIN_PROFILE = "macs-standin-1"
PEAK_MACS_PER_S = 2e12
ON_CHIP_BYTES = int(7.9 * 2**20)
UTILISATION = {"conv2d": 0.25, "depthwise_conv2d": 0.06, "fully_connected": 0.03}
DEVICES = {  # name: (host link bytes/s, fixed overhead ms)
    "edgetpu_usb": (320e6, 0.25),
    "edgetpu_devboard": (900e6, 0.15),
}


@dataclass(frozen=True)
class LatencyResult:
    total_ms: float
    device: str
    profile_version: str
    detail: dict[str, Any] = field(default_factory=dict)


def device_names() -> list[str]:
    return sorted(DEVICES)


def check_device(device: str) -> None:
    if device not in DEVICES:
        raise ArchError(f"unknown device {device!r}: expected one of {', '.join(device_names())}",
                        value=device, where="device", expected=", ".join(device_names()))


def predict_latency(arch: ArchSpec, device: str) -> LatencyResult:
    """Predicted single-image latency of `arch` on `device`, with the profile version it came from."""
    check_device(device)
    link_bytes_per_s, overhead_ms = DEVICES[device]
    analysis = analyze(arch)
    layers = []
    compute_ms = 0.0
    for layer in analysis.layers:
        util = UTILISATION.get(layer.op)
        ms = layer.macs / (PEAK_MACS_PER_S * util) * 1e3 if util else 0.0
        compute_ms += ms
        layers.append({"name": layer.name, "op": layer.op, "ms": round(ms, 5), "bound": "compute"})
    param_bytes = analysis.folded_params
    streamed = max(0, param_bytes - ON_CHIP_BYTES)
    memory_ms = streamed / link_bytes_per_s * 1e3
    io_ms = (arch.resolution * arch.resolution * 3) / link_bytes_per_s * 1e3
    total = compute_ms + memory_ms + io_ms + overhead_ms
    detail = {"total_ms": total, "device": device, "profile_version": STANDIN_PROFILE,
              "on_chip_param_bytes": param_bytes - streamed, "streamed_param_bytes": streamed,
              "cpu_fallback_ops": [], "unmodeled_ops": [], "layers": layers}
    return LatencyResult(round(total, 5), device, STANDIN_PROFILE, detail)
