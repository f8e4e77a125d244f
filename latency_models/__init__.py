"""How fast a candidate runs: Edge TPU and host-CPU latency models over one layer IR.

`predict(model, device=...)` is the front door. Importing this package never imports TensorFlow:
only the Keras reader does, when handed a Keras model or a `.keras` file.
"""

from latency_models.errors import (
    CalibrationError,
    DeviceUnavailableError,
    LatencyError,
    ModelFileError,
    NotInt8Error,
    UnknownDeviceError,
    UnmodeledOpError,
)
from latency_models.estimate import LatencyEstimate, LayerLatency
from latency_models.pipeline import Segmentation, SegmentationError
from latency_models.predictors import (
    LatencyPredictor,
    predict,
    predict_many,
    predict_total_ms,
    read_layers,
    segment,
)
from latency_models.profiles import DeviceProfile, load_profile, profile_names

__all__ = [
    "CalibrationError", "DeviceProfile", "DeviceUnavailableError", "LatencyError", "LatencyEstimate",
    "LatencyPredictor", "LayerLatency", "ModelFileError", "NotInt8Error", "UnknownDeviceError", "UnmodeledOpError",
    "Segmentation", "SegmentationError", "load_profile", "predict", "predict_many", "predict_total_ms",
    "profile_names", "read_layers", "segment",
]
