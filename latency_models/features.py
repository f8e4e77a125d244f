"""The layer IR as numeric columns, computed once per network and shared by every device model.

Each layer becomes one row of `COLUMNS`: its kind (compute, elementwise, free or unmodeled), an op
code, its MACs, reduction length, output channels and positions, its parameter bytes as int8 (int32
bias per output channel), the elements an elementwise pass touches (non-free activations fused into
a layer cost as many passes over its output as TFLite runs), its input and output elements, kernel,
and the Edge TPU fallback code of the op. A layer is first reduced to integer `SPEC`s and
`rows_from_specs` computes every column, vectorised: the readers' `Layer`s and the fast `ArchSpec`
path (`arch_rows`) both go through it, so both give the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latency_models import edgetpu_ops
from search_spaces.analysis import Layer, layer_inputs

COMPUTE, ELEMENTWISE, FREE, UNMODELED = 0, 1, 2, 3
OTHER, CONV, DEPTHWISE, DENSE = 0, 1, 2, 3
"""Op codes: compute layers by kind, everything else OTHER."""

COMPUTE_OPS = {"conv2d": CONV, "depthwise_conv2d": DEPTHWISE, "fully_connected": DENSE, "transpose_conv": CONV}
ELEMENTWISE_OPS = frozenset({
    "add", "sub", "mul", "maximum", "minimum", "concatenation", "pad", "padv2", "mean", "reduce_max", "sum",
    "max_pool_2d", "average_pool_2d", "softmax", "logistic", "hard_swish", "relu", "relu6", "tanh", "swish",
    "sigmoid", "hard_sigmoid", "hswish", "quantize", "dequantize", "resize", "resize_bilinear",
    "resize_nearest_neighbor", "strided_slice", "slice", "split", "transpose", "l2_normalization", "leaky_relu",
    "prelu", "identity", "gelu", "elu", "detection_postprocess"})
FREE_OPS = frozenset({"reshape", "squeeze", "expand_dims"})
DILATED_OPS = frozenset({"transpose_conv"})
"""Ops whose reduction is that of their phase decomposition: a stride-s transposed convolution runs as s*s
stride-1 convolutions of the input, one per output phase, each with a ceil(k/s) x ceil(k/s) kernel (the
phases' kernels padded to the largest), so every output position reduces ceil(k/s)^2 * cin: 4 * cin for k 3,
s 2, 1.8 times the op's own 9/4 * cin (the `reduction` column, which only the Edge TPU model's padding reads).
Running it over the zero-dilated input instead (k*k*cin, 4 times the op's MACs) gives leave-one-out MAPE
13.7% (USB) / 11.5% (Dev Board) against 7.9% / 9.0%; the op's own MACs 11.2% / 10.0%."""


def _phase_reduction(weights: np.ndarray, kernel: np.ndarray, channels: np.ndarray, in_size: np.ndarray,
                     out_size: np.ndarray) -> np.ndarray:
    """ceil(k/s)^2 * cin per output position of a transposed convolution (see `DILATED_OPS`)."""
    k = np.maximum(kernel, 1)
    cin = np.maximum(weights / (k * k * channels), 1.0)
    stride = np.maximum(np.rint(np.sqrt((out_size / channels) / np.maximum(in_size / cin, 1.0))), 1.0)
    result: np.ndarray = np.ceil(k / stride) ** 2 * cin
    return result

ACTIVATION_PASSES = {None: 0, "relu": 0, "relu6": 0, "hswish": 1, "hard_sigmoid": 1, "sigmoid": 1, "tanh": 1,
                     "softmax": 1, "swish": 2, "gelu": 2, "elu": 1}
"""Extra elementwise passes a fused activation costs (relu/relu6 clamp for free in int8 kernels)."""

COLUMNS = ("kind", "opcode", "macs", "reduction", "out_channels", "positions", "param_bytes", "elements",
           "in_elements", "out_elements", "kernel", "fallback", "data_op", "held_peak")
(KIND, OPCODE, MACS, REDUCTION, OUT_CHANNELS, POSITIONS, PARAM_BYTES, ELEMENTS, IN_ELEMENTS, OUT_ELEMENTS, KERNEL,
 FALLBACK, DATA_OP, HELD_PEAK) = range(len(COLUMNS))

HELD_SPAN = 10
"""A layer's output read again more than this many layers after it (a U-Net skip, a detector's feature tap) is
*held*: it occupies activation memory while the layers between run. `held_peak` is the largest working set
(input, output and every held tensor) of those layers, 0 for a tensor that is not held. Tensors read again
within a block (a residual shortcut, a squeeze-excite input: at most 8 layers on in every search space) are
not held, so the fast `arch_rows` path, which has no graph, gives the same column (0)."""

COMPUTES, POOLS, IN_PLACE = 0, 1, 2
"""`data_op` codes: an op that computes on its elements; a pool (it only moves and compares data); an op
the Edge TPU compiler writes in place (a concatenation's inputs are written into its output)."""
POOL_OPS = frozenset({"max_pool_2d", "average_pool_2d", "mean", "reduce_max"})
IN_PLACE_OPS = frozenset({"concatenation"})

NO_FALLBACK, OP_FALLS_BACK, NEXT_FALLS_BACK = 0, 1, 2
"""Edge TPU fallback codes: the op runs on the TPU; the op itself cannot be mapped; its fused
activation cannot be mapped, so the CPU takes over from the next op."""

UNSUPPORTED_ACTIVATIONS = {"hswish": "HARD_SWISH"}
"""Fused activations whose TFLite op the compiler does not map (the op after the layer falls back)."""
TFLITE_SPELLING = {"swish": "LOGISTIC", "sigmoid": "LOGISTIC", "hard_sigmoid": "RELU6", "identity": "RESHAPE",
                   "hswish": "HARD_SWISH"}
"""Keras-side op names of standalone activations, as the TFLite ops they become."""

_FALLBACK_CACHE: dict[tuple[str, str | None, int], int] = {}


def fallback_code(op: str, activation: str | None, kind: int) -> int:
    """Whether the Edge TPU compiler maps this op (see `edgetpu_ops`); memoised per (op, activation)."""
    key = (op, activation, kind)
    code = _FALLBACK_CACHE.get(key)
    if code is None:
        tflite_op = TFLITE_SPELLING.get(op, op)
        if kind != UNMODELED and edgetpu_ops.unsupported_reason(edgetpu_ops.OpDetails(tflite_op)) is not None:
            code = OP_FALLS_BACK
        elif activation in UNSUPPORTED_ACTIVATIONS:
            code = NEXT_FALLS_BACK
        else:
            code = NO_FALLBACK
        _FALLBACK_CACHE[key] = code
    return code


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


SPEC = ("op_activation", "in_elements", "out_elements", "channels", "kernel", "weights", "bias", "batch_norm", "macs")
"""What `rows_from_specs` needs of a layer, as integers; `op_activation` interns the (op, activation) pair."""

_OP_ACTIVATIONS: list[tuple[str, str | None]] = []
_OP_ACTIVATION_IDS: dict[tuple[str, str | None], int] = {}
_LOOKUP: list[np.ndarray] = []


def op_activation_id(op: str, activation: str | None) -> int:
    key = (op, activation)
    found = _OP_ACTIVATION_IDS.get(key)
    if found is None:
        found = _OP_ACTIVATION_IDS[key] = len(_OP_ACTIVATIONS)
        _OP_ACTIVATIONS.append(key)
    return found


def layer_spec(op: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...], kernel: int, weights: int,
               bias: bool, batch_norm: bool, activation: str | None, macs: int) -> tuple[int, ...]:
    """The `SPEC` of one layer of the IR."""
    return (op_activation_id(op, activation), _size(input_shape), _size(output_shape),
            output_shape[-1] if output_shape else 0, kernel, weights, int(bias), int(batch_norm), macs)


