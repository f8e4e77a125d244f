"""Latency prediction over REST: architecture strings, reference names, and size-limited .tflite uploads."""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner

from nas_service.api.routes.latency import MAX_TFLITE_BYTES, MULTIPART_SLACK
from nas_service.cli import app
from tests.api.conftest import Api

ARCH = "r96_n10/cn_k3_s2_c16_relu/er_k3_s1_e4_c16_relu/head_c256_relu"


def test_predict_arch_string_and_reference(api: Api) -> None:
    response = api.client.post("/api/v1/latency/predict", json={"arch": ARCH, "device": "edgetpu_usb"},
                               headers=api.alice)
    assert response.status_code == 200, response.text
    estimate = response.json()
    assert estimate["arch"] == ARCH and estimate["device"] == "edgetpu_usb" and estimate["total_ms"] > 0
    assert estimate["layers"] and {"name", "op", "ms", "bound"} <= set(estimate["layers"][0])
    reference = api.client.post("/api/v1/latency/predict", json={"arch": "mobilenet_v2"}, headers=api.alice).json()
    assert reference["total_ms"] > estimate["total_ms"]
    # the interval of the band, and the small candidate flagged as beyond the calibration networks
    assert reference["low_ms"] < reference["total_ms"] < reference["high_ms"] and not reference["extrapolated"]
    assert estimate["extrapolated"] and "fewer than any calibration network" in estimate["extrapolation"][0]
    schema = api.client.get("/api/v1/openapi.json").json()["components"]["schemas"]["LatencyOut"]["properties"]
    assert "leave-one-network-out" in schema["interval_pct"]["description"]
    assert "calibrated range" in schema["extrapolated"]["description"]


def test_bad_arch_and_device_are_422(api: Api) -> None:
    response = api.client.post("/api/v1/latency/predict", json={"arch": "r96_n10/zz_k3", "device": "edgetpu_usb"},
                               headers=api.alice)
    assert response.status_code == 422 and "zz" in response.text
    response = api.client.post("/api/v1/latency/predict", json={"arch": ARCH, "device": "tpu9000"},
                               headers=api.alice)
    assert response.status_code == 422 and "edgetpu_usb" in response.text


def test_random_bytes_upload_is_422(api: Api) -> None:
    response = api.client.post("/api/v1/latency/predict-tflite", files={"file": ("x.tflite", os.urandom(4096))},
                               data={"device": "edgetpu_usb"}, headers=api.alice)
    assert response.status_code == 422 and "not a TFLite model" in response.text
    fake_header = b"\x1c\x00\x00\x00TFL3" + os.urandom(4096)  # the right magic, garbage after it
    response = api.client.post("/api/v1/latency/predict-tflite", files={"file": ("y.tflite", fake_header)},
                               headers=api.alice)
    assert response.status_code == 422


def test_a_bad_upload_is_422_without_a_server_path(api: Api) -> None:
    """The 422 quoted the server's temporary file ('/tmp/nas-upload-.../upload.tflite')."""
    for body in (os.urandom(4096), b"\x1c\x00\x00\x00TFL3" + os.urandom(4096)):
        response = api.client.post("/api/v1/latency/predict-tflite", files={"file": ("x.tflite", body)},
                                   headers=api.alice)
        message = response.json()["detail"][0]["msg"]
        expected = ("the given file cannot be loaded as a TFLite model" if b"TFL3" in body
                    else "the given file is not a TFLite model")
        assert response.status_code == 422 and message.startswith(expected), message
        assert "/tmp" not in message and "upload.tflite" not in message and "nas-upload" not in message


def test_oversized_upload_is_413(api: Api) -> None:
    response = api.client.post("/api/v1/latency/predict-tflite",
                               files={"file": ("big.tflite", b"\0" * (MAX_TFLITE_BYTES + 1))}, headers=api.alice)
    assert response.status_code == 413 and str(MAX_TFLITE_BYTES) in response.json()["detail"]
    response = api.client.post("/api/v1/latency/predict-tflite",
                               files={"file": ("bigger.tflite", b"\0" * (MAX_TFLITE_BYTES + 2 * MULTIPART_SLACK))},
                               headers=api.alice)
    assert response.status_code == 413  # refused by the body limit before the upload is parsed


def test_upload_needs_a_token(api: Api) -> None:
    response = api.client.post("/api/v1/latency/predict-tflite", files={"file": ("x.tflite", b"1234")})
    assert response.status_code == 401


def test_segment_an_architecture_over_several_tpus(api: Api) -> None:
    body = {"arch": "efficientnet_edgetpu_l", "devices": 4, "strategy": "latency"}
    response = api.client.post("/api/v1/latency/segment", json=body, headers=api.alice)
    assert response.status_code == 200, response.text
    cut = response.json()
    assert cut["devices"] == 4 and len(cut["segments"]) == 4 and cut["device"] == "edgetpu_usb"
    assert cut["throughput_per_s"] == 1000 / cut["slowest_stage_ms"]
    assert cut["end_to_end_ms"] == sum(s["latency_ms"] for s in cut["segments"])
    params = api.client.post("/api/v1/latency/segment", json={**body, "strategy": "params"}, headers=api.alice)
    assert params.json()["slowest_stage_ms"] >= cut["slowest_stage_ms"]
    for bad, why in (({"devices": 0}, "greater than or equal to 1"), ({"devices": 9}, "less than or equal to 8"),
                     ({"strategy": "fast"}, "latency"), ({"device": "cpu_litert"}, "is a cpu device"),
                     ({"devices": "x"}, "integer")):
        response = api.client.post("/api/v1/latency/segment", json={**body, **bad}, headers=api.alice)
        assert response.status_code == 422 and why in response.text, (bad, response.text)
    assert api.client.post("/api/v1/latency/segment", json=body).status_code == 401


def test_segment_uses_fewer_tpus_where_the_network_has_fewer_places_to_cut(api: Api) -> None:
    """The CLI's rule: hard-swish in MobileNetV3's stem leaves the CPU the rest, so one TPU is used of the 8."""
    body = {"arch": "mobilenet_v3_large", "devices": 8}
    response = api.client.post("/api/v1/latency/segment", json=body, headers=api.alice)
    assert response.status_code == 200, response.text
    assert response.json()["devices"] == 8 and response.json()["devices_used"] == 1
    result = CliRunner().invoke(app, ["latency", "segment", "mobilenet_v3_large", "--devices", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {k: v for k, v in response.json().items() if k != "arch"}
    for bad in ("9", "64"):
        cli = CliRunner().invoke(app, ["latency", "segment", "mobilenet_v2", "--devices", bad])
        api_answer = api.client.post("/api/v1/latency/segment", json={**body, "devices": int(bad)}, headers=api.alice)
        assert cli.exit_code == 2 and "less than or equal to 8" in cli.output, cli.output
        assert api_answer.status_code == 422 and "less than or equal to 8" in api_answer.text
