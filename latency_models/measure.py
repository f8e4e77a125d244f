"""Real latency of a .tflite model on this host: one thread, warm-up, median of repeated invocations.

The host-CPU device `cpu_litert` is measured here through `ai-edge-litert` (XNNPACK). Each
invocation is timed twice: wall time (`perf_counter`) and the CPU time of the calling thread
(`thread_time_ns`). With one interpreter thread XNNPACK runs on the caller, so the thread's CPU
time is the work of the model alone; on a shared, busy machine wall time also counts the time the
thread waited for a core, which no model of the network can predict. CPU time is what predictors
are fitted on; wall time is reported beside it. On a host with a Coral device, `edgetpu=True` loads
the `libedgetpu.so.1` delegate (the TPU works while the thread waits, so wall time is the figure
there); the model must then have been compiled by `edgetpu_compiler`, which this package does not run.
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
    """Median thread CPU time per invocation: the figure predictors are fitted on."""
    wall_median_ms: float
    round_medians_ms: tuple[float, ...]
    """Per-round medians of thread CPU time: their spread shows how repeatable the figure is."""
    invocations: int


def measure_tflite(model: str | Path | bytes, *, rounds: int = 5, per_round: int = 10, warmup: int = 5,
                   num_threads: int = 1, edgetpu: bool = False) -> Measurement:
    """Medians over `rounds` of the medians of `per_round` timed invocations, after `warmup` untimed ones.

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
    cpu_medians, wall_medians = [], []
    for _ in range(rounds):
        cpu, wall = [], []
        for _ in range(per_round):
            start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
            interpreter.invoke()
            cpu.append((time.thread_time_ns() - cpu_start) * 1e-6)
            wall.append((time.perf_counter_ns() - start) * 1e-6)
        cpu_medians.append(statistics.median(cpu))
        wall_medians.append(statistics.median(wall))
    return Measurement(statistics.median(cpu_medians), statistics.median(wall_medians), tuple(cpu_medians),
                       rounds * per_round)


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
