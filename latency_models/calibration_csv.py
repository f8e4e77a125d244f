"""Measurement CSVs (published or measured latencies of named networks), read row by row."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from latency_models.errors import CalibrationError

REQUIRED_COLUMNS = ("reference", "device", "latency_ms")
"""`model` (a name; the reference when absent), `input_size` (the network's own when absent or empty) and
`width_multiplier` are optional."""


@dataclass(frozen=True)
class Measurement:
    model: str
    reference: str
    input_size: int
    width: float | None
    device: str
    latency_ms: float


def read_measurements(path: Path, device: str | None = None) -> list[Measurement]:
    """Rows of a calibration CSV, optionally only those of one device."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"calibration CSV {str(path)!r} not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CalibrationError(f"calibration CSV {str(path)!r} lacks column(s) {', '.join(missing)}: expected "
                                   f"{', '.join(REQUIRED_COLUMNS)} (and optionally model, input_size, "
                                   "width_multiplier)")
        rows = []
        for line, r in enumerate(reader, 2):
            try:
                rows.append(Measurement(r.get("model") or r["reference"], r["reference"],
                                        int(r["input_size"]) if r.get("input_size") else 0,
                                        float(r["width_multiplier"]) if r.get("width_multiplier") else None,
                                        r["device"], float(r["latency_ms"])))
            except ValueError as exc:
                raise CalibrationError(f"bad value in {str(path)!r} line {line}: {exc}") from None
            if not rows[-1].latency_ms > 0:
                raise CalibrationError(f"latency_ms {r['latency_ms']!r} in {str(path)!r} line {line} is not a "
                                       "positive number of milliseconds: expected a measured latency")
    if device is not None:
        rows = [r for r in rows if r.device == device]
        if not rows:
            raise CalibrationError(f"calibration CSV {str(path)!r} has no rows for device {device!r}")
    return rows


def read_cpu_measurements(path: Path) -> list[tuple[str, float]]:
    """(architecture string, measured ms) rows of a `nas latency collect` CSV."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"measurement CSV {str(path)!r} not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"arch", "latency_ms"} <= set(reader.fieldnames or []):
            raise CalibrationError(f"measurement CSV {str(path)!r} lacks the arch and latency_ms columns: expected "
                                   "a file written by `nas latency collect`")
        return [(r["arch"], float(r["latency_ms"])) for r in reader]
