"""The TFLite interpreter, from `ai-edge-litert` or, on older Coral hosts, `tflite-runtime`.

Both packages expose the same `Interpreter`; `ai-edge-litert` is preferred because `tflite-runtime`
(last released 2023) fails under numpy 2. Neither needs TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def interpreter_class() -> Any:
    """The `Interpreter` class of whichever runtime is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ImportError("no TFLite interpreter installed: expected the ai-edge-litert package "
                              "(pip install ai-edge-litert) or, on older Coral hosts, tflite-runtime") from None
    return Interpreter


def make_interpreter(model: str | Path | bytes, num_threads: int = 1) -> Any:
    """An interpreter with its tensors allocated, from a .tflite path or the file's bytes."""
    interpreter_type = interpreter_class()
    if isinstance(model, bytes):
        interpreter = interpreter_type(model_content=model, num_threads=num_threads)
    else:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"TFLite model {str(path)!r} not found: expected a .tflite file")
        interpreter = interpreter_type(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def ops(interpreter: Any) -> list[dict[str, Any]]:
    """The model's operator records (op_name, inputs, outputs tensor indices) in execution order.

    The node of a delegate the interpreter applied itself (XNNPACK on a CPU) is left out: it
    stands for model ops that are listed already.
    """
    records = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
    return sorted(records, key=lambda op: op["index"])


def op_names(interpreter: Any) -> list[str]:
    """Op types in execution order, e.g. ['CONV_2D', 'DEPTHWISE_CONV_2D', ..., 'SOFTMAX']."""
    return [str(op["op_name"]) for op in ops(interpreter)]


def float_tensors(interpreter: Any) -> list[tuple[str, str, str]]:
    """(op type, tensor name, dtype) of every op input or output holding floating-point values.

    Empty for a fully int8-quantized model (int32 biases and shape operands are integers), which
    is what the Edge TPU compiler needs to map every op.
    """
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    found = []
    for op in ops(interpreter):
        for index in [*op["inputs"], *op["outputs"]]:
            if index < 0:  # an omitted optional input
                continue
            tensor = details[index]
            if np.issubdtype(tensor["dtype"], np.inexact):
                found.append((str(op["op_name"]), str(tensor["name"]), np.dtype(tensor["dtype"]).name))
    return found


def has_float_ops(interpreter: Any) -> bool:
    """Whether any op reads or writes a floating-point tensor (it would not run on an int8 accelerator)."""
    return bool(float_tensors(interpreter))
