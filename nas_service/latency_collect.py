"""Measured latencies of sampled candidates: build, convert to full int8, time on this host's CPU.

This is the data the `cpu_litert` predictor is fitted from and judged on. It lives in the service
package because it needs the trainer's int8 exporter; `latency_models` only times the bytes.
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latency_models.measure import measure_tflite
from search_spaces import ArchSpec, encode, load_space

CSV_COLUMNS = ("arch", "space", "resolution", "device", "latency_ms", "wall_ms", "round_medians_ms", "macs", "seed")
"""`latency_ms` is the median thread CPU time per invocation (what predictors are fitted on), `wall_ms`
the median wall time, `round_medians_ms` the CPU-time medians of the timed rounds."""
RESOLUTIONS = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class Sample:
    arch: ArchSpec
    space: str


def int8_bytes(arch: ArchSpec) -> bytes:
    """The full-int8 .tflite of `arch` with random weights, calibrated on random images."""
    import keras

    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces.keras_builder import build_keras

    keras.utils.set_random_seed(0)
    model = build_keras(arch)
    images = np.random.default_rng(0).uniform(-1, 1, (4, arch.resolution, arch.resolution, 3)).astype(np.float32)
    data = convert_int8(model, images, num_samples=4)
    keras.backend.clear_session()
    return data


def sample_archs(spaces: list[str], n: int, seed: int, num_classes: int = 10,
                 resolutions: tuple[int, ...] = RESOLUTIONS) -> Iterator[Sample]:
    """`n` random candidates, alternating over `spaces`, each at a random resolution from `resolutions`."""
    import optuna

    rng = random.Random(seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = {name: optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed + i))
               for i, name in enumerate(spaces)}
    for i in range(n):
        name = spaces[i % len(spaces)]
        trial = studies[name].ask()
        arch = load_space(name).sample(trial, num_classes=num_classes, resolution=rng.choice(resolutions))
        yield Sample(arch, name)


def collect(spaces: list[str], n: int, out: Path, seed: int = 0,
            progress: Callable[[int, Sample, float], None] | None = None) -> int:
    """Measure `n` sampled candidates and append them to the CSV `out` (written with a header if new)."""
    from search_spaces import analyze

    new = not out.exists()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(CSV_COLUMNS)
        for i, sample in enumerate(sample_archs(spaces, n, seed)):
            start = time.perf_counter()
            result = measure_tflite(int8_bytes(sample.arch))
            rounds = " ".join(f"{m:.4f}" for m in result.round_medians_ms)
            writer.writerow([encode(sample.arch), sample.space, sample.arch.resolution, "cpu_litert",
                             f"{result.median_ms:.4f}", f"{result.wall_median_ms:.4f}", rounds,
                             analyze(sample.arch).macs, seed])
            f.flush()
            if progress:
                progress(i, sample, time.perf_counter() - start)
    return n
