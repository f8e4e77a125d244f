"""Published networks named in calibration CSVs, as the layer IR, with a cache inside the package.

A CSV row names its network in the `reference` column: `keras.applications.<Class>` (built with
`weights=None` at the row's input size and width), `build.<name>` (a network rebuilt with Keras
layers in `builds.py`), a `.tflite` path, an architecture string (a user's own candidates) or an
`ArchSpec` reference name from `search_spaces` (its first word, e.g. `efficientnet_edgetpu_s`).
Building the large Keras models takes TensorFlow and tens of seconds, so their layer IR is cached
in `data/networks.json`;
`python -m latency_models.networks` regenerates that file.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from latency_models.calibration_csv import read_measurements
from latency_models.errors import CalibrationError
from search_spaces import analyze, reference, reference_names, resolve
from search_spaces.analysis import Layer

CACHE_PATH = Path(__file__).with_name("data") / "networks.json"
CACHE_SCHEMA_VERSION = 2
_FIELDS = ("name", "op", "input_shape", "output_shape", "kernel", "stride", "weights", "bias", "batch_norm",
           "activation", "macs", "inputs")
"""Schema 2 adds `inputs` (the layers each one reads, so that the Edge TPU model can tell which tensors
are alive at once: skip connections, branch inputs)."""


def network_key(ref: str, input_size: int, width: float | None) -> str:
    return f"{ref.split()[0]}@{input_size}@{width or 1.0:g}"


def network_layers(ref: str, input_size: int, width: float | None = None) -> tuple[Layer, ...]:
    """The layers of the network a calibration row names, from the cache when it holds them."""
    key = network_key(ref, input_size, width)
    cached = _load_cache().get(key)
    if cached is not None:
        return cached
    return build_layers(ref, input_size, width)


def build_layers(ref: str, input_size: int, width: float | None = None) -> tuple[Layer, ...]:
    """Build the named network (TensorFlow for Keras applications) and read its layers."""
    name = ref.split()[0]
    if name.startswith("keras.applications."):
        from latency_models.readers.keras_reader import read_keras

        return read_keras(_keras_application(name.removeprefix("keras.applications."), input_size, width))
    if name.startswith("build."):
        from latency_models.builds import BUILDERS
        from latency_models.readers.keras_reader import read_keras

        builder = BUILDERS.get(name.removeprefix("build."))
        if builder is None:
            raise CalibrationError(f"unknown network {ref!r} in the calibration CSV's reference column: expected "
                                   f"build.<name> with a name in {', '.join(BUILDERS)}")
        return read_keras(builder(input_size))
    if name in reference_names():
        return analyze(reference(name, width or 1.0, resolution=input_size or None)).layers
    if name.endswith(".tflite"):
        from latency_models.readers.tflite_reader import read_tflite

        return read_tflite(Path(name))
    try:
        return analyze(resolve(name)).layers
    except Exception:  # the grammar raises several types for a string that is no architecture
        raise CalibrationError(f"unknown network {ref!r} in the calibration CSV's reference column: expected "
                               "'keras.applications.<Class>', 'build.<name>', a .tflite path, an architecture "
                               f"string or one of {', '.join(reference_names())}") from None


def _keras_application(cls: str, input_size: int, width: float | None) -> Any:
    import keras

    factory = getattr(keras.applications, cls, None)
    if factory is None:
        raise CalibrationError(f"keras.applications has no model {cls!r}: expected a class such as MobileNetV2")
    kwargs: dict[str, Any] = {"input_shape": (input_size, input_size, 3), "weights": None}
    if width and cls.startswith("MobileNet"):
        kwargs["alpha"] = width
    return factory(**kwargs)


def layer_to_row(layer: Layer) -> list[Any]:
    def value(name: str) -> Any:
        v = getattr(layer, name)
        return list(v) if isinstance(v, tuple) else v

    return [value(f) for f in _FIELDS]


def row_to_layer(row: list[Any]) -> Layer:
    values = dict(zip(_FIELDS, row, strict=True))
    for name in ("input_shape", "output_shape", "inputs"):
        if values[name] is not None:
            values[name] = tuple(values[name])
    return Layer(**values)


@cache
def _load_cache() -> dict[str, tuple[Layer, ...]]:
    if not CACHE_PATH.is_file():
        return {}
    data = json.loads(CACHE_PATH.read_text())
    return {key: tuple(row_to_layer(r) for r in rows) for key, rows in data["networks"].items()}


def regenerate_cache(csv_path: Path, out: Path = CACHE_PATH) -> dict[str, int]:
    """Build every Keras application and `build.` network named in `csv_path` and write their layers to `out`.
    Networks already in `out` that the CSV does not name are kept (Inception-ResNet V2, whose published rows
    `published.py` prices to leave them out)."""
    networks: dict[str, list[list[Any]]] = {}
    if out.is_file():
        old = json.loads(out.read_text())
        if old.get("schema_version") == CACHE_SCHEMA_VERSION:
            networks.update(old["networks"])
    named: set[str] = set()
    for row in read_measurements(csv_path):
        if not row.reference.startswith(("keras.applications.", "build.")):
            continue
        key = network_key(row.reference, row.input_size, row.width)
        if key not in named:
            named.add(key)
            layers = build_layers(row.reference, row.input_size, row.width)
            networks[key] = [layer_to_row(la) for la in layers]
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"schema_version": CACHE_SCHEMA_VERSION, "fields": list(_FIELDS),
               "generated_by": "python -m latency_models.networks CSV", "networks": networks}
    out.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    _load_cache.cache_clear()
    return {key: len(rows) for key, rows in networks.items()}


if __name__ == "__main__":
    import sys

    for key, count in regenerate_cache(Path(sys.argv[1])).items():
        print(f"{key}: {count} layers")