def _lookup() -> np.ndarray:
    """(kind, opcode, activation passes, fallback code, data op, dilated) per interned (op, activation) pair."""
    if not _LOOKUP or len(_LOOKUP[0]) != len(_OP_ACTIVATIONS):
        table = []
        for op, activation in _OP_ACTIVATIONS:
            kind = COMPUTE if op in COMPUTE_OPS else ELEMENTWISE if op in ELEMENTWISE_OPS else \
                FREE if op in FREE_OPS else UNMODELED
            data_op = POOLS if op in POOL_OPS else IN_PLACE if op in IN_PLACE_OPS else COMPUTES
            table.append((kind, COMPUTE_OPS.get(op, OTHER), ACTIVATION_PASSES.get(activation, 1),
                          fallback_code(op, activation, kind), data_op, int(op in DILATED_OPS)))
        _LOOKUP[:] = [np.array(table, dtype=np.int64).reshape(-1, 6)]
    return _LOOKUP[0]


def rows_from_specs(specs: np.ndarray) -> np.ndarray:
    """(layers x COLUMNS) float rows from (layers x SPEC) integer specs: the one place features are computed."""
    info = _lookup()[specs[:, 0]]
    kind, opcode, passes, fallback, data_op, dilated = info.T
    in_size, out_size, channels, kernel, weights, bias, batch_norm, macs = specs[:, 1:].T
    compute, elementwise = kind == COMPUTE, kind == ELEMENTWISE
    c = np.where(channels == 0, 1, channels)
    rows = np.zeros((len(specs), len(COLUMNS)))
    rows[:, KIND] = kind
    rows[:, OPCODE] = opcode
    rows[:, MACS] = macs
    reduction = np.where(dilated == 1, _phase_reduction(weights, kernel, c, in_size, out_size),
                         macs / np.maximum(out_size, 1))
    rows[:, REDUCTION] = np.where(compute, reduction, 0.0)
    rows[:, OUT_CHANNELS] = np.where(compute, c, 0)
    rows[:, POSITIONS] = np.where(compute, out_size / c, 0.0)
    rows[:, PARAM_BYTES] = np.where(compute, weights + np.where((bias | batch_norm) > 0, 4 * c, 0),
                                    np.where(elementwise, weights + np.where(batch_norm > 0, channels, 0), 0))
    rows[:, ELEMENTS] = np.where(compute, passes * out_size,
                                 np.where(elementwise, (1 + passes) * np.maximum(out_size, in_size), 0))
    rows[:, IN_ELEMENTS] = in_size
    rows[:, OUT_ELEMENTS] = out_size
    rows[:, KERNEL] = kernel
    rows[:, FALLBACK] = fallback
    rows[:, DATA_OP] = data_op
    return rows


