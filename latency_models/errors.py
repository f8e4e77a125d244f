"""Domain errors of the latency package: each names the value, where it stood and what was expected."""

from __future__ import annotations


class LatencyError(ValueError):
    """A latency question that cannot be answered as asked (unknown device, unreadable model, bad CSV)."""


class UnknownDeviceError(LatencyError):
    """A device name with no profile."""


class ModelFileError(LatencyError):
    """A model file that is missing, corrupt or of a kind no reader handles."""


class UnmodeledOpError(LatencyError):
    """Strict mode met an op the device model cannot price."""

    def __init__(self, message: str, *, ops: tuple[str, ...]) -> None:
        super().__init__(message)
        self.ops = ops


class NotInt8Error(LatencyError):
    """Strict mode met a model that is not full-int8: the Edge TPU would run none of its float ops."""

    def __init__(self, message: str, *, ops: tuple[str, ...]) -> None:
        super().__init__(message)
        self.ops = ops


class CalibrationError(LatencyError):
    """A calibration CSV that cannot be fitted or validated (missing columns, no rows for the device)."""


class DeviceUnavailableError(LatencyError):
    """Real measurement needs hardware or a tool that is not present on this host."""
