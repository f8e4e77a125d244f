"""`nas spaces list` and `nas spaces show`: the registered search spaces and their choices."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.table import Table

from nas_service.cli.output import make_console
from nas_service.spec import default_of
from search_spaces import analyze, load_space, space_names
from search_spaces.space import STAGE_FIELDS, SearchSpace, Value

spaces_app = typer.Typer(help="Inspect search spaces: their choices, parameter names and sizes.",
                         no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@spaces_app.command("list")
def list_spaces(as_json: JsonOption = False) -> None:
    """List the registered search spaces with their number of distinct architectures."""
    spaces = [load_space(name) for name in space_names()]
    if as_json:
        typer.echo(json.dumps([space.to_dict() for space in spaces], indent=2))
        return
    table = Table()
    for col in ("name", "stages", "parameters", "size", "description"):
        table.add_column(col, justify="right" if col in ("stages", "parameters", "size") else "left")
    for space in spaces:
        table.add_row(space.name, str(space.num_stages), str(len(space.param_names())), _size(space.size()),
                      space.description)
    make_console().print(table)


@spaces_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A search space name, e.g. edgetpu.")],
    max_params: Annotated[int, typer.Option(min=1, help="Parameter limit whose share of random members is shown "
                                                        "(default: the job spec's).")]
    = default_of("constraints.max_params"),
    resolution: Annotated[int | None, typer.Option(min=8, help="Resolution of the random members (default: the "
                                                               "space's smallest).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the choices of every stage, the stem and the head, the parameter names and the size of NAME, and how
    many random members fit a parameter limit (so a job's constraint leaves the sampler enough to train)."""
    space = load_space(name)
    sizes = _random_sizes(space, resolution, max_params)
    if as_json:
        typer.echo(json.dumps({**space.to_dict(), "random_members": sizes}, indent=2))
        return
    choices = space.choices()
    console = make_console()
    console.print(f"[bold]{space.name}[/]: {space.description}", highlight=False)
    console.print(f"size: {_size(space.size())} distinct architectures", highlight=False)
    console.print("resolution, stem and head:")
    outer = Table()
    for col in ("field", "choices"):
        outer.add_column(col)
    for field, values in choices.items():
        if not re.match(r"s\d+_", field):
            outer.add_row(field, _cells(values))
    console.print(outer)
    console.print("stages (one block per stage, repeated depth times):")
    stages = Table()
    stages.add_column("stage", justify="right")
    for field in STAGE_FIELDS:
        stages.add_column(field)
    for i in range(1, space.num_stages + 1):
        stages.add_row(str(i), *(_cells(choices[f"s{i}_{field}"]) for field in STAGE_FIELDS))
    console.print(stages)
    params = space.param_names()
    console.print(f"parameters ({len(params)}): {', '.join(params)}", soft_wrap=True, highlight=False)
    console.print(f"default_small: {space.small}", soft_wrap=True, highlight=False)
    if space.references:
        console.print(f"members: {', '.join(space.references)}", highlight=False)
    console.print(f"{sizes['n']:,} random members at {sizes['resolution']} px: parameters p5 {sizes['params_p5']:,} / "
                  f"median {sizes['params_p50']:,} / p95 {sizes['params_p95']:,}; "
                  f"{sizes['feasible_share']:.0%} within {max_params:,} parameters (max_params)", highlight=False)


def _random_sizes(space: SearchSpace, resolution: int | None, max_params: int, n: int = 1000) -> dict[str, int | float]:
    """Parameter percentiles of `n` seeded random members and the share within `max_params`."""
    res = resolution or min(space.resolutions())
    params = sorted(analyze(arch).params for arch in space.random_members(n, resolution=res))
    return {"n": n, "resolution": res, "params_p5": params[n // 20], "params_p50": params[n // 2],
            "params_p95": params[n * 19 // 20], "max_params": max_params,
            "feasible_share": round(sum(p <= max_params for p in params) / n, 3)}


def _cells(values: tuple[Value, ...]) -> str:
    return " ".join(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values)


def _size(size: int) -> str:
    return f"{size:,}" if size < 10**6 else f"{size:,} (~{size:.1e})"

