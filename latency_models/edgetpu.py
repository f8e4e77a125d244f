"""The Edge TPU latency model: a fixed invocation cost, an array whose narrow and depthwise layers
run below peak, on-chip activation memory, and a parameter cache whose overflow is streamed over
the host link.

Per layer the TPU runs (concatenations are free, data traffic included: the compiler writes their
inputs in place):

  compute = ms_per_layer
            + ms_per_gmac * padded GMACs           (convolutions, transposed convolutions, dense)
            + ms_per_gmac_depthwise * GMACs        (depthwise: one reduction lane per channel)
            + ms_per_mb_activation * MB read and written
            + ms_per_melement * M elements          (sums, products, activations; pools only move data)
  spill   = ms_per_mb_link * (MB beyond the activation memory (input + output over `activation_bytes`)
                              + 2 * MB of its output when that output is held (`features.HELD_SPAN`) while
                                the working set of the layers between exceeds `activation_bytes`: written
                                to host memory and read back)

Padded GMACs round the reduction (k*k*cin) and the output channels up to the array's lanes (16),
so a layer narrower than the lanes pays for them, and a wider one does not. A stride-s transposed
convolution runs as s*s convolutions, one per output phase (`features.DILATED_OPS`): ceil(k/s)^2 * cin
at every output position, 16/9 of the MACs the op needs for k 3, s 2. Parameters fill the
~7.9 MiB cache in execution order; the rest is streamed on every invocation while the array works
(double-buffered), so the TPU's time is max(sum of compute, ms_per_mb_link * streamed MB); spilled
activations share that link but wait for it. So

  total = overhead_ms + ms_per_mb_io * (input MB + output MB) + host_ms_per_melement * M output elements
          + max(sum(compute), link streaming) + sum(spill) + CPU time of fallback ops

The output term is the host handling the network's output once the TPU has produced it (taken out of the
driver's buffer into the interpreter's output tensor) at the host's element rate, the rate it runs fallback
ops at, with no constant of its own; where ops fall back, they read the TPU's output themselves and their
elements already price it. It is what separates a segmentation network's 128x128xC output on the Dev
Board's Cortex-A53 (U-Net MobileNetV2 at 128 px: 5.7 ms there, 3.0 on a USB desktop) from a classifier's
1,001 scores; `ms_per_mb_io` cannot: its fitted value is its prior's (a prior of 0.1, 1 or 10 ms per MB
fits 0.1, 1.0 or 4.3-5.0), since at the 50+ ms per MB the U-Net would need, a 224 px network's 0.15 MB
input would cost 8 ms. An assumption chosen by leave-one-out (calibration.ASSUMPTIONS), not a published figure.

The first op the compiler cannot map (see `edgetpu_ops`) and every op after it run on the host CPU
at its `host` rate per GMAC and at the fitted `host_ms_per_melement` (detection postprocess and
other element-bound ops). `batch_totals` prices many networks in one pass; `estimate` adds the
per-layer breakdown and gives the same total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latency_models import features as f
from latency_models import uncertainty
from latency_models.estimate import LatencyEstimate, LayerLatency
from latency_models.features import LayerTable, TableBatch
from latency_models.profiles import DeviceProfile

FITTED = ("overhead_ms", "ms_per_layer", "ms_per_gmac", "ms_per_gmac_depthwise", "ms_per_mb_activation",
          "ms_per_melement", "ms_per_mb_link", "ms_per_mb_io", "host_ms_per_melement")
PRIOR = {"overhead_ms": 0.3, "ms_per_layer": 0.005, "ms_per_gmac": 1.0, "ms_per_gmac_depthwise": 4.0,
         "ms_per_mb_activation": 0.05, "ms_per_melement": 1.0, "ms_per_mb_link": 2.0, "ms_per_mb_io": 1.0}
"""Datasheet-scale starting points: a fraction of a millisecond per invocation (a driver round trip),
5 us to start a layer, half of the 2 TMAC/s peak (4 TOPS) on full convolutions and a quarter of that
on depthwise ones (16 lanes of which one reduces), ~20 GB/s of on-chip activation bandwidth, 1 G
elements/s, ~500 MB/s of USB 3 for streamed parameters and spilled activations, ~1 GB/s for the input
and output transfer. The host's element rate starts from the profile's `host.ms_per_melement`.
Calibration shrinks towards them in log space."""

def prior(fixed: dict[str, object]) -> dict[str, float]:
    """The priors of a profile's fitted constants (the host's element rate is the profile's own)."""
    host = fixed.get("host", {})
    return {**PRIOR, "host_ms_per_melement": float(host.get("ms_per_melement", 5.0)) if isinstance(host, dict)
            else 5.0}


