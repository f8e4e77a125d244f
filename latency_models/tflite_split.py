"""Split a .tflite model into pipeline segments at op boundaries: N files that, chained, compute the model.

Each segment keeps its ops, the tensors they touch and the buffers of those tensors, with their
quantisation unchanged: an int8 model's segments hand each other the very int8 tensors the whole model
computes, so the chain's outputs are bit-identical to the model's. The files are named as
`edgetpu_compiler --num_segments N` names its segments (`<stem>_segment_<i>_of_<N>`), without the
`_edgetpu` suffix the compiler adds to what it has compiled; compile each file to run it on its TPU.
Needs no TensorFlow: the FlatBuffer schema ships with `ai-edge-litert` (and with TensorFlow).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_models.errors import ModelFileError


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def segment_paths(model: Path, n: int) -> list[Path]:
    """Where the segments of `model` go, named as the Edge TPU compiler names them."""
    return [model.with_name(f"{model.stem}_segment_{i}_of_{n}.tflite") for i in range(n)]


def write_segments(model: Path, stops: Sequence[int], out_dir: Path) -> list[Path]:
    """Split the .tflite file `model` (see `split_tflite`) into files in `out_dir`."""
    parts = split_tflite(Path(model).read_bytes(), stops)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = segment_paths(out_dir / Path(model).name, len(parts))
    for path, part in zip(paths, parts, strict=True):
        path.write_bytes(part)
    return paths


def split_tflite(model: bytes, stops: Sequence[int]) -> list[bytes]:
    """The segments of `model` ending before op indices `stops` (increasing, the last one the op count):
    segment k runs ops stops[k-1] .. stops[k]-1 in the model's execution order."""
    import flatbuffers

    schema = _schema()
    whole = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    if len(whole.subgraphs) != 1:
        raise ModelFileError(f"the model has {len(whole.subgraphs)} subgraphs: expected one to split")
    graph = whole.subgraphs[0]
    count = len(graph.operators)
    if list(stops) != sorted(set(stops)) or not stops or stops[-1] != count or stops[0] <= 0:
        raise ModelFileError(f"cut points {list(stops)} do not split {count} ops: expected increasing op indices "
                             f"ending at {count}")
    produced_by = {int(t): i for i, op in enumerate(graph.operators) for t in _ints(op.outputs)}
    read_from = [0] * len(graph.tensors)
    for i, op in enumerate(graph.operators):
        for t in _ints(op.inputs):
            read_from[t] = max(read_from[t], i)
    model_outputs = set(_ints(graph.outputs))
    segments = []
    for start, stop in zip([0, *stops[:-1]], stops, strict=True):
        ops = graph.operators[start:stop]
        inputs = sorted({t for op in ops for t in _ints(op.inputs)
                         if (t in produced_by and produced_by[t] < start) or t in _ints(graph.inputs)})
        outputs = sorted({t for op in ops for t in _ints(op.outputs)
                          if t in model_outputs or read_from[t] >= stop})
        segments.append(_build(schema, flatbuffers, whole, ops, inputs, outputs))
    return segments


def _ints(values: Any) -> list[int]:
    return [int(v) for v in (values if values is not None else []) if int(v) >= 0]


def _build(schema: Any, flatbuffers: Any, whole: Any, ops: list[Any], inputs: list[int], outputs: list[int]) -> bytes:
    """A one-subgraph model of `ops`, keeping only the tensors and buffers they use, renumbered."""
    graph = whole.subgraphs[0]
    used = sorted({*inputs, *outputs, *(t for op in ops for t in [*_ints(op.inputs), *_ints(op.outputs),
                                                                  *_ints(op.intermediates)])})
    tensor_index = {old: new for new, old in enumerate(used)}
    buffers = [whole.buffers[0]]  # buffer 0 is the empty sentinel every non-constant tensor points at
    buffer_index = {0: 0}
    tensors = []
    for old in used:
        tensor = copy.copy(graph.tensors[old])
        if tensor.buffer not in buffer_index:
            buffer_index[tensor.buffer] = len(buffers)
            buffers.append(whole.buffers[tensor.buffer])
        tensor.buffer = buffer_index[tensor.buffer]
        tensors.append(tensor)

    def renumber(values: Any) -> Any:
        if values is None:
            return None
        return np.array([tensor_index[int(v)] if int(v) >= 0 else -1 for v in values], dtype=np.int32)

    new_ops = []
    for op in ops:
        op = copy.copy(op)
        op.inputs, op.outputs, op.intermediates = renumber(op.inputs), renumber(op.outputs), renumber(op.intermediates)
        new_ops.append(op)
    sub = schema.SubGraphT()
    sub.tensors, sub.operators, sub.name = tensors, new_ops, graph.name
    sub.inputs, sub.outputs = renumber(inputs), renumber(outputs)
    part = schema.ModelT()
    part.version, part.description, part.operatorCodes = whole.version, whole.description, whole.operatorCodes
    part.subgraphs, part.buffers = [sub], buffers
    part.metadata = []
    for meta in whole.metadata or []:  # e.g. the minimum runtime version
        meta = copy.copy(meta)
        buffers.append(whole.buffers[meta.buffer])
        meta.buffer = len(buffers) - 1
        part.metadata.append(meta)
    builder = flatbuffers.Builder(1024)
    builder.Finish(part.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def chain_matches(model: bytes, segments: Sequence[bytes], samples: int = 8, seed: int = 0) -> bool:
    """Whether the chained segments give exactly the model's outputs on `samples` random inputs."""
    from latency_models.litert import make_interpreter

    interpreter = make_interpreter(model)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rng = np.random.default_rng(seed)
    dtype = np.dtype(inp["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        images = rng.integers(info.min, info.max, (samples, *inp["shape"][1:]), endpoint=True).astype(dtype)
    else:
        images = rng.uniform(-1, 1, (samples, *inp["shape"][1:])).astype(dtype)
    whole = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        whole.append(interpreter.get_tensor(out["index"])[0])
    return bool(np.array_equal(np.stack(whole), run_chain(segments, images)))


def run_chain(segments: Sequence[bytes], images: np.ndarray) -> np.ndarray:
    """The last segment's outputs for each of `images` (already in the first segment's input type), each
    segment's output handed to the next as the Edge TPU pipeline hands it: one invocation per image."""
    from latency_models.litert import make_interpreter

    interpreters = [make_interpreter(s) for s in segments]
    results = []
    for image in images:
        value = image[None]
        for interpreter in interpreters:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], value)
            interpreter.invoke()
            value = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        results.append(value[0])
    return np.stack(results)
