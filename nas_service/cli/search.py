"""`nas search`, `nas jobs`, `nas pareto`, `nas export JOB --front` and `nas worker`: thin calls into the services."""

from __future__ import annotations

import csv
import io
import json
import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nas_service.cli.database import DbOpt, migrated_engine, opening, session_maker, settings_for, shown_url
from nas_service.cli.output import VerboseOpt, make_console, native_logs_hidden
from nas_service.config import Settings
from nas_service.services import jobs as service
from nas_service.services.views import FrontPoint, TrialView
from nas_service.spec import JobSpec, default_of, load_spec_file, parse_spec

if TYPE_CHECKING:
    from nas_service.worker import Worker


def front_table(points: list[FrontPoint], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    oneshot = any(p.fidelity != "standalone" or p.oneshot_accuracy is not None for p in points)
    extra = ("fidelity", "one-shot acc") if oneshot else ()
    for col in ("#", "candidate", "from", "accuracy", *extra, "int8 acc", "latency ms", "on CPU", "params", "arch"):
        table.add_column(col, justify="left" if col in ("arch", "from", "fidelity") else "right")
    for rank, p in enumerate(points, 1):
        shown = (p.fidelity, f"{p.oneshot_accuracy:.4f}" if p.oneshot_accuracy is not None else "-") if oneshot else ()
        table.add_row(str(rank), str(p.candidate_id), ORIGIN_LABELS.get(p.origin, p.origin), f"{p.accuracy:.4f}",
                      *shown, f"{p.int8_accuracy:.4f}" if p.int8_accuracy is not None else "-", f"{p.latency_ms:.3f}",
                      f"{p.cpu_fraction:.0%}" if p.cpu_fraction else "-", f"{p.params:,}", p.arch)
    return table


def split_table(points: list[FrontPoint], splits: dict[int, dict[str, float]], device: str) -> Table:
    """Where each front member's predicted latency goes, as the dashboard's candidate page shows it."""
    table = Table(title=f"latency split of the front members on {device} (ms)", title_justify="left")
    for col in ("#", "candidate", "latency ms", "fixed invoke+io", "compute", "streaming", "CPU"):
        table.add_column(col, justify="right")
    for rank, p in enumerate(points, 1):
        split = splits.get(p.candidate_id, {})
        table.add_row(str(rank), str(p.candidate_id), f"{p.latency_ms:.3f}",
                      *(f"{split.get(part, 0.0):.3f}" for part in service.SPLIT_PARTS))
    return table


ORIGIN_LABELS = {"initial": "warm start", "sampler": "sampler"}
LOCAL_USER = "local"
"""Owner of jobs started from the command line unless `--user` names another."""
COUNTED_STATES = ("complete", "stopped", "infeasible", "failed", "stale")
STATE_LABELS = {"complete": "trained", "stopped": "stopped early", "infeasible": "infeasible (not trained)",
                "failed": "failed", "stale": "given back (worker lost or search interrupted; re-queued)"}


def counts_line(counts: dict[str, int]) -> str:
    """`12 trials: 7 trained, 2 stopped early, ...`: what happened to a job's trials."""
    parts = [f"{counts[s]} {STATE_LABELS[s]}" for s in COUNTED_STATES if counts.get(s)]
    return f"{sum(counts.values())} trials: {', '.join(parts) or 'none finished'}"


def _spec_from_flags(spec_file: Path | None, flags: dict[str, Any]) -> JobSpec:
    """The YAML file's spec (or the defaults), with every given flag written over it."""
    data: dict[str, Any] = load_spec_file(spec_file).model_dump(mode="json") if spec_file else {}
    for dotted, value in flags.items():
        if value is None or value == ():
            continue
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = list(value) if isinstance(value, tuple) else value
    if flags.get("target.latency_ms") is not None:
        data["mode"] = "target"
    return parse_spec(data, where=f"job spec from {spec_file or 'flags'}")


def search(
    spec_file: Annotated[Path | None, typer.Option("--spec", help="Job spec YAML; flags override its fields.")] = None,
    space: Annotated[str | None, typer.Option(help=f"Search space (default {default_of('space')}).")] = None,
    dataset: Annotated[str | None, typer.Option(help="fashion_mnist_small, fashion_mnist, digits, a folder, a .npz, "
                                                "keras:NAME, tfds:NAME or upload:ID (a dataset of --user uploaded to "
                                                f"a server on this --db; default {default_of('dataset')}).")]
    = None,
    device: Annotated[str | None, typer.Option(help=f"Device profile (default {default_of('device')}).")] = None,
    resolution: Annotated[int | None, typer.Option(help="Fixed input resolution (default "
                                                        f"{default_of('resolution')}).")] = None,
    trials: Annotated[int | None, typer.Option(help=f"Trial budget (default {default_of('budget.trials')}).")] = None,
    wall_seconds: Annotated[float | None, typer.Option(help="No trial starts after this many seconds (default "
                                                            f"{default_of('budget.wall_seconds'):g}).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs per candidate (default "
                                                    f"{default_of('training.epochs')}).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size (default "
                                                        f"{default_of('training.batch_size')}).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Candidates trained side by side, each in a process of "
                                                    "its own, a slot refilled as soon as its trial ends (default: "
                                                    "2 with real training, 1 with the estimator).")] = None,
    scorer: Annotated[str | None, typer.Option(help="train (real training) or estimate (cheap estimator); default "
                                                    f"{default_of('training.scorer')}.")] = None,
    device_class: Annotated[str | None, typer.Option(help="any, cpu or gpu: the workers that may train it; here, "
                                                          "this machine must be of that class (default "
                                                          f"{default_of('training.device_class')}).")] = None,
    mode: Annotated[str | None, typer.Option(help="standalone (train every candidate) or oneshot (score them by "
                                                  "the job's supernet, then train its front from scratch); "
                                                  f"default {default_of('training.mode')}.")] = None,
    sampler: Annotated[str | None, typer.Option(help=f"nsga2, tpe or random (default {default_of('sampler')}).")]
    = None,
    objective: Annotated[list[str] | None, typer.Option(help="Extra objective to minimise: params, model_bytes.")]
    = None,
    max_latency_ms: Annotated[float | None, typer.Option(help="Hard limit on predicted latency.")] = None,
    max_params: Annotated[int | None, typer.Option(help="Hard limit on parameters (default "
                                                        f"{default_of('constraints.max_params'):,}; a spec file's "
                                                        "`max_params: null` lifts it).")] = None,
    max_model_bytes: Annotated[int | None, typer.Option(help="Hard limit on int8 model size.")] = None,
    target_ms: Annotated[float | None, typer.Option(help="Latency target T: switches to mode 'target'.")] = None,
    reward: Annotated[str | None, typer.Option(help="Target reward: mnasnet or tunas.")] = None,
    seed: Annotated[int | None, typer.Option(help=f"Seed of the sampler and of training (default "
                                                  f"{default_of('seed')}).")] = None,
    initial: Annotated[list[str] | None, typer.Option(help="Architecture to evaluate first ('small': the space's "
                                                           "default small member); repeatable (default "
                                                           f"{', '.join(default_of('initial'))}).")] = None,
    name: Annotated[str | None, typer.Option(help="A name to find the job by.")] = None,
    user: Annotated[str, typer.Option(help="The job's owner: the dashboard shows it to this user's tokens.")]
    = LOCAL_USER,
    db: DbOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run a whole search in this process and print its Pareto front."""
    flags = {"space": space, "dataset": dataset, "device": device, "resolution": resolution,
             "budget.trials": trials, "budget.wall_seconds": wall_seconds, "training.epochs": epochs,
             "training.batch_size": batch_size,
             "training.concurrency": concurrency, "training.scorer": scorer, "training.mode": mode,
             "training.device_class": device_class,
             "sampler": sampler,
             "constraints.max_latency_ms": max_latency_ms,
             "constraints.max_params": max_params, "constraints.max_model_bytes": max_model_bytes,
             "target.latency_ms": target_ms, "target.reward": reward, "seed": seed, "name": name,
             "initial": tuple(initial) if initial else None,
             "objectives": ("accuracy", "latency_ms", *objective) if objective else None}
    spec = _spec_from_flags(spec_file, flags)
    settings = settings_for(db)
    console = make_console()
    from nas_service.db.artifacts import make_store
    from nas_service.devices import check_runs_here
    from nas_service.services import uploads
    from nas_service.services.work import check_runnable

    check_runs_here(spec.training.device_class, settings)  # before the dataset loads: it may be a large one

    sessions = session_maker(settings)
    with sessions() as session:  # a dataset uploaded to a server sharing this database: its checked copy here
        local = uploads.for_local_search(session, make_store(settings, session.get_bind().engine), spec.dataset,
                                         user, settings.artifacts_dir / "datasets",
                                         shown_url(settings.database_url))
    # a dataset or warm start that cannot load fails here, before the job exists
    check_runnable(spec.model_copy(update={"dataset": local}))
    with sessions() as session:
        job = service.create_job(session, spec, owner=user)
    console.print(f"job [bold]{job.id}[/] of {user}: {spec.sampler} on space {spec.space}, dataset {spec.dataset}, "
                  f"device {spec.device}, scorer {spec.training.scorer}, mode {spec.training.mode}, "
                  f"database {settings.database_url}")
    with native_logs_hidden(verbose):
        run_here(settings, job.id, db)


def interrupt_on_signals(worker: Worker) -> list[int]:
    """SIGINT (Ctrl-C) and SIGTERM interrupt the search (`Worker.interrupt`); a second one leaves at once.
    Returns the list that the first signal's number is put in."""
    caught: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if caught:
            raise KeyboardInterrupt
        caught.append(signum)
        worker.interrupt()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return caught


def run_here(settings: Settings, job_id: int, db: str | None) -> None:
    """Run the queued job JOB_ID in this process with a progress bar, then print its front and what next.
    Interrupted by SIGINT or SIGTERM, the job is cancelled with its trials in flight given back (`nas resume`
    runs them again) and the command exits 128 + the signal's number (130, 143)."""
    from nas_service.devices import check_runs_here
    from nas_service.worker import Worker

    console = make_console()
    sessions = session_maker(settings)
    with sessions() as session:
        job = service.get_job(session, job_id)
    spec = job.spec
    device_class = check_runs_here(spec.training.device_class, settings)
    progress = Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[front]}"),
                        console=console, transient=False)
    front_note = {"text": "front: empty"}
    warned: list[str] = []

    def on_trial(trial: TrialView) -> None:
        with sessions() as session:
            front = service.get_front(session, job_id)
            note = service.infeasibility_note(session, job_id) if not warned and trial.state == "infeasible" else None
        if note:  # once: an unmeetable constraint is said while the search runs, not only at its end
            warned.append(note)
            progress.console.print(f"[yellow]warning:[/] {note}", highlight=False)
        if front:
            best = max(front, key=lambda p: p.accuracy)
            front_note["text"] = (f"front: {len(front)} pts, fastest {front[0].latency_ms:.3f} ms, "
                                  f"best {best.accuracy:.3f} @ {best.latency_ms:.3f} ms")
        progress.update(task, advance=1, front=front_note["text"])

    with opening(settings.database_url):
        worker = Worker(settings, name="local", on_trial=on_trial, device_class=device_class)
    caught = interrupt_on_signals(worker)
    start = time.perf_counter()
    with progress:
        task = progress.add_task("search", total=spec.budget.trials, completed=job.trials_done,
                                 front=front_note["text"])
        worker.run(job_id=job_id, exit_when_idle=True)
    worker.close()
    db_flag = f" --db {db}" if db else ""
    if caught:
        name = signal.Signals(caught[0]).name
        with sessions() as session:
            service.interrupt_job(session, job_id, f"interrupted by {name}: `nas resume {job_id}` runs the rest")
    with sessions() as session:
        final = service.get_job(session, job_id)
        front = service.get_front(session, job_id)
        knee_point = service.knee(session, job_id)
        empty = service.empty_front_reason(session, job_id) if not front else None
        splits = service.front_latency_splits(session, job_id)
    estimated = " - accuracies ESTIMATED, not trained" if final.estimated else ""
    status = "interrupted" if caught else final.status
    title = (f"Pareto front of job {job_id}: accuracy vs {spec.device} latency ({final.trials_done} trials, "
             f"{time.perf_counter() - start:.0f} s, {status}){estimated}")
    if empty:  # an explanation, not an empty table
        console.print(f"{title}\n{empty}", highlight=False)
    else:
        console.print(front_table(front, title))
        console.print(split_table(front, splits, spec.device))
    if spec.training.mode == "oneshot":
        scored = final.trial_counts.get("complete", 0)
        console.print(f"one-shot: {scored} trials scored by the supernet (fidelity oneshot); the front above is "
                      "confirmed, trained from scratch (fidelity standalone, accuracy), its one-shot accuracy "
                      "beside", highlight=False)
    sampled = sum(p.origin == "sampler" for p in front)
    console.print(f"{counts_line(final.trial_counts)}; front: {len(front)} members, {sampled} from the sampler, "
                  f"{len(front) - sampled} from the warm start", highlight=False)
    if knee_point:
        console.print(f"knee: candidate {knee_point.candidate_id}, accuracy {knee_point.accuracy:.4f} at "
                      f"{knee_point.latency_ms:.3f} ms")
    if caught:
        released = final.trial_counts.get("stale", 0)
        console.print(f"interrupted by {signal.Signals(caught[0]).name}: job {job_id} cancelled after "
                      f"{final.trials_done} of {final.trials_budget or '-'} trials ({released} given back); "
                      f"`nas resume {job_id} --run{db_flag}` runs the rest", highlight=False)
        raise typer.Exit(128 + caught[0])
    console.print("next:")
    console.print(f"  nas pareto {job_id}{db_flag} --json           # the front as JSON", highlight=False)
    if spec.training.scorer == "train":
        console.print(f"  nas export {job_id} --front --out front-{job_id}{db_flag}   # int8 TFLite of every member",
                      highlight=False)
    console.print(f"  nas trials {job_id}{db_flag}           # every trial: state, origin, accuracy, latency",
                  highlight=False)
    user = final.owner or LOCAL_USER
    console.print(f"  nas tokens create --user {user}{db_flag} && nas serve{db_flag}   # log in to the dashboard "
                  f"as {user} to see this job", highlight=False)


