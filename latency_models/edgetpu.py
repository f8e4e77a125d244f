"""The Edge TPU latency model: an array whose efficiency falls with activation size, a parameter
cache, and a host link that streams what does not fit.

Per layer on the TPU (padded GMACs round the reduction k*k*cin, k*k for depthwise, and the output
channels up to the array's alignment, so narrow and depthwise layers use the array poorly):

  compute = padded GMACs * (ms_per_gmac + ms_per_gmac_per_mb_activation * MB of input + output)
            + ms_per_melement * M elements of elementwise work + ms_per_layer

`ms_per_layer` (fixed, 10 us) is the array's cost of starting a layer. Layers whose activations
are large run further below peak: the tiles hold only a slice of them.
Parameters fill the ~7.9 MiB cache in execution order; the rest is streamed from the host on every
invocation. Streamed weights of a convolution (reused over its output positions) are prefetched
over the link while earlier layers compute, up to `prefetch_bytes` per layer: their link time
only counts where it exceeds the compute of the whole graph. The part of a layer's weights beyond
the prefetch buffer, and all streamed weights of fully connected layers (reuse 1), are fetched
when the layer runs, at `ms_per_mb_link`. So

  total = overhead_ms + ms_per_mb_prefetch * input MB (one bulk transfer) + sum(compute)
          + ms_per_mb_link * synchronously streamed MB
          + max(0, ms_per_mb_prefetch * prefetched MB - sum(compute)) + CPU fallback time

The first op the compiler cannot map (see `edgetpu_ops`) and every op after it run on the host
CPU, priced by the profile's `host` constants. `batch_totals` prices many networks in one pass;
`estimate` adds the per-layer breakdown and gives the same total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latency_models import features as f
from latency_models.estimate import LatencyEstimate, LayerLatency
from latency_models.features import LayerTable, TableBatch
from latency_models.profiles import DeviceProfile

FITTED = ("overhead_ms", "ms_per_gmac", "ms_per_gmac_per_mb_activation", "ms_per_melement", "ms_per_mb_prefetch",
          "ms_per_mb_link")
PRIOR = {"overhead_ms": 1.0, "ms_per_gmac": 1.0, "ms_per_gmac_per_mb_activation": 1.0, "ms_per_melement": 1.0,
         "ms_per_mb_prefetch": 1.0, "ms_per_mb_link": 2.0}
"""Datasheet-scale starting points: ~1 ms per invoke, half of the 2 TMAC/s peak (slower by as much
again per MB of activations), 1 G elements/s, and ~500 MB/s (2 ms/MB) of practical USB 3
bandwidth for weights fetched when needed (1 ms/MB when prefetched in bulk). Calibration shrinks
towards them in log space."""


@dataclass(frozen=True)
class _Terms:
    """Per-layer terms of a batch of tables (rows concatenated), and per-table sums."""

    layer_ms: np.ndarray  # compute + synchronous streaming on the TPU, host time on the CPU, 0 when free
    compute_ms: np.ndarray  # compute on the TPU
    prefetch_ms: np.ndarray  # link time of the weights prefetched while earlier layers compute
    memory_bound: np.ndarray
    streamed: np.ndarray
    on_cpu: np.ndarray
    first_cpu: np.ndarray  # per table
    hidden_excess_ms: np.ndarray  # per table: prefetch link time not hidden behind compute
    io_ms: np.ndarray  # per table: invocation overhead and input transfer
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
    priced = (kind == f.COMPUTE) | (kind == f.ELEMENTWISE)
    on_tpu = priced & ~on_cpu

    padded_gmacs = f.padded_macs(rows, int(fixed["reduction_align"]), int(fixed["channel_align"])) * 1e-9
    activation_mb = (rows[:, f.IN_ELEMENTS] + rows[:, f.OUT_ELEMENTS]) * 1e-6
    compute = (padded_gmacs * (c["ms_per_gmac"] + c["ms_per_gmac_per_mb_activation"] * activation_mb)
               + c["ms_per_melement"] * rows[:, f.ELEMENTS] * 1e-6 + float(fixed["ms_per_layer"]))
    compute = np.where(on_tpu, compute, 0.0)

    param_bytes = np.where(on_tpu, rows[:, f.PARAM_BYTES], 0.0)
    cum = np.cumsum(param_bytes)
    cum -= np.concatenate([[0.0], cum])[starts][seg]  # cumulative within each table (exact: whole bytes)
    over = np.clip(cum - float(fixed["cache_bytes"]), 0.0, None)
    streamed = over - np.clip(cum - param_bytes - float(fixed["cache_bytes"]), 0.0, None)
    dense = (kind == f.COMPUTE) & (rows[:, f.POSITIONS] <= 1)
    prefetched = np.where(dense, 0.0, np.minimum(streamed, float(fixed["prefetch_bytes"])))
    sync_ms = c["ms_per_mb_link"] * (streamed - prefetched) * 1e-6

    host = fixed["host"]
    cpu = host["ms_per_gmac"] * rows[:, f.MACS] * 1e-9 + host["ms_per_melement"] * rows[:, f.ELEMENTS] * 1e-6
    layer_ms = np.where(on_cpu & priced, cpu, compute + sync_ms)

    def per_table(values: np.ndarray) -> np.ndarray:
        summed: np.ndarray = np.bincount(seg, weights=values, minlength=n)
        return summed

    tpu_compute = per_table(compute)
    prefetch_ms = c["ms_per_mb_prefetch"] * prefetched * 1e-6
    hidden_excess = np.maximum(per_table(prefetch_ms) - tpu_compute, 0.0)
    io_ms = c["overhead_ms"] + c["ms_per_mb_prefetch"] * batch.input_bytes * 1e-6
    total = io_ms + per_table(layer_ms) + hidden_excess
    return _Terms(layer_ms, compute, prefetch_ms, (sync_ms > compute) & on_tpu, streamed, on_cpu, first_cpu,
                  hidden_excess, io_ms, total)


def running_totals(table: LayerTable, profile: DeviceProfile) -> np.ndarray:
    """Element k-1: the total ms of the table's first k layers run as a network of their own (as
    `batch_totals` prices that prefix), for every k in one pass: what a pipeline segment starting at
    the table's first layer costs for each place it could stop."""
    terms = _terms(TableBatch.of([table]), profile)
    hidden = np.maximum(np.cumsum(terms.prefetch_ms) - np.cumsum(terms.compute_ms), 0.0)
    totals: np.ndarray = terms.io_ms[0] + np.cumsum(terms.layer_ms) + hidden
    return totals


def first_cpu_layer(table: LayerTable, profile: DeviceProfile) -> int:
    """The index of the first layer the host CPU runs (the table's length when the TPU runs them all)."""
    return int(_terms(TableBatch.of([table]), profile).first_cpu[0])


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
        layers.append(LayerLatency("weight prefetch beyond compute", "stream", float(terms.hidden_excess_ms[0]),
                                   "memory"))
    streamed = int(terms.streamed.sum())
    tpu_params = int(np.where(terms.on_cpu, 0.0, table.param_bytes).sum())
    fallback = tuple(table.ops[first_cpu:])
    if 0 < first_cpu < len(table.ops) and table.activations[first_cpu - 1] in f.UNSUPPORTED_ACTIVATIONS:
        fallback = (f.UNSUPPORTED_ACTIVATIONS[str(table.activations[first_cpu - 1])].lower(), *fallback)
    return LatencyEstimate(float(terms.total_ms[0]), tuple(layers), tpu_params - streamed, streamed, fallback,
                           table.unmodeled, profile.name, profile.version)
