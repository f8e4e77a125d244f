"""`nas train ARCH` and `nas export ARCH`: train one candidate on a dataset, export it as full-int8 TFLite.

Both commands run the same service call (`services.training.train_and_export`); `train` reports accuracies and keeps
the .tflite only when asked, `export` writes it and reports how it will run on the Edge TPU.
TensorFlow is imported when a command runs, never when the CLI starts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas_service.cli.output import VerboseOpt, make_console, native_logs_hidden
from nas_service.trainer.training import Budget, TrainConfig
from search_spaces import resolve

if TYPE_CHECKING:
    from nas_service.trainer.tflite_export import ExportResult
    from nas_service.trainer.training import TrainResult

DEFAULT_EPOCHS = 10

ArchArg = Annotated[str, typer.Argument(help="An architecture string or a reference name, e.g. mobilenet_v2.")]
DatasetOpt = Annotated[str, typer.Option(help="'digits', an image folder (one subfolder per class), a .npz file, "
                                              "keras:NAME or tfds:NAME.")]
EpochsOpt = Annotated[int | None, typer.Option(help=f"Epochs to train (default {DEFAULT_EPOCHS} when no --seconds).")]
SecondsOpt = Annotated[float | None, typer.Option(help="Wall-clock training budget in seconds.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of weights, shuffling and calibration sample.")]
ResolutionOpt = Annotated[int | None, typer.Option(help="Input resolution (default: the architecture's).")]
BatchOpt = Annotated[int, typer.Option(help="Training batch size.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


def train_cmd(
    arch: ArchArg, dataset: DatasetOpt = "digits", epochs: EpochsOpt = None, seconds: SecondsOpt = None,
    seed: SeedOpt = 0, resolution: ResolutionOpt = None, batch_size: BatchOpt = 64,
    out: Annotated[Path | None, typer.Option(help="Also keep the int8 .tflite here.")] = None,
    as_json: JsonOpt = False, verbose: VerboseOpt = False,
) -> None:
    """Train ARCH on a dataset and report float and int8 held-out top-1."""
    with tempfile.TemporaryDirectory() as tmp, native_logs_hidden(verbose):
        result, exported = _run(arch, dataset, epochs, seconds, seed, resolution, batch_size,
                                out or Path(tmp) / "model.tflite")
        if out is None:
            exported = _without_file(exported)
    if as_json:
        typer.echo(json.dumps(_summary(result, exported), indent=2))
        return
    console = make_console()
    console.print(f"[bold]{result.arch}[/] on {result.dataset}: {result.epochs} epochs in {result.seconds:.1f} s "
                  f"({result.images_per_second:,.0f} images/s){' , stopped early' if result.stopped_early else ''}")
    console.print(f"top-1 float {result.accuracy:.2%}, int8 {exported.int8_accuracy:.2%}")
    if out is not None:
        console.print(f"wrote {exported.path} ({exported.size_bytes:,} bytes)")


def export_cmd(
    arch: ArchArg,
    out: Annotated[Path, typer.Option(help="Where to write the int8 .tflite file.")],
    dataset: DatasetOpt = "digits", epochs: EpochsOpt = None, seconds: SecondsOpt = None, seed: SeedOpt = 0,
    resolution: ResolutionOpt = None, batch_size: BatchOpt = 64, as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Train ARCH, write it as a full-int8 .tflite and report its accuracy, ops and Edge TPU fit."""
    with native_logs_hidden(verbose):
        result, exported = _run(arch, dataset, epochs, seconds, seed, resolution, batch_size, out)
    if as_json:
        typer.echo(json.dumps(_summary(result, exported), indent=2))
        return
    console = make_console()
    console.print(f"wrote [bold]{exported.path}[/] ({exported.size_bytes:,} bytes, {len(exported.ops)} ops)")
    console.print(f"top-1 float {exported.float_accuracy:.2%}, int8 {exported.int8_accuracy:.2%} "
                  f"after {result.epochs} epochs on {result.dataset}")
    if exported.cpu_fallback:
        table = Table(title="Edge TPU: ops that would run on the CPU", title_justify="left")
        for col in ("index", "op", "reason"):
            table.add_column(col)
        for index, op, reason in exported.cpu_fallback:
            table.add_row(str(index), op, reason)
        console.print(table)
    else:
        console.print("Edge TPU: every op maps to the TPU")
    console.print(f"edgetpu_compiler: {exported.edgetpu_compiler}"
                  + (f" -> {exported.compiled_path}" if exported.compiled_path else ""))
    if exported.edgetpu_compiler == "failed":
        console.print(exported.compiler_log, markup=False, highlight=False)


def _run(arch_text: str, dataset: str, epochs: int | None, seconds: float | None, seed: int,
         resolution: int | None, batch_size: int, out: Path) -> tuple[TrainResult, ExportResult]:
    """Validate everything cheap first, then train with an epoch progress bar and export."""
    from nas_service.services.export import ExportError, check_out_dir
    from nas_service.trainer.datasets import load_dataset

    if out.is_dir():
        raise ExportError(f"--out {out} is a directory: expected the .tflite file to write")
    check_out_dir(out.parent)
    arch = resolve(arch_text, resolution)
    budget = Budget(epochs=DEFAULT_EPOCHS if epochs is None and seconds is None else epochs, seconds=seconds)
    config = TrainConfig(batch_size=batch_size)
    data = load_dataset(dataset, arch.resolution)
    from nas_service.services.training import train_and_export  # imports TensorFlow lazily

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=make_console(stderr=True), transient=True) as progress:
        task = progress.add_task("training (tracing the first epoch)", total=budget.epochs)

        def on_epoch(epoch: int, accuracy: float) -> bool:
            last = budget.epochs is not None and epoch >= budget.epochs
            progress.update(task, completed=epoch, description="exporting int8 and evaluating it" if last
                            else f"training: epoch {epoch}, top-1 {accuracy:.2%}")
            return True

        return train_and_export(arch, data, budget, out, seed=seed, config=config, on_epoch=on_epoch)


def _without_file(exported: ExportResult) -> ExportResult:
    from dataclasses import replace

    return replace(exported, path="", compiled_path=None)


def _summary(result: TrainResult, exported: ExportResult) -> dict[str, Any]:
    return {"arch": result.arch, "dataset": result.dataset, "accuracy": result.accuracy,
            "int8_accuracy": exported.int8_accuracy, "seconds": result.seconds, "epochs": result.epochs,
            "stopped_early": result.stopped_early, "images_per_second": result.images_per_second,
            "loss_curve": list(result.loss_curve), "accuracy_curve": list(result.accuracy_curve),
            "seed": result.seed, "export": exported.to_dict()}
