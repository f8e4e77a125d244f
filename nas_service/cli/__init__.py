"""The `nas` command line. Each subcommand group lives in its own module and calls service functions."""

from __future__ import annotations

import sys

import typer

from nas_service.cli.arch import arch_app
from nas_service.cli.datasets import datasets_app
from nas_service.cli.errors import run_cli
from nas_service.cli.latency import latency_app
from nas_service.cli.manage import cancel_cmd, resume_cmd, rm_cmd, trials_cmd
from nas_service.cli.search import EXPORT_CONTEXT, export_cmd, jobs_cmd, pareto_cmd, search, worker_cmd
from nas_service.cli.serve import serve
from nas_service.cli.spaces import spaces_app
from nas_service.cli.tokens import tokens_app
from nas_service.cli.train import train_cmd

app = typer.Typer(help="Hardware-aware neural architecture search for edge accelerators.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(arch_app, name="arch")
app.add_typer(latency_app, name="latency")
app.add_typer(datasets_app, name="datasets")
app.command("serve")(serve)
app.add_typer(spaces_app, name="spaces")
app.add_typer(tokens_app, name="tokens")
app.command("search")(search)
app.command("jobs")(jobs_cmd)
app.command("pareto")(pareto_cmd)
app.command("trials")(trials_cmd)
app.command("cancel")(cancel_cmd)
app.command("resume")(resume_cmd)
app.command("rm")(rm_cmd)
app.command("export", context_settings=EXPORT_CONTEXT)(export_cmd)
app.command("worker")(worker_cmd)
app.command("train")(train_cmd)


def main() -> None:
    sys.exit(run_cli(app))
