"""The host-CPU latency model (`cpu_litert`: int8 TFLite through XNNPACK on one thread).

A CPU runs one op after another, so latency is a sum over layers of linear costs: nanoseconds per
MAC differ for 1x1 convolutions (GEMM), k x k convolutions (im2col + GEMM), depthwise convolutions
and dense layers; elementwise ops cost per element touched; every op pays a dispatch cost; every
invocation pays a fixed overhead. The coefficients are fitted by non-negative least squares on
relative error from `nas latency collect` measurements (`fit_cpu`).
"""

from __future__ import annotations

import numpy as np

from latency_models.estimate import LatencyEstimate, LayerLatency
from latency_models.features import COMPUTE, ELEMENTWISE, LayerTable
from latency_models.profiles import DeviceProfile

COLUMNS = ("ms_per_gmac_conv1x1", "ms_per_gmac_conv", "ms_per_gmac_depthwise", "ms_per_gmac_dense",
           "ms_per_melement", "ms_per_op")


def layer_features(table: LayerTable) -> np.ndarray:
    """(layers x COLUMNS) feature matrix whose product with the coefficients is ms per layer."""
    ops = np.asarray(table.ops)
    gmacs = table.macs * 1e-9
    conv = ops == "conv2d"
    kernel_one = table.kernels == 1
    one = conv & kernel_one
    return np.column_stack([
        np.where(one, gmacs, 0.0),
        np.where(conv & ~kernel_one, gmacs, 0.0),
        np.where(ops == "depthwise_conv2d", gmacs, 0.0),
        np.where(ops == "fully_connected", gmacs, 0.0),
        table.elements * 1e-6,
        ((table.kind == COMPUTE) | (table.kind == ELEMENTWISE)).astype(float),
    ])


def coefficients(profile: DeviceProfile) -> np.ndarray:
    return np.array([profile.constants[c] for c in COLUMNS])


def total_ms(table: LayerTable, profile: DeviceProfile) -> float:
    return float(profile.constants["overhead_ms"] + (layer_features(table) @ coefficients(profile)).sum())


def estimate(table: LayerTable, profile: DeviceProfile) -> LatencyEstimate:
    times = layer_features(table) @ coefficients(profile)
    overhead = profile.constants["overhead_ms"]
    layers = (LayerLatency("invoke", "overhead", overhead, "cpu"),
              *(LayerLatency(n, o, float(t), "cpu") for n, o, t in zip(table.names, table.ops, times.tolist(),
                                                                       strict=True)))
    return LatencyEstimate(float(overhead + times.sum()), layers, 0, 0, (), table.unmodeled, profile.name,
                           profile.version)
