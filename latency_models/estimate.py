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

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_ms": self.total_ms,
            "device": self.device,
            "profile_version": self.profile_version,
            "on_chip_param_bytes": self.on_chip_param_bytes,
            "streamed_param_bytes": self.streamed_param_bytes,
            "cpu_fallback_ops": list(self.cpu_fallback_ops),
            "unmodeled_ops": list(self.unmodeled_ops),
            "layers": [layer._asdict() for layer in self.layers],
        }
