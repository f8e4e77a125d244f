"""A .tflite file (float or int8) as the layer IR, from the interpreter's op and tensor details.

Weights come from the constant filter tensors, so batch-norm is already folded into the bias as in
any converted model. Stride is the ratio of input to output height (TFLite does not expose builtin
options through the interpreter). Ops that only move data (RESHAPE, SQUEEZE) are kept with zero
cost; unknown ops keep their TFLite name in lower case and predictors report them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from latency_models.errors import ModelFileError
from search_spaces.analysis import Layer

_FUSED_ACTIVATION_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def read_tflite(model: str | Path | bytes) -> tuple[Layer, ...]:
    """The layers of a .tflite model given as a path or as the file's bytes."""
    from latency_models import litert

    where = "the given file" if isinstance(model, bytes) else repr(str(model))
    if not isinstance(model, bytes):
        path = Path(model)
        if not path.is_file():
            raise ModelFileError(f"TFLite model {where} not found: expected an existing .tflite file")
        model = path.read_bytes()
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ModelFileError(f"{where} is not a TFLite model: expected a FlatBuffer with the 'TFL3' identifier")
    try:
        interpreter = litert.make_interpreter(model)
        ops = litert.ops(interpreter)
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
        network_inputs = {d["index"] for d in interpreter.get_input_details()}
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{where} cannot be loaded as a TFLite model: {exc}") from None
    producer = {int(t): i for i, op in enumerate(ops) for t in op["outputs"]}
    return tuple(dataclasses.replace(_layer(op, tensors), float_dtype=float_dtype(op, tensors), inputs=tuple(
        producer.get(int(t), -1) for t in op["inputs"] if int(t) in producer or int(t) in network_inputs))
        for op in ops)


def float_dtype(op: dict[str, Any], tensors: dict[int, dict[str, Any]]) -> str | None:
    """The floating-point type `op` computes in, or None when it works on 8-bit tensors (int32 biases and shapes
    allowed). A QUANTIZE from a float input or a DEQUANTIZE to a float output only converts at the model's edge,
    as an int8 model with float input and output has them: they do not make a model float."""
    import numpy as np

    def dtypes(indices: Any) -> list[Any]:
        return [np.dtype(tensors[int(i)]["dtype"]) for i in indices if int(i) >= 0]

    ins, outs = dtypes(op["inputs"]), dtypes(op["outputs"])
    eight_bit = {np.dtype(np.int8), np.dtype(np.uint8)}
    if op["op_name"] == "QUANTIZE" and outs and all(d in eight_bit for d in outs):
        return None
    if op["op_name"] == "DEQUANTIZE" and ins and all(d in eight_bit for d in ins):
        return None
    found = next((d for d in [*ins, *outs] if np.issubdtype(d, np.floating)), None)
    return found.name if found is not None else None


def _shape(tensor: dict[str, Any]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in tensor["shape"])
    return shape[1:] if len(shape) > 1 else shape


def _layer(op: dict[str, Any], tensors: dict[int, dict[str, Any]]) -> Layer:
    kind = str(op["op_name"])
    inputs = [tensors[i] for i in op["inputs"] if i >= 0]
    outputs = [tensors[i] for i in op["outputs"] if i >= 0]
    name = str(outputs[0]["name"]) if outputs else f"op{op['index']}"
    in_shape = _shape(inputs[0]) if inputs else ()
    out_shape = _shape(outputs[0]) if outputs else ()
    if kind in _FUSED_ACTIVATION_OPS and len(inputs) >= 2:
        filt = tuple(int(d) for d in inputs[1]["shape"])
        has_bias = len(inputs) >= 3
        positions = 1
        for d in out_shape[:-1]:
            positions *= d
        if kind == "FULLY_CONNECTED":
            weights = filt[0] * filt[1]
            return Layer(name, "fully_connected", in_shape, out_shape, weights=weights, bias=has_bias,
                         macs=positions * weights)
        weights = filt[0] * filt[1] * filt[2] * filt[3]
        stride = max(1, -(-in_shape[0] // out_shape[0])) if len(in_shape) == 3 and out_shape else 1
        op_name = "depthwise_conv2d" if kind == "DEPTHWISE_CONV_2D" else "conv2d"
        return Layer(name, op_name, in_shape, out_shape, kernel=filt[1], stride=stride, weights=weights,
                     bias=has_bias, macs=positions * weights)
    kernel = 1
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D") and len(in_shape) == 3 and out_shape:
        kernel = stride = max(1, -(-in_shape[0] // out_shape[0]))
        return Layer(name, kind.lower(), in_shape, out_shape, kernel=kernel, stride=stride)
    return Layer(name, kind.lower(), in_shape, out_shape)
