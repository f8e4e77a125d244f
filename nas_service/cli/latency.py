"""`nas latency ...`: predict, list devices, calibrate and validate profiles, measure and collect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from latency_models.pipeline import MAX_DEVICES
from nas_service.cli.output import make_console
from search_spaces import resolve

latency_app = typer.Typer(help="Latency models: predict, calibrate, validate, measure.", no_args_is_help=True)

THING_HELP = "An architecture string, a reference name, or a .keras / .tflite file."


@latency_app.command("predict")
def predict_cmd(
    thing: Annotated[str, typer.Argument(help=THING_HELP)],
    device: Annotated[str, typer.Option(help="Device profile, see `nas latency devices`.")] = "edgetpu_usb",
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole estimate as JSON.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail on ops the model cannot price.")] = False,
) -> None:
    """Predict the latency of THING on DEVICE, layer by layer."""
    from nas_service.services import latency

    estimate = latency.predict(latency.model_of(thing, files=True), device, strict=strict)
    if as_json:
        typer.echo(json.dumps(estimate.to_dict(), indent=2))
        return
    table = Table(title=f"{device} ({estimate.profile_version}): {estimate.summary()}", title_justify="left")
    for col in ("layer", "op", "ms", "bound"):
        table.add_column(col, justify="right" if col == "ms" else "left")
    for layer in estimate.layers:
        table.add_row(layer.name, layer.op, f"{layer.ms:.4f}", layer.bound)
    table.add_section()
    table.add_row("total", "", f"{estimate.total_ms:.3f}", "")
    console = make_console()
    console.print(table)
    console.print(f"parameters on chip {estimate.on_chip_param_bytes:,} B, "
                  f"streamed {estimate.streamed_param_bytes:,} B")
    if estimate.cpu_fallback_ops:
        console.print(f"CPU fallback: {', '.join(estimate.cpu_fallback_ops)}")
    if estimate.unmodeled_ops:
        console.print(f"[yellow]not priced (total is a lower bound):[/] {', '.join(estimate.unmodeled_ops)}")
    if estimate.float_ops:
        console.print(f"[yellow]not full-int8:[/] {len(estimate.float_ops)} op(s) compute in floating point (first "
                      f"{estimate.float_ops[0]}); the Edge TPU runs only full-int8 models, so they are priced as CPU "
                      "fallback (--strict refuses the model)", highlight=False)
    if estimate.interval_pct is not None:
        console.print(f"interval {estimate.low_ms:.3f}-{estimate.high_ms:.3f} ms (± {estimate.interval_pct:.0f}%: "
                      "the leave-one-out error of calibration networks of this size)")
    for reason in estimate.extrapolation:
        console.print(f"[yellow]extrapolated:[/] {reason}")


@latency_app.command("devices")
def devices_cmd() -> None:
    """List the device profiles."""
    from latency_models import load_profile, profile_names

    table = Table()
    for col in ("device", "kind", "version", "description"):
        table.add_column(col)
    for name in profile_names():
        p = load_profile(name)
        table.add_row(name, p.kind, p.version, p.description)
    make_console().print(table)


@latency_app.command("segment")
def segment_cmd(
    thing: Annotated[str, typer.Argument(help=THING_HELP)],
    devices: Annotated[int, typer.Option(min=1, max=MAX_DEVICES, help="Edge TPUs to pipeline THING over (a network "
                                         "with fewer places to cut uses fewer).")] = 2,
    strategy: Annotated[str, typer.Option(help="latency: the slowest stage as fast as it can be (throughput); "
                                          "params: equal parameter bytes, as edgetpu_compiler --num_segments; "
                                          "end_to_end: the smallest sum of stages.")] = "latency",
    device: Annotated[str, typer.Option(help="The Edge TPU profile of each device.")] = "edgetpu_usb",
    as_json: Annotated[bool, typer.Option("--json", help="Print the segmentation as JSON.")] = False,
    split_to: Annotated[Path | None, typer.Option(help="For a .tflite THING: write its segments into this folder, "
                                                  "named as edgetpu_compiler names them, and check that chained "
                                                  "they compute exactly what THING does.")] = None,
) -> None:
    """Cut THING into pipeline segments over DEVICES Edge TPUs: each segment's layers, parameters (cached on its
    TPU or streamed), the tensor handed to it and its latency; the pipeline's end-to-end latency and throughput."""
    from nas_service.services import latency

    if split_to is not None and not thing.endswith(".tflite"):
        raise typer.BadParameter(f"--split-to needs a .tflite model, not {thing!r}", param_hint="--split-to")
    model = latency.model_of(thing, files=True)
    cut = latency.segment(model, devices, device, strategy)
    split = latency.split(Path(thing), cut, split_to) if split_to is not None else None
    paths = split.paths if split else []
    if as_json:
        extra = {"files": [str(p) for p in paths], "chain_identical": split.identical} if split else {}
        typer.echo(json.dumps({**cut.to_dict(), **extra}, indent=2))
        return
    used = devices if cut.devices_used == devices else (f"{cut.devices_used} of {devices} (the network has only "
                                                        f"{cut.devices_used - 1} place(s) to cut)")
    table = Table(title=f"{used} x {device}, {strategy} strategy: end-to-end {cut.end_to_end_ms:.3f} ms, "
                        f"slowest stage {cut.slowest_stage_ms:.3f} ms ({cut.throughput_per_s:,.0f} inferences/s)",
                  title_justify="left")
    for col in ("segment", "layers", "first .. last layer", "params KiB", "streamed KiB", "input KiB", "stage ms"):
        table.add_column(col, justify="left" if "layer" in col and col != "layers" else "right")
    for s in cut.segments:
        table.add_row(str(s.index), f"{s.start}-{s.stop - 1}", f"{s.first_layer} .. {s.last_layer}",
                      f"{s.param_bytes / 1024:,.0f}", f"{s.streamed_param_bytes / 1024:,.0f}",
                      f"{s.input_bytes / 1024:,.1f}", f"{s.latency_ms:.3f}")
    console = make_console()
    console.print(table)
    for path in paths:
        console.print(f"wrote {path}")
    if split is not None:
        console.print("chained segments give exactly the model's outputs on 8 random inputs" if split.identical
                      else "[red]chained segments differ from the model's outputs[/]")
        if not split.identical:
            raise typer.Exit(1)


