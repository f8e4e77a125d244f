"""Cutting a network into pipeline segments, one per Edge TPU, priced by the latency model.

`edgetpu_compiler --num_segments N` cuts a model into N segments that `PipelinedModelRunner` runs on N
Edge TPUs, each caching its own segment's parameters: a model over one TPU's ~8 MB cache no longer
streams weights over the host link on every inference. The compiler balances parameter bytes; Coral's
profiling partitioner balances measured latency and needs the devices. Here the latency model stands in
for the devices.

A cut goes between two layers where exactly one tensor crosses (the output a later segment reads, handed
over through the host), and only where the Edge TPU runs both sides: the first op the compiler cannot
map and everything after it stay in the last segment, on the host CPU. Each segment is priced as a network
of its own on its own TPU: invocation overhead, its input's transfer (the hand-off from the previous
TPU), compute, and the part of its parameters beyond its own cache streamed. A pipeline's end-to-end
latency is the sum of its stages; its throughput is one inference per slowest stage.

A network with fewer valid cut points than devices is cut at all of them and uses fewer TPUs (the others
idle): the segmentation says how many it uses (`devices_used`). At most `MAX_DEVICES` devices are asked for,
the same on the CLI, the API and the multi-TPU profiles.

Strategies, each an exact dynamic programme over the valid cut points: `params` minimises the largest
segment's parameter bytes (what the compiler does), `latency` the slowest stage (the pipeline's
throughput), `end_to_end` the sum of the stages (one inference's latency).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from latency_models import edgetpu
from latency_models import features as f
from latency_models.errors import LatencyError
from latency_models.estimate import LatencyEstimate, LayerLatency
from latency_models.features import LayerTable
from latency_models.profiles import PIPELINE_KIND, DeviceProfile

STRATEGIES = ("latency", "params", "end_to_end")
MAX_DEVICES = 8
"""The most Edge TPUs a network is pipelined over (a host holds a few USB Accelerators or PCIe cards)."""


class SegmentationError(LatencyError):
    """A segmentation that cannot be asked for (a device that is not an Edge TPU, a device count out of range)."""


@dataclass(frozen=True)
class Segment:
    index: int
    start: int
    """Index of its first layer in the network's layer IR; `stop` is one past its last."""
    stop: int
    first_layer: str
    last_layer: str
    param_bytes: int
    cached_param_bytes: int
    streamed_param_bytes: int
    input_bytes: int
    """The tensor handed to this segment (the network's input for the first), int8."""
    output_bytes: int
    """The tensor it hands on (to the next TPU, or the network's output to the host)."""
    handoff_ms: float
    """The input's transfer, part of `latency_ms`."""
    latency_ms: float
    """The stage's latency on its own TPU."""
    cpu_fallback_ops: tuple[str, ...]


@dataclass(frozen=True)
class Segmentation:
    device: str
    profile_version: str
    devices: int
    """The TPUs asked for; `devices_used` may be fewer (a network with fewer places to cut)."""
    strategy: str
    segments: tuple[Segment, ...]

    @property
    def devices_used(self) -> int:
        """One TPU per segment: fewer than `devices` when the network has fewer valid cut points."""
        return len(self.segments)

    @property
    def end_to_end_ms(self) -> float:
        """What one inference waits: every stage in turn."""
        return float(sum(s.latency_ms for s in self.segments))

    @property
    def slowest_stage_ms(self) -> float:
        return max(s.latency_ms for s in self.segments)

    @property
    def throughput_per_s(self) -> float:
        """Inferences per second with the pipeline full: one per slowest stage."""
        return 1000.0 / self.slowest_stage_ms

    @property
    def cut_after(self) -> tuple[str, ...]:
        """The layers after which the network is cut."""
        return tuple(s.last_layer for s in self.segments[:-1])

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "profile_version": self.profile_version, "devices": self.devices,
                "devices_used": self.devices_used, "strategy": self.strategy, "end_to_end_ms": self.end_to_end_ms,
                "slowest_stage_ms": self.slowest_stage_ms, "throughput_per_s": self.throughput_per_s,
                "cut_after": list(self.cut_after),
                "segments": [{**asdict(s), "cpu_fallback_ops": list(s.cpu_fallback_ops)} for s in self.segments]}


