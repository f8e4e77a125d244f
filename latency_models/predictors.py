"""Predictors registered by device kind, and the one front door: `predict` / `predict_many`.

A network may be an `ArchSpec`, an architecture string, a reference name, a Keras model or a path
to a `.keras` / `.tflite` file; each becomes the layer IR through one reader, and the IR becomes a
`LayerTable` once (cached for `ArchSpec`s, which are immutable), so repeated and batched
predictions of search candidates stay cheap. `predict_total_ms` is the fast path for ranking many
fresh candidates: `ArchSpec`s go straight to their table rows (`arch_rows`) and all tables are
priced in one vectorised pass, with the same totals as `predict`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latency_models import arch_rows, cpu, edgetpu, pipeline
from latency_models.errors import ModelFileError, NotInt8Error, UnmodeledOpError
from latency_models.estimate import LatencyEstimate
from latency_models.features import LayerTable, TableBatch, layer_table
from latency_models.pipeline import Segmentation, SegmentationError, segment_table
from latency_models.profiles import PIPELINE_KIND, DeviceProfile, load_profile
from search_spaces import ArchSpec, analyze, resolve
from search_spaces.analysis import Layer


@dataclass(frozen=True)
class LatencyPredictor:
    """How the profiles of one kind are priced."""

    estimate: Callable[[LayerTable, DeviceProfile], LatencyEstimate]
    batch_totals: Callable[[TableBatch, DeviceProfile], np.ndarray] | None
    """Totals of many networks in one vectorised pass over their rows; None when a network must be priced
    whole (a pipeline needs every layer's inputs, which the batched rows do not keep)."""


_KINDS: dict[str, LatencyPredictor] = {}


def register_kind(kind: str, predictor: LatencyPredictor) -> None:
    """Register the model of a profile kind; a kind is registered once."""
    if kind in _KINDS:
        raise ValueError(f"predictor kind {kind!r} is registered twice")
    _KINDS[kind] = predictor


register_kind("edgetpu", LatencyPredictor(edgetpu.estimate, edgetpu.batch_totals))
register_kind("cpu", LatencyPredictor(cpu.estimate, cpu.batch_totals))
register_kind(PIPELINE_KIND, LatencyPredictor(pipeline.estimate, None))


_TABLES: dict[int, LayerTable] = {}


def arch_table(arch: ArchSpec) -> LayerTable:
    """The layer table of an architecture object, computed once while the object lives.

    Keyed by identity: hashing a deep frozen `ArchSpec` costs more than pricing it.
    """
    table = _TABLES.get(id(arch))
    if table is None:
        table = _TABLES[id(arch)] = layer_table(analyze(arch).layers)
        weakref.finalize(arch, _TABLES.pop, id(arch), None)
    return table


def clear_cache() -> None:
    """Forget every cached table (layer tables of live objects and the fast path's unit rows)."""
    _TABLES.clear()
    arch_rows.clear_cache()


def read_layers(model: Any) -> tuple[Layer, ...]:
    """The layer IR of any supported network form."""
    if isinstance(model, ArchSpec):
        return analyze(model).layers
    if isinstance(model, Path) or (isinstance(model, str) and model.endswith((".tflite", ".keras"))):
        return _read_file(Path(model))
    if isinstance(model, bytes):  # a .tflite file's content (an upload): never written to a path
        from latency_models.readers.tflite_reader import read_tflite

        return read_tflite(model)
    if isinstance(model, str):
        return analyze(resolve(model)).layers
    if hasattr(model, "operations") and hasattr(model, "count_params"):
        from latency_models.readers.keras_reader import read_keras

        return read_keras(model)
    raise ModelFileError(f"cannot read a network from a {type(model).__name__}: expected an ArchSpec, an "
                         "architecture string, a reference name, a keras.Model, a .keras/.tflite path or .tflite bytes")


def _read_file(path: Path) -> tuple[Layer, ...]:
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} not found: expected an existing .tflite or .keras file")
    if path.suffix == ".tflite":
        from latency_models.readers.tflite_reader import read_tflite

        return read_tflite(path)
    if path.suffix == ".keras":
        import keras

        from latency_models.readers.keras_reader import read_keras

        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # keras raises many types for a bad archive
            raise ModelFileError(f"Keras model {str(path)!r} cannot be loaded: {exc}") from None
        return read_keras(model)
    raise ModelFileError(f"model file {str(path)!r} has suffix {path.suffix!r}: expected .tflite or .keras")


