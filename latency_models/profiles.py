"""Device profiles: versioned JSON files holding a device's fitted and fixed constants.

`constants` are fitted by `nas latency calibrate` (or, for `cpu_litert`, from collected
measurements); `fixed` holds hardware facts that are not fitted; `fit` records how the constants
were produced (command, data file and its SHA-256, figures). The profile version is derived from the
content, so a changed constant is always a new version in stored estimates.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from latency_models.errors import LatencyError, UnknownDeviceError

PROFILE_DIR = Path(__file__).with_name("profiles")
SCHEMA_VERSION = 1
KINDS = ("edgetpu", "cpu")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    kind: str
    description: str
    constants: dict[str, float]
    fixed: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def version(self) -> str:
        """`<name>@<12 hex digits>` of the constants and facts that change predictions."""
        body = json.dumps({"kind": self.kind, "constants": self.constants, "fixed": self.fixed}, sort_keys=True)
        return f"{self.name}@{hashlib.sha256(body.encode()).hexdigest()[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "name": self.name, "kind": self.kind,
                "description": self.description, "version": self.version, "constants": self.constants,
                "fixed": self.fixed, "fit": self.fit}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def read_profile(path: Path) -> DeviceProfile:
    """A profile from a JSON file; `LatencyError` naming the file and the problem otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"device profile {str(path)!r} not found") from None
    except json.JSONDecodeError as exc:
        raise LatencyError(f"device profile {str(path)!r} is not valid JSON: {exc}") from None
    if data.get("schema_version") != SCHEMA_VERSION or data.get("kind") not in KINDS:
        raise LatencyError(f"device profile {str(path)!r} has schema_version {data.get('schema_version')!r} and "
                           f"kind {data.get('kind')!r}: expected schema_version {SCHEMA_VERSION} and a kind in "
                           f"{', '.join(KINDS)}")
    return DeviceProfile(data["name"], data["kind"], data.get("description", ""),
                         {k: float(v) for k, v in data["constants"].items()}, data.get("fixed", {}),
                         data.get("fit", {}))


PIPELINES = {"edgetpu_usb": (2, 4)}
"""Hosts with several Edge TPUs of a kind (USB Accelerators: several plug into one host), by device count.
`<base>_x<N>` prices a network cut into N pipeline segments (`latency_models.segment`, latency strategy)
by its end-to-end latency; `<base>_x<N>_pipelined` by its slowest stage, the time per inference when the
pipeline is kept full (1 / throughput)."""
PIPELINE_KIND = "edgetpu_pipeline"


def profile_names() -> list[str]:
    files = sorted(p.stem for p in PROFILE_DIR.glob("*.json"))
    return sorted([*files, *(f"{base}_x{n}{suffix}" for base, counts in PIPELINES.items() for n in counts
                             for suffix in ("", "_pipelined"))])


@cache
def load_profile(name: str) -> DeviceProfile:
    """The packaged profile of device `name`."""
    path = PROFILE_DIR / f"{name}.json"
    if path.is_file():
        return read_profile(path)
    for base, counts in PIPELINES.items():
        for n in counts:
            for suffix, measure in (("", "end_to_end"), ("_pipelined", "slowest_stage")):
                if name == f"{base}_x{n}{suffix}":
                    return _pipeline(load_profile(base), name, n, measure)
    raise UnknownDeviceError(f"unknown device {name!r}: expected one of {', '.join(profile_names())}")


def _pipeline(base: DeviceProfile, name: str, devices: int, measure: str) -> DeviceProfile:
    what = "end-to-end latency" if measure == "end_to_end" else "slowest stage (1 / throughput)"
    return DeviceProfile(name, PIPELINE_KIND, f"{devices} x {base.description}, a network cut into {devices} "
                         f"pipeline segments; priced by its {what}", base.constants,
                         {**base.fixed, "devices": devices, "measure": measure}, base.fit)
