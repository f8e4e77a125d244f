"""The one way CLI modules make a rich Console: terminal width on a TTY, no wrapping or truncation when piped.

Rich falls back to 80 columns when output is not a terminal, which truncates table cells and
folds long lines (architecture strings, one-line errors) in pipes, files and `CliRunner` output.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

PIPED_WIDTH = 10_000
"""Columns when not writing to a terminal: wide enough that tables and lines keep their natural width."""


def make_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show TensorFlow's and LiteRT's own log lines (banner, "
                                                            "converter notes, delegate messages).")]


@contextmanager
def native_logs_hidden(verbose: bool = False) -> Iterator[None]:
    """Keep the C++ log lines of TensorFlow, its converter and LiteRT (the oneDNN/CPU banner, "fully_quantize:
    0, ...", "Created TensorFlow Lite XNNPACK delegate", `W0000 ...` lines) out of the command's output.

    They write to file descriptor 2 directly, past Python, so fd 2 goes to a log file for the command's
    duration (child processes, such as training slots, inherit it) while Python's `sys.stderr` keeps the
    terminal: rich output, one-line errors and Python warnings still show. The log is deleted afterwards,
    or kept and named when the command dies of an unexpected error."""
    if verbose:
        yield
        return
    original = sys.stderr
    original.flush()
    saved = os.dup(2)
    log = tempfile.NamedTemporaryFile(prefix="nas-native-", suffix=".log", delete=False)  # noqa: SIM115
    os.dup2(log.fileno(), 2)
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=original.encoding or "utf-8",
                           errors="backslashreplace")
    keep = False
    try:
        yield
    except Exception as exc:
        import click

        from nas_service.cli.errors import USER_ERRORS

        expected = (*USER_ERRORS, typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException)
        keep = not isinstance(exc, expected)  # a bug: keep its log
        raise
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr = original
        log.close()
        if keep and os.path.getsize(log.name):
            print(f"TensorFlow/LiteRT log of this command: {log.name}", file=sys.stderr)
        else:
            Path(log.name).unlink(missing_ok=True)  # a temp cleaner may have taken it
