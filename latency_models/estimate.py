"""What a latency prediction returns: the total, where it comes from, and what it could not price."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class LayerLatency(NamedTuple):
    """One layer's share of the total. `bound` is 'compute', 'memory' or 'cpu'."""

    name: str
    op: str
    ms: float
    bound: str


@dataclass(frozen=True)
class LatencyEstimate:
    total_ms: float
    layers: tuple[LayerLatency, ...]
    on_chip_param_bytes: int
    streamed_param_bytes: int
    cpu_fallback_ops: tuple[str, ...]
    unmodeled_ops: tuple[str, ...]
    device: str
    profile_version: str
    interval_pct: float | None = None
    """Half-width of the estimate's interval, percent of the total: the rms leave-one-out error of the
    calibration networks in its size band; None when the profile records none."""
    extrapolation: tuple[str, ...] = ()
    """Why the network lies outside the calibrated range; empty when it lies inside."""
    float_ops: tuple[str, ...] = ()
    """Ops computing in floating point (a .tflite that is not full-int8): an accelerator that runs only int8
    leaves them, and everything after the first, to the host CPU, which is how they are priced."""

    @property
    def int8(self) -> bool:
        """Whether the model is full-int8, as the Edge TPU needs."""
        return not self.float_ops

    @property
    def extrapolated(self) -> bool:
        return bool(self.extrapolation)

    @property
    def low_ms(self) -> float | None:
        return None if self.interval_pct is None else self.total_ms * (1 - self.interval_pct / 100)

    @property
    def high_ms(self) -> float | None:
        return None if self.interval_pct is None else self.total_ms * (1 + self.interval_pct / 100)

    def summary(self) -> str:
        """`2.10 ms ± 11%` (and `, extrapolated` when it is)."""
        text = f"{self.total_ms:.3f} ms" + ("" if self.interval_pct is None else f" ± {self.interval_pct:.0f}%")
        return text + (", extrapolated" if self.extrapolated else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_ms": self.total_ms,
            "interval_pct": self.interval_pct,
            "low_ms": self.low_ms,
            "high_ms": self.high_ms,
            "extrapolated": self.extrapolated,
            "extrapolation": list(self.extrapolation),
            "int8": self.int8,
            "float_ops": list(self.float_ops),
            "device": self.device,
            "profile_version": self.profile_version,
            "on_chip_param_bytes": self.on_chip_param_bytes,
            "streamed_param_bytes": self.streamed_param_bytes,
            "cpu_fallback_ops": list(self.cpu_fallback_ops),
            "unmodeled_ops": list(self.unmodeled_ops),
            "layers": [layer._asdict() for layer in self.layers],
        }
