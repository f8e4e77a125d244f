"""Single-objective rewards of the `target` mode, both from the papers that introduced them."""

from __future__ import annotations

from nas_service.spec import Target


def reward(accuracy: float, latency_ms: float, target: Target) -> float:
    """MnasNet soft reward ACC * (LAT / T) ** w, or TuNAS absolute reward ACC + w * |LAT / T - 1|."""
    ratio = latency_ms / target.latency_ms
    if target.reward == "mnasnet":
        return float(accuracy * ratio**target.w)
    return float(accuracy + target.w * abs(ratio - 1.0))