@dataclass(frozen=True)
class LayerTable:
    """A network's layers as a (layers x COLUMNS) float array, with names for the per-layer breakdown.

    """

    names: tuple[str, ...]
    ops: tuple[str, ...]
    activations: tuple[str | None, ...]
    rows: np.ndarray
    input_bytes: int
    inputs: tuple[tuple[int, ...], ...] = field(default=(), compare=False, repr=False)
    """Per layer, the layers whose outputs it reads (-1: the network's input): where it can be cut."""
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Per-profile results of the device models, so a table is priced once per profile."""
    float_ops: tuple[str, ...] = field(default=(), compare=False)
    """Ops that compute in floating point, as `OP (layer name)`: a model that is not full-int8. The Edge TPU
    runs none of them (their FALLBACK is OP_FALLS_BACK, so they and all after them are priced on the CPU)."""

    def priced(self, key: str, price: Callable[[LayerTable], Any]) -> Any:
        """`price(self)`, computed once per `key` (a device model and profile version) while the table lives."""
        if key not in self.memo:
            self.memo[key] = price(self)
        return self.memo[key]

    def part(self, start: int, stop: int, input_bytes: int) -> LayerTable:
        """Layers `start` to `stop` (excluded) as a network of their own, fed `input_bytes` by the host."""
        return LayerTable(self.names[start:stop], self.ops[start:stop], self.activations[start:stop],
                          self.rows[start:stop], input_bytes)

    def column(self, index: int) -> np.ndarray:
        return self.rows[:, index]

    @property
    def kind(self) -> np.ndarray:
        return self.rows[:, KIND]

    @property
    def macs(self) -> np.ndarray:
        return self.rows[:, MACS]

    @property
    def param_bytes(self) -> np.ndarray:
        return self.rows[:, PARAM_BYTES]

    @property
    def elements(self) -> np.ndarray:
        return self.rows[:, ELEMENTS]

    @property
    def unmodeled(self) -> tuple[str, ...]:
        """Ops no device model can price, as `op (layer name)`."""
        return tuple(f"{op} ({name})" for op, name, k in zip(self.ops, self.names, self.kind, strict=True)
                     if k == UNMODELED)


def padded_macs(rows: np.ndarray, reduction_align: int, channel_align: int) -> np.ndarray:
    """MACs occupied on an array that processes `reduction_align` x `channel_align` lanes at once."""
    red = np.ceil(rows[:, REDUCTION] / reduction_align) * reduction_align
    out = np.ceil(rows[:, OUT_CHANNELS] / channel_align) * channel_align
    result: np.ndarray = np.where(rows[:, KIND] == COMPUTE, rows[:, POSITIONS] * red * out, 0.0)
    return result


def held_peaks(rows: np.ndarray, inputs: Sequence[tuple[int, ...]], span: int = HELD_SPAN) -> np.ndarray:
    """Per layer, the `held_peak` of its output (see `HELD_SPAN`): what a network's graph says about the
    tensors alive at once, which a chain of layers cannot say."""
    n = len(rows)
    last = np.arange(n)
    for i, ins in enumerate(inputs):
        for p in ins:
            if p >= 0:
                last[p] = max(last[p], i)
    held = np.zeros(n)
    between: dict[int, list[int]] = {}
    for producer in np.flatnonzero(last > np.arange(n) + span).tolist():
        between[producer] = [i for i in range(producer + 1, int(last[producer])) if producer not in inputs[i]]
        held[between[producer]] += rows[producer, OUT_ELEMENTS]
    working = rows[:, IN_ELEMENTS] + rows[:, OUT_ELEMENTS] + held
    peaks = np.zeros(n)
    for producer, layers in between.items():
        peaks[producer] = working[layers].max() if layers else 0.0
    return peaks


def specs_array(specs: list[tuple[int, ...]]) -> np.ndarray:
    return np.array(specs, dtype=np.int64).reshape(len(specs), len(SPEC))


def layer_table(layers: tuple[Layer, ...]) -> LayerTable:
    specs = [layer_spec(la.op, la.input_shape, la.output_shape, la.kernel, la.weights, la.bias, la.batch_norm,
                        la.activation, la.macs) for la in layers]
    input_bytes = _size(layers[0].input_shape) if layers else 0
    rows = rows_from_specs(specs_array(specs))
    floating = [i for i, la in enumerate(layers) if la.float_dtype]
    rows[floating, FALLBACK] = OP_FALLS_BACK
    inputs = tuple(layer_inputs(layers))
    rows[:, HELD_PEAK] = held_peaks(rows, inputs)
    return LayerTable(tuple(la.name for la in layers), tuple(la.op for la in layers),
                      tuple(la.activation for la in layers), rows, input_bytes, inputs,
                      float_ops=tuple(f"{layers[i].op} ({layers[i].name}, {layers[i].float_dtype})" for i in floating))


@dataclass(frozen=True)
class TableBatch:
    """Several networks' rows concatenated, for pricing them in one vectorised pass."""

    rows: np.ndarray
    lengths: np.ndarray
    input_bytes: np.ndarray

    @classmethod
    def of(cls, tables: Sequence[LayerTable]) -> TableBatch:
        rows = tables[0].rows if len(tables) == 1 else np.concatenate([t.rows for t in tables])
        return cls(rows.reshape(-1, len(COLUMNS)), np.array([len(t.rows) for t in tables], dtype=np.int64),
                   np.array([t.input_bytes for t in tables], dtype=np.float64))