@dataclass(frozen=True)
class _Terms:
    """Per-layer terms of a batch of tables (rows concatenated), and per-table sums."""

    layer_ms: np.ndarray  # compute on the TPU, host time on the CPU, 0 when free
    compute_ms: np.ndarray  # compute on the TPU
    stream_ms: np.ndarray  # link time of the layer's streamed parameters
    memory_bound: np.ndarray
    streamed: np.ndarray
    on_cpu: np.ndarray
    first_cpu: np.ndarray  # per table
    hidden_excess_ms: np.ndarray  # per table: streaming time not hidden behind compute
    io_ms: np.ndarray  # per table: invocation overhead, input and output transfer
    total_ms: np.ndarray  # per table


def _terms(batch: TableBatch, profile: DeviceProfile) -> _Terms:
    c, fixed = profile.constants, profile.fixed
    rows, lengths = batch.rows, batch.lengths
    n = len(lengths)
    seg = np.repeat(np.arange(n), lengths)
    starts = np.cumsum(lengths) - lengths
    local = np.arange(len(rows)) - starts[seg]
    kind, code = rows[:, f.KIND], rows[:, f.FALLBACK]
    never = np.iinfo(np.int64).max
    candidate = np.where(code == f.OP_FALLS_BACK, local, np.where(code == f.NEXT_FALLS_BACK, local + 1, never))
    first_cpu = np.full(n, never)
    np.minimum.at(first_cpu, seg, candidate)
    first_cpu = np.minimum(first_cpu, lengths)
    on_cpu = local >= first_cpu[seg]
    pool, in_place = rows[:, f.DATA_OP] == f.POOLS, rows[:, f.DATA_OP] == f.IN_PLACE
    priced = (kind == f.COMPUTE) | (kind == f.ELEMENTWISE)
    on_tpu = priced & ~on_cpu

    depthwise = rows[:, f.OPCODE] == f.DEPTHWISE
    padded_gmacs = f.padded_macs(rows, int(fixed["reduction_align"]), int(fixed["channel_align"])) * 1e-9
    activation = rows[:, f.IN_ELEMENTS] + rows[:, f.OUT_ELEMENTS]
    capacity = float(fixed["activation_bytes"])
    held_out = np.where(rows[:, f.HELD_PEAK] > capacity, rows[:, f.OUT_ELEMENTS], 0.0)  # written out, read back
    spill_mb = (np.clip(activation - capacity, 0.0, None) + 2.0 * held_out) * 1e-6
    elementwise = np.where((kind == f.ELEMENTWISE) & ~pool & ~in_place, rows[:, f.ELEMENTS], 0.0)
    array_ms = np.where(depthwise, c["ms_per_gmac_depthwise"] * rows[:, f.MACS] * 1e-9, c["ms_per_gmac"] * padded_gmacs)
    compute = (np.where(in_place, 0.0, c["ms_per_layer"] + c["ms_per_mb_activation"] * activation * 1e-6) + array_ms
               + c["ms_per_melement"] * elementwise * 1e-6)
    compute = np.where(on_tpu, compute, 0.0)
    spill_ms = np.where(on_tpu, c["ms_per_mb_link"] * spill_mb, 0.0)

    param_bytes = np.where(on_tpu, rows[:, f.PARAM_BYTES], 0.0)
    cum = np.cumsum(param_bytes)
    cum -= np.concatenate([[0.0], cum])[starts][seg]  # cumulative within each table (exact: whole bytes)
    over = np.clip(cum - float(fixed["cache_bytes"]), 0.0, None)
    streamed = over - np.clip(cum - param_bytes - float(fixed["cache_bytes"]), 0.0, None)
    stream_ms = c["ms_per_mb_link"] * streamed * 1e-6

    host = fixed["host"]
    cpu = host["ms_per_gmac"] * rows[:, f.MACS] * 1e-9 + c["host_ms_per_melement"] * rows[:, f.ELEMENTS] * 1e-6
    layer_ms = np.where(on_cpu & priced, cpu, compute + spill_ms)

    def per_table(values: np.ndarray) -> np.ndarray:
        summed: np.ndarray = np.bincount(seg, weights=values, minlength=n)
        return summed

    tpu_compute = per_table(compute)
    hidden_excess = np.maximum(per_table(stream_ms) - tpu_compute, 0.0)
    last_tpu = starts + np.maximum(np.minimum(first_cpu, lengths) - 1, 0)
    output = np.where(first_cpu > 0, rows[last_tpu, f.OUT_ELEMENTS], 0.0) if len(rows) else np.zeros(n)
    read = np.where((first_cpu >= lengths) & (lengths > 0), output, 0.0)  # the host reads the TPU's output
    io_ms = (c["overhead_ms"] + c["ms_per_mb_io"] * (batch.input_bytes + output) * 1e-6
             + c["host_ms_per_melement"] * read * 1e-6)
    total = io_ms + per_table(layer_ms) + hidden_excess
    return _Terms(layer_ms, compute, stream_ms, (spill_ms + stream_ms > compute) & on_tpu, streamed,
                  on_cpu, first_cpu, hidden_excess, io_ms, total)


