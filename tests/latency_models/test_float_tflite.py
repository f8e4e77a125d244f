"""A float (not int8) .tflite is not priced as if it ran on the Edge TPU: detected, said, priced as CPU fallback,
refused under strict, marked in the API, and never split into Edge TPU segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latency_models import NotInt8Error, SegmentationError, predict, segment
from nas_service.cli import app
from tests.api.conftest import Api
from tests.api.conftest import api as api  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.tf, pytest.mark.slow]

ARCH = "r32_n10/cn_k3_s2_c16_relu/er_k3_s1_e4_c16_relu-ir_k3_s2_e4_c24_relu/head_c128_relu"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same network as a float .tflite (plain conversion) and as the service's full-int8 export."""
    import tensorflow as tf

    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces import decode
    from search_spaces.keras_builder import build_keras

    model = build_keras(decode(ARCH))
    folder = tmp_path_factory.mktemp("float")
    float_path, int8_path = folder / "float.tflite", folder / "int8.tflite"
    float_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    int8_path.write_bytes(convert_int8(model, np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32),
                                       num_samples=8))
    return float_path, int8_path


def test_a_float_model_is_priced_as_cpu_fallback_and_refused_under_strict(models: tuple[Path, Path]) -> None:
    float_path, int8_path = models
    int8 = predict(int8_path, strict=True)
    assert int8.int8 and int8.float_ops == () and int8.to_dict()["int8"] is True
    estimate = predict(float_path)
    assert not estimate.int8 and estimate.to_dict()["int8"] is False
    assert estimate.float_ops[0].startswith("conv2d (") and estimate.float_ops[0].endswith(", float32)")
    priced = [la for la in estimate.layers if la.op != "overhead"]
    assert priced and all(la.bound == "cpu" for la in priced)  # the Edge TPU runs none of it
    assert len(estimate.cpu_fallback_ops) == len(priced)
    assert estimate.total_ms > int8.total_ms
    with pytest.raises(NotInt8Error, match="not full-int8: .* compute in floating point .* the Edge TPU runs only "
                                           "full-int8 models"):
        predict(float_path, strict=True)
    with pytest.raises(SegmentationError, match="not full-int8"):
        segment(float_path, 2)
    assert len(segment(int8_path, 2).segments) == 2


def test_the_cli_says_so_refuses_strict_and_does_not_split(models: tuple[Path, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from nas_service.cli.errors import run_cli

    float_path, _ = models
    result = CliRunner().invoke(app, ["latency", "predict", str(float_path)], catch_exceptions=False)
    assert result.exit_code == 0 and "not full-int8:" in result.output and "priced as CPU fallback" in \
        " ".join(result.output.split())
    out = tmp_path / "segments"
    for args in (["latency", "predict", str(float_path), "--strict"],
                 ["latency", "segment", str(float_path), "--split-to", str(out)]):
        monkeypatch.setattr("sys.argv", ["nas", *args])
        assert run_cli(app) == 2
        err = capsys.readouterr().err
        assert "not full-int8" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() or not any(out.iterdir())


def test_the_api_marks_a_float_upload(models: tuple[Path, Path], api: Api) -> None:
    float_path, int8_path = models
    answers = {path.name: api.client.post("/api/v1/latency/predict-tflite", files={"file": (path.name,
                                          path.read_bytes())}, headers=api.alice) for path in models}
    assert all(a.status_code == 200 for a in answers.values()), [a.text for a in answers.values()]
    floating, int8 = answers[float_path.name].json(), answers[int8_path.name].json()
    assert floating["int8"] is False and floating["float_ops"] and floating["cpu_fallback_ops"]
    assert int8["int8"] is True and int8["float_ops"] == []
    assert floating["total_ms"] > int8["total_ms"]
