"""`nas trials`, `nas cancel`, `nas resume` and `nas rm`: look into and manage one job from the shell."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated

import typer
from rich.table import Table

from nas_service.cli.database import DbOpt, migrated_engine, session_maker, settings_for
from nas_service.cli.output import VerboseOpt, make_console, native_logs_hidden
from nas_service.cli.search import ORIGIN_LABELS
from nas_service.db.models import TRIAL_STATES
from nas_service.services import jobs as service
from nas_service.services.views import TrialView

JobArg = Annotated[int, typer.Argument(help="Job id (see `nas jobs`).")]


def trials_cmd(
    job: JobArg,
    state: Annotated[str | None, typer.Option(help=f"Only trials in this state: {', '.join(TRIAL_STATES)}.")] = None,
    sort: Annotated[str, typer.Option(help=f"Sort key: {', '.join(service.TRIAL_SORT_KEYS)}.")] = "number",
    desc: Annotated[bool, typer.Option("--desc", help="Sort descending.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    db: DbOpt = None,
) -> None:
    """List the trials of JOB: state, origin, accuracy, latency, parameters, worker and error."""
    if state is not None and state not in TRIAL_STATES:
        raise typer.BadParameter(f"unknown state {state!r}: expected one of {', '.join(TRIAL_STATES)}")
    if sort not in service.TRIAL_SORT_KEYS:
        raise typer.BadParameter(f"unknown sort key {sort!r}: expected one of {', '.join(service.TRIAL_SORT_KEYS)}")
    with session_maker(settings_for(db))() as session:
        page = service.list_trials(session, job, state=state, sort=sort, descending=desc, limit=limit)  # type: ignore[arg-type]
    rows = [t.to_dict() for t in page.items]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif as_csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(TrialView.__dataclass_fields__), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(out.getvalue(), nl=False)
    else:
        table = Table(title=f"job {job}: {page.total} trials" + (f" {state}" if state else ""), title_justify="left")
        for col in ("#", "state", "from", "accuracy", "latency ms", "params", "front", "worker", "error"):
            table.add_column(col, justify="right" if col in ("#", "accuracy", "latency ms", "params") else "left")
        for t in page.items:
            table.add_row(str(t.number), t.state, ORIGIN_LABELS.get(t.origin, t.origin),
                          f"{t.accuracy:.4f}" if t.accuracy is not None and t.state in ("complete", "stopped")
                          else "-",
                          f"{t.latency_ms:.3f}" if t.latency_ms is not None else "-",
                          f"{t.params:,}" if t.params is not None else "-", "yes" if t.on_front else "",
                          t.worker or "", t.error or "")
        make_console().print(table)


def cancel_cmd(job: JobArg, db: DbOpt = None) -> None:
    """Cancel JOB: no new trial starts; trials in flight finish and are kept."""
    with session_maker(settings_for(db))() as session:
        view = service.cancel_job(session, job)
    make_console().print(f"job {view.id} {view.status} after {view.trials_done} trials", highlight=False)


def resume_cmd(job: JobArg, run: Annotated[bool, typer.Option("--run", help="Run the rest in this process, as "
                                                                       "`nas search` does.")] = False,
               db: DbOpt = None, verbose: VerboseOpt = False) -> None:
    """Queue a cancelled, interrupted or failed JOB again; a worker (`nas worker`, `nas serve`) runs the rest of
    its budget, or this command with --run."""
    from nas_service.cli.search import run_here

    settings = settings_for(db)
    with session_maker(settings)() as session:
        view = service.resume_job(session, job)
    if run:
        make_console().print(f"job {view.id} resumed: {view.trials_done} trials kept", highlight=False)
        with native_logs_hidden(verbose):
            run_here(settings, job, db)
        return
    make_console().print(f"job {view.id} {view.status}: {view.trials_done} trials kept; start `nas worker --job "
                         f"{view.id} --exit-when-idle` or `nas serve` to run the rest (or use --run)",
                         highlight=False)


def rm_cmd(job: JobArg, db: DbOpt = None) -> None:
    """Delete JOB (not while queued or running) with its trials, candidates, Optuna study and int8 files."""
    from nas_service.db import session_factory
    from nas_service.db.artifacts import make_store

    settings = settings_for(db)
    engine = migrated_engine(settings)
    with session_factory(engine)() as session:
        view, removed = service.remove_job(session, job, store=make_store(settings, engine),
                                           database_url=settings.database_url, artifacts_dir=settings.artifacts_dir)
    make_console().print(f"deleted job {view.id} ({view.status}, {view.trials_done} trials){removed}",
                         highlight=False)