def segment_table(table: LayerTable, n_devices: int, profile: DeviceProfile, strategy: str = "latency") -> Segmentation:
    """Cut a network's layer table into `n_devices` segments, one per Edge TPU, or into fewer when it has fewer
    valid cut points (`latency_models.segment` takes any form of network)."""
    if profile.kind not in ("edgetpu", PIPELINE_KIND):
        raise SegmentationError(f"device {profile.name!r} is a {profile.kind} device: expected an Edge TPU profile "
                                "(edgetpu_usb, edgetpu_devboard)")
    if strategy not in STRATEGIES:
        raise SegmentationError(f"unknown segmentation strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if not 1 <= n_devices <= MAX_DEVICES:
        raise SegmentationError(f"{n_devices} devices: expected 1 to {MAX_DEVICES}")
    crossing, single = _crossings(table)
    first_cpu = edgetpu.first_cpu_layer(table, profile)
    points = [0, *(b for b in range(1, min(first_cpu, len(table.names))) if single[b]), len(table.names)]
    inputs = [table.input_bytes if p == 0 else int(crossing[p]) for p in points]
    latency = _stage_costs(table, profile, points, inputs)
    params = np.cumsum(np.concatenate([[0.0], table.param_bytes]))[points]
    param_cost = np.where(np.triu(np.ones_like(latency, dtype=bool), 1), params[None, :] - params[:, None], np.inf)
    chosen = _best_path(param_cost if strategy == "params" else latency, min(n_devices, len(points) - 1),
                        np.add if strategy == "end_to_end" else np.maximum)
    outputs = [*inputs[1:-1], int(table.rows[-1, f.OUT_ELEMENTS])]
    segments = tuple(_segment(table, profile, k, points[i], points[j], inputs[i], outputs[j - 1], latency[i, j])
                     for k, (i, j) in enumerate(zip(chosen, chosen[1:], strict=False)))
    return Segmentation(profile.name, profile.version, n_devices, strategy, segments)


def _crossings(table: LayerTable) -> tuple[np.ndarray, np.ndarray]:
    """Per boundary b (before layer b): the int8 bytes of the tensors crossing it, and whether exactly one does."""
    n = len(table.names)
    last_use = np.full(n + 1, -1)  # index p + 1 for producer p (-1: the network's input)
    for consumer, producers in enumerate(table.inputs or [(i - 1,) for i in range(n)]):
        for p in producers:
            last_use[p + 1] = max(last_use[p + 1], consumer)
    out_bytes = np.concatenate([[table.input_bytes], table.rows[:, f.OUT_ELEMENTS]])  # int8: a byte each
    count, size = np.zeros(n + 2), np.zeros(n + 2)
    for p in range(-1, n):  # producer p is live across boundaries p + 1 .. last_use
        first, last = p + 1, int(last_use[p + 1])
        if last >= first:
            count[first] += 1
            count[last + 1] -= 1
            size[first] += out_bytes[p + 1]
            size[last + 1] -= out_bytes[p + 1]
    return np.cumsum(size)[: n + 1], np.cumsum(count)[: n + 1] == 1


def _stage_costs(table: LayerTable, profile: DeviceProfile, points: list[int], inputs: list[int]) -> np.ndarray:
    """Matrix [i, j]: the latency of the segment from cut point i to cut point j (inf where j <= i)."""
    costs = np.full((len(points), len(points)), np.inf)
    for i, start in enumerate(points[:-1]):
        running = edgetpu.running_totals(table.part(start, len(table.names), inputs[i]), profile)
        costs[i, i + 1:] = running[np.array(points[i + 1:]) - start - 1]
    return costs


def _best_path(cost: np.ndarray, parts: int, combine: Any) -> list[int]:
    """Indices 0 = i0 < i1 < ... < i_parts = last of the points minimising the costs cost[i_k, i_k+1]
    combined by `combine` (np.maximum: the largest; np.add: their sum)."""
    n = len(cost)
    best = np.full((parts + 1, n), np.inf)
    back = np.zeros((parts + 1, n), dtype=int)
    best[0, 0] = 0.0
    for k in range(1, parts + 1):
        candidates = combine(best[k - 1][:, None], cost)  # [i, j]: reach i in k-1 parts, then i -> j
        back[k] = np.argmin(candidates, axis=0)
        best[k] = candidates[back[k], np.arange(n)]
    path = [n - 1]
    for k in range(parts, 0, -1):
        path.append(int(back[k, path[-1]]))
    return path[::-1]


def _segment(table: LayerTable, profile: DeviceProfile, index: int, start: int, stop: int, input_bytes: int,
             output_bytes: int, latency_ms: float) -> Segment:
    part = table.part(start, stop, input_bytes)
    estimate = edgetpu.estimate(part, profile)
    return Segment(index, start, stop, table.names[start], table.names[stop - 1], int(part.param_bytes.sum()),
                   estimate.on_chip_param_bytes, estimate.streamed_param_bytes, input_bytes, output_bytes,
                   profile.constants["ms_per_mb_io"] * input_bytes * 1e-6, float(latency_ms),
                   estimate.cpu_fallback_ops)


# The predictor of multi-TPU profiles (`profiles.PIPELINES`): as many segments as the profile has devices (fewer when
# the network has fewer places to cut: the other TPUs idle), cut for what the profile measures.
def estimate(table: LayerTable, profile: DeviceProfile) -> LatencyEstimate:
    result: LatencyEstimate = table.priced(f"pipeline:{profile.version}", lambda t: _pipeline_estimate(t, profile))
    return result


def _pipeline_estimate(table: LayerTable, profile: DeviceProfile) -> LatencyEstimate:
    end_to_end = profile.fixed["measure"] == "end_to_end"
    cut = segment_table(table, int(profile.fixed["devices"]), profile, "end_to_end" if end_to_end else "latency")
    measure = cut.end_to_end_ms if end_to_end else cut.slowest_stage_ms
    layers = tuple(LayerLatency(f"segment {s.index} ({s.first_layer} .. {s.last_layer})", "segment", s.latency_ms,
                                "memory" if s.streamed_param_bytes else "compute") for s in cut.segments)
    return LatencyEstimate(measure, layers, sum(s.cached_param_bytes for s in cut.segments),
                           sum(s.streamed_param_bytes for s in cut.segments), cut.segments[-1].cpu_fallback_ops,
                           table.unmodeled, profile.name, profile.version, float_ops=table.float_ops)
