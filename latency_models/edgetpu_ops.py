"""Which ops the Edge TPU runs, and which fall back to the CPU: one table for the latency model and the exporter.

The Edge TPU compiler maps a prefix of the graph to the TPU: the first op it cannot map, and every
op after it, run on the CPU. An op cannot be mapped when its type is not in the compiler's table,
when a tensor it reads or writes is not 8-bit (int32 biases and shape operands are fine), when a
shape is dynamic, or when a tensor has more than three dimensions larger than one.

Op names are TFLite builtin names (`CONV_2D`) or analysis ops (`conv2d`); both normalise to the
same key, so this table serves a `.tflite` file, a Keras model and an `ArchSpec` alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SUPPORTED_OPS: dict[str, str] = {
    "ADD": "", "AVERAGE_POOL_2D": "no fused activation", "CONCATENATION": "no fused activation",
    "CONV_2D": "", "DEPTHWISE_CONV_2D": "", "EXPAND_DIMS": "", "FULLY_CONNECTED": "one-dimensional output",
    "L2_NORMALIZATION": "", "LOGISTIC": "", "LSTM": "unidirectional", "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation", "MEAN": "reduces along x and/or y only", "MINIMUM": "", "MUL": "",
    "PACK": "", "PAD": "pads along x and/or y only", "PRELU": "", "QUANTIZE": "int8 to int8 requantisation",
    "REDUCE_MAX": "", "REDUCE_MIN": "", "RELU": "", "RELU6": "", "RELU_N1_TO_1": "", "RESHAPE": "",
    "RESIZE_BILINEAR": "3-dimensional input", "RESIZE_NEAREST_NEIGHBOR": "3-dimensional input", "RSQRT": "",
    "SLICE": "", "SOFTMAX": "1-D input of at most 16,000 elements", "SPACE_TO_DEPTH": "", "SPLIT": "",
    "SQUARED_DIFFERENCE": "", "SQUEEZE": "", "STRIDED_SLICE": "", "SUB": "", "SUM": "", "TANH": "",
    "TRANSPOSE": "", "TRANSPOSE_CONV": "",
}
"""TFLite builtin ops the Edge TPU compiler maps, with its known limitations (Coral's op table).

HARD_SWISH and LEAKY_RELU are absent: the compiler leaves them to the CPU (google-coral/edgetpu#272, #353).
"""

EIGHT_BIT = frozenset({"int8", "uint8"})
INTEGER_OPERANDS = frozenset({"int32"})
"""Biases, shapes and axes: integer tensors the compiler accepts beside the 8-bit activations."""


@dataclass(frozen=True)
class OpDetails:
    """One op in execution order: its type, the dtypes of all its tensors (weights included), and the
    shapes of its activation tensors, data inputs and outputs, not weights (-1 marks a dynamic size)."""

    op: str
    dtypes: tuple[str, ...] = ()
    shapes: tuple[tuple[int, ...], ...] = field(default=())


def op_key(name: str) -> str:
    """`conv2d`, `CONV_2D` and `Conv2D` -> `CONV2D`: one spelling for TFLite and analysis op names."""
    return name.upper().replace("_", "")


_SUPPORTED_KEYS = {op_key(name) for name in SUPPORTED_OPS}


def unsupported_reason(op: OpDetails) -> str | None:
    """Why the compiler cannot map `op` on its own, or None when it can."""
    if op_key(op.op) not in _SUPPORTED_KEYS:
        return f"{op.op} is not in the Edge TPU op table"
    for dtype in op.dtypes:
        if dtype not in EIGHT_BIT | INTEGER_OPERANDS:
            return f"{op.op} has a {dtype} tensor: the Edge TPU runs only 8-bit quantized tensors"
    for shape in op.shapes:
        if any(d < 0 for d in shape):
            return f"{op.op} has a dynamic shape {list(shape)}: the Edge TPU needs static shapes"
        if sum(d > 1 for d in shape[:-3]) > 0:
            return f"{op.op} has a tensor of shape {list(shape)}: only the 3 innermost dimensions may exceed 1"
    return None


def cpu_fallback(ops: Sequence[OpDetails]) -> list[tuple[int, str, str]]:
    """(index, op, reason) of every op that runs on the CPU: the first unmappable op and all after it."""
    for first, op in enumerate(ops):
        reason = unsupported_reason(op)
        if reason is not None:
            after = f"follows {op.op} at index {first}, which runs on the CPU"
            rest = [(i, later.op, after) for i, later in enumerate(ops[first + 1:], first + 1)]
            return [(first, op.op, reason), *rest]
    return []