def running_totals(table: LayerTable, profile: DeviceProfile) -> np.ndarray:
    """Element k-1: the total ms of the table's first k layers run as a network of their own (as
    `batch_totals` prices that prefix), for every k in one pass: what a pipeline segment starting at
    the table's first layer costs for each place it could stop."""
    terms = _terms(TableBatch.of([table]), profile)
    c = profile.constants
    hidden = np.maximum(np.cumsum(terms.stream_ms) - np.cumsum(terms.compute_ms), 0.0)
    output = np.where(terms.on_cpu, 0.0, table.rows[:, f.OUT_ELEMENTS])
    tpu_only = np.arange(len(output)) < terms.first_cpu[0]
    output = np.where(tpu_only, output, output[max(int(terms.first_cpu[0]) - 1, 0)])
    io = (c["overhead_ms"] + c["ms_per_mb_io"] * (table.input_bytes + output) * 1e-6
          + c["host_ms_per_melement"] * np.where(tpu_only, output, 0.0) * 1e-6)
    totals: np.ndarray = io + np.cumsum(terms.layer_ms) + hidden
    return totals


def first_cpu_layer(table: LayerTable, profile: DeviceProfile) -> int:
    """The index of the first layer the host CPU runs (the table's length when the TPU runs them all)."""
    return int(_terms(TableBatch.of([table]), profile).first_cpu[0])


def streamed_bytes(table: LayerTable, profile: DeviceProfile) -> int:
    """Parameter bytes streamed over the host link on every invocation."""
    return int(_terms(TableBatch.of([table]), profile).streamed.sum())


def batch_totals(batch: TableBatch, profile: DeviceProfile) -> np.ndarray:
    """Total ms of each network of the batch: one vectorised pass over all their rows."""
    return _terms(batch, profile).total_ms


def estimate(table: LayerTable, profile: DeviceProfile) -> LatencyEstimate:
    result: LatencyEstimate = table.priced(f"edgetpu:{profile.version}", lambda t: _estimate(t, profile))
    return result


def _estimate(table: LayerTable, profile: DeviceProfile) -> LatencyEstimate:
    terms = _terms(TableBatch.of([table]), profile)
    first_cpu = int(terms.first_cpu[0])
    bounds = np.where(terms.on_cpu, "cpu", np.where(terms.memory_bound, "memory", "compute"))
    layers = [LayerLatency("invoke+io", "overhead", float(terms.io_ms[0]), "memory"),
              *(LayerLatency(n, o, t, str(b)) for n, o, t, b in
                zip(table.names, table.ops, terms.layer_ms.tolist(), bounds.tolist(), strict=True))]
    if terms.hidden_excess_ms[0] > 0:
        layers.append(LayerLatency("parameter streaming beyond compute", "stream",
                                   float(terms.hidden_excess_ms[0]), "memory"))
    streamed = int(terms.streamed.sum())
    tpu_params = int(np.where(terms.on_cpu, 0.0, table.param_bytes).sum())
    fallback = tuple(table.ops[first_cpu:])
    if 0 < first_cpu < len(table.ops) and table.activations[first_cpu - 1] in f.UNSUPPORTED_ACTIVATIONS:
        fallback = (f.UNSUPPORTED_ACTIVATIONS[str(table.activations[first_cpu - 1])].lower(), *fallback)
    total = float(terms.total_ms[0])
    return LatencyEstimate(total, tuple(layers), tpu_params - streamed, streamed, fallback, table.unmodeled,
                           profile.name, profile.version, uncertainty.interval_pct(total, profile),
                           uncertainty.extrapolation(table, streamed, profile) if profile.fit else (), table.float_ops)
