"""How far an Edge TPU estimate can be trusted: an interval from the leave-one-out errors of its size
band, and an `extrapolated` flag where the network lies outside what the calibration networks span.

Both come from the profile's `fit` record (written by `nas latency calibrate`): `bands` holds the
root-mean-square leave-one-out error of the calibration networks in each band (<3, 3-30, >30 ms),
`calibrated_range` their smallest and largest MACs, their most streamed parameter bytes and every op
type and activation they contain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latency_models import features as f
from latency_models.features import LayerTable
from latency_models.profiles import DeviceProfile

BAND_EDGES = ((3.0, "<3 ms"), (30.0, "3-30 ms"), (float("inf"), ">30 ms"))


def band_of(total_ms: float) -> str:
    return next(name for edge, name in BAND_EDGES if total_ms < edge)


def op_types(table: LayerTable) -> set[str]:
    """Priced op types of a network, and its activations other than ReLU, fused or not (a Keras model fuses
    a softmax into its dense layer, its .tflite file runs it as an op of its own)."""
    kinds = table.kind
    types = set()
    for op, act, k in zip(table.ops, table.activations, kinds, strict=True):
        if k in (f.COMPUTE, f.ELEMENTWISE):
            types.add(op)
            if act not in (None, "relu", "relu6"):
                types.add(str(act))
    return types


def network_extent(table: LayerTable, profile: DeviceProfile) -> dict[str, Any]:
    """MACs, streamed parameter bytes and op types of one network under `profile`."""
    from latency_models.edgetpu import streamed_bytes

    return {"macs": int(table.macs.sum()), "streamed_bytes": streamed_bytes(table, profile),
            "ops": op_types(table)}


def interval_pct(total_ms: float, profile: DeviceProfile) -> float | None:
    """Half-width (percent) of the estimate's interval: the rms leave-one-out error of its band."""
    bands = {b["band"]: b for b in profile.fit.get("bands", [])}
    band = bands.get(band_of(total_ms))
    return None if band is None else float(band["loo_rms_error"])


def extrapolation(table: LayerTable, streamed_bytes: int, profile: DeviceProfile) -> tuple[str, ...]:
    """Why the network lies outside the calibrated range (empty when it lies inside)."""
    span = profile.fit.get("calibrated_range")
    if not span:
        return ("the profile records no calibrated range",)
    reasons = []
    macs = int(np.sum(table.macs))
    if macs < span["min_macs"]:
        reasons.append(f"{macs / 1e6:,.1f} MMACs, fewer than any calibration network ({span['min_macs'] / 1e6:,.0f})")
    if macs > span["max_macs"]:
        reasons.append(f"{macs / 1e9:,.2f} GMACs, more than any calibration network ({span['max_macs'] / 1e9:,.2f})")
    if streamed_bytes > span["max_streamed_bytes"]:
        reasons.append(f"{streamed_bytes / 1e6:,.1f} MB of streamed parameters, more than any calibration network "
                       f"({span['max_streamed_bytes'] / 1e6:,.1f})")
    unknown = sorted(op_types(table) - set(span["ops"]))
    if unknown:
        reasons.append(f"op types no calibration network has: {', '.join(unknown)}")
    return tuple(reasons)
