"""The three readers agree on one layer IR (ArchSpec, Keras build, int8 TFLite), and Keras applications read."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latency_models import UnmodeledOpError, predict, read_layers
from latency_models.networks import build_layers, network_layers
from search_spaces import analyze, reference

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _totals(layers: Any) -> tuple[int, int]:
    return sum(la.macs for la in layers), sum(la.folded_params for la in layers)


@pytest.fixture(scope="module")
def candidate() -> Any:
    return reference("mobilenet_v3_small", num_classes=10, resolution=96)


@pytest.fixture(scope="module")
def keras_model(candidate: Any) -> Any:
    from search_spaces.keras_builder import build_keras

    return build_keras(candidate)


@pytest.fixture(scope="module")
def tflite_path(keras_model: Any, candidate: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nas_service.trainer.tflite_export import convert_int8

    images = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    path = tmp_path_factory.mktemp("tflite") / "candidate.tflite"
    path.write_bytes(convert_int8(keras_model, images, num_samples=2))
    return path


def test_arch_keras_and_tflite_agree_within_one_percent(candidate: Any, keras_model: Any, tflite_path: Path) -> None:
    macs, params = _totals(analyze(candidate).layers)
    for layers in (read_layers(keras_model), read_layers(tflite_path)):
        other_macs, other_params = _totals(layers)
        assert other_macs == pytest.approx(macs, rel=0.01)
        assert other_params == pytest.approx(params, rel=0.01)


def test_arch_and_keras_read_the_same_graph(candidate: Any, keras_model: Any) -> None:
    """Which layers each layer reads (residual adds, squeeze-excite multiplies): where a network may be cut."""
    from search_spaces.analysis import layer_inputs

    arch_graph = layer_inputs(analyze(candidate).layers)
    assert layer_inputs(read_layers(keras_model)) == arch_graph
    assert any(len(inputs) == 2 for inputs in arch_graph)  # mobilenet_v3_small has residuals and squeeze-excite


def test_tflite_estimate_is_close_to_the_arch_estimate(candidate: Any, tflite_path: Path) -> None:
    from_arch, from_file = predict(candidate), predict(tflite_path)
    assert from_file.unmodeled_ops == ()
    assert from_file.total_ms == pytest.approx(from_arch.total_ms, rel=0.25)


@pytest.mark.parametrize(("name", "size"), [("MobileNet", 64), ("MobileNetV2", 64), ("MobileNetV3Large", 64),
                                            ("ResNet50", 64), ("ResNet50V2", 64), ("DenseNet121", 64),
                                            ("InceptionV3", 75), ("InceptionResNetV2", 75), ("VGG16", 32),
                                            ("EfficientNetB0", 64)])
def test_keras_applications_read_without_unmodeled_ops(name: str, size: int) -> None:
    import keras

    model = getattr(keras.applications, name)(input_shape=(size, size, 3), weights=None)
    layers = read_layers(model)
    conv_weights = sum(int(np.prod(w.shape)) for layer in model.layers for w in layer.weights
                       if "kernel" in w.path)
    assert sum(la.weights for la in layers) == conv_weights
    assert predict(model, strict=True).total_ms > 0
    keras.backend.clear_session()


def test_network_cache_matches_a_fresh_build() -> None:
    ref = "keras.applications.MobileNetV2"
    def unnamed(layers: Any) -> list[Any]:  # Keras numbers auto-named layers per session
        return [dataclasses.replace(la, name="") for la in layers]

    assert unnamed(network_layers(ref, 224, 1.0)) == unnamed(build_layers(ref, 224, 1.0))


def test_strict_mode_names_the_unmodeled_op() -> None:
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3)(inputs)
    x = keras.layers.LayerNormalization(name="odd_norm")(x)
    model = keras.Model(inputs, x)
    assert any("odd_norm" in op for op in predict(model).unmodeled_ops)
    with pytest.raises(UnmodeledOpError, match="odd_norm"):
        predict(model, strict=True)


def test_zero_padding_before_a_convolution_is_folded_as_the_converter_does(tmp_path: Path) -> None:
    import keras

    from nas_service.trainer.tflite_export import convert_int8

    inputs = keras.Input((16, 16, 8))
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(inputs)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid")(x)
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(8, 3, padding="valid")(x)
    model = keras.Model(inputs, x)
    path = tmp_path / "padded.tflite"
    path.write_bytes(convert_int8(model, np.zeros((1, 16, 16, 8), np.float32), num_samples=1))
    from_keras, from_file = read_layers(model), read_layers(path)
    assert [la.op for la in from_keras] == [la.op for la in from_file] == ["depthwise_conv2d", "conv2d"]
    assert [la.input_shape for la in from_keras] == [la.input_shape for la in from_file]
    keras.backend.clear_session()


def test_measure_reports_thread_cpu_and_wall_time(tflite_path: Path) -> None:
    from latency_models.measure import measure_tflite

    result = measure_tflite(tflite_path, rounds=2, per_round=3, warmup=1)
    assert result.median_ms > 0 and result.wall_median_ms > 0
    assert len(result.round_medians_ms) == 2 and result.invocations == 6


@pytest.mark.parametrize(("ref", "size", "params"), [("build.squeezenet_1_0", 224, 1.25e6),
                                                     ("build.inception_v1", 224, 6.6e6),
                                                     ("build.unet_mobilenet_v2", 128, 6.5e6)])
def test_rebuilt_networks_read_whole_and_match_their_cache(ref: str, size: int, params: float) -> None:
    """Published parameter counts: SqueezeNet 1.0 1.25 M (Iandola et al.), TF-slim Inception v1 6.6 M, the
    tutorial U-Net 6.5 M (Coral's compiled file: 7.2 MB)."""
    def unnamed(layers: Any) -> list[Any]:
        return [dataclasses.replace(la, name="") for la in layers]

    fresh = build_layers(ref, size)
    assert sum(la.folded_params for la in fresh) == pytest.approx(params, rel=0.03)
    assert not [la.op for la in fresh if la.op.startswith("keras:")]
    assert unnamed(network_layers(ref, size)) == unnamed(fresh)


def test_transposed_convolution_is_priced_by_its_input_positions() -> None:
    import keras

    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(inputs))
    (layer,) = read_layers(model)
    assert layer.op == "transpose_conv" and layer.output_shape == (16, 16, 4)
    assert layer.macs == 8 * 8 * 3 * 3 * 16 * 4 and layer.weights == 3 * 3 * 16 * 4
    assert predict(model, strict=True).total_ms > 0
    keras.backend.clear_session()
