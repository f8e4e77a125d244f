"""Training one candidate and exporting it, as `nas train` and `nas export` do (a search trains through its
scorer instead). TensorFlow is imported when a candidate is trained, not when this module is."""

from __future__ import annotations

from pathlib import Path

from nas_service.trainer.datasets import Dataset
from nas_service.trainer.tflite_export import ExportResult, export_int8
from nas_service.trainer.training import (
    KERAS_STATE,
    Budget,
    EpochHook,
    TrainConfig,
    TrainResult,
    fit,
    resolve_dataset,
)
from search_spaces import ArchSpec


def train_and_export(arch: ArchSpec, dataset: str | Dataset, budget: Budget, out: str | Path, *, seed: int = 0,
                     config: TrainConfig | None = None, on_epoch: EpochHook | None = None,
                     ) -> tuple[TrainResult, ExportResult]:
    """Train `arch`, then export it to `out` and measure the int8 file (see `export_int8`)."""
    with KERAS_STATE.candidate():
        model, result = fit(arch, dataset, budget, seed=seed, config=config, on_epoch=on_epoch)
        exported = export_int8(model, resolve_dataset(dataset, arch.resolution), out, seed=seed)
    return result, exported
