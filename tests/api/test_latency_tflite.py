"""A real full-int8 .tflite uploaded to the latency route: read by the LiteRT interpreter, priced like its string."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.api.conftest import Api
from tests.api.test_no_tensorflow import run_api_without_tensorflow

ARCH = "r32_n10/cn_k3_s2_c16_relu/er_k3_s1_e4_c16_relu-ir_k3_s2_e4_c24_relu/head_c128_relu"


@pytest.mark.tf
def test_uploaded_tflite_is_priced(api: Api) -> None:
    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces import decode
    from search_spaces.keras_builder import build_keras

    model = build_keras(decode(ARCH))
    data = convert_int8(model, np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32), num_samples=8)
    response = api.client.post("/api/v1/latency/predict-tflite", files={"file": ("m.tflite", data)},
                               data={"device": "edgetpu_usb"}, headers=api.alice)
    assert response.status_code == 200, response.text
    estimate = response.json()
    ops = {layer["op"] for layer in estimate["layers"]}
    assert {"conv2d", "depthwise_conv2d"} <= ops and estimate["total_ms"] > 0
    from_string = api.client.post("/api/v1/latency/predict", json={"arch": ARCH}, headers=api.alice).json()
    assert 0.5 < estimate["total_ms"] / from_string["total_ms"] < 2  # one layer IR, whatever the source


@pytest.mark.tf
def test_pricing_a_tflite_keeps_tensorflow_out(tmp_path: Path) -> None:
    """The file is made with TensorFlow here; the API pricing it in a fresh process reads it with LiteRT only."""
    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces import decode
    from search_spaces.keras_builder import build_keras

    path = tmp_path / "m.tflite"
    path.write_bytes(convert_int8(build_keras(decode(ARCH)), np.random.default_rng(0).random((8, 32, 32, 3),
                                                                                             dtype=np.float32),
                                  num_samples=8))
    result = run_api_without_tensorflow(tmp_path, path)
    assert result.returncode == 0, result.stdout + result.stderr
