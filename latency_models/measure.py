"""Real latency of a .tflite model on this host: one thread, warm-up, median of repeated invocations.

The host-CPU device `cpu_litert` is measured here through `ai-edge-litert` (XNNPACK). On a host
with a Coral device, `edgetpu=True` loads the `libedgetpu.so.1` delegate; the model must then have
been compiled by `edgetpu_compiler`, which this package does not run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latency_models.errors import DeviceUnavailableError, ModelFileError


@dataclass(frozen=True)
class Measurement:
    median_ms: float
    round_medians_ms: tuple[float, ...]
    invocations: int


def measure_tflite(model: str | Path | bytes, *, rounds: int = 5, per_round: int = 10, warmup: int = 5,
                   num_threads: int = 1, edgetpu: bool = False) -> Measurement:
    """Median over `rounds` of the median of `per_round` timed invocations, after `warmup` untimed ones.

    Medians of rounds resist the bursts of load other processes put on a shared machine.
    """
    interpreter = _interpreter(model, num_threads, edgetpu)
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        sample = rng.integers(info.min, info.max, size=detail["shape"], endpoint=True).astype(dtype)
    else:
        sample = rng.uniform(-1, 1, size=detail["shape"]).astype(dtype)
    interpreter.set_tensor(detail["index"], sample)
    for _ in range(warmup):
        interpreter.invoke()
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(per_round):
            start = time.perf_counter()
            interpreter.invoke()
            times.append((time.perf_counter() - start) * 1e3)
        medians.append(statistics.median(times))
    return Measurement(statistics.median(medians), tuple(medians), rounds * per_round)


def _interpreter(model: str | Path | bytes, num_threads: int, edgetpu: bool) -> Any:
    from latency_models import litert

    if not edgetpu:
        try:
            return litert.make_interpreter(model, num_threads=num_threads)
        except ValueError as exc:
            raise ModelFileError(f"cannot load the TFLite model to measure: {exc}") from None
    try:
        from ai_edge_litert.interpreter import load_delegate
        delegate = load_delegate("libedgetpu.so.1")
    except (ImportError, ValueError, OSError) as exc:
        raise DeviceUnavailableError(f"the Edge TPU delegate libedgetpu.so.1 cannot be loaded ({exc}): install "
                                     "the Coral runtime (libedgetpu1-std or -max) and plug in a device") from None
    interpreter_type = litert.interpreter_class()
    kwargs: dict[str, Any] = {"experimental_delegates": [delegate], "num_threads": num_threads}
    if isinstance(model, bytes):
        interpreter = interpreter_type(model_content=model, **kwargs)
    else:
        interpreter = interpreter_type(model_path=str(model), **kwargs)
    interpreter.allocate_tensors()
    return interpreter
