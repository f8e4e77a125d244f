"""Real pipeline segments: int8 TFLite files cut where the latency model says, chained in LiteRT, computing
exactly what the whole model computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from latency_models import segment
from latency_models.errors import ModelFileError
from latency_models.readers.tflite_reader import read_tflite
from latency_models.tflite_split import run_chain, split_tflite
from nas_service.cli import app
from search_spaces import decode, reference

pytestmark = [pytest.mark.tf, pytest.mark.slow]

RESIDUAL = decode("r16_n10/cn_k3_s1_c16_relu/ir_k3_s1_e2_c16_relu/ir_k3_s2_e2_c24_relu/ir_k3_s1_e2_c24_relu/"
                  "ds_k3_s1_c32_relu/head_relu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A candidate with residual blocks, trained on digits and exported as full int8."""
    from nas_service.services.training import train_and_export
    from nas_service.trainer.training import Budget

    out = tmp_path_factory.mktemp("split") / "candidate.tflite"
    train_and_export(RESIDUAL, "digits", Budget(epochs=1), out, seed=0)
    return out


def _int8(arch: object) -> bytes:
    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces.keras_builder import build_keras

    size = arch.resolution  # type: ignore[attr-defined]
    images = np.random.default_rng(0).uniform(-1, 1, (8, size, size, 3)).astype(np.float32)
    return convert_int8(build_keras(arch.with_classes(10)), images, num_samples=8)  # type: ignore[attr-defined]


def _whole(model: bytes, images: np.ndarray) -> np.ndarray:
    return run_chain([model], images)


def test_a_trained_candidate_split_over_three_tpus_gives_identical_int8_outputs_on_the_test_images(
        trained: Path, tmp_path: Path) -> None:
    from latency_models.litert import make_interpreter
    from nas_service.trainer.datasets import load_dataset
    from nas_service.trainer.tflite_export import quantize_input
    from nas_service.trainer.training import scale_images

    result = CliRunner().invoke(app, ["latency", "segment", str(trained), "--devices", "3", "--json",
                                      "--split-to", str(tmp_path / "segments")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    names = [Path(f).name for f in report["files"]]
    assert names == [f"candidate_segment_{i}_of_3.tflite" for i in range(3)]  # as edgetpu_compiler names them
    assert report["chain_identical"] is True
    parts = [Path(f).read_bytes() for f in report["files"]]
    assert sum(len(p) for p in parts) < 1.2 * trained.stat().st_size  # each keeps only its own weights

    test = load_dataset("digits", RESIDUAL.resolution)
    details = make_interpreter(trained.read_bytes()).get_input_details()[0]
    images = quantize_input(scale_images(test.x_test), details)
    whole = _whole(trained.read_bytes(), images)
    assert np.array_equal(run_chain(parts, images), whole)
    assert (whole.argmax(axis=1) == test.y_test).mean() > 0.15  # trained one epoch: above the 10% of chance
    handed = [make_interpreter(p).get_input_details()[0] for p in parts[1:]]
    assert [d["dtype"] for d in handed] == [np.int8, np.int8]  # int8 tensors handed from TPU to TPU


@pytest.mark.parametrize("arch", [reference("mobilenet_v2", 0.35, resolution=64),
                                  reference("efficientnet_edgetpu_s", 0.5, resolution=64)],
                         ids=["mobilenet_v2", "efficientnet_edgetpu_s"])
def test_reference_networks_split_by_either_strategy_chain_exactly(arch: object, tmp_path: Path) -> None:
    model = _int8(arch)
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    images = np.random.default_rng(1).integers(-128, 128, (6, 64, 64, 3)).astype(np.int8)
    whole = _whole(model, images)
    for strategy, devices in (("latency", 4), ("params", 2)):
        cut = segment(path, devices, strategy=strategy)
        parts = split_tflite(model, [s.stop for s in cut.segments])
        assert len(parts) == devices
        assert np.array_equal(run_chain(parts, images), whole)


def test_cut_points_that_do_not_split_the_ops_are_refused(trained: Path) -> None:
    model = trained.read_bytes()
    ops = len(read_tflite(model))
    for stops in ([ops - 1], [3, 2, ops], [0, ops], []):
        with pytest.raises(ModelFileError, match="do not split"):
            split_tflite(model, stops)