def scorer_label(spec: JobSpec) -> str:
    """`train`, or `train on gpu` for a job only workers of that class take (it waits queued until one runs)."""
    asked = spec.training.device_class
    return spec.training.scorer if asked == "any" else f"{spec.training.scorer} on {asked}"


def jobs_cmd(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOpt = None,
) -> None:
    """List search jobs, newest first."""
    with session_maker(settings_for(db))() as session:
        page = service.list_jobs(session, status=status, limit=limit)
    if as_json:
        typer.echo(json.dumps([j.to_dict() for j in page.items], indent=2))
        return
    table = Table(title=f"{page.total} jobs", title_justify="left")
    for col in ("id", "name", "owner", "status", "trials", "trained/stopped/infeasible/failed", "front", "space",
                "dataset", "device", "scorer", "created", "error"):
        table.add_column(col)
    for j in page.items:
        c = j.trial_counts
        table.add_row(str(j.id), j.name or "", j.owner or "", j.status, f"{j.trials_done}/{j.trials_budget or '-'}",
                      "/".join(str(c.get(s, 0)) for s in ("complete", "stopped", "infeasible", "failed")),
                      str(j.front_size), j.spec.space, j.spec.dataset, j.spec.device,
                      "estimate (not trained)" if j.estimated else scorer_label(j.spec),
                      j.created_at.strftime("%Y-%m-%d %H:%M:%S"), j.error or "")
    make_console().print(table)


