"""Full-int8 TFLite export of a trained candidate, the helpers to run the file, and a report of what it does.

The file has int8 input and output and only int8 builtin kernels (`TFLITE_BUILTINS_INT8`): the
converter fails rather than leave a float op behind, because the Edge TPU compiler hands the first
float op and everything after it to the CPU. The batch size is fixed at 1 so that every tensor
shape is static, as the Edge TPU needs. The report (`export_int8`) holds the float and the quantized
top-1 on the same test split (the int8 file runs through the LiteRT interpreter, as deployed), the
file size, the op list, the ops the Edge TPU compiler would leave to the CPU (by
`latency_models.edgetpu_ops`, the rules the latency model uses) and, where `edgetpu_compiler` is
installed, its real verdict and log. TensorFlow is imported inside `convert_int8` only.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latency_models import litert
from latency_models.edgetpu_ops import OpDetails, cpu_fallback
from latency_models.litert import make_interpreter
from nas_service.trainer.datasets import Dataset
from nas_service.trainer.training import scale_images

if TYPE_CHECKING:
    import keras

_CONVERTING = threading.Lock()
"""The converter's chatter is silenced through `sys.stdout` and the warning filters, which every thread shares:
conversions by candidates trained side by side take turns, so each puts back what it found."""


def convert_int8(model: keras.Model, representative: np.ndarray, num_samples: int = 100) -> bytes:
    """The full-int8 .tflite bytes of `model`, calibrated on up to `num_samples` rows of `representative`.

    `representative` is a batch of inputs as the model takes them (N, H, W, C), float, in the same
    range as training data; activation ranges are measured on it.
    """
    import tensorflow as tf

    samples = np.asarray(representative, dtype=np.float32)
    expected = tuple(model.input_shape[1:])
    if samples.ndim != 4 or tuple(samples.shape[1:]) != expected or len(samples) == 0:
        raise ValueError(f"representative data of shape {samples.shape} does not fit the model input "
                         f"{expected}: expected (N, {', '.join(map(str, expected))}) with N >= 1")

    def representative_dataset() -> Any:
        for sample in samples[:num_samples]:
            yield [sample[None]]

    import keras

    image = keras.Input(batch_shape=(1, *expected), name="image")  # shares the weights of `model`
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(image, model(image)))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with _CONVERTING, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # the converter prints the saved-model signature, and warns about input statistics that the
        # representative dataset provides
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return bytes(converter.convert())


def quantize_input(x: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """Float inputs to the int8 values an input tensor with these `get_input_details()` takes."""
    scale, zero_point = details["quantization"]
    dtype = np.dtype(details["dtype"])
    info = np.iinfo(dtype)
    scaled = np.round(np.asarray(x, np.float32) / np.float32(scale) + zero_point)
    quantized: np.ndarray = np.clip(scaled, info.min, info.max).astype(dtype)
    return quantized


def dequantize_output(y: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """The float values of an int8 output tensor with these `get_output_details()`."""
    scale, zero_point = details["quantization"]
    values: np.ndarray = (np.asarray(y, np.float32) - np.float32(zero_point)) * np.float32(scale)
    return values


def predict_int8(model: bytes, images: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Class probabilities of the int8 `model` for a batch of float images, one invocation per image."""
    interpreter = make_interpreter(model, num_threads)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in np.asarray(images, np.float32):
        interpreter.set_tensor(inp["index"], quantize_input(image[None], inp))
        interpreter.invoke()
        results.append(dequantize_output(interpreter.get_tensor(out["index"]), out)[0])
    return np.stack(results)


REPRESENTATIVE_SAMPLES = 200
COMPILER_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class ExportResult:
    path: str
    size_bytes: int
    float_accuracy: float
    int8_accuracy: float
    ops: tuple[str, ...]
    cpu_fallback: tuple[tuple[int, str, str], ...]
    """(index, op, reason) of each op the Edge TPU would leave to the CPU; empty when all map."""
    edgetpu_compiler: str
    """'not found' (not on PATH), 'compiled' or 'failed'; the log says why."""
    compiler_log: str = ""
    compiled_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ops"] = list(self.ops)
        data["cpu_fallback"] = [{"index": i, "op": op, "reason": reason} for i, op, reason in self.cpu_fallback]
        return data


def export_int8(model: keras.Model, data: Dataset, out: str | Path, *, seed: int = 0) -> ExportResult:
    """Write the full-int8 .tflite of `model` to `out` and report its accuracy, ops and Edge TPU fit.

    Activation ranges are calibrated on a seeded sample of the training split, never the test split.
    """
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data.x_train), size=min(REPRESENTATIVE_SAMPLES, len(data.x_train)), replace=False)
    tflite = convert_int8(model, scale_images(data.x_train[np.sort(pick)]), num_samples=len(pick))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tflite)

    x_test = scale_images(data.x_test)
    float_probs = np.concatenate([np.asarray(model(x_test[i:i + 256], training=False))
                                  for i in range(0, len(x_test), 256)])
    int8_probs = predict_int8(tflite, x_test)
    ops = op_details(litert.make_interpreter(tflite))
    status, log, compiled = compile_for_edgetpu(path)
    return ExportResult(
        path=str(path), size_bytes=len(tflite), float_accuracy=_top1(float_probs, data.y_test),
        int8_accuracy=_top1(int8_probs, data.y_test), ops=tuple(op.op for op in ops),
        cpu_fallback=tuple(cpu_fallback(ops)), edgetpu_compiler=status, compiler_log=log, compiled_path=compiled)


def op_details(interpreter: Any) -> list[OpDetails]:
    """Every op of a loaded interpreter with its tensors' dtypes and shapes (-1 marks a dynamic size)."""
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    details = []
    for op in litert.ops(interpreter):
        used = [tensors[i] for i in [*op["inputs"], *op["outputs"]] if i >= 0]
        activations = [tensors[i] for i in [*op["inputs"][:1], *op["outputs"]] if i >= 0]  # not weights
        details.append(OpDetails(
            op=str(op["op_name"]), dtypes=tuple(np.dtype(t["dtype"]).name for t in used),
            shapes=tuple(tuple(int(d) for d in t.get("shape_signature", t["shape"])) for t in activations)))
    return details


def compile_for_edgetpu(path: Path) -> tuple[str, str, str | None]:
    """Run `edgetpu_compiler` on `path` if it is installed; keep its log beside the file.

    Returns (status, log, compiled file). The compiler writes `<stem>_edgetpu.tflite` and
    `<stem>_edgetpu.log` into the same folder.
    """
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return "not found", "edgetpu_compiler is not on PATH: the CPU-fallback report is predicted, not compiled", None
    try:
        run = subprocess.run([compiler, "--show_operations", "--out_dir", str(path.parent), str(path)],
                             capture_output=True, text=True, timeout=COMPILER_TIMEOUT_SECONDS, check=False)
        log = run.stdout + run.stderr
        ok = run.returncode == 0
    except subprocess.TimeoutExpired:
        log, ok = f"edgetpu_compiler did not finish within {COMPILER_TIMEOUT_SECONDS} s", False
    path.with_name(f"{path.stem}_edgetpu.log").write_text(log)
    compiled = path.with_name(f"{path.stem}_edgetpu.tflite")
    return ("compiled", log, str(compiled)) if ok and compiled.is_file() else ("failed", log, None)


def _top1(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return round(float(np.mean(np.argmax(probabilities, axis=-1) == labels)), 5)
