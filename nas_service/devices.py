"""Device classes: what a job asks to be trained on (`training.device_class`) and what a worker offers.

A worker is of class `cpu` or `gpu`; a job asks for `any` (the default), `cpu` or `gpu`. A worker claims only
jobs asking for `any` or its own class, and prefers those asking for its class by name (`claim_job`), so GPU
workers take the training asked for GPUs first and CPU workers the rest.
"""

from __future__ import annotations

import logging
from typing import Literal

from nas_service.config import Settings

DeviceClass = Literal["cpu", "gpu"]
DEVICE_CLASSES: tuple[DeviceClass, ...] = ("cpu", "gpu")

log = logging.getLogger(__name__)


class DeviceClassError(ValueError):
    """A job asks for a device class that the process meant to run it does not have."""


def worker_device_class(settings: Settings) -> DeviceClass:
    """This process's device class: `NAS_DEVICE_CLASS` when it names one, else `gpu` where TensorFlow sees a GPU.

    TensorFlow is imported only for `auto` (seconds, and memory the API process must not spend); where it is not
    installed (the package without its `cpu` or `gpu` extra) the class is `cpu`."""
    if settings.device_class != "auto":
        return settings.device_class
    try:
        import tensorflow as tf
    except ImportError:
        log.warning("TensorFlow is not installed (pip install 'nas-service[cpu]' or 'nas-service[gpu]'): device "
                    "class cpu, and jobs that train will fail")
        return "cpu"
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def check_runs_here(asked: str, settings: Settings) -> DeviceClass | None:
    """The device class a process running one job itself (`nas search`, `nas resume --run`) claims it with:
    None for a job asking for `any` (nothing detected); else the job's class, or `DeviceClassError` naming both
    and the ways out when this machine is of the other class."""
    if asked == "any":
        return None
    here = worker_device_class(settings)
    if here != asked:
        why = (f"NAS_DEVICE_CLASS={settings.device_class}" if settings.device_class != "auto"
               else "TensorFlow sees no GPU" if here == "cpu" else "TensorFlow sees a GPU")
        raise DeviceClassError(f"the job asks for training.device_class {asked!r} but this machine's device class is "
                               f"{here!r} ({why}): ask for device class 'any' or {here!r}, or queue the job for a "
                               f"{asked} worker (`nas worker` on such a machine, on a shared database)")
    return here
