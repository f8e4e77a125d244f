"""Export a trained candidate as a full-int8 .tflite, and report what it will do on the device.

The report holds the float and the quantized top-1 on the same test split (the int8 file runs
through the LiteRT interpreter, as deployed), the file size, the op list, the ops the Edge TPU
compiler would leave to the CPU (by `latency_models.edgetpu_ops`, the rules the latency model
uses) and, where `edgetpu_compiler` is installed, its real verdict and log.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latency_models import litert
from latency_models.edgetpu_ops import OpDetails, cpu_fallback
from nas_service.trainer.datasets import Dataset
from nas_service.trainer.tflite_export import convert_int8, predict_int8
from nas_service.trainer.training import (
    KERAS_STATE,
    Budget,
    EpochHook,
    TrainConfig,
    TrainResult,
    fit,
    resolve_dataset,
    scale_images,
)
from search_spaces.arch import ArchSpec

if TYPE_CHECKING:
    import keras

REPRESENTATIVE_SAMPLES = 200
COMPILER_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class ExportResult:
    path: str
    size_bytes: int
    float_accuracy: float
    int8_accuracy: float
    ops: tuple[str, ...]
    cpu_fallback: tuple[tuple[int, str, str], ...]
    """(index, op, reason) of each op the Edge TPU would leave to the CPU; empty when all map."""
    edgetpu_compiler: str
    """'not found' (not on PATH), 'compiled' or 'failed'; the log says why."""
    compiler_log: str = ""
    compiled_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ops"] = list(self.ops)
        data["cpu_fallback"] = [{"index": i, "op": op, "reason": reason} for i, op, reason in self.cpu_fallback]
        return data


def train_and_export(arch: ArchSpec, dataset: str | Dataset, budget: Budget, out: str | Path, *, seed: int = 0,
                     config: TrainConfig | None = None, on_epoch: EpochHook | None = None,
                     ) -> tuple[TrainResult, ExportResult]:
    """Train `arch`, then export it to `out` and measure the int8 file (see `export_int8`)."""
    with KERAS_STATE.candidate():
        model, result = fit(arch, dataset, budget, seed=seed, config=config, on_epoch=on_epoch)
        exported = export_int8(model, resolve_dataset(dataset, arch.resolution), out, seed=seed)
    return result, exported


def export_int8(model: keras.Model, data: Dataset, out: str | Path, *, seed: int = 0) -> ExportResult:
    """Write the full-int8 .tflite of `model` to `out` and report its accuracy, ops and Edge TPU fit.

    Activation ranges are calibrated on a seeded sample of the training split, never the test split.
    """
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data.x_train), size=min(REPRESENTATIVE_SAMPLES, len(data.x_train)), replace=False)
    tflite = convert_int8(model, scale_images(data.x_train[np.sort(pick)]), num_samples=len(pick))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tflite)

    x_test = scale_images(data.x_test)
    float_probs = np.concatenate([np.asarray(model(x_test[i:i + 256], training=False))
                                  for i in range(0, len(x_test), 256)])
    int8_probs = predict_int8(tflite, x_test)
    ops = op_details(litert.make_interpreter(tflite))
    status, log, compiled = compile_for_edgetpu(path)
    return ExportResult(
        path=str(path), size_bytes=len(tflite), float_accuracy=_top1(float_probs, data.y_test),
        int8_accuracy=_top1(int8_probs, data.y_test), ops=tuple(op.op for op in ops),
        cpu_fallback=tuple(cpu_fallback(ops)), edgetpu_compiler=status, compiler_log=log, compiled_path=compiled)


def op_details(interpreter: Any) -> list[OpDetails]:
    """Every op of a loaded interpreter with its tensors' dtypes and shapes (-1 marks a dynamic size)."""
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    details = []
    for op in litert.ops(interpreter):
        used = [tensors[i] for i in [*op["inputs"], *op["outputs"]] if i >= 0]
        activations = [tensors[i] for i in [*op["inputs"][:1], *op["outputs"]] if i >= 0]  # not weights
        details.append(OpDetails(
            op=str(op["op_name"]), dtypes=tuple(np.dtype(t["dtype"]).name for t in used),
            shapes=tuple(tuple(int(d) for d in t.get("shape_signature", t["shape"])) for t in activations)))
    return details


def compile_for_edgetpu(path: Path) -> tuple[str, str, str | None]:
    """Run `edgetpu_compiler` on `path` if it is installed; keep its log beside the file.

    Returns (status, log, compiled file). The compiler writes `<stem>_edgetpu.tflite` and
    `<stem>_edgetpu.log` into the same folder.
    """
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return "not found", "edgetpu_compiler is not on PATH: the CPU-fallback report is predicted, not compiled", None
    try:
        run = subprocess.run([compiler, "--show_operations", "--out_dir", str(path.parent), str(path)],
                             capture_output=True, text=True, timeout=COMPILER_TIMEOUT_SECONDS, check=False)
        log = run.stdout + run.stderr
        ok = run.returncode == 0
    except subprocess.TimeoutExpired:
        log, ok = f"edgetpu_compiler did not finish within {COMPILER_TIMEOUT_SECONDS} s", False
    path.with_name(f"{path.stem}_edgetpu.log").write_text(log)
    compiled = path.with_name(f"{path.stem}_edgetpu.tflite")
    return ("compiled", log, str(compiled)) if ok and compiled.is_file() else ("failed", log, None)


def _top1(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return round(float(np.mean(np.argmax(probabilities, axis=-1) == labels)), 5)
