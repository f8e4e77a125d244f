"""`nas arch show`: the layer table of an architecture string or a reference network."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from nas_service.cli.output import make_console
from search_spaces import analyze, encode, resolve

arch_app = typer.Typer(help="Inspect architectures: layers, shapes, parameters and MACs.", no_args_is_help=True)


@arch_app.command("show")
def show(
    arch: Annotated[str, typer.Argument(help="An architecture string or a reference name, e.g. mobilenet_v2.")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution to analyse at.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of a table.")] = False,
) -> None:
    """Show per-layer output shapes, parameters and MACs of ARCH."""
    spec = resolve(arch, resolution)
    analysis = analyze(spec)
    if as_json:
        typer.echo(json.dumps({"arch": encode(spec), **analysis.to_dict()}, indent=2))
        return
    table = Table()
    for col in ("layer", "op", "output", "kernel/stride", "act", "params", "MACs"):
        table.add_column(col, justify="right" if col in ("params", "MACs") else "left")
    for layer in analysis.layers:
        table.add_row(layer.name, layer.op, "x".join(map(str, layer.output_shape)),
                      f"{layer.kernel}/{layer.stride}", layer.activation or "", f"{layer.params:,}",
                      f"{layer.macs:,}")
    table.add_section()
    table.add_row("total", "", "", "", "", f"{analysis.params:,}", f"{analysis.macs:,}")
    console = make_console()
    console.print(encode(spec), soft_wrap=True, highlight=False)  # whole, to copy and paste
    console.print(table)
