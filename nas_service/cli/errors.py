"""Turn domain errors into one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import typer
from rich.markup import escape

from latency_models.errors import LatencyError
from nas_service.cli.database import DatabaseOpenError
from nas_service.cli.datasets import ServerError
from nas_service.cli.output import make_console
from nas_service.db.artifacts import ArtifactCorruptError, ArtifactMissingError
from nas_service.devices import DeviceClassError
from nas_service.services.export import ExportError
from nas_service.services.jobs import JobStateError, NotFoundError
from nas_service.services.tokens import UserNameError
from nas_service.spec import SpecError
from nas_service.trainer.datasets import DatasetError
from nas_service.trainer.training import TrainingError
from search_spaces.errors import ArchError

USER_ERRORS: tuple[type[Exception], ...] = (ArchError, LatencyError, DatasetError, TrainingError, FileNotFoundError,
                                              SpecError, NotFoundError, JobStateError, ExportError, UserNameError,
                                              DatabaseOpenError, ArtifactMissingError, ArtifactCorruptError,
                                              ServerError, DeviceClassError)
"""Errors caused by what the user typed; anything else is a bug and keeps its traceback."""

err_console = make_console(stderr=True)


def run_cli(app: typer.Typer) -> int:
    try:
        code = app(standalone_mode=False)  # click returns a `typer.Exit`'s code rather than raising it
    except USER_ERRORS as exc:
        hint = "; `nas jobs` lists the jobs there are" if isinstance(exc, NotFoundError) else ""
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}{hint}", highlight=False)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:  # click usage errors (typer's own or click's) carry their own exit code
        import click

        if isinstance(exc, click.ClickException | typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            return int(getattr(exc, "exit_code", 2))
        raise
    return code if isinstance(code, int) else 0