@latency_app.command("calibrate")
def calibrate_cmd(
    csv_path: Annotated[Path, typer.Argument(help="Measurements: the Edge TPU calibration format (reference, device, "
                                                   "latency_ms; optionally model, input_size, width_multiplier), "
                                                   "or a `nas latency collect` CSV for a cpu device.")],
    device: Annotated[str, typer.Option(help="Device whose rows are fitted and whose profile is written.")],
    out: Annotated[Path, typer.Option(help="Profile JSON file to write.")],
    kind: Annotated[str, typer.Option(help="Model kind when DEVICE has no packaged profile: edgetpu or cpu.")]
    = "edgetpu",
    with_published: Annotated[bool, typer.Option("--with-published", help="Fit CSV_PATH's rows together with the "
                                                  "published Coral rows of DEVICE (Edge TPU devices).")] = False,
) -> None:
    """Fit a device profile from measurements (deterministic: same CSV, same profile)."""
    from latency_models import profile_names
    from latency_models.calibration import DEFAULT_EDGETPU_FIXED, PUBLISHED_CSV, fit_cpu, fit_edgetpu
    from latency_models.profiles import PIPELINE_KIND, load_profile

    base = load_profile(device) if device in profile_names() else None
    if base is not None and base.kind == PIPELINE_KIND:
        raise typer.BadParameter(f"{device} is derived from its one-device profile: calibrate that one",
                                 param_hint="--device")
    if (base.kind if base else kind) == "cpu":
        if with_published:
            raise typer.BadParameter(f"--with-published adds published Edge TPU rows; {device} is a cpu device",
                                     param_hint="--with-published")
        profile, validation = fit_cpu(csv_path, device, base.description if base else "")
        label = "10-fold CV"
    else:
        fixed = {**DEFAULT_EDGETPU_FIXED, **base.fixed} if base else DEFAULT_EDGETPU_FIXED  # new facts get defaults
        paths = [csv_path, PUBLISHED_CSV] if with_published and csv_path.resolve() != PUBLISHED_CSV.resolve() \
            else [csv_path]
        profile, validation = fit_edgetpu(paths, device, fixed, base.description if base else "")
        label = "leave-one-network-out"
    profile.save(out)
    typer.echo(f"wrote {out} ({profile.version}): {len(validation.rows)} networks, fit MAPE "
               f"{validation.fit_mape:.1f}%, {label} MAPE {validation.loo_mape:.1f}%, Spearman "
               f"{validation.loo_spearman:.3f}")
    for band in validation.bands:
        typer.echo(f"  {band.band}: {band.networks} networks, MAPE {band.mape:.1f}%, median error "
                   f"{band.median_error:+.1f}%, interval ± {band.rms_error:.0f}%")


