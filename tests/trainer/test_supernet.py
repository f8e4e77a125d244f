"""The supernet: a subnet with inherited weights is the `build_keras` model loaded with them, output for output;
one trace serves every subnet; a checkpoint restores the same subnets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from search_spaces import encode, load_space

pytestmark = pytest.mark.tf

RESOLUTION = 16


@pytest.fixture(scope="module")
def net() -> object:
    from nas_service.trainer.supernet import Supernet

    net = Supernet(load_space("edgetpu_small"), num_classes=10, resolution=RESOLUTION, seed=0)
    rng = np.random.default_rng(0)
    for name, var in net.weights.items():  # batch-norm parameters away from their identity start
        if name.endswith((".gamma", ".beta")):
            base = 1.0 if name.endswith(".gamma") else 0.0
            var.assign((base + rng.normal(0, 0.3, var.shape)).astype(np.float32))
    return net


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, RESOLUTION, RESOLUTION, 3)).astype(np.uint8)


def test_subnet_with_inherited_weights_equals_build_keras(net: object) -> None:
    """Largest, smallest and random members (kernel crops, skipped repeats, ir without expansion, er and ir
    mixed, residuals on and off): after recalibration the supernet's outputs are the Keras model's."""
    from nas_service.trainer.supernet import Supernet, scale

    assert isinstance(net, Supernet)
    rng = np.random.default_rng(1)
    archs = [net.members("largest"), net.members("smallest")] + [net.members("random", rng) for _ in range(6)]
    assert len({encode(a) for a in archs}) == len(archs)
    calibration, x = [_images(16, 2), _images(16, 3)], _images(12, 4)
    outputs = []
    for arch in archs:
        net.calibrate(arch, calibration)
        ours = net.predict(arch, x)
        theirs = net.to_keras(arch)(scale(x), training=False).numpy()
        np.testing.assert_allclose(ours, theirs, atol=2e-6, err_msg=encode(arch))
        outputs.append(ours)
    assert min(np.abs(a - b).max() for a, b in zip(outputs, outputs[1:], strict=False)) > 1e-3  # distinct nets


def test_recalibration_changes_only_the_outputs_of_its_statistics(net: object) -> None:
    """Statistics from other batches give other outputs: the test above compares something that can differ."""
    from nas_service.trainer.supernet import Supernet

    assert isinstance(net, Supernet)
    arch, x = net.members("smallest"), _images(8, 5)
    net.calibrate(arch, [_images(16, 6)])
    first = net.predict(arch, x)
    net.calibrate(arch, [_images(16, 7) // 2])
    assert np.abs(net.predict(arch, x) - first).max() > 1e-4


@pytest.mark.long  # real training, half a minute or more: `make test-long`
def test_one_trace_serves_every_candidate_and_checkpoint_restores(tmp_path: Path) -> None:
    from nas_service.trainer.supernet import Supernet

    space = load_space("edgetpu_small")
    net = Supernet(space, num_classes=10, resolution=RESOLUTION, seed=3)
    net.configure(sandwich_random=1)
    x, y = _images(32, 8), np.arange(32) % 10
    losses = [net.train_epoch(x, y, batch_size=16, epochs=2, seed=0) for _ in range(2)]
    assert all(np.isfinite(losses)) and int(net.epoch.numpy()) == 2
    rng = np.random.default_rng(9)
    candidates = [net.members("random", rng) for _ in range(5)]
    scores = [net.accuracy(a, [x[:16]], x, y) for a in candidates]
    assert net.tracing_counts() == {"grad_step": 1, "apply_step": 1, "calibrate_step": 1, "predict": 1}
    net.save(tmp_path / "supernet")

    shutil.move(tmp_path / "supernet", tmp_path / "moved")  # as an artifact store or a copy moves it
    again = Supernet(space, num_classes=10, resolution=RESOLUTION, seed=4)  # other initial weights
    meta = again.restore(tmp_path / "moved")
    assert meta is not None and meta["epoch"] == 2 and int(again.epoch.numpy()) == 2
    assert [again.accuracy(a, [x[:16]], x, y) for a in candidates] == scores