def pareto_cmd(
    job: Annotated[int, typer.Argument(help="Job id (see `nas jobs`).")],
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of members: arch, accuracy, latency_ms, ...")]
    = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    db: DbOpt = None,
) -> None:
    """Print the Pareto front of JOB, fastest first."""
    with session_maker(settings_for(db))() as session:
        front = service.get_front(session, job)
        empty = service.empty_front_reason(session, job) if not front else None
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in front], indent=2))
    elif as_csv:
        out = io.StringIO()
        fields = list(FrontPoint.__dataclass_fields__)
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for p in front:
            writer.writerow(p.to_dict())
        typer.echo(out.getvalue(), nl=False)
    elif empty:
        make_console().print(empty, highlight=False)
    else:
        make_console().print(front_table(front, f"Pareto front of job {job}"))


EXPORT_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
"""`nas export ARCH` passes its training options (--dataset, --epochs, ...) on to the single-architecture export."""


def export_cmd(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A job id with --front; otherwise an architecture or reference name.")],
    out: Annotated[Path, typer.Option(help="The directory (with --front) or the .tflite file to write.")],
    front: Annotated[bool, typer.Option("--front", help="Export every member of job TARGET's Pareto front.")] = False,
    inherited: Annotated[bool, typer.Option("--inherited", help="With --front, of a one-shot job: export each "
                                            "member with the weights it inherits from the job's supernet (not "
                                            "retrained).")] = False,
    db: DbOpt = None,
) -> None:
    """Write int8 TFLite files: `nas export JOB --front --out DIR` copies those of a job's Pareto front;
    `nas export ARCH --out FILE [--dataset D --epochs N ...]` trains one architecture and exports it."""
    if inherited and not front:
        raise typer.BadParameter("--inherited exports a one-shot job's front: it needs --front and a job id")
    if not front:
        from nas_service.cli.train import export_cmd as export_arch

        single = typer.Typer(add_completion=False)
        single.command()(export_arch)
        typer.main.get_command(single).main([target, "--out", str(out), *ctx.args], standalone_mode=False)
        return
    if ctx.args:
        raise typer.BadParameter(f"unexpected {' '.join(ctx.args)} with --front: it takes only --out and --db")
    if not target.isdigit():
        raise typer.BadParameter(f"--front needs a job id (see `nas jobs`), got {target!r}")
    from nas_service.services.export import export_front, export_inherited_front

    job = int(target)
    from nas_service.db import session_factory
    from nas_service.db.artifacts import make_store

    settings = settings_for(db)
    engine = migrated_engine(settings)
    with session_factory(engine)() as session:
        if inherited:
            written = export_inherited_front(session, make_store(settings, engine), job, out)
        else:
            written = export_front(session, make_store(settings, engine), job, out)
    console = make_console()
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    console.print(f"wrote {out / 'front.json'}", highlight=False)


