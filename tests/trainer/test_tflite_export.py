"""Every block type builds, trains a step and exports to a full-int8 TFLite file with no float op."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latency_models.litert import float_tensors, make_interpreter, op_names
from nas_service.trainer.tflite_export import dequantize_output, predict_int8, quantize_input
from search_spaces import ArchSpec, analyze, decode

RESOLUTION = 32

# One architecture per block type; together they cover every activation, both squeeze-excite gates
# (hard sigmoid, sigmoid under swish), residuals, noskip, expansion 1 and every head variant.
ARCHS = {
    "cn": "r32_n4/cn_k3_s2_c16_relu/cn_k3_s1_c16_relu-cn_k5_s2_c24_relu6/head_relu",
    "ds": "r32_n4/cn_k3_s2_c16_relu6/ds_k3_s1_c16_se0.25_relu6-ds_k5_s2_c24_hswish/head_c64_relu6",
    "ir": "r32_n4/cn_k3_s2_c16_hswish/ir_r2_k3_s1_e4_c16_se0.25_hswish-ir_k5_s2_e3_c24_relu"
          "/ir_k3_s1_e1_c24_relu6-ir_k3_s1_e6_c24_hswish_noskip/head_f32_hswish",
    "er": "r32_n4/cn_k3_s2_c16_swish/er_r2_k3_s1_e4_c16_se0.25_swish-er_k3_s2_e2_c24_swish"
          "/er_k3_s1_e4_c24_relu_noskip/head_c64_f32_swish",
}

EXPECTED_OPS = {"cn": {"CONV_2D"}, "ds": {"DEPTHWISE_CONV_2D", "HARD_SWISH", "MUL"},
                "ir": {"DEPTHWISE_CONV_2D", "HARD_SWISH", "ADD", "MUL"}, "er": {"LOGISTIC", "MUL", "ADD"}}
TFLITE_OP = {"conv2d": "CONV_2D", "depthwise_conv2d": "DEPTHWISE_CONV_2D", "fully_connected": "FULLY_CONNECTED",
             "mean": "MEAN", "add": "ADD"}


@dataclass(frozen=True)
class Exported:
    kind: str
    arch: ArchSpec
    loss: float
    float_probs: np.ndarray
    tflite: bytes
    images: np.ndarray


@pytest.fixture(scope="module", params=sorted(ARCHS))
def exported(request: Any) -> Exported:
    import keras

    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces.keras_builder import build_keras

    arch = decode(ARCHS[request.param])
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, RESOLUTION, RESOLUTION, 3)).astype(np.float32)
    labels = rng.integers(0, arch.num_classes, 4)
    model = build_keras(arch)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    float_probs = model.predict(images, verbose=0)
    loss = float(history.history["loss"][0])
    return Exported(request.param, arch, loss, float_probs, convert_int8(model, images), images)


@pytest.mark.tf
def test_trains_a_step(exported: Exported) -> None:
    assert np.isfinite(exported.loss)


@pytest.mark.tf
def test_export_is_full_int8_with_static_shapes(exported: Exported) -> None:
    interpreter = make_interpreter(exported.tflite)
    assert float_tensors(interpreter) == []
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert list(inp["shape_signature"]) == [1, RESOLUTION, RESOLUTION, 3]
    assert list(out["shape_signature"]) == [1, exported.arch.num_classes]
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(op_names(interpreter))


@pytest.mark.tf
def test_tflite_ops_are_the_analysis_layers(exported: Exported) -> None:
    ops = op_names(make_interpreter(exported.tflite))
    counts = Counter(ops)
    expected = Counter(TFLITE_OP[la.op] for la in analyze(exported.arch).layers if la.op in TFLITE_OP)
    assert {op: counts[op] for op in expected} == dict(expected)
    assert ops[-1] == "SOFTMAX"
    assert EXPECTED_OPS[exported.kind] <= set(ops), ops


@pytest.mark.tf
def test_int8_predictions_follow_the_float_model(exported: Exported) -> None:
    probs = predict_int8(exported.tflite, exported.images)
    assert probs.shape == exported.float_probs.shape
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    np.testing.assert_allclose(probs, exported.float_probs, atol=0.1)


@pytest.mark.tf
def test_interpreter_reads_a_file_like_the_bytes(exported: Exported, tmp_path: Path) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(exported.tflite)
    assert op_names(make_interpreter(path)) == op_names(make_interpreter(exported.tflite))


@pytest.mark.tf
def test_representative_data_of_the_wrong_shape_is_refused() -> None:
    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces.keras_builder import build_keras

    model = build_keras(decode("r32_n4/cn_k3_s2_c8_relu/cn_k3_s1_c8_relu/head_relu"))
    with pytest.raises(ValueError, match=r"\(2, 16, 16, 3\).*\(N, 32, 32, 3\)"):
        convert_int8(model, np.zeros((2, 16, 16, 3), np.float32))


def test_missing_model_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.tflite"
    with pytest.raises(FileNotFoundError, match="absent.tflite"):
        make_interpreter(missing)


def test_quantize_and_dequantize_round_trip() -> None:
    details = {"quantization": (2 / 255, -1), "dtype": np.int8}
    x = np.linspace(-1, 1, 11, dtype=np.float32)
    q = quantize_input(x, details)
    assert q.dtype == np.int8
    np.testing.assert_allclose(dequantize_output(q, details), x, atol=1 / 255 + 1e-6)
    assert quantize_input(np.array([100.0, -100.0]), details).tolist() == [127, -128]
