"""Latency predictions and pipeline segmentations as the API and the CLI both offer them.

A model is named by text (a reference network, an architecture string, or a `.tflite` / `.keras`
path on the CLI) or arrives as the bytes of an uploaded `.tflite`; none of this imports TensorFlow
except reading a `.keras` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import latency_models
from search_spaces import ArchSpec, resolve

MODEL_SUFFIXES = (".tflite", ".keras")


def model_of(text: str, *, files: bool = False) -> ArchSpec | Path:
    """The architecture `text` names; with `files`, a `.tflite` / `.keras` path is taken as that file, and any
    other existing path (a directory, a file of another kind) is refused as such, not parsed as an architecture."""
    if files and text.endswith(MODEL_SUFFIXES):
        return Path(text)
    if files and Path(text).exists():
        kind = "a directory" if Path(text).is_dir() else f"a file without a {' or '.join(MODEL_SUFFIXES)} suffix"
        raise latency_models.ModelFileError(f"{text!r} is {kind}: expected a .tflite or .keras file, a reference "
                                            "name or an architecture string")
    return resolve(text)


def predict(model: ArchSpec | Path, device: str, *, strict: bool = False) -> latency_models.LatencyEstimate:
    return latency_models.predict(model, device, strict=strict)


def predict_tflite_bytes(data: bytes, device: str) -> latency_models.LatencyEstimate:
    """An uploaded `.tflite`, read from its bytes by the LiteRT interpreter (no file on the server, so no
    server path in an error about it)."""
    return latency_models.predict(data, device)


@dataclass(frozen=True)
class Split:
    """Segment files written for a `.tflite`, and whether chained they compute exactly what it does."""

    paths: list[Path]
    identical: bool


def segment(model: ArchSpec | Path, devices: int, device: str, strategy: str) -> latency_models.Segmentation:
    return latency_models.segment(model, devices, device, strategy)


def split(model: Path, cut: latency_models.Segmentation, folder: Path) -> Split:
    """Write `cut`'s segments of the `.tflite` at `model` into `folder` and check the chain against it."""
    from latency_models.tflite_split import chain_matches, write_segments

    paths = write_segments(model, [s.stop for s in cut.segments], folder)
    return Split(paths, chain_matches(model.read_bytes(), [p.read_bytes() for p in paths]))