@latency_app.command("validate")
def validate_cmd(
    csv_path: Annotated[Path | None, typer.Argument(help="Calibration CSV (Edge TPU format); the published Coral "
                                                          "rows when omitted.")] = None,
    device: Annotated[list[str] | None, typer.Option(help="Device profile to validate (repeatable); both Edge TPU "
                                                          "profiles when omitted.")] = None,
) -> None:
    """Leave one network out per device: each network predicted by constants fitted on the others, then
    MAPE, median error and Spearman per size band (<3, 3-30, >30 ms measured)."""
    from latency_models import load_profile
    from latency_models.calibration import PUBLISHED_CSV, validate_profile

    console = make_console()
    for name in device or ["edgetpu_usb", "edgetpu_devboard"]:
        profile = load_profile(name)
        if profile.kind != "edgetpu":
            raise typer.BadParameter(f"{name} is a {profile.kind} device: validate takes Edge TPU profiles",
                                     param_hint="--device")
        validation = validate_profile(csv_path or PUBLISHED_CSV, profile)
        table = Table(title=f"{name} ({profile.version})", title_justify="left")
        for col in ("network", "measured ms", "fitted ms", "leave-one-out ms", "error"):
            table.add_column(col, justify="left" if col == "network" else "right")
        for net, measured, fitted, loo in sorted(validation.rows, key=lambda r: r[1]):
            table.add_row(net, f"{measured:.2f}", f"{fitted:.2f}", f"{loo:.2f}", f"{(loo - measured) / measured:+.0%}")
        console.print(table)
        bands = Table(title=f"{name}: leave-one-network-out by size band", title_justify="left")
        for col in ("band", "networks", "MAPE", "median error", "Spearman", "interval ±"):
            bands.add_column(col, justify="left" if col == "band" else "right")
        for b in validation.bands:
            bands.add_row(b.band, str(b.networks), f"{b.mape:.1f}%", f"{b.median_error:+.1f}%",
                          "" if b.spearman is None else f"{b.spearman:.2f}", f"{b.rms_error:.0f}%")
        bands.add_section()
        bands.add_row("all", str(len(validation.rows)), f"{validation.loo_mape:.1f}%", "",
                      f"{validation.loo_spearman:.3f}", "")
        console.print(bands)
        console.print(f"leave-one-out MAPE {validation.loo_mape:.1f}%  Spearman {validation.loo_spearman:.3f}  "
                      f"(in-sample MAPE {validation.fit_mape:.1f}%)")


@latency_app.command("measure")
def measure_cmd(
    thing: Annotated[str, typer.Argument(help=THING_HELP)],
    rounds: Annotated[int, typer.Option(min=1, help="Timed rounds; the median of round medians is reported.")] = 5,
    edgetpu: Annotated[bool, typer.Option(help="Run an Edge TPU-compiled .tflite through libedgetpu.")] = False,
) -> None:
    """Measure THING for real: int8 TFLite on one CPU thread (XNNPACK), medians after warm-up.

    Prints the median thread CPU time per invocation (what cpu_litert is fitted on: it does not count
    time spent waiting for a core on a busy machine) and the median wall time.
    """
    from latency_models.measure import measure_tflite

    path = Path(thing)
    if thing.endswith(".tflite"):
        model: Path | bytes = path
    else:
        from nas_service.latency_collect import int8_bytes

        if edgetpu:
            raise typer.BadParameter("--edgetpu needs a .tflite compiled by edgetpu_compiler, which is not run here")
        model = int8_bytes(resolve(thing))
    result = measure_tflite(model, rounds=rounds, edgetpu=edgetpu)
    typer.echo(json.dumps({"device": "edgetpu" if edgetpu else "cpu_litert",
                           "cpu_median_ms": round(result.median_ms, 4),
                           "wall_median_ms": round(result.wall_median_ms, 4),
                           "round_cpu_medians_ms": [round(m, 4) for m in result.round_medians_ms],
                           "invocations": result.invocations}))


@latency_app.command("collect")
def collect_cmd(
    space: Annotated[list[str], typer.Option(help="Search space to sample (repeatable).")],
    n: Annotated[int, typer.Option(min=1, help="Number of candidates.")],
    out: Annotated[Path, typer.Option(help="CSV to append measurements to.")],
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Sample N candidates, convert each to int8 TFLite and measure it on this host."""
    from nas_service.latency_collect import collect

    collect(space, n, out, seed, progress=lambda i, s, dt: typer.echo(f"{i + 1}/{n} {s.space} r{s.arch.resolution} "
                                                                     f"({dt:.1f} s)"))

