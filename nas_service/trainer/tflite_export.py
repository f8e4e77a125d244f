"""Full-int8 TFLite export of a Keras candidate, and the helpers to run the exported file.

The file has int8 input and output and only int8 builtin kernels (`TFLITE_BUILTINS_INT8`): the
converter fails rather than leave a float op behind, because the Edge TPU compiler hands the first
float op and everything after it to the CPU. The batch size is fixed at 1 so that every tensor
shape is static, as the Edge TPU needs. TensorFlow is imported inside `convert_int8` only.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from latency_models.litert import make_interpreter

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