def worker_cmd(
    name: Annotated[str | None, typer.Option(help="Worker name in the trial table (default host:pid).")] = None,
    exit_when_idle: Annotated[bool, typer.Option(help="Leave when no queued or running job is left.")] = False,
    job: Annotated[int | None, typer.Option(help="Work only on this job.")] = None,
    device_class: Annotated[Literal["auto", "cpu", "gpu"] | None, typer.Option(
        help="Take jobs whose training.device_class is any or this class, this class first; auto: gpu where "
             "TensorFlow sees a GPU, else cpu (default NAS_DEVICE_CLASS, else auto).")] = None,
    db: DbOpt = None,
) -> None:
    """Claim queued jobs and run their trials; start as many as you like against one PostgreSQL database."""
    from nas_service.worker import Worker, default_worker_name

    settings = settings_for(db)
    if device_class is not None:
        settings = settings.model_copy(update={"device_class": device_class})
    chosen = None if settings.device_class == "auto" else settings.device_class
    with opening(settings.database_url):
        worker = Worker(settings, name=name or default_worker_name(), device_class=chosen)
    worker.stop_on_signals()
    takes = (f"device class {chosen}: takes jobs asking for {chosen} first, then any" if chosen else
             "device class auto: gpu where TensorFlow sees a GPU, else cpu, looked up once a job asks for a class "
             "(any jobs until then)")
    make_console(stderr=True).print(f"worker {worker.name} on {shown_url(settings.database_url)}, {takes}",
                                    highlight=False)
    # The worker's own lines (its device class once looked up, a job that failed) on this command's stderr.
    logger = logging.getLogger("nas_service.worker")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        worker.run(job_id=job, exit_when_idle=exit_when_idle)
    finally:
        logger.removeHandler(handler)
        worker.close()
