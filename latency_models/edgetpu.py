"""The Edge TPU latency model: compute on a channel-aligned array, a parameter cache, a host link.

Per layer, on the TPU:
  compute = ms_per_gmac * padded GMACs + ms_per_melement * M elements of elementwise work
  memory  = ms_per_mb_link * MB of parameters that did not fit the on-chip cache (streamed every run)
  time    = max(compute, memory)   (streaming overlaps the layer's own compute)
The padded MACs round the reduction length (k*k*cin; k*k for depthwise) and the output channels up
to the array's alignment, so narrow layers and depthwise convolutions use the array poorly. The
cache fills in execution order. The input crosses the link once, and every invocation pays a fixed
overhead. The first op the compiler cannot map (see `edgetpu_ops`) and every op after it run on the
host CPU, priced by the profile's `host` constants.
"""

from __future__ import annotations

import numpy as np

from latency_models import edgetpu_ops
from latency_models.estimate import LatencyEstimate, LayerLatency
from latency_models.features import FREE, UNMODELED, LayerTable
from latency_models.profiles import DeviceProfile

FITTED = ("overhead_ms", "ms_per_gmac", "ms_per_melement", "ms_per_mb_link")
PRIOR = {"overhead_ms": 0.5, "ms_per_gmac": 1.0, "ms_per_melement": 1.0, "ms_per_mb_link": 2.5}
"""Datasheet-scale starting points: ~0.5 ms per invoke, half of the 2 TMAC/s peak, 1 G elements/s,
400 MB/s of practical USB 3 bandwidth. Calibration shrinks towards them in log space."""

_UNSUPPORTED_ACTIVATIONS = {"hswish": "HARD_SWISH"}
"""Fused activations whose TFLite op the compiler does not map (the op after the layer falls back)."""
_TFLITE_SPELLING = {"swish": "LOGISTIC", "sigmoid": "LOGISTIC", "hard_sigmoid": "RELU6", "identity": "RESHAPE",
                    "hswish": "HARD_SWISH"}
"""Keras-side op names of standalone activations, as the TFLite ops they become."""


def fallback_start(table: LayerTable) -> tuple[int, str]:
    """Index of the first layer that runs on the CPU (len if none), and the TFLite op that caused it."""
    for i, op in enumerate(table.ops):
        tflite_op = _TFLITE_SPELLING.get(op, op)
        if table.kind[i] != UNMODELED and \
                edgetpu_ops.unsupported_reason(edgetpu_ops.OpDetails(tflite_op)) is not None:
            return i, tflite_op
        if table.activations[i] in _UNSUPPORTED_ACTIVATIONS:
            return i + 1, _UNSUPPORTED_ACTIVATIONS[str(table.activations[i])]
    return len(table.ops), ""


def layer_times(table: LayerTable, profile: DeviceProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(ms per layer, memory-bound mask, streamed bytes per layer, first CPU layer)."""
    c, fixed = profile.constants, profile.fixed
    padded = table.padded_macs(int(fixed["reduction_align"]), int(fixed["channel_align"]))
    compute = c["ms_per_gmac"] * padded * 1e-9 + c["ms_per_melement"] * table.elements * 1e-6
    cum = np.cumsum(table.param_bytes)
    over = np.clip(cum - float(fixed["cache_bytes"]), 0.0, None)
    streamed = np.diff(over, prepend=0.0)
    memory = c["ms_per_mb_link"] * streamed * 1e-6
    times = np.maximum(compute, memory)
    first_cpu, _ = fallback_start(table)
    host = fixed["host"]
    cpu = host["ms_per_gmac"] * table.macs * 1e-9 + host["ms_per_melement"] * table.elements * 1e-6
    on_cpu = np.arange(len(times)) >= first_cpu
    times = np.where(on_cpu, cpu, times)
    times = np.where((table.kind == FREE) | (table.kind == UNMODELED), 0.0, times)
    streamed = np.where(on_cpu, 0.0, streamed)
    return times, (memory > compute) & ~on_cpu, streamed, first_cpu


def total_ms(table: LayerTable, profile: DeviceProfile) -> float:
    times, _, _, first_cpu = layer_times(table, profile)
    c = profile.constants
    return float(c["overhead_ms"] + times.sum() + c["ms_per_mb_link"] * table.input_bytes * 1e-6)


def estimate(table: LayerTable, profile: DeviceProfile) -> LatencyEstimate:
    key = f"edgetpu:{profile.version}"
    if key not in table.memo:
        table.memo[key] = _estimate(table, profile)
    result: LatencyEstimate = table.memo[key]
    return result


def _estimate(table: LayerTable, profile: DeviceProfile) -> LatencyEstimate:
    times, memory_bound, streamed, first_cpu = layer_times(table, profile)
    c = profile.constants
    io_ms = c["overhead_ms"] + c["ms_per_mb_link"] * table.input_bytes * 1e-6
    bounds = np.where(np.arange(len(times)) >= first_cpu, "cpu", np.where(memory_bound, "memory", "compute"))
    layers = tuple(LayerLatency(n, o, float(t), str(b))
                   for n, o, t, b in zip(table.names, table.ops, times.tolist(), bounds.tolist(), strict=True))
    layers = (LayerLatency("invoke+io", "overhead", float(io_ms), "memory"), *layers)
    on_chip = int(table.param_bytes[:first_cpu].sum() - streamed.sum())
    fallback = tuple(table.ops[first_cpu:])
    if first_cpu < len(table.ops) and first_cpu > 0 and table.activations[first_cpu - 1] in _UNSUPPORTED_ACTIVATIONS:
        fallback = (_UNSUPPORTED_ACTIVATIONS[str(table.activations[first_cpu - 1])].lower(), *fallback)
    return LatencyEstimate(float(io_ms + times.sum()), layers, on_chip, int(streamed.sum()), fallback,
                           table.unmodeled, profile.name, profile.version)
