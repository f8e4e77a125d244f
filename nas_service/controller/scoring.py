"""Scorers measure a candidate's accuracy; the controller picks one by the job spec's `training.scorer`.

`train` trains it for real (TensorFlow, imported only when training starts) and exports the int8
TFLite file. `estimate` is the cheap accuracy estimator below: milliseconds per candidate and no
TensorFlow, for dry runs, the search-efficiency benchmark and tests of the search machinery.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nas_service.spec import Training
from search_spaces import ArchSpec, analyze, encode

EpochCheck = Callable[[int, float], bool]
"""`keep_going(epoch, held_out_accuracy)`: False stops training the candidate (see `early_stop`)."""


@dataclass(frozen=True)
class Score:
    accuracy: float
    epochs: int
    seconds: float
    curve: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    int8_accuracy: float | None = None
    tflite_path: str | None = None
    model_bytes: int | None = None
    fidelity: str = "standalone"
    """`standalone` (trained from scratch) or `oneshot` (a supernet's subnet, inherited weights)."""


class Scorer(Protocol):
    name: str

    def score(self, arch: ArchSpec, *, dataset: str, training: Training, seed: int, keep_going: EpochCheck,
              artifacts_dir: Path) -> Score: ...


def arch_hash(arch: ArchSpec | str) -> str:
    """The identity of an architecture in our tables: the SHA-256 of its canonical string."""
    return hashlib.sha256((arch if isinstance(arch, str) else encode(arch)).encode()).hexdigest()


class EstimateScorer:
    """The cheap accuracy estimator: a documented function of the architecture, not a measurement.

    capacity = 0.5 log10(MACs) + 0.5 log10(params); accuracy rises from chance (1 / classes) to a
    ceiling of 0.99 along a logistic in capacity (centre 5.9, i.e. about 3 M MACs with 0.25 M params,
    scale 0.35), loses up to 4 points for depth below six blocks, and gets a deterministic jitter
    of +-0.5 points from the architecture string's hash, so equal strings score equally. It rewards
    capacity with diminishing returns, which is what makes accuracy trade against latency.

    With `training.simulate_seconds` it also pretends to train: one step per epoch along the curve
    chance + (final - chance) * (1 - 2^(-3e/E)) / (7/8), sleeping between epochs and asking
    `keep_going` after each, as real training does.
    """

    name = "estimate"
    ceiling = 0.99

    def score(self, arch: ArchSpec, *, dataset: str, training: Training, seed: int, keep_going: EpochCheck,
              artifacts_dir: Path) -> Score:
        final = self.estimate(arch)
        if not training.simulate_seconds:
            return Score(accuracy=final, epochs=0, seconds=0.0)
        chance, epochs = 1.0 / arch.num_classes, training.epochs
        start = time.perf_counter()
        curve: list[dict[str, float]] = []
        for epoch in range(1, epochs + 1):
            time.sleep(training.simulate_seconds / epochs)
            accuracy = round(chance + (final - chance) * (1 - 2 ** (-3 * epoch / epochs)) / (7 / 8), 5)
            curve.append({"epoch": epoch, "loss": 0.0, "accuracy": accuracy})
            if epoch < epochs and not keep_going(epoch, accuracy):
                return Score(accuracy, epoch, time.perf_counter() - start, curve, stopped_early=True)
        return Score(final, epochs, round(time.perf_counter() - start, 3), curve)

    def estimate(self, arch: ArchSpec) -> float:
        analysis = analyze(arch)
        capacity = 0.5 * math.log10(max(analysis.macs, 1)) + 0.5 * math.log10(max(analysis.params, 1))
        chance = 1.0 / arch.num_classes
        accuracy = chance + (self.ceiling - chance) / (1.0 + math.exp(-(capacity - 5.9) / 0.35))
        depth = sum(b.repeats for b in arch.blocks)
        accuracy -= 0.04 * max(0, 6 - depth) / 5
        jitter = (int(arch_hash(arch)[:8], 16) / 0xFFFFFFFF - 0.5) * 0.01
        return round(min(max(accuracy + jitter, 0.0), 1.0), 5)


class TrainScorer:
    """Real training with `nas_service.trainer`, then int8 export and int8 accuracy of finished candidates."""

    name = "train"

    def score(self, arch: ArchSpec, *, dataset: str, training: Training, seed: int, keep_going: EpochCheck,
              artifacts_dir: Path) -> Score:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines would bury the progress
        from nas_service.trainer.datasets import load_dataset
        from nas_service.trainer.tflite_export import export_int8
        from nas_service.trainer.training import KERAS_STATE, Budget, TrainConfig, fit

        data = load_dataset(dataset, arch.resolution)
        if training.train_images:
            data = data.subset(training.train_images)
        with KERAS_STATE.candidate():  # other slots of this worker may be training beside it
            model, result = fit(arch, data, Budget(epochs=training.epochs), seed=seed,
                                config=TrainConfig(batch_size=training.batch_size), on_epoch=keep_going)
            curve = [{"epoch": i + 1, "loss": loss, "accuracy": acc}
                     for i, (loss, acc) in enumerate(zip(result.loss_curve, result.accuracy_curve, strict=True))]
            score = Score(accuracy=result.accuracy, epochs=result.epochs, seconds=result.seconds, curve=curve,
                          stopped_early=result.stopped_early)
            if not training.export_int8 or result.stopped_early:
                return score
            path = artifacts_dir / f"{arch_hash(encode(arch))[:16]}.tflite"
            exported = export_int8(model, data, path, seed=seed)
        return Score(accuracy=score.accuracy, epochs=score.epochs, seconds=score.seconds, curve=curve,
                     int8_accuracy=round(exported.int8_accuracy, 5), tflite_path=exported.path,
                     model_bytes=exported.size_bytes)

SCORERS: dict[str, Callable[[], Scorer]] = {"estimate": EstimateScorer, "train": TrainScorer}


def make_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}: expected one of {', '.join(sorted(SCORERS))}")
    return SCORERS[name]()
