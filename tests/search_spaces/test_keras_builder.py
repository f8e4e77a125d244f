"""The Keras builder builds exactly the layers the analysis describes: names, shapes, parameters and MACs."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from search_spaces import ArchSpec, Block, Head, analyze, load_space, reference, reference_names, space_names
from search_spaces.arch import ACTIVATIONS

pytestmark = pytest.mark.tf

SAMPLES_PER_SPACE = 20


def keras_macs(model: Any) -> int:
    """Multiply-accumulates counted from the Keras layers themselves, independently of the analysis."""
    import keras

    total = 0
    for layer in model.layers:
        out = layer.output.shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            total += out[1] * out[2] * layer.kernel_size[0] * layer.kernel_size[1] * out[3]
        elif isinstance(layer, keras.layers.Conv2D):
            total += out[1] * out[2] * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[3] * out[3]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * out[-1]
    return total


def assert_matches_analysis(arch: ArchSpec) -> None:
    """Every analysis layer is a Keras layer of that name with the same output shape and parameters."""
    import keras

    from search_spaces.keras_builder import build_keras

    with keras.StatelessScope():  # defers weight initialisation: shapes and counts need no values
        model = build_keras(arch)
    analysis = analyze(arch)
    names = {layer.name for layer in model.layers}
    for la in analysis.layers:
        layer = model.get_layer(la.name)
        shape = tuple(layer.output.shape[1:])
        if la.op == "mean":  # the squeeze-excite pool keeps its 1x1 spatial dims for the 1x1 convs after it
            assert shape[-1:] == la.output_shape and set(shape[:-1]) <= {1}, (la.name, shape, la.output_shape)
        else:
            assert shape == la.output_shape, (la.name, shape, la.output_shape)
        bn = f"{la.name}.bn"
        params = layer.count_params() + (model.get_layer(bn).count_params() if bn in names else 0)
        assert params == la.params, (la.name, params, la.params)
        assert (bn in names) == la.batch_norm, la.name
    assert model.count_params() == analysis.params
    assert keras_macs(model) == analysis.macs
    assert model.output.shape[1:] == (arch.num_classes,)
    keras.backend.clear_session()


@pytest.mark.parametrize("name", reference_names())
def test_reference_networks_match_analysis(name: str) -> None:
    assert_matches_analysis(reference(name, num_classes=17, resolution=64))


def random_arch(rng: random.Random) -> ArchSpec:
    """A small random architecture over every block type, activation, SE, noskip and head variant."""
    def block(kind: str) -> Block:
        extra: dict[str, Any] = {}
        if kind in ("ir", "er"):
            extra = {"expansion": rng.choice([1.0, 2.0, 3.0, 4.5, 6.0]), "skip": rng.random() < 0.8}
        if kind != "cn" and rng.random() < 0.4:
            extra["se_ratio"] = rng.choice([0.125, 0.25, 0.5])
        return Block(kind, rng.choice([1, 3, 5, 7]), rng.choice([1, 2]), rng.choice([8, 16, 24]),
                     rng.choice(ACTIVATIONS), repeats=rng.randint(1, 3), **extra)

    stages = tuple(tuple(block(rng.choice(["cn", "ds", "ir", "er"])) for _ in range(rng.randint(1, 2)))
                   for _ in range(rng.randint(1, 4)))
    stem = Block("cn", rng.choice([3, 5]), rng.choice([1, 2]), rng.choice([8, 16]), rng.choice(ACTIVATIONS))
    head = Head(rng.choice([0, 32]), rng.choice([0, 16]), rng.choice(ACTIVATIONS))
    return ArchSpec(rng.randint(17, 48), rng.randint(2, 12), stem, stages, head)


@pytest.mark.parametrize("seed", range(20))
def test_random_architectures_match_analysis(seed: int) -> None:
    assert_matches_analysis(random_arch(random.Random(seed)))


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("space_name", space_names())
def test_space_samples_match_analysis(space_name: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    for _ in range(SAMPLES_PER_SPACE):
        trial = study.ask()
        assert_matches_analysis(space.sample(trial, num_classes=10, resolution=32))
        study.tell(trial, 0.0)


def test_cli_json_params_and_macs_equal_the_keras_model() -> None:
    from search_spaces.keras_builder import build_keras

    nas = Path(sys.executable).with_name("nas")
    out = subprocess.run([str(nas), "arch", "show", "efficientnet_edgetpu_s", "--json"], capture_output=True,
                         text=True, check=True).stdout
    shown = json.loads(out)
    model = build_keras(reference("efficientnet_edgetpu_s"))
    assert shown["params"] == model.count_params()
    assert shown["macs"] == keras_macs(model)


def test_num_classes_only_changes_the_classifier() -> None:
    from search_spaces.keras_builder import build_keras

    arch = reference("mobilenet_v2", width=0.35, resolution=32)
    small, large = build_keras(arch.with_classes(3)), build_keras(arch.with_classes(50))
    assert large.count_params() - small.count_params() == (50 - 3) * (1280 + 1)
    assert small.output.shape[1:] == (3,) and large.output.shape[1:] == (50,)


def test_importing_the_builder_and_exporter_does_not_import_tensorflow() -> None:
    code = ("import sys, search_spaces.keras_builder, latency_models.litert, nas_service.trainer.tflite_export; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
