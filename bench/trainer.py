"""Trainer benchmark: accuracy within a time budget, int8 vs float accuracy, and input-pipeline throughput.

Targets (issue: trainer), for the default small candidate of the `edgetpu` space at 32 px on `digits`:
- at least 95% held-out top-1 within 60 s of training;
- int8 top-1 within 1.5 points of float;
- training images/s of the trainer beside a plain `model.fit` on in-memory arrays of the same model,
  so that the input pipeline is shown not to be the bottleneck.

Prints one JSON line per figure, each with its target or baseline measured in the same run.
Usage: python bench/trainer.py [--repeats 3] [--seconds 60] [--epochs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def plain_fit_images_per_second(arch: Any, epochs: int, batch_size: int) -> float:
    """The same model and recipe through `model.fit(x, y)` on float arrays: the baseline pipeline."""
    import keras

    from nas_service.trainer.datasets import load_dataset
    from nas_service.trainer.training import TrainConfig, scale_images
    from search_spaces.keras_builder import build_keras

    config = TrainConfig(batch_size=batch_size)
    data = load_dataset("digits", arch.resolution)
    x, y = scale_images(data.x_train), data.y_train
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_keras(arch.with_classes(data.num_classes), dropout=config.dropout, bn_momentum=config.bn_momentum)
    model.compile(optimizer=keras.optimizers.AdamW(config.peak_learning_rate, weight_decay=config.weight_decay),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # trace outside the timing
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    keras.backend.clear_session()
    return epochs * len(x) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0, help="training budget (target: 95%% within it)")
    parser.add_argument("--epochs", type=int, default=15, help="epoch cap inside the seconds budget")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import os

    from nas_service.services.training import train_and_export
    from nas_service.trainer.training import Budget, TrainConfig
    from search_spaces.space import load_space

    arch = load_space("edgetpu").default_small(10).with_resolution(32)
    runs: list[dict[str, float]] = []
    for repeat in range(args.repeats):
        reached: list[float] = []
        start = time.perf_counter()

        def on_epoch(epoch: int, accuracy: float, start: float = start, reached: list[float] = reached) -> bool:
            if accuracy >= 0.95 and not reached:
                reached.append(time.perf_counter() - start)
            return True

        with tempfile.TemporaryDirectory() as tmp:
            result, exported = train_and_export(arch, "digits", Budget(epochs=args.epochs, seconds=args.seconds),
                                                Path(tmp) / "small.tflite", seed=repeat,
                                                config=TrainConfig(batch_size=args.batch_size), on_epoch=on_epoch)
        plain = plain_fit_images_per_second(arch, epochs=3, batch_size=args.batch_size)
        run = {"accuracy": result.accuracy, "int8_accuracy": exported.int8_accuracy, "seconds": result.seconds,
               "epochs": result.epochs, "seconds_to_95": reached[0] if reached else float("nan"),
               "images_per_second": result.images_per_second, "plain_fit_images_per_second": round(plain, 1)}
        runs.append(run)
        emit(figure="run", repeat=repeat, arch=result.arch, cpus=os.cpu_count(), **run)

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 5)

    emit(figure="accuracy_within_budget", value=median("accuracy"), target=0.95, budget_seconds=args.seconds,
         seconds=median("seconds"), epochs=median("epochs"), seconds_to_95=median("seconds_to_95"),
         met=median("accuracy") >= 0.95 and median("seconds") <= args.seconds, repeats=len(runs))
    gap = round(100 * (median("accuracy") - median("int8_accuracy")), 3)
    emit(figure="int8_accuracy_gap_points", value=gap, float_accuracy=median("accuracy"),
         int8_accuracy=median("int8_accuracy"), target=1.5, met=abs(gap) <= 1.5, repeats=len(runs))
    emit(figure="training_images_per_second", value=median("images_per_second"),
         baseline_plain_model_fit=median("plain_fit_images_per_second"),
         ratio=round(median("images_per_second") / median("plain_fit_images_per_second"), 3), repeats=len(runs))


if __name__ == "__main__":
    main()
