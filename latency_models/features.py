"""The layer IR as numpy columns, computed once per network and shared by every device model.

Each layer gets a kind (compute, elementwise, free or unmodeled), its MACs, the MACs it occupies
on an array of given channel alignment, its parameter bytes as int8 (int32 bias per output
channel), and the tensor elements it reads or writes. Non-free activations (hard-swish, swish,
sigmoid, ...) fused into a layer cost as many elementwise passes over its output as TFLite runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search_spaces.analysis import Layer

COMPUTE, ELEMENTWISE, FREE, UNMODELED = 0, 1, 2, 3

COMPUTE_OPS = frozenset({"conv2d", "depthwise_conv2d", "fully_connected"})
ELEMENTWISE_OPS = frozenset({
    "add", "sub", "mul", "maximum", "minimum", "concatenation", "pad", "padv2", "mean", "reduce_max", "sum",
    "max_pool_2d", "average_pool_2d", "softmax", "logistic", "hard_swish", "relu", "relu6", "tanh", "swish",
    "sigmoid", "hard_sigmoid", "hswish", "quantize", "dequantize", "resize", "resize_bilinear",
    "resize_nearest_neighbor", "strided_slice", "slice", "split", "transpose", "l2_normalization", "leaky_relu",
    "prelu", "identity", "gelu", "elu"})
FREE_OPS = frozenset({"reshape", "squeeze", "expand_dims"})

ACTIVATION_PASSES = {None: 0, "relu": 0, "relu6": 0, "hswish": 1, "hard_sigmoid": 1, "sigmoid": 1, "tanh": 1,
                     "softmax": 1, "swish": 2, "gelu": 2, "elu": 1}
"""Extra elementwise passes a fused activation costs (relu/relu6 clamp for free in int8 kernels)."""


@dataclass(frozen=True)
class LayerTable:
    names: tuple[str, ...]
    ops: tuple[str, ...]
    kind: np.ndarray  # int8 codes above
    macs: np.ndarray  # float64
    reduction: np.ndarray  # MAC reduction length per output (k*k*cin, k*k for depthwise, cin for dense)
    out_channels: np.ndarray
    positions: np.ndarray  # output positions per output channel (H*W)
    param_bytes: np.ndarray
    elements: np.ndarray  # elements an elementwise op touches, plus activation passes of compute ops
    input_bytes: int
    activations: tuple[str | None, ...]
    kernels: np.ndarray
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Per-profile results of the device models, so a table is priced once per profile."""

    @property
    def unmodeled(self) -> tuple[str, ...]:
        """Ops no device model can price, as `op (layer name)`."""
        return tuple(f"{op} ({name})" for op, name, k in zip(self.ops, self.names, self.kind, strict=True)
                     if k == UNMODELED)

    def padded_macs(self, reduction_align: int, channel_align: int) -> np.ndarray:
        """MACs occupied on an array that processes `reduction_align` x `channel_align` lanes at once."""
        red = np.ceil(self.reduction / reduction_align) * reduction_align
        out = np.ceil(self.out_channels / channel_align) * channel_align
        return np.where(self.kind == COMPUTE, self.positions * red * out, 0.0)


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def layer_table(layers: tuple[Layer, ...]) -> LayerTable:
    n = len(layers)
    kind = np.empty(n, np.int8)
    macs, red, outc, pos, pbytes, elems = (np.zeros(n) for _ in range(6))
    for i, la in enumerate(layers):
        out_size = _size(la.output_shape)
        if la.op in COMPUTE_OPS:
            kind[i] = COMPUTE
            c = la.output_shape[-1] if la.output_shape else 1
            macs[i] = la.macs
            outc[i] = c
            pos[i] = out_size / max(c, 1)
            red[i] = la.macs / max(out_size, 1)
            pbytes[i] = la.weights + (4 * c if (la.bias or la.batch_norm) else 0)
            elems[i] = ACTIVATION_PASSES.get(la.activation, 1) * out_size
        elif la.op in ELEMENTWISE_OPS:
            kind[i] = ELEMENTWISE
            passes = 1 + ACTIVATION_PASSES.get(la.activation, 1)
            elems[i] = passes * max(out_size, _size(la.input_shape))
            pbytes[i] = la.weights + (la.output_shape[-1] if la.batch_norm and la.output_shape else 0)
        elif la.op in FREE_OPS:
            kind[i] = FREE
        else:
            kind[i] = UNMODELED
    input_bytes = _size(layers[0].input_shape) if layers else 0
    return LayerTable(tuple(la.name for la in layers), tuple(la.op for la in layers), kind, macs, red, outc, pos,
                      pbytes, elems, input_bytes,
                      tuple(la.activation for la in layers), np.array([la.kernel for la in layers]))
