"""The one way CLI modules make a rich Console: terminal width on a TTY, no wrapping or truncation when piped.

Rich falls back to 80 columns when output is not a terminal, which truncates table cells and
folds long lines (architecture strings, one-line errors) in pipes, files and `CliRunner` output.
"""

from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 10_000
"""Columns when not writing to a terminal: wide enough that tables and lines keep their natural width."""


def make_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console