def table_of(model: Any) -> LayerTable:
    if isinstance(model, ArchSpec):
        return arch_table(model)
    if isinstance(model, str) and not model.endswith((".tflite", ".keras")):
        return arch_table(resolve(model))
    return layer_table(read_layers(model))


def predict(model: Any, device: str = "edgetpu_usb", strict: bool = False) -> LatencyEstimate:
    """Latency of `model` on `device`, with its per-layer breakdown; `strict` raises on unmodeled ops."""
    profile = load_profile(device)
    result = _KINDS[profile.kind].estimate(table_of(model), profile)
    if strict and result.float_ops:
        where = ("the Edge TPU runs only full-int8 models, so the host CPU would run them and everything after the "
                 "first" if profile.kind != "cpu" else f"{device} is fitted on full-int8 models")
        raise NotInt8Error(f"the model is not full-int8: {len(result.float_ops)} op(s) compute in floating point "
                           f"(first {result.float_ops[0]}): {where}; convert it with full integer quantisation "
                           "(int8 weights and activations), or predict without strict to price it as CPU "
                           "fallback", ops=result.float_ops)
    if strict and result.unmodeled_ops:
        raise UnmodeledOpError(f"{device} cannot price op(s) {', '.join(result.unmodeled_ops)}: expected only ops "
                               "the latency model knows; predict without strict to get a lower bound",
                               ops=result.unmodeled_ops)
    return result


def predict_many(models: Iterable[Any], device: str = "edgetpu_usb", strict: bool = False) -> list[LatencyEstimate]:
    return [predict(m, device, strict) for m in models]


def _as_arch(model: Any) -> ArchSpec | None:
    if isinstance(model, ArchSpec):
        return model
    if isinstance(model, str) and not model.endswith((".tflite", ".keras")):
        return resolve(model)
    return None


def predict_batch(models: Sequence[Any]) -> TableBatch:
    """The rows a batch of totals is priced from: the fast `ArchSpec` path when every model is an
    architecture, the full tables otherwise."""
    archs = [_as_arch(m) for m in models]
    if all(a is not None for a in archs):
        return arch_rows.arch_batch([a for a in archs if a is not None])
    return TableBatch.of([table_of(m) for m in models])


def predict_total_ms(models: Iterable[Any], device: str = "edgetpu_usb") -> list[float]:
    """Only the totals, equal to `predict(m).total_ms`: the fast path for ranking many candidates."""
    profile = load_profile(device)
    models = list(models)
    if not models:
        return []
    predictor = _KINDS[profile.kind]
    if predictor.batch_totals is None:
        return [predictor.estimate(table_of(m), profile).total_ms for m in models]
    result: list[float] = predictor.batch_totals(predict_batch(models), profile).tolist()
    return result


def segment(model: Any, n_devices: int, device: str = "edgetpu_usb", strategy: str = "latency") -> Segmentation:
    """Cut `model` (any form `predict` reads) into `n_devices` pipeline segments, one per Edge TPU; a model that is
    not full-int8 is refused (no Edge TPU runs its float ops, so there is nothing to split between TPUs)."""
    table = table_of(model)
    if table.float_ops:
        raise SegmentationError(f"the model is not full-int8: {len(table.float_ops)} op(s) compute in floating "
                                f"point (first {table.float_ops[0]}) and the Edge TPU runs only full-int8 models: "
                                "convert it with full integer quantisation before cutting it into segments")
    return segment_table(table, n_devices, load_profile(device), strategy)
