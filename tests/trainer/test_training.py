"""Proxy training and export on real digits: curves, determinism, the early-stop hook, budgets and the int8 report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nas_service.trainer.training import Budget, TrainConfig, TrainingError, TrainResult
from search_spaces import decode, encode

pytestmark = pytest.mark.tf

TINY = decode("r16_n10/cn_k3_s2_c8_relu/er_k3_s1_e2_c8_relu/ir_k3_s2_e2_c16_relu/head_relu")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, object, Path]:
    from nas_service.services.training import train_and_export

    out = tmp_path_factory.mktemp("export") / "tiny.tflite"
    result, report = train_and_export(TINY, "digits", Budget(epochs=3), out, seed=1)
    return result, report, out


def test_training_learns_and_reports_curves(exported: tuple[TrainResult, object, Path]) -> None:
    result, _, _ = exported
    assert result.epochs == 3 and len(result.loss_curve) == len(result.accuracy_curve) == 3
    assert result.loss_curve[-1] < result.loss_curve[0]
    assert result.accuracy > 0.5  # chance is 0.1
    assert result.accuracy == result.accuracy_curve[-1]
    assert result.seconds > 0 and result.images_per_second > 0 and not result.stopped_early
    assert result.arch == encode(TINY)


def test_int8_export_is_measured_and_edgetpu_ready(exported: tuple[TrainResult, object, Path]) -> None:
    from nas_service.trainer.tflite_export import ExportResult

    result, report, out = exported
    assert isinstance(report, ExportResult)
    assert out.is_file() and report.size_bytes == out.stat().st_size
    assert abs(report.float_accuracy - result.accuracy) < 1e-6
    assert report.int8_accuracy > 0.5 and abs(report.int8_accuracy - report.float_accuracy) < 0.1
    assert report.ops[0] == "CONV_2D" and report.ops[-1] == "SOFTMAX"
    assert report.cpu_fallback == ()  # relu-only candidate: every op maps to the Edge TPU
    if shutil.which("edgetpu_compiler") is None:
        assert report.edgetpu_compiler == "not found" and "not on PATH" in report.compiler_log


def test_same_seed_same_first_epoch_and_hook_stops_early(exported: tuple[TrainResult, object, Path]) -> None:
    """Rerun the fixture's training (same seed and budget) and stop it after one epoch."""
    from nas_service.trainer.training import train

    full, _, _ = exported
    seen: list[tuple[int, float]] = []

    def stop_after_first(epoch: int, accuracy: float) -> bool:
        seen.append((epoch, accuracy))
        return False

    stopped = train(TINY, "digits", Budget(epochs=3), seed=1, on_epoch=stop_after_first)
    assert stopped.epochs == 1 and stopped.stopped_early
    assert stopped.loss_curve[0] == full.loss_curve[0] and stopped.accuracy == full.accuracy_curve[0]
    assert [epoch for epoch, _ in seen] == [1] and abs(seen[0][1] - stopped.accuracy) < 1e-5


def test_hook_exceptions_propagate() -> None:
    from nas_service.trainer.training import train

    class Pruned(Exception):
        pass

    def prune(epoch: int, accuracy: float) -> bool:
        raise Pruned(f"epoch {epoch}")

    with pytest.raises(Pruned, match="epoch 1"):
        train(TINY, "digits", Budget(epochs=3), on_epoch=prune)


def test_seconds_budget_ends_training_before_the_epoch_cap() -> None:
    from nas_service.trainer.training import train

    result = train(TINY, "digits", Budget(epochs=500, seconds=2.0))
    assert 1 <= result.epochs < 500 and not result.stopped_early


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "neither epochs nor seconds"), ({"epochs": 0}, "out of range"), ({"seconds": -1.0}, "out of range")])
def test_bad_budgets_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_unknown_optimizer_is_rejected() -> None:
    with pytest.raises(TrainingError, match="optimizer 'rmsprop' is unknown"):
        TrainConfig(optimizer="rmsprop")


def test_candidates_trained_side_by_side_match_training_alone(exported: tuple[TrainResult, object, Path],
                                                              tmp_path: Path) -> None:
    """Search slots are threads: two candidates trained and exported at once keep their own weights, optimiser
    state and seed, reaching what each reaches alone (the fixture trained TINY alone with the same seed), and
    the process's stdout survives their conversions."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from nas_service.services.training import train_and_export

    alone, report, _ = exported
    other = decode("r16_n10/cn_k3_s2_c16_relu/ir_k3_s2_e2_c24_relu/head_relu")
    stdout = sys.stdout
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(train_and_export, arch, "digits", Budget(epochs=3), tmp_path / f"{i}.tflite", seed=1)
                for i, arch in enumerate((TINY, other))]
        (tiny, tiny_report), (second, _) = (run.result() for run in runs)
    assert abs(tiny.accuracy - alone.accuracy) <= 0.02  # seed noise: 7 of the 360 test images
    assert abs(tiny_report.int8_accuracy - report.int8_accuracy) <= 0.02  # type: ignore[attr-defined]
    assert second.accuracy > 0.5 and second.arch == encode(other)
    assert sys.stdout is stdout
